package storetest

import (
	"errors"
	"testing"
	"time"

	"approvalbot/bot/approval"

	"github.com/google/go-cmp/cmp"
)

// readAudit reads the whole audit log, limit entries a page.
func readAudit(t *testing.T, s approval.Store, q approval.AuditQuery) []approval.AuditEntry {
	t.Helper()
	var out []approval.AuditEntry
	for page := 0; ; page++ {
		if page > 1000 {
			t.Fatal("ReadAudit does not end")
		}
		es, next, err := s.ReadAudit(t.Context(), q)
		if err != nil {
			t.Fatalf("ReadAudit page %d: %v", page, err)
		}
		out = append(out, es...)
		if next == "" {
			return out
		}
		q.Cursor = next
	}
}

// verify runs VerifyAudit over entries as lines of an export.
func verify(entries []approval.AuditEntry, now time.Time) approval.AuditReport {
	lines := make([]approval.AuditLine, len(entries))
	for i, e := range entries {
		lines[i] = approval.AuditLine{Line: i + 1, Entry: e}
	}
	return approval.VerifyAudit(lines, now)
}

// kinds are the kinds of a chain's entries.
func kinds(es []approval.AuditEntry) []approval.AuditKind {
	var out []approval.AuditKind
	for _, e := range es {
		out = append(out, e.Kind)
	}
	return out
}

// auditScenario makes, through the service, a request of two approvers under
// quorum:2 with both votes (approved), and one that is canceled.
func auditScenario(t *testing.T, h *harness) (approved, canceled *approval.Request) {
	t.Helper()
	r, toks := h.create(t, approval.NewRequest{Approvers: []string{"alice@example.com", "bob@example.com"}, Policy: "quorum:2"})
	for _, a := range []string{"alice@example.com", "bob@example.com"} {
		if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[a], Choice: approval.Approve, Comment: "ok by " + a}); err != nil {
			t.Fatalf("Decide %s: %v", a, err)
		}
	}
	c, _ := h.create(t, approval.NewRequest{Approvers: []string{"carol@example.com"}})
	if _, err := h.svc.Cancel(t.Context(), c.ID, "ci@example.com", "superseded"); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	return r, c
}

func testAuditRoundTrip(t *testing.T, s approval.Store) {
	h := newHarness(s)
	r, c := auditScenario(t, h)
	got := get(t, s, r.ID)
	want := []approval.AuditKind{
		approval.AuditCreated, approval.AuditNotified, approval.AuditNotified,
		approval.AuditVote, approval.AuditVote, approval.AuditClosed,
	}
	if diff := cmp.Diff(want, kinds(got.Audit)); diff != "" {
		t.Errorf("the approved request's trail (-want +got):\n%s", diff)
	}
	if rep := verify(got.Audit, Base); !rep.OK() {
		t.Errorf("the trail as stored does not verify: %v", rep.Problems)
	}
	last := got.Audit[len(got.Audit)-1]
	if last.Status != approval.StatusApproved || last.By != "bob@example.com" || last.Comment != "ok by bob@example.com" {
		t.Errorf("closing entry: %+v; want approved by bob with his comment", last)
	}
	cc := get(t, s, c.ID)
	if n := len(cc.Audit); n == 0 || cc.Audit[n-1].Kind != approval.AuditCanceled || cc.Audit[n-1].By != "ci@example.com" || cc.Audit[n-1].Comment != "superseded" {
		t.Errorf("the canceled request's trail: %+v; want it to end with canceled by ci@example.com", cc.Audit)
	}
	// Written again unchanged, the trail stays as it is.
	before := got.Clone()
	update(t, s, got)
	if diff := cmp.Diff(before.Audit, get(t, s, r.ID).Audit, CmpOptions); diff != "" {
		t.Errorf("trail after an update that added nothing (-want +got):\n%s", diff)
	}
}

func testAuditLog(t *testing.T, s approval.Store) {
	h := newHarness(s)
	r, c := auditScenario(t, h)
	log := readAudit(t, s, approval.AuditQuery{Limit: 3})
	byRequest := map[string][]approval.AuditEntry{}
	for _, e := range log {
		byRequest[e.RequestID] = append(byRequest[e.RequestID], e)
	}
	for _, id := range []string{r.ID, c.ID} {
		if diff := cmp.Diff(get(t, s, id).Audit, byRequest[id], CmpOptions); diff != "" {
			t.Errorf("request %s: log entries, in order, against its trail (-want +got):\n%s", id, diff)
		}
	}
	if rep := verify(log, Base); !rep.OK() {
		t.Errorf("the log does not verify: %v", rep.Problems)
	}
	// Since keeps what happened at or after a time: here everything
	// happened at the harness's one instant.
	if got := readAudit(t, s, approval.AuditQuery{Since: Base.Add(time.Minute)}); len(got) != len(log) {
		t.Errorf("ReadAudit since the harness's instant: %d entries, want %d", len(got), len(log))
	}
	if got := readAudit(t, s, approval.AuditQuery{Since: Base.Add(time.Hour)}); len(got) != 0 {
		t.Errorf("ReadAudit since an hour later: %d entries, want none", len(got))
	}
	if _, _, err := s.ReadAudit(t.Context(), approval.AuditQuery{Cursor: "not a cursor"}); !errors.Is(err, approval.ErrInvalid) {
		t.Errorf("ReadAudit with an invalid cursor: got %v, want ErrInvalid", err)
	}
}

func testAuditCheckpoints(t *testing.T, s approval.Store) {
	ctx := t.Context()
	h := newHarness(s)
	if _, err := s.LastCheckpoint(ctx); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("LastCheckpoint of an empty store: got %v, want ErrNotFound", err)
	}
	if n, err := h.svc.Checkpoint(ctx); err != nil || n != 0 {
		t.Errorf("Checkpoint of an empty store: %d, %v; want 0, nil", n, err)
	}
	r, c := auditScenario(t, h)
	if n, err := h.svc.Checkpoint(ctx); err != nil || n != 1 {
		t.Fatalf("Checkpoint: %d, %v; want 1, nil", n, err)
	}
	cp, err := s.LastCheckpoint(ctx)
	if err != nil {
		t.Fatalf("LastCheckpoint: %v", err)
	}
	want := []approval.AuditHead{get(t, s, r.ID).Head(), get(t, s, c.ID).Head()}
	if want[0].RequestID > want[1].RequestID {
		want[0], want[1] = want[1], want[0]
	}
	opts := append(CmpOptions, cmp.Comparer(func(a, b approval.AuditHead) bool {
		return a.RequestID == b.RequestID && a.Seq == b.Seq && a.Hash == b.Hash
	}))
	if cp.Seq != 1 || cp.Prev != "" || cp.Hash != cp.ComputeHash() {
		t.Errorf("first checkpoint: seq %d prev %q hash ok %v; want 1, \"\", true", cp.Seq, cp.Prev, cp.Hash == cp.ComputeHash())
	}
	if diff := cmp.Diff(want, cp.Heads, opts); diff != "" {
		t.Errorf("heads sealed by the first checkpoint (-want +got):\n%s", diff)
	}
	if err := s.AddCheckpoint(ctx, cp); !errors.Is(err, approval.ErrConflict) {
		t.Errorf("AddCheckpoint with a taken seq: got %v, want ErrConflict", err)
	}
	if n, err := h.svc.Checkpoint(ctx); err != nil || n != 0 {
		t.Errorf("Checkpoint with nothing new: %d, %v; want 0, nil", n, err)
	}

	// A new request: the next checkpoint seals it alone, chained to the first.
	n, _ := h.create(t, approval.NewRequest{Approvers: []string{"dave@example.com"}})
	if k, err := h.svc.Checkpoint(ctx); err != nil || k != 1 {
		t.Fatalf("second Checkpoint: %d, %v; want 1, nil", k, err)
	}
	cp2, err := s.LastCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp2.Seq != 2 || cp2.Prev != cp.Hash {
		t.Errorf("second checkpoint: seq %d prev %q; want 2 chained to %q", cp2.Seq, cp2.Prev, cp.Hash)
	}
	if diff := cmp.Diff([]approval.AuditHead{get(t, s, n.ID).Head()}, cp2.Heads, opts); diff != "" {
		t.Errorf("heads sealed by the second checkpoint (-want +got):\n%s", diff)
	}
	log := readAudit(t, s, approval.AuditQuery{})
	rep := verify(log, Base)
	if !rep.OK() || rep.Checkpoints != 2 || rep.Requests != 3 || rep.Unsealed != 0 {
		t.Errorf("verify the log: %+v; want OK with 2 checkpoints, 3 requests, none unsealed", rep)
	}
}
