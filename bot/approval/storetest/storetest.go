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

// CmpOptions compare requests and tokens read back from a store: times by
// instant (not location), nil and empty slices alike.
var CmpOptions = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmpopts.EquateEmpty(),
}

// Fixture returns a pending request with every field a store keeps set, created at
// createdAt and expiring TTL later, and its tokens: one for each of its two email
// approvers and one for its Slack channel. IDs, token hashes and page keys are
// fresh random values, so fixtures never collide across runs.
func Fixture(createdAt time.Time) (*approval.Request, []approval.Token) {
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
		Requester:    "ci@example.com",
		Approvers:    []string{"alice@example.com", "bob@example.com"},
		Policy:       approval.PolicyAny,
		SlackChannel: "C0123ABCD",
		Status:       approval.StatusPending,
		CreatedAt:    createdAt,
		ExpiresAt:    createdAt.Add(TTL),
	}
	var toks []approval.Token
	add := func(addr string, c approval.Channel) {
		_, hash := approval.NewToken()
		rc := approval.Recipient{Address: addr, Channel: c, TokenHash: hash, PageKey: approval.NewPageKey()}
		r.Recipients = append(r.Recipients, rc)
		toks = append(toks, approval.Token{
			Hash: hash, RequestID: id, Recipient: addr, Channel: c,
			PageKey: rc.PageKey, ExpiresAt: r.ExpiresAt,
		})
	}
	for _, a := range r.Approvers {
		add(a, approval.ChannelEmail)
	}
	add(r.SlackChannel, approval.ChannelSlack)
	return r, toks
}

// Clone returns a deep copy of r, so that a test keeps an expected value that no
// store call can change.
func Clone(r *approval.Request) *approval.Request {
	if r == nil {
		return nil
	}
	c := *r
	c.Links = append([]approval.Link(nil), r.Links...)
	c.Approvers = append([]string(nil), r.Approvers...)
	c.Recipients = append([]approval.Recipient(nil), r.Recipients...)
	if r.Decision != nil {
		d := *r.Decision
		c.Decision = &d
	}
	return &c
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
		{"StoredStateIsolated", testIsolation},
		{"CreateConflict", testCreateConflict},
		{"NotFound", testNotFound},
		{"ListPending", testListPending},
		{"ClaimApprove", func(t *testing.T, s approval.Store) { testClaimSuccess(t, s, approval.Approve) }},
		{"ClaimReject", func(t *testing.T, s approval.Store) { testClaimSuccess(t, s, approval.Reject) }},
		{"ClaimErrors", testClaimErrors},
		{"ClaimConcurrent", testClaimConcurrent},
		{"Expire", testExpire},
		{"MarkWorkflowGone", testMarkWorkflowGone},
		{"MarkDeliveredListUndelivered", testUndelivered},
		{"SetChatMessage", testSetChatMessage},
		{"LeaseDelivery", testLeaseDelivery},
		{"LeaseDeliveryNotPendingNotDelivered", testLeaseDeliveryStates},
		{"LeaseDeliveryConcurrent", testLeaseDeliveryConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t))
		})
	}
}

func create(t *testing.T, s approval.Store, r *approval.Request, toks []approval.Token) {
	t.Helper()
	if err := s.CreateRequest(t.Context(), Clone(r), append([]approval.Token(nil), toks...)); err != nil {
		t.Fatalf("CreateRequest(%s): %v", r.ID, err)
	}
}

func get(t *testing.T, s approval.Store, id string) *approval.Request {
	t.Helper()
	r, err := s.GetRequest(t.Context(), id)
	if err != nil {
		t.Fatalf("GetRequest(%s): %v", id, err)
	}
	return r
}

func getToken(t *testing.T, s approval.Store, hash string) *approval.Token {
	t.Helper()
	tok, err := s.GetToken(t.Context(), hash)
	if err != nil {
		t.Fatalf("GetToken(%s): %v", hash[:8], err)
	}
	return tok
}

func wantRequest(t *testing.T, what string, got, want *approval.Request) {
	t.Helper()
	if diff := cmp.Diff(want, got, CmpOptions); diff != "" {
		t.Errorf("%s: request mismatch (-want +got):\n%s", what, diff)
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

func decision(c approval.Choice, by string, at time.Time) approval.Decision {
	return approval.Decision{Choice: c, By: by, Channel: approval.ChannelEmail, Comment: "looks good, " + by + " ✓", At: at}
}

// decided is want after a successful claim of d.
func decided(r *approval.Request, d approval.Decision) *approval.Request {
	w := Clone(r)
	w.Status = d.Choice.Status()
	w.Decision = &d
	return w
}

func testCreateGet(t *testing.T, s approval.Store) {
	r, toks := Fixture(Base)
	create(t, s, r, toks)

	wantRequest(t, "GetRequest after CreateRequest", get(t, s, r.ID), r)
	for _, want := range toks {
		got := getToken(t, s, want.Hash)
		if diff := cmp.Diff(&want, got, CmpOptions); diff != "" {
			t.Errorf("GetToken(%s) mismatch (-want +got):\n%s", want.Recipient, diff)
		}
		if !got.UsedAt.IsZero() {
			t.Errorf("GetToken(%s).UsedAt = %v, want zero for a fresh token", want.Recipient, got.UsedAt)
		}
	}

	// A request without optional fields round-trips too.
	bare := &approval.Request{
		ID: approval.NewID(), Title: "t", Requester: approval.DefaultRequester,
		Approvers: []string{"carol@example.com"}, Policy: approval.PolicyAny,
		Status: approval.StatusPending, CreatedAt: Base.Add(time.Minute), ExpiresAt: Base.Add(2 * time.Minute),
	}
	_, hash := approval.NewToken()
	bare.Recipients = []approval.Recipient{{Address: "carol@example.com", Channel: approval.ChannelEmail, TokenHash: hash, PageKey: "pk"}}
	create(t, s, bare, []approval.Token{{Hash: hash, RequestID: bare.ID, Recipient: "carol@example.com", Channel: approval.ChannelEmail, PageKey: "pk", ExpiresAt: bare.ExpiresAt}})
	wantRequest(t, "GetRequest of a request without optional fields", get(t, s, bare.ID), bare)
}

func testIsolation(t *testing.T, s approval.Store) {
	r, toks := Fixture(Base)
	in := Clone(r)
	if err := s.CreateRequest(t.Context(), in, toks); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	// Changing what was passed in or what came out must not change what is stored.
	in.Title, in.Links[0].URL, in.Approvers[0], in.Recipients[0].PageKey = "x", "x", "x", "x"
	toks[0].Recipient = "x"
	got := get(t, s, r.ID)
	got.Title, got.Links[0].URL, got.Approvers[0], got.Recipients[0].PageKey = "y", "y", "y", "y"
	wantRequest(t, "GetRequest after mutating caller copies", get(t, s, r.ID), r)
	if tok := getToken(t, s, toks[0].Hash); tok.Recipient != r.Recipients[0].Address {
		t.Errorf("GetToken after mutating the caller's token: got recipient %q, want %q", tok.Recipient, r.Recipients[0].Address)
	}
}

func testCreateConflict(t *testing.T, s approval.Store) {
	r, toks := Fixture(Base)
	create(t, s, r, toks)

	dup, dupToks := Fixture(Base.Add(time.Minute))
	dup.ID = r.ID
	dup.Title = "another request with the same ID"
	for i := range dupToks {
		dupToks[i].RequestID = r.ID
	}
	err := s.CreateRequest(t.Context(), Clone(dup), dupToks)
	wantErr(t, "CreateRequest with a duplicate ID", err, approval.ErrConflict)
	wantRequest(t, "GetRequest after a duplicate CreateRequest", get(t, s, r.ID), r)
	// Atomic: none of the rejected request's tokens were stored.
	for _, tok := range dupToks {
		_, err := s.GetToken(t.Context(), tok.Hash)
		wantErr(t, "GetToken of a token of a rejected CreateRequest", err, approval.ErrNotFound)
	}
}

func testNotFound(t *testing.T, s approval.Store) {
	ctx := t.Context()
	missing := approval.NewID()
	_, hash := approval.NewToken()
	_, err := s.GetRequest(ctx, missing)
	wantErr(t, "GetRequest(unknown)", err, approval.ErrNotFound)
	_, err = s.GetToken(ctx, hash)
	wantErr(t, "GetToken(unknown)", err, approval.ErrNotFound)
	_, err = s.Claim(ctx, hash, decision(approval.Approve, "alice@example.com", Base))
	wantErr(t, "Claim(unknown)", err, approval.ErrNotFound)
	_, err = s.Expire(ctx, missing, Base.Add(10*TTL))
	wantErr(t, "Expire(unknown)", err, approval.ErrNotFound)
	_, err = s.MarkWorkflowGone(ctx, missing)
	wantErr(t, "MarkWorkflowGone(unknown)", err, approval.ErrNotFound)
	err = s.MarkDelivered(ctx, missing)
	wantErr(t, "MarkDelivered(unknown)", err, approval.ErrNotFound)
	err = s.LeaseDelivery(ctx, missing, Base, Base.Add(time.Minute))
	wantErr(t, "LeaseDelivery(unknown)", err, approval.ErrNotFound)
	err = s.SetChatMessage(ctx, missing, approval.ChatMessage{Channel: "C1", TS: "1.2"})
	wantErr(t, "SetChatMessage(unknown)", err, approval.ErrNotFound)

	for name, list := range map[string]func(context.Context) ([]*approval.Request, error){
		"ListPending": s.ListPending, "ListUndelivered": s.ListUndelivered,
	} {
		got, err := list(ctx)
		if err != nil {
			t.Errorf("%s on an empty store: %v", name, err)
		}
		if len(got) != 0 {
			t.Errorf("%s on an empty store: got %v, want none", name, ids(got))
		}
	}
}

func testListPending(t *testing.T, s approval.Store) {
	ctx := t.Context()
	var rs []*approval.Request
	var toks [][]approval.Token
	for i := range 5 {
		r, tk := Fixture(Base.Add(time.Duration(i) * time.Minute))
		rs, toks = append(rs, r), append(toks, tk)
	}
	// Shorter expiry for the oldest: past it, but nothing has closed it.
	rs[0].ExpiresAt = Base.Add(2 * time.Minute)
	for i := range toks[0] {
		toks[0][i].ExpiresAt = rs[0].ExpiresAt
	}
	for _, i := range []int{2, 0, 4, 1, 3} { // not in creation order
		create(t, s, rs[i], toks[i])
	}
	if _, err := s.Claim(ctx, toks[1][0].Hash, decision(approval.Approve, "alice@example.com", Base.Add(5*time.Minute))); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if _, err := s.Expire(ctx, rs[3].ID, rs[3].ExpiresAt); err != nil {
		t.Fatalf("Expire: %v", err)
	}

	got, err := s.ListPending(ctx)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	want := []string{rs[4].ID, rs[2].ID, rs[0].ID}
	if diff := cmp.Diff(want, ids(got)); diff != "" {
		t.Errorf("ListPending IDs, newest first, without decided or expired ones (-want +got):\n%s", diff)
	}
	if len(got) > 0 {
		wantRequest(t, "first ListPending entry", got[0], rs[4])
	}
}

func testClaimSuccess(t *testing.T, s approval.Store, c approval.Choice) {
	ctx := t.Context()
	r, toks := Fixture(Base)
	other, otherToks := Fixture(Base.Add(time.Minute))
	create(t, s, r, toks)
	create(t, s, other, otherToks)

	d := decision(c, "bob@example.com", Base.Add(10*time.Minute))
	d.Channel = approval.ChannelEmail
	got, err := s.Claim(ctx, toks[1].Hash, d)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	want := decided(r, d)
	wantRequest(t, "request returned by Claim", got, want)
	wantRequest(t, "GetRequest after Claim", get(t, s, r.ID), want)

	for i, tok := range toks {
		gotTok := getToken(t, s, tok.Hash)
		wantTok := tok
		if i == 1 {
			wantTok.UsedAt = d.At
		}
		if diff := cmp.Diff(&wantTok, gotTok, CmpOptions); diff != "" {
			t.Errorf("GetToken(%s) after Claim (-want +got):\n%s", tok.Recipient, diff)
		}
	}
	// The other request is untouched.
	wantRequest(t, "GetRequest of an unrelated request", get(t, s, other.ID), other)

	pending, err := s.ListPending(ctx)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	if diff := cmp.Diff([]string{other.ID}, ids(pending)); diff != "" {
		t.Errorf("ListPending after Claim (-want +got):\n%s", diff)
	}
}

func testClaimErrors(t *testing.T, s approval.Store) {
	at := Base.Add(10 * time.Minute)
	tests := []struct {
		name string
		// prepare runs against the fresh request; it returns the hash to claim
		// and the decision time to claim at.
		prepare func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time)
		want    error
		// wantStatus is the request's status after the failed claim.
		wantStatus approval.Status
	}{
		{
			name: "token already used",
			prepare: func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time) {
				claim(t, s, toks[0].Hash, at)
				return toks[0].Hash, at.Add(time.Second)
			},
			want: approval.ErrAlreadyDecided, wantStatus: approval.StatusApproved,
		},
		{
			name: "other token of a decided request",
			prepare: func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time) {
				claim(t, s, toks[0].Hash, at)
				return toks[2].Hash, at.Add(time.Second)
			},
			want: approval.ErrAlreadyDecided, wantStatus: approval.StatusApproved,
		},
		{
			name: "decided, then claimed after expiry",
			prepare: func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time) {
				claim(t, s, toks[0].Hash, at)
				return toks[1].Hash, r.ExpiresAt.Add(time.Hour)
			},
			want: approval.ErrAlreadyDecided, wantStatus: approval.StatusApproved,
		},
		{
			name: "exactly at expiry, nothing closed it",
			prepare: func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time) {
				return toks[0].Hash, r.ExpiresAt
			},
			want: approval.ErrExpired, wantStatus: approval.StatusPending,
		},
		{
			name: "after expiry, nothing closed it",
			prepare: func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time) {
				return toks[2].Hash, r.ExpiresAt.Add(24 * time.Hour)
			},
			want: approval.ErrExpired, wantStatus: approval.StatusPending,
		},
		{
			name: "request closed as expired",
			prepare: func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time) {
				if _, err := s.Expire(t.Context(), r.ID, r.ExpiresAt); err != nil {
					t.Fatalf("Expire: %v", err)
				}
				// Claimed at a time before the expiry: the closed status alone
				// must refuse it.
				return toks[0].Hash, at
			},
			want: approval.ErrExpired, wantStatus: approval.StatusExpired,
		},
		{
			name: "workflow gone while pending",
			prepare: func(t *testing.T, r *approval.Request, toks []approval.Token) (string, time.Time) {
				if _, err := s.MarkWorkflowGone(t.Context(), r.ID); err != nil {
					t.Fatalf("MarkWorkflowGone: %v", err)
				}
				return toks[1].Hash, at
			},
			want: approval.ErrExpired, wantStatus: approval.StatusExpired,
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, toks := Fixture(Base.Add(time.Duration(i) * time.Minute))
			create(t, s, r, toks)
			hash, when := tt.prepare(t, r, toks)
			before := get(t, s, r.ID)
			var tokBefore []*approval.Token
			for _, tok := range toks {
				tokBefore = append(tokBefore, getToken(t, s, tok.Hash))
			}

			_, err := s.Claim(t.Context(), hash, decision(approval.Reject, "mallory@example.com", when))
			wantErr(t, "Claim", err, tt.want)

			// A failed claim changes nothing.
			after := get(t, s, r.ID)
			wantRequest(t, "GetRequest after a failed Claim", after, before)
			if after.Status != tt.wantStatus {
				t.Errorf("status after failed Claim: got %q, want %q", after.Status, tt.wantStatus)
			}
			for j, tok := range toks {
				if diff := cmp.Diff(tokBefore[j], getToken(t, s, tok.Hash), CmpOptions); diff != "" {
					t.Errorf("GetToken(%s) after a failed Claim (-before +after):\n%s", tok.Recipient, diff)
				}
			}
		})
	}
}

// claim approves through hash at at, failing the test on error.
func claim(t *testing.T, s approval.Store, hash string, at time.Time) *approval.Request {
	t.Helper()
	r, err := s.Claim(t.Context(), hash, decision(approval.Approve, "alice@example.com", at))
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	return r
}

func testClaimConcurrent(t *testing.T, s approval.Store) {
	const workers = 50
	r, toks := Fixture(Base)
	create(t, s, r, toks)

	type outcome struct {
		d   approval.Decision
		r   *approval.Request
		err error
	}
	results := make([]outcome, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		choice := approval.Approve
		if i%2 == 1 {
			choice = approval.Reject
		}
		d := decision(choice, fmt.Sprintf("user%02d@example.com", i), Base.Add(10*time.Minute+time.Duration(i)*time.Millisecond))
		hash := toks[i%len(toks)].Hash
		wg.Go(func() {
			<-start
			got, err := s.Claim(context.WithoutCancel(t.Context()), hash, d)
			results[i] = outcome{d: d, r: got, err: err}
		})
	}
	close(start)
	wg.Wait()

	var winners []outcome
	for i, o := range results {
		switch {
		case o.err == nil:
			winners = append(winners, o)
		case errors.Is(o.err, approval.ErrAlreadyDecided):
		default:
			t.Errorf("claim %d: got error %v, want nil or ErrAlreadyDecided", i, o.err)
		}
	}
	if len(winners) != 1 {
		t.Fatalf("got %d successful claims, want exactly 1", len(winners))
	}
	w := winners[0]
	want := decided(r, w.d)
	wantRequest(t, "request returned to the winner", w.r, want)
	wantRequest(t, "GetRequest after concurrent claims", get(t, s, r.ID), want)

	used := 0
	for _, tok := range toks {
		if got := getToken(t, s, tok.Hash); !got.UsedAt.IsZero() {
			used++
			if !got.UsedAt.Equal(w.d.At) {
				t.Errorf("used token's UsedAt: got %v, want the winner's %v", got.UsedAt, w.d.At)
			}
		}
	}
	if used != 1 {
		t.Errorf("got %d used tokens, want 1", used)
	}
}

func testExpire(t *testing.T, s approval.Store) {
	ctx := t.Context()
	r, toks := Fixture(Base)
	dec, decToks := Fixture(Base.Add(time.Minute))
	create(t, s, r, toks)
	create(t, s, dec, decToks)

	_, err := s.Expire(ctx, r.ID, r.ExpiresAt.Add(-time.Millisecond))
	wantErr(t, "Expire before due", err, approval.ErrConflict)
	wantRequest(t, "GetRequest after Expire before due", get(t, s, r.ID), r)

	got, err := s.Expire(ctx, r.ID, r.ExpiresAt)
	if err != nil {
		t.Fatalf("Expire when due: %v", err)
	}
	want := Clone(r)
	want.Status = approval.StatusExpired
	wantRequest(t, "request returned by Expire", got, want)
	wantRequest(t, "GetRequest after Expire", get(t, s, r.ID), want)

	_, err = s.Expire(ctx, r.ID, r.ExpiresAt.Add(time.Hour))
	wantErr(t, "Expire twice", err, approval.ErrAlreadyDecided)

	d := decision(approval.Approve, "alice@example.com", Base.Add(2*time.Minute))
	if _, err := s.Claim(ctx, decToks[0].Hash, d); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	_, err = s.Expire(ctx, dec.ID, dec.ExpiresAt.Add(time.Hour))
	wantErr(t, "Expire of a decided request", err, approval.ErrAlreadyDecided)
	wantRequest(t, "GetRequest after Expire of a decided request", get(t, s, dec.ID), decided(dec, d))

	pending, err := s.ListPending(ctx)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	if len(pending) != 0 {
		t.Errorf("ListPending after Expire: got %v, want none", ids(pending))
	}
}

func testMarkWorkflowGone(t *testing.T, s approval.Store) {
	ctx := t.Context()
	pend, pendToks := Fixture(Base)
	dec, decToks := Fixture(Base.Add(time.Minute))
	create(t, s, pend, pendToks)
	create(t, s, dec, decToks)
	d := decision(approval.Reject, "bob@example.com", Base.Add(2*time.Minute))
	if _, err := s.Claim(ctx, decToks[1].Hash, d); err != nil {
		t.Fatalf("Claim: %v", err)
	}

	got, err := s.MarkWorkflowGone(ctx, pend.ID)
	if err != nil {
		t.Fatalf("MarkWorkflowGone(pending): %v", err)
	}
	want := Clone(pend)
	want.Status, want.Delivered = approval.StatusExpired, true
	wantRequest(t, "MarkWorkflowGone of a pending request", got, want)
	wantRequest(t, "GetRequest after MarkWorkflowGone of a pending request", get(t, s, pend.ID), want)

	got, err = s.MarkWorkflowGone(ctx, dec.ID)
	if err != nil {
		t.Fatalf("MarkWorkflowGone(decided): %v", err)
	}
	want = decided(dec, d)
	want.Status, want.Delivered = approval.StatusExpired, true
	wantRequest(t, "MarkWorkflowGone of a decided request keeps the decision", got, want)
	wantRequest(t, "GetRequest after MarkWorkflowGone of a decided request", get(t, s, dec.ID), want)

	for name, list := range map[string]func(context.Context) ([]*approval.Request, error){
		"ListPending": s.ListPending, "ListUndelivered": s.ListUndelivered,
	} {
		got, err := list(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != 0 {
			t.Errorf("%s after MarkWorkflowGone: got %v, want none", name, ids(got))
		}
	}
}

func testUndelivered(t *testing.T, s approval.Store) {
	ctx := t.Context()
	var rs []*approval.Request
	var toks [][]approval.Token
	for i := range 4 {
		r, tk := Fixture(Base.Add(time.Duration(i) * time.Minute))
		rs, toks = append(rs, r), append(toks, tk)
	}
	for _, i := range []int{2, 3, 0, 1} { // not in creation order
		create(t, s, rs[i], toks[i])
	}
	// Closed in creation order, so "oldest first" means the same whether a
	// store orders by creation or by closing.
	claim(t, s, toks[0][0].Hash, Base.Add(10*time.Minute))
	if _, err := s.Expire(ctx, rs[1].ID, rs[1].ExpiresAt); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	claim(t, s, toks[2][2].Hash, rs[1].ExpiresAt.Add(30*time.Second))
	// rs[3] stays pending: never listed as undelivered.

	list := func(what string, want ...string) {
		t.Helper()
		got, err := s.ListUndelivered(ctx)
		if err != nil {
			t.Fatalf("ListUndelivered: %v", err)
		}
		if diff := cmp.Diff(want, ids(got), cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("ListUndelivered %s, oldest first (-want +got):\n%s", what, diff)
		}
		for _, r := range got {
			if r.Status == approval.StatusPending || r.Delivered {
				t.Errorf("ListUndelivered %s: %s has status %q, delivered %v", what, r.ID, r.Status, r.Delivered)
			}
		}
	}
	list("after closing three", rs[0].ID, rs[1].ID, rs[2].ID)

	if err := s.MarkDelivered(ctx, rs[1].ID); err != nil {
		t.Fatalf("MarkDelivered: %v", err)
	}
	want := Clone(rs[1])
	want.Status, want.Delivered = approval.StatusExpired, true
	wantRequest(t, "GetRequest after MarkDelivered", get(t, s, rs[1].ID), want)
	list("after delivering one", rs[0].ID, rs[2].ID)

	if err := s.MarkDelivered(ctx, rs[0].ID); err != nil {
		t.Fatalf("MarkDelivered: %v", err)
	}
	if err := s.MarkDelivered(ctx, rs[2].ID); err != nil {
		t.Fatalf("MarkDelivered: %v", err)
	}
	if err := s.MarkDelivered(ctx, rs[2].ID); err != nil {
		t.Errorf("MarkDelivered twice: %v, want nil", err)
	}
	list("after delivering all")
	if got := get(t, s, rs[2].ID); got.Status != approval.StatusApproved || !got.Delivered {
		t.Errorf("after MarkDelivered: got status %q delivered %v, want approved and delivered", got.Status, got.Delivered)
	}
}

func testSetChatMessage(t *testing.T, s approval.Store) {
	ctx := t.Context()
	r, toks := Fixture(Base)
	create(t, s, r, toks)
	m := approval.ChatMessage{Channel: "C0123ABCD", TS: "1715000000.000100"}
	if err := s.SetChatMessage(ctx, r.ID, m); err != nil {
		t.Fatalf("SetChatMessage: %v", err)
	}
	want := Clone(r)
	want.ChatMessage = m
	wantRequest(t, "GetRequest after SetChatMessage", get(t, s, r.ID), want)

	// A claim keeps the message, so that the outcome can update it.
	d := decision(approval.Approve, "alice@example.com", Base.Add(time.Minute))
	got, err := s.Claim(ctx, toks[0].Hash, d)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	wantRequest(t, "Claim after SetChatMessage", got, decided(want, d))
}

// lease takes the delivery lease of id from now for d, failing the test on error.
func lease(t *testing.T, s approval.Store, id string, now time.Time, d time.Duration) {
	t.Helper()
	if err := s.LeaseDelivery(t.Context(), id, now, now.Add(d)); err != nil {
		t.Fatalf("LeaseDelivery(now %s, for %s): %v", now.Format(time.TimeOnly), d, err)
	}
}

func testLeaseDelivery(t *testing.T, s approval.Store) {
	ctx := t.Context()
	r, toks := Fixture(Base)
	create(t, s, r, toks)
	d := decision(approval.Approve, "alice@example.com", Base.Add(time.Minute))
	if _, err := s.Claim(ctx, toks[0].Hash, d); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	want := decided(r, d)

	t0 := Base.Add(2 * time.Minute)
	lease(t, s, r.ID, t0, time.Minute)
	for _, at := range []time.Time{t0, t0.Add(30 * time.Second), t0.Add(time.Minute - time.Millisecond)} {
		err := s.LeaseDelivery(ctx, r.ID, at, at.Add(time.Minute))
		wantErr(t, fmt.Sprintf("LeaseDelivery %s into a running lease", at.Sub(t0)), err, approval.ErrConflict)
	}
	// The lease is bookkeeping: the request reads and lists as before.
	wantRequest(t, "GetRequest while leased", get(t, s, r.ID), want)
	undelivered, err := s.ListUndelivered(ctx)
	if err != nil {
		t.Fatalf("ListUndelivered: %v", err)
	}
	if diff := cmp.Diff([]string{r.ID}, ids(undelivered)); diff != "" {
		t.Errorf("ListUndelivered while leased (-want +got):\n%s", diff)
	}

	// A lease that has run out (its end at or before now) is granted again,
	// and the new one runs until its own end.
	t1 := t0.Add(time.Minute)
	lease(t, s, r.ID, t1, 2*time.Minute)
	err = s.LeaseDelivery(ctx, r.ID, t1.Add(90*time.Second), t1.Add(3*time.Minute))
	wantErr(t, "LeaseDelivery inside the renewed lease", err, approval.ErrConflict)
	lease(t, s, r.ID, t1.Add(3*time.Minute), time.Minute)

	// Its holder gives a lease up by asking for it as of its end, until the
	// present; a later attempt then gets it.
	t2 := t1.Add(3 * time.Minute)
	if err := s.LeaseDelivery(ctx, r.ID, t2.Add(time.Minute), t2.Add(10*time.Second)); err != nil {
		t.Fatalf("LeaseDelivery giving up the lease held until its end: %v", err)
	}
	lease(t, s, r.ID, t2.Add(10*time.Second), time.Minute)
	// A stale holder's give-up (its lease ended before this one) is refused.
	err = s.LeaseDelivery(ctx, r.ID, t2.Add(time.Minute), t2.Add(20*time.Second))
	wantErr(t, "LeaseDelivery giving up a lease that ran out before the running one", err, approval.ErrConflict)
	err = s.LeaseDelivery(ctx, r.ID, t2.Add(30*time.Second), t2.Add(time.Hour))
	wantErr(t, "LeaseDelivery inside a lease taken after a give-up", err, approval.ErrConflict)

	// Once delivered, nobody gets the lease, whether it runs or not.
	if err := s.MarkDelivered(ctx, r.ID); err != nil {
		t.Fatalf("MarkDelivered: %v", err)
	}
	for _, at := range []time.Time{t2.Add(2 * time.Minute), t1.Add(time.Hour)} {
		err := s.LeaseDelivery(ctx, r.ID, at, at.Add(time.Minute))
		wantErr(t, "LeaseDelivery of a delivered request", err, approval.ErrConflict)
	}
	want.Delivered = true
	wantRequest(t, "GetRequest after MarkDelivered of a leased request", get(t, s, r.ID), want)
}

func testLeaseDeliveryStates(t *testing.T, s approval.Store) {
	ctx := t.Context()
	at := Base.Add(2 * TTL)
	pend, pendToks := Fixture(Base)
	expired, expToks := Fixture(Base.Add(time.Minute))
	gone, goneToks := Fixture(Base.Add(2 * time.Minute))
	for _, f := range []struct {
		r    *approval.Request
		toks []approval.Token
	}{{pend, pendToks}, {expired, expToks}, {gone, goneToks}} {
		create(t, s, f.r, f.toks)
	}

	// Pending, even past its expiry: nothing to deliver yet.
	for _, when := range []time.Time{Base, at} {
		err := s.LeaseDelivery(ctx, pend.ID, when, when.Add(time.Minute))
		wantErr(t, "LeaseDelivery of a pending request", err, approval.ErrConflict)
	}
	wantRequest(t, "GetRequest after LeaseDelivery of a pending request", get(t, s, pend.ID), pend)
	// Expiring it afterwards is not hindered by the refused lease.
	if _, err := s.Expire(ctx, pend.ID, pend.ExpiresAt); err != nil {
		t.Fatalf("Expire after a refused lease: %v", err)
	}

	// Closed as expired and undelivered: the outcome is there to deliver.
	if _, err := s.Expire(ctx, expired.ID, expired.ExpiresAt); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	lease(t, s, expired.ID, at, time.Minute)

	// A workflow found gone while leased: delivered, no lease any more to take.
	claim(t, s, goneToks[0].Hash, Base.Add(3*time.Minute))
	lease(t, s, gone.ID, at, time.Minute)
	if _, err := s.MarkWorkflowGone(ctx, gone.ID); err != nil {
		t.Fatalf("MarkWorkflowGone: %v", err)
	}
	err := s.LeaseDelivery(ctx, gone.ID, at.Add(time.Hour), at.Add(2*time.Hour))
	wantErr(t, "LeaseDelivery after MarkWorkflowGone", err, approval.ErrConflict)
}

func testLeaseDeliveryConcurrent(t *testing.T, s approval.Store) {
	const workers = 20
	r, toks := Fixture(Base)
	create(t, s, r, toks)
	claim(t, s, toks[1].Hash, Base.Add(time.Minute))

	now := Base.Add(2 * time.Minute)
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-start
			errs[i] = s.LeaseDelivery(context.WithoutCancel(t.Context()), r.ID, now, now.Add(time.Minute))
		})
	}
	close(start)
	wg.Wait()

	granted := 0
	for i, err := range errs {
		switch {
		case err == nil:
			granted++
		case errors.Is(err, approval.ErrConflict):
		default:
			t.Errorf("LeaseDelivery %d: got error %v, want nil or ErrConflict", i, err)
		}
	}
	if granted != 1 {
		t.Errorf("got %d leases granted, want exactly 1", granted)
	}
}
