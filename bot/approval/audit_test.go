package approval_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

// kindsOf are the kinds of a trail's entries.
func kindsOf(es []approval.AuditEntry) []approval.AuditKind {
	var out []approval.AuditKind
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

// lines makes export lines of entries.
func lines(es []approval.AuditEntry) []approval.AuditLine {
	out := make([]approval.AuditLine, len(es))
	for i, e := range es {
		out[i] = approval.AuditLine{Line: i + 1, Entry: e}
	}
	return out
}

// log reads the whole audit log of the harness's store.
func (h *harness) log(t *testing.T) []approval.AuditEntry {
	t.Helper()
	es, next, err := h.store.ReadAudit(t.Context(), approval.AuditQuery{Limit: 100_000})
	if err != nil || next != "" {
		t.Fatalf("ReadAudit: %v, next %q", err, next)
	}
	return es
}

// Every change the service makes is sealed into the request's trail, in the
// order it happened: created, the notifications, each vote, the close, the
// delivery; each entry chained to the one before.
func TestAuditTrailOfAVote(t *testing.T) {
	h := newHarness(t, true)
	r := h.create(t, validInput())
	if _, err := h.decide(t, r, "alice@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	got := h.get(t, r.ID)
	want := []approval.AuditKind{
		approval.AuditCreated, approval.AuditNotified, approval.AuditNotified, approval.AuditNotified,
		approval.AuditVote, approval.AuditClosed, approval.AuditDelivered,
	}
	if diff := cmp.Diff(want, kindsOf(got.Audit)); diff != "" {
		t.Errorf("trail (-want +got):\n%s", diff)
	}
	c := got.Audit[0]
	if c.By != "ci@example.com" || c.Title != "Deploy v1.2 to prod" || len(c.Approvers) != 2 || c.Rule == "" || !c.ExpiresAt.Equal(r.ExpiresAt) || c.Detail != "" {
		t.Errorf("created entry %+v", c)
	}
	v, cl := got.Audit[4], got.Audit[5]
	if v.By != "alice@example.com" || v.Choice != approval.Approve || v.Channel != approval.ChannelEmail || v.Comment != "approved by alice@example.com" {
		t.Errorf("vote entry %+v", v)
	}
	if cl.Status != approval.StatusApproved || cl.By != "alice@example.com" {
		t.Errorf("closed entry %+v", cl)
	}
	for i, e := range got.Audit {
		if e.Seq != i+1 || e.RequestID != r.ID || e.Hash != e.ComputeHash() || (i > 0 && e.Prev != got.Audit[i-1].Hash) || (i == 0 && e.Prev != "") {
			t.Errorf("entry %d: seq %d, request %q, prev %q, hash ok %v", i, e.Seq, e.RequestID, e.Prev, e.Hash == e.ComputeHash())
		}
	}
	if rep := approval.VerifyAudit(lines(h.log(t)), start); !rep.OK() || rep.Requests != 1 {
		t.Errorf("the log: %+v", rep)
	}
}

// The vote that meets a quorum is recorded by the store's one-write quick
// vote, with no read before it; the write that records its effects seals
// both votes, the close and the delivery into the trail, in order.
func TestAuditTrailOfAQuorumClosedByAQuickVote(t *testing.T) {
	h := newHarness(t, true)
	f := &faults{failAt: -1}
	h.svc.Store = quickFaultStore{faultStore{h.store, f}}
	in := validInput()
	in.Policy = "quorum:2"
	r := h.create(t, in)
	if _, err := h.decide(t, r, "alice@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.names = nil
	f.mu.Unlock()
	got, err := h.decide(t, r, "bob@example.com", approval.Approve)
	if err != nil || got.Status != approval.StatusApproved || len(got.Votes) != 2 || got.Decision.By != "bob@example.com" {
		t.Fatalf("bob's vote: %+v, %v; want approved by bob after alice", got, err)
	}
	f.mu.Lock()
	calls := slices.Clone(f.names)
	f.mu.Unlock()
	if len(calls) == 0 || calls[0] != "store.QuickVote" || slices.Contains(calls, "store.GetRequest") {
		t.Errorf("store calls of the vote that meets the quorum: %v; want the quick vote first and no read", calls)
	}
	stored := h.get(t, r.ID)
	want := []approval.AuditKind{
		approval.AuditCreated, approval.AuditNotified, approval.AuditNotified, approval.AuditNotified,
		approval.AuditVote, approval.AuditVote, approval.AuditClosed, approval.AuditDelivered,
	}
	if diff := cmp.Diff(want, kindsOf(stored.Audit)); diff != "" {
		t.Errorf("trail (-want +got):\n%s", diff)
	}
	if n := len(stored.Audit); n >= 3 && (stored.Audit[n-3].By != "bob@example.com" || stored.Audit[n-2].By != "bob@example.com" || stored.Audit[n-2].Status != approval.StatusApproved) {
		t.Errorf("bob's vote and the close: %+v, %+v", stored.Audit[n-3], stored.Audit[n-2])
	}
	if rep := approval.VerifyAudit(lines(h.log(t)), start); !rep.OK() {
		t.Errorf("the log: %+v", rep)
	}
}

// A fact written without its entry (a partial write that records a vote,
// an older version's request) is sealed by the next write through the
// service, in order.
func TestAuditSealsWhatAnotherWriterLeft(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.Policy = "all"
	in.Approvers = append(in.Approvers, "carol@example.com")
	r := h.create(t, in)
	// A vote recorded in the store alone, as a fast path might.
	cur := h.get(t, r.ID)
	cur.Votes = append(cur.Votes, approval.Vote{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, At: h.clock.Now().Add(time.Second)})
	if err := h.store.UpdateRequest(t.Context(), cur); err != nil {
		t.Fatal(err)
	}
	if _, err := h.decide(t, r, "alice@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	var votes []string
	for _, e := range h.get(t, r.ID).Audit {
		if e.Kind == approval.AuditVote {
			votes = append(votes, e.By)
		}
	}
	if diff := cmp.Diff([]string{"bob@example.com", "alice@example.com"}, votes); diff != "" {
		t.Errorf("votes in the trail (-want +got):\n%s", diff)
	}

	// A request stored without a trail (before the trail existed) gets one at
	// its first change, which says so.
	old := h.get(t, h.create(t, validInput()).ID)
	old.Audit = nil
	h.store.TamperAudit(func(es []approval.AuditEntry) []approval.AuditEntry { return nil }) // no log either
	if err := h.store.UpdateRequest(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	if _, err := h.decide(t, old, "bob@example.com", approval.Reject); err != nil {
		t.Fatal(err)
	}
	got := h.get(t, old.ID).Audit
	if len(got) == 0 || got[0].Kind != approval.AuditCreated || !strings.Contains(got[0].Detail, "recorded late") || !got[0].At.Equal(old.CreatedAt) {
		t.Errorf("trail of an old request: %+v; want it to begin with a created entry recorded late", got)
	}
	want := []approval.AuditKind{ // in the order they happened
		approval.AuditCreated, approval.AuditNotified, approval.AuditNotified, approval.AuditVote, approval.AuditClosed, approval.AuditDelivered,
	}
	if diff := cmp.Diff(want, kindsOf(got)); diff != "" {
		t.Errorf("trail of an old request (-want +got):\n%s", diff)
	}
}

// Notification failures are in the trail, each attempt, the last one final.
func TestAuditNotificationFailures(t *testing.T) {
	h := newHarness(t, false)
	h.mail.SetErr(errors.New("smtp: 550 mailbox unavailable"))
	in := validInput()
	in.Approvers = []string{"alice@example.com"}
	in.Timeout = 24 * time.Hour
	r := h.create(t, in)
	for range approval.MaxAttempts + 1 {
		h.clock.Advance(10 * time.Minute)
		if _, err := h.svc.Sweep(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	var attempts []int
	final := false
	for _, e := range h.get(t, r.ID).Audit {
		if e.Kind == approval.AuditNotifyFailed {
			attempts = append(attempts, e.Attempt)
			final = e.Final
			if !strings.Contains(e.Error, "mailbox unavailable") || e.Target != "alice@example.com" {
				t.Errorf("failure entry %+v", e)
			}
		}
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5, 6, 7, 8}, attempts); diff != "" || !final {
		t.Errorf("failed attempts in the trail (-want +got):\n%s; last final %v", diff, final)
	}
	last := h.get(t, r.ID).Audit
	if e := last[len(last)-2]; e.Kind != approval.AuditClosed || e.Reason != approval.ReasonNotificationFailed {
		t.Errorf("entry before the delivery %+v, want closed for notification_failed; trail %v", e, kindsOf(last))
	}
}

// A cancellation is one entry with who and why.
func TestAuditCancel(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	if _, err := h.svc.Cancel(t.Context(), r.ID, "ci@example.com", "superseded"); err != nil {
		t.Fatal(err)
	}
	var got *approval.AuditEntry
	for _, e := range h.get(t, r.ID).Audit {
		if e.Kind == approval.AuditCanceled {
			got = &e
		}
	}
	if got == nil || got.By != "ci@example.com" || got.Comment != "superseded" || got.Status != approval.StatusCanceled {
		t.Errorf("canceled entry %+v", got)
	}
}

// The canonical form is the exported JSON: an entry read back from a line,
// however its white space, keeps its hash; any change of content does not.
func TestAuditEntryJSON(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	e := h.get(t, r.ID).Audit[0]
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	pretty, _ := json.MarshalIndent(json.RawMessage(b), "", "  ")
	back, err := approval.ParseAuditEntry(pretty)
	if err != nil || back.ComputeHash() != e.Hash || back.Hash != e.Hash {
		t.Errorf("re-read entry: %v, hash %q, want %q", err, back.ComputeHash(), e.Hash)
	}
	if diff := cmp.Diff(e, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	changed := strings.Replace(string(b), `"by":"ci@example.com"`, `"by":"mallory@example.com"`, 1)
	if x, _ := approval.ParseAuditEntry([]byte(changed)); x.ComputeHash() == x.Hash {
		t.Error("an entry with another author keeps its hash")
	}
	if _, err := approval.ParseAuditEntry([]byte(`{"seq":"one"}`)); err == nil {
		t.Error("a line that is no entry parsed")
	}
}

// Checkpoints: a whole request removed is found, unless it is past its
// retention; a checkpoint chain that starts late is accepted only when the
// missing checkpoints were due to go.
func TestAuditVerifyCheckpoints(t *testing.T) {
	h := newHarness(t, false)
	a := h.create(t, validInput())
	b := h.create(t, validInput())
	if n, err := h.svc.Checkpoint(t.Context()); err != nil || n != 1 {
		t.Fatalf("Checkpoint: %d, %v", n, err)
	}
	log := h.log(t)
	if rep := approval.VerifyAudit(lines(log), start); !rep.OK() || rep.Checkpoints != 1 || rep.Unsealed != 0 {
		t.Fatalf("the log: %+v", rep)
	}
	without := func(id string, es []approval.AuditEntry) []approval.AuditEntry {
		var out []approval.AuditEntry
		for _, e := range es {
			if e.RequestID != id {
				out = append(out, e)
			}
		}
		return out
	}
	rep := approval.VerifyAudit(lines(without(a.ID, log)), start)
	if rep.OK() || rep.Problems[0].RequestID != a.ID || !strings.Contains(rep.Problems[0].What, "deleted") {
		t.Errorf("request %s removed: %+v; want it named as deleted", a.ID, rep.Problems)
	}

	// The same, with the request's retention set and past: no problem. (A
	// checkpoint's content cannot be changed without breaking its hash, so
	// it is made anew here.)
	cp := log[len(log)-1]
	for i := range cp.Heads {
		cp.Heads[i].KeepUntil = start.Add(time.Hour)
	}
	cp.Hash = cp.ComputeHash()
	kept := append(without(a.ID, log[:len(log)-1]), cp)
	if rep := approval.VerifyAudit(lines(kept), start.Add(2*time.Hour)); !rep.OK() || rep.Expired != 1 {
		t.Errorf("a request past its retention: %+v; want OK with one expired", rep)
	}
	if rep := approval.VerifyAudit(lines(kept), start.Add(30*time.Minute)); rep.OK() {
		t.Error("a request removed before its retention passed verified")
	}

	// A later checkpoint alone: fine once the first was due to go.
	h.decide(t, b, "bob@example.com", approval.Approve)
	if n, err := h.svc.Checkpoint(t.Context()); err != nil || n != 1 {
		t.Fatalf("second Checkpoint: %d, %v", n, err)
	}
	log = h.log(t)
	var noFirst []approval.AuditEntry
	for _, e := range log {
		if e.RequestID != "" || e.Seq != 1 {
			noFirst = append(noFirst, e)
		}
	}
	if rep := approval.VerifyAudit(lines(noFirst), start); rep.OK() {
		t.Error("the log without its first checkpoint verified, though that checkpoint was to be kept for good")
	}
}
