// Package storetest is the contract that every approval.Store must pass. An
// implementation's own test calls Run with a function that returns a new, empty
// store; the same tests then run against SQLite, memory and DynamoDB alike.
//
// The suite uses fixed times (never the wall clock) and distinct creation times,
// so it makes no assumption about how a backend orders equal timestamps.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Base is the fixed instant around which the suite builds its fixtures. It lies in
// the future so that no store's time-to-live deletes a fixture while it is used.
var Base = time.Date(2031, time.May, 6, 7, 8, 9, 123_000_000, time.UTC)

// TTL is how long after its creation a fixture request expires.
const TTL = time.Hour

// CmpOptions compare requests read back from a store: times by instant (not
// location), nil and empty slices alike.
var CmpOptions = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

// Fixture returns a pending request with every field a store keeps set, created
// at createdAt and expiring TTL later: groups, a vote, personal links for its
// email approvers and one Slack approver, a posted channel message and direct
// message, and effects in every state. IDs, token hashes and page keys are fresh
// random values, so fixtures never collide across runs.
func Fixture(createdAt time.Time) *approval.Request {
	createdAt = createdAt.UTC().Truncate(time.Millisecond)
	id := approval.NewID()
	r := &approval.Request{
		ID:         id,
		TaskToken:  "task-token-" + id + "-ÄÖ",
		WebhookURL: "https://hooks.example.com/approvals/" + id,
		Title:      "Deploy v1.2 to prod (" + id + ")",
		Details:    "Changes:\n- fix \"quotes\" & <tags>\n- unicode: żółw 🐢",
		Links: []approval.Link{
			{Label: "Diff", URL: "https://git.example.com/diff/42"},
			{URL: "https://runbook.example.com/deploy"},
		},
		Requester: "ci@example.com",
		Approvers: []string{"alice@example.com", "bob@example.com", "U0SEC00001"},
		Rule: approval.Rule{
			Groups: []approval.Group{
				{Name: "eng", Approvers: []string{"alice@example.com", "bob@example.com"}, Min: 1},
				{Name: "security", Approvers: []string{"U0SEC00001", "alice@example.com"}, Min: 1},
			},
			RejectPolicy:      approval.RejectImpossible,
			AllowSelfApproval: true,
		},
		SlackChannel:   "C0123ABCD",
		ChatMessage:    approval.ChatMessage{Channel: "C0123ABCD", TS: "1700000000.000100"},
		DirectMessages: []approval.ChatMessage{{Channel: "D0SEC00001", TS: "1700000000.000200"}},
		Status:         approval.StatusPending,
		CreatedAt:      createdAt,
		ExpiresAt:      createdAt.Add(TTL),
		Votes: []approval.Vote{{
			By: "U0SEC00001", Email: "sec@example.com", Channel: approval.ChannelSlack,
			Choice: approval.Approve, Comment: "fine by security\nline two", At: createdAt.Add(time.Minute),
			Groups: []string{"security"},
		}},
		Effects: []approval.Effect{
			{Kind: approval.EffectEmail, Target: "alice@example.com", State: approval.EffectDone, Attempts: 1, At: createdAt.Add(time.Second)},
			{Kind: approval.EffectEmail, Target: "bob@example.com", State: approval.EffectPending, Attempts: 2,
				LeaseUntil: createdAt.Add(2 * time.Second), NextAt: createdAt.Add(4 * time.Second), Error: "smtp: 451 try later"},
			{Kind: approval.EffectPost, State: approval.EffectDone, Attempts: 1, At: createdAt.Add(time.Second)},
			{Kind: approval.EffectDM, Target: "U0SEC00001", State: approval.EffectFailed, Attempts: 8, Error: "slack: user_not_found"},
			{Kind: approval.EffectUpdate, State: approval.EffectPending, Attempts: 1, Lease: "lease-1", LeaseUntil: createdAt.Add(3 * time.Minute)},
			{Kind: approval.EffectRemind, Target: "bob@example.com", State: approval.EffectDone, Attempts: 1, At: createdAt.Add(50 * time.Minute)},
			{Kind: approval.EffectEscalatePost, Target: "C0ESCALATE", State: approval.EffectDone, Attempts: 1, At: createdAt.Add(20 * time.Minute)},
		},
		// Timing and hand-offs, each timer already done (so that the
		// fixture is due at its expiry only).
		OnTimeout:  approval.TimeoutApprove,
		Reminders:  approval.Reminders{Every: 20 * time.Minute, BeforeExpiry: []time.Duration{30 * time.Minute, 10*time.Minute + 500*time.Millisecond}},
		RemindedAt: createdAt.Add(TTL - 10*time.Minute),
		Escalation: &approval.Escalation{
			After: 20 * time.Minute, Groups: []approval.Group{{Name: "security", Approvers: []string{"ciso@example.com"}}},
			SlackChannel: "C0ESCALATE", At: createdAt.Add(20 * time.Minute), Message: approval.ChatMessage{Channel: "C0ESCALATE", TS: "1700000000.000300"},
		},
		NoDelegation: true,
		Delegations:  []approval.Delegation{{From: "dave@example.com", To: "bob@example.com", At: createdAt.Add(2 * time.Minute), Channel: approval.ChannelEmail}},
		Extensions:   []approval.Extension{{By: "api", At: createdAt.Add(3 * time.Minute), From: createdAt.Add(TTL - time.Minute), To: createdAt.Add(TTL)}},
		TaskDeadline: createdAt.Add(24 * time.Hour),
	}
	for _, a := range []string{"alice@example.com", "bob@example.com"} {
		tok := approval.NewRequestToken(id)
		r.Recipients = append(r.Recipients, approval.Recipient{
			Address: a, Channel: approval.ChannelEmail, TokenHash: approval.HashToken(tok), PageKey: approval.NewPageKey(),
			PrevHash: approval.HashToken(approval.NewRequestToken(id)), // made again by an extension
		})
	}
	tok := approval.NewRequestToken(id)
	r.Recipients = append(r.Recipients, approval.Recipient{
		Address: "U0SEC00001", Email: "sec@example.com", Channel: approval.ChannelSlack, TokenHash: approval.HashToken(tok), PageKey: approval.NewPageKey(),
	})
	return r
}

// Closed returns r closed by a reject vote at at, its close effects done or
// leased.
func Closed(r *approval.Request, at time.Time) *approval.Request {
	c := r.Clone()
	v := approval.Vote{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: approval.Reject, Comment: "not today", At: at, Groups: []string{"eng"}}
	c.Votes = append(c.Votes, v)
	c.Status = approval.StatusRejected
	c.Decision = &approval.Decision{Choice: v.Choice, By: v.By, Channel: v.Channel, Comment: v.Comment, At: at}
	c.Reason = approval.ReasonWorkflowGone
	c.Effects = append(c.Effects,
		approval.Effect{Kind: approval.EffectDeliver, State: approval.EffectDone, Attempts: 2, At: at.Add(time.Second)},
		approval.Effect{Kind: approval.EffectPages, State: approval.EffectPending, Attempts: 1, Lease: "lease-2", LeaseUntil: at.Add(2 * time.Minute)},
	)
	return c
}

// Run runs the contract suite. newStore must return a new, empty store for each
// call; it is called once per subtest and may register cleanup with t.
func Run(t *testing.T, newStore func(t *testing.T) approval.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s approval.Store)
	}{
		{"CreateGetRoundTrip", testCreateGet},
		{"ClosedRoundTrip", testClosedRoundTrip},
		{"StoredStateIsolated", testIsolation},
		{"CreateConflict", testCreateConflict},
		{"NotFound", testNotFound},
		{"UpdateVersion", testUpdateVersion},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"ListPendingPages", testListPending},
		{"ListDue", testListDue},
		{"ListDueTimers", testListDueTimers},
		{"ListByStatus", testListByStatus},
		{"ListFilters", testListFilters},
		{"ListCursorStable", testListCursorStable},
		{"ListInvalidCursor", testListInvalidCursor},
		{"AuditRoundTrip", testAuditRoundTrip},
		{"AuditLog", testAuditLog},
		{"AuditCheckpoints", testAuditCheckpoints},
		{"VotesQuorumConcurrent", testVotesQuorumConcurrent},
		{"VotesAll", testVotesAll},
		{"VotesGroups", testVotesGroups},
		{"VoteOncePerPerson", testVoteOncePerPerson},
		{"VoteAnyCloses", testVoteAnyCloses},
	}
	// The one-write vote is optional: stores that have it pass its contract.
	if _, ok := newStore(t).(approval.QuickVoter); ok {
		tests = append(tests, []struct {
			name string
			fn   func(t *testing.T, s approval.Store)
		}{{"QuickVote", testQuickVote}, {"QuickVoteConcurrent", testQuickVoteConcurrent}}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

func create(t *testing.T, s approval.Store, r *approval.Request) {
	t.Helper()
	c := r.Clone()
	if err := s.CreateRequest(t.Context(), c); err != nil {
		t.Fatalf("CreateRequest %s: %v", r.ID, err)
	}
	if c.Version != 1 {
		t.Fatalf("CreateRequest set Version %d, want 1", c.Version)
	}
	r.Version = 1
}

func get(t *testing.T, s approval.Store, id string) *approval.Request {
	t.Helper()
	r, err := s.GetRequest(t.Context(), id)
	if err != nil {
		t.Fatalf("GetRequest %s: %v", id, err)
	}
	return r
}

func update(t *testing.T, s approval.Store, r *approval.Request) {
	t.Helper()
	v := r.Version
	c := r.Clone()
	if err := s.UpdateRequest(t.Context(), c); err != nil {
		t.Fatalf("UpdateRequest %s at version %d: %v", r.ID, v, err)
	}
	if c.Version != v+1 {
		t.Fatalf("UpdateRequest set Version %d, want %d", c.Version, v+1)
	}
	r.Version = c.Version
}

func wantRequest(t *testing.T, what string, got, want *approval.Request) {
	t.Helper()
	if diff := cmp.Diff(want, got, CmpOptions); diff != "" {
		t.Errorf("%s (-want +got):\n%s", what, diff)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func ids(rs []*approval.Request) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func testCreateGet(t *testing.T, s approval.Store) {
	r := Fixture(Base)
	create(t, s, r)
	wantRequest(t, "GetRequest after CreateRequest", get(t, s, r.ID), r)

	// The smallest request: no optional field set.
	min := &approval.Request{
		ID: approval.NewID(), Title: "t", Requester: approval.DefaultRequester, Approvers: []string{"a@example.com"},
		Rule:   approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny},
		Status: approval.StatusPending, CreatedAt: Base, ExpiresAt: Base.Add(TTL),
	}
	create(t, s, min)
	wantRequest(t, "GetRequest of a minimal request", get(t, s, min.ID), min)
}

func testClosedRoundTrip(t *testing.T, s approval.Store) {
	r := Fixture(Base)
	create(t, s, r)
	c := Closed(r, Base.Add(5*time.Minute))
	update(t, s, c)
	wantRequest(t, "GetRequest of a closed request", get(t, s, r.ID), c)

	w := Fixture(Base.Add(time.Second))
	create(t, s, w)
	w.Status, w.Reason = approval.StatusCanceled, approval.ReasonCanceled
	w.Canceled = &approval.Cancellation{By: "ci@example.com", Reason: "superseded by v1.3", At: Base.Add(6 * time.Minute)}
	update(t, s, w)
	wantRequest(t, "GetRequest of a canceled request", get(t, s, w.ID), w)
}

func testIsolation(t *testing.T, s approval.Store) {
	r := Fixture(Base)
	want := r.Clone()
	want.Version = 1
	c := r.Clone()
	if err := s.CreateRequest(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	c.Votes[0].Comment = "changed after CreateRequest"
	c.Approvers[0] = "mallory@example.com"
	c.Effects[0].State = approval.EffectFailed
	got := get(t, s, r.ID)
	got.Rule.Groups[0].Approvers[0] = "changed after GetRequest"
	got.Votes[0].Groups[0] = "changed"
	wantRequest(t, "stored request after changing the values passed in and out", get(t, s, r.ID), want)
}

func testCreateConflict(t *testing.T, s approval.Store) {
	r := Fixture(Base)
	create(t, s, r)
	other := Fixture(Base.Add(time.Second))
	other.ID = r.ID
	wantErr(t, "CreateRequest with a taken ID", s.CreateRequest(t.Context(), other), approval.ErrConflict)
	wantRequest(t, "request after a conflicting create", get(t, s, r.ID), r)
}

func testNotFound(t *testing.T, s approval.Store) {
	ctx := t.Context()
	_, err := s.GetRequest(ctx, approval.NewID())
	wantErr(t, "GetRequest of an unknown ID", err, approval.ErrNotFound)
	r := Fixture(Base)
	r.Version = 1
	wantErr(t, "UpdateRequest of an unknown ID", s.UpdateRequest(ctx, r), approval.ErrNotFound)
	_, err = s.LegacyToken(ctx, approval.HashToken("no such token"))
	wantErr(t, "LegacyToken of an unknown hash", err, approval.ErrNotFound)
}

func testUpdateVersion(t *testing.T, s approval.Store) {
	r := Fixture(Base)
	create(t, s, r)
	v1 := r.Clone()
	r.Title = "second"
	update(t, s, r)
	r.Votes = append(r.Votes, approval.Vote{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, At: Base.Add(2 * time.Minute), Groups: []string{"eng"}})
	update(t, s, r)
	if r.Version != 3 {
		t.Fatalf("version after two updates: got %d, want 3", r.Version)
	}
	stale := v1.Clone()
	stale.Title = "written over a stale version"
	wantErr(t, "UpdateRequest at a stale version", s.UpdateRequest(t.Context(), stale), approval.ErrConflict)
	if stale.Version != 1 {
		t.Errorf("a refused update changed Version to %d", stale.Version)
	}
	wantRequest(t, "request after a stale update", get(t, s, r.ID), r)
}

func testUpdateConcurrent(t *testing.T, s approval.Store) {
	const workers = 20
	r := Fixture(Base)
	create(t, s, r)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, workers)
	)
	for i := range workers {
		c := r.Clone()
		c.Title = fmt.Sprintf("writer %d", i)
		wg.Go(func() {
			<-start
			errs[i] = s.UpdateRequest(context.WithoutCancel(t.Context()), c)
		})
	}
	close(start)
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Errorf("writers %d and %d both updated version 1", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, approval.ErrConflict):
			t.Errorf("writer %d: got %v, want nil or ErrConflict", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no concurrent update succeeded")
	}
	got := get(t, s, r.ID)
	if want := fmt.Sprintf("writer %d", won); got.Title != want || got.Version != 2 {
		t.Errorf("stored: title %q version %d; want %q version 2", got.Title, got.Version, want)
	}
}

func testListPending(t *testing.T, s approval.Store) {
	ctx := t.Context()
	var want []string // newest first
	for i := range 7 {
		r := Fixture(Base.Add(time.Duration(i) * time.Second))
		create(t, s, r)
		want = append([]string{r.ID}, want...)
	}
	for i := range 2 {
		r := Fixture(Base.Add(time.Duration(10+i) * time.Second))
		create(t, s, r)
		update(t, s, Closed(r, Base.Add(time.Minute)))
	}
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		rs, next, err := s.List(ctx, pending(cursor, 3))
		if err != nil {
			t.Fatalf("ListPending page %d: %v", page, err)
		}
		if len(rs) > 3 {
			t.Fatalf("ListPending page %d: %d requests, limit 3", page, len(rs))
		}
		for _, r := range rs {
			if r.Status != approval.StatusPending {
				t.Errorf("ListPending returned %s, which is %s", r.ID, r.Status)
			}
		}
		got = append(got, ids(rs)...)
		if next == "" {
			break
		}
		if page > 5 {
			t.Fatal("ListPending does not end")
		}
		cursor = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pending requests over all pages, newest first (-want +got):\n%s", diff)
	}
	// A page's cursor keeps its place when the request it ends on closes.
	first, next, err := s.List(ctx, pending("", 2))
	if err != nil || len(first) != 2 || next == "" {
		t.Fatalf("ListPending first page of 2: %d requests, next %q, %v", len(first), next, err)
	}
	update(t, s, Closed(first[1], Base.Add(time.Minute)))
	rest, _, err := s.List(ctx, pending(next, 2))
	if err != nil || len(rest) != 2 || rest[0].ID != want[2] || rest[1].ID != want[3] {
		t.Errorf("ListPending after the cursor's request closed: %v, %v; want %v", ids(rest), err, want[2:4])
	}
	all, next, err := s.List(ctx, pending("", 100))
	if err != nil || next != "" || len(all) != 6 {
		t.Errorf("ListPending with a large limit: %d requests, next %q, err %v; want 6, \"\", nil", len(all), next, err)
	}
}

func testListDue(t *testing.T, s approval.Store) {
	ctx := t.Context()
	now := Base.Add(2 * TTL)
	quiet := func(r *approval.Request) *approval.Request {
		for i := range r.Effects {
			r.Effects[i].State = approval.EffectDone
			r.Effects[i].Lease = ""
		}
		r.Reminders = approval.Reminders{} // no timer either (see testListDueTimers)
		return r
	}
	// Pending, expiring after now, no unfinished effect: not due.
	notYet := quiet(Fixture(Base))
	notYet.ExpiresAt = now.Add(time.Hour)
	create(t, s, notYet)
	// Pending and past expiry: due at its expiry.
	expired := quiet(Fixture(Base.Add(time.Second)))
	create(t, s, expired)
	// Closed, an effect whose lease lapsed: due.
	lapsed := Fixture(Base.Add(2 * time.Second))
	create(t, s, lapsed)
	c := quiet(Closed(lapsed, Base.Add(time.Minute)))
	c.Effects[len(c.Effects)-1] = approval.Effect{Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 1, LeaseUntil: Base.Add(3 * time.Minute)}
	update(t, s, c)
	// Closed, everything done: never due.
	done := Fixture(Base.Add(3 * time.Second))
	create(t, s, done)
	update(t, s, quiet(Closed(done, Base.Add(time.Minute))))
	// Closed, a retry not before after now: not due yet.
	later := Fixture(Base.Add(4 * time.Second))
	create(t, s, later)
	lc := quiet(Closed(later, Base.Add(time.Minute)))
	lc.Effects[0] = approval.Effect{Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 3, NextAt: now.Add(time.Minute), Error: "x"}
	update(t, s, lc)

	due, err := s.ListDue(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{lapsed.ID, expired.ID} // earliest due first: 3 min, then 1 h
	if diff := cmp.Diff(want, ids(due)); diff != "" {
		t.Errorf("ListDue at now (-want +got):\n%s", diff)
	}
	due, err = s.ListDue(ctx, now, 1)
	if err != nil || len(due) != 1 || due[0].ID != lapsed.ID {
		t.Errorf("ListDue with limit 1: %v, %v; want [%s]", ids(due), err, lapsed.ID)
	}
	due, err = s.ListDue(ctx, now.Add(2*time.Hour), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{lapsed.ID, expired.ID, later.ID, notYet.ID}, ids(due)); diff != "" {
		t.Errorf("ListDue two hours later (-want +got):\n%s", diff)
	}
	// Once nothing is left to do, a request leaves the index.
	cur := get(t, s, lapsed.ID)
	update(t, s, quiet(cur))
	due, err = s.ListDue(ctx, now, 10)
	if err != nil || len(due) != 1 || due[0].ID != expired.ID {
		t.Errorf("ListDue after the lapsed effect was done: %v, %v; want [%s]", ids(due), err, expired.ID)
	}
}

// testListDueTimers: a pending request is due at its next reminder and at its
// escalation, before its expiry, and a round of reminders written moves it on.
func testListDueTimers(t *testing.T, s approval.Store) {
	ctx := t.Context()
	quiet := func(r *approval.Request) *approval.Request {
		r.Effects = nil
		return r
	}
	remind := quiet(Fixture(Base))
	remind.RemindedAt = time.Time{} // due at Base + 20 min, the first "every"
	remind.Escalation = nil
	create(t, s, remind)
	escalate := quiet(Fixture(Base.Add(time.Second)))
	escalate.Reminders = approval.Reminders{}
	escalate.Escalation.At = time.Time{} // due at its creation + 20 min
	create(t, s, escalate)
	plain := quiet(Fixture(Base.Add(2 * time.Second))) // every timer done: due at its expiry
	create(t, s, plain)

	due, err := s.ListDue(ctx, Base.Add(30*time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{remind.ID, escalate.ID}, ids(due)); diff != "" {
		t.Errorf("ListDue at 30 minutes (-want +got):\n%s", diff)
	}
	remind.RemindedAt = Base.Add(20 * time.Minute) // the round is written: next at 30 min before the expiry
	update(t, s, remind)
	due, err = s.ListDue(ctx, Base.Add(29*time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].ID != escalate.ID {
		t.Errorf("ListDue at 29 minutes after the round: %v, %v; want [%s]", ids(due), err, escalate.ID)
	}
	due, err = s.ListDue(ctx, Base.Add(30*time.Minute), 10)
	if err != nil || len(due) != 2 || due[0].ID != escalate.ID {
		t.Errorf("ListDue at 30 minutes after the round: %v, %v; want [%s %s]", ids(due), err, escalate.ID, remind.ID)
	}
}
