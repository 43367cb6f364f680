package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
)

// pages and renderer are the least the service needs to create requests: the
// page is the raw token, so that a test can vote with it.
type pages struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (p *pages) Put(_ context.Context, key string, html []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[key] = html
	return nil
}

func (p *pages) Delete(_ context.Context, keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		delete(p.m, k)
	}
	return nil
}

func (p *pages) URL(key string) string { return "https://pages.example.com/p/" + key }

type renderer struct{}

func (renderer) Page(v approval.PageView) ([]byte, error) { return []byte(v.Token), nil }
func (renderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{To: v.Recipient.Address, Subject: v.Request.Title, Text: v.PageURL}, nil
}

// harness is a service over the store under test, with a clock that stands
// still at Base plus a minute.
type harness struct {
	svc   *approval.Service
	pages *pages
}

func newHarness(s approval.Store) *harness {
	p := &pages{m: map[string][]byte{}}
	return &harness{pages: p, svc: &approval.Service{
		Store: s, Pages: p, Renderer: renderer{}, DecideURL: "https://cb.example.com/decide",
		Now: func() time.Time { return Base.Add(time.Minute) }, Sync: true,
	}}
}

// create makes a request and returns it with each email approver's token.
func (h *harness) create(t *testing.T, in approval.NewRequest) (*approval.Request, map[string]string) {
	t.Helper()
	in.Title = "Deploy"
	in.Timeout = time.Hour
	if in.Requester == "" {
		in.Requester = "ci@example.com"
	}
	r, _, err := h.svc.Create(t.Context(), in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	toks := map[string]string{}
	h.pages.mu.Lock()
	defer h.pages.mu.Unlock()
	for _, rc := range r.Recipients {
		toks[rc.Address] = string(h.pages.m[rc.PageKey])
	}
	return r, toks
}

func emails(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("approver%d@example.com", i))
	}
	return out
}

func countVotes(r *approval.Request, c approval.Choice) int {
	n := 0
	for _, v := range r.Votes {
		if v.Choice == c {
			n++
		}
	}
	return n
}

// testVotesQuorumConcurrent: quorum:2 of 5, every approver's link pressed 20
// times at once: exactly 2 approvals counted and one close.
func testVotesQuorumConcurrent(t *testing.T, s approval.Store) {
	h := newHarness(s)
	r, toks := h.create(t, approval.NewRequest{Approvers: emails(5), Policy: "quorum:2"})
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		mu      sync.Mutex
		closers []string
		errs    []error
	)
	for a, tok := range toks {
		for range 20 {
			wg.Go(func() {
				<-start
				got, err := h.svc.Decide(context.WithoutCancel(t.Context()), approval.DecideInput{Token: tok, Choice: approval.Approve})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil && got.Status == approval.StatusApproved && got.Decision != nil && got.Decision.By == a:
					closers = append(closers, a)
				case err == nil, errors.Is(err, approval.ErrAlreadyDecided), errors.Is(err, approval.ErrAlreadyVoted):
				default:
					errs = append(errs, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		t.Errorf("vote: %v, want nil, ErrAlreadyDecided or ErrAlreadyVoted", err)
	}
	got := get(t, s, r.ID)
	if got.Status != approval.StatusApproved || countVotes(got, approval.Approve) != 2 || len(got.Votes) != 2 {
		t.Errorf("after 100 concurrent approvals: status %s, %d votes; want approved with exactly 2", got.Status, len(got.Votes))
	}
	if len(closers) != 1 {
		t.Errorf("%d votes closed the request (%v), want exactly 1", len(closers), closers)
	}
	if got.Decision == nil || got.Decision.By != got.Votes[1].By {
		t.Errorf("decision %+v, want the second vote's (%s)", got.Decision, got.Votes[1].By)
	}
}

func testVotesAll(t *testing.T, s approval.Store) {
	h := newHarness(s)
	ctx := t.Context()
	r, toks := h.create(t, approval.NewRequest{Approvers: emails(3), Policy: "all"})
	for i, a := range r.Approvers {
		got, err := h.svc.Decide(ctx, approval.DecideInput{Token: toks[a], Choice: approval.Approve, Comment: "ok " + a})
		if err != nil {
			t.Fatalf("vote %d: %v", i, err)
		}
		want := approval.StatusPending
		if i == 2 {
			want = approval.StatusApproved
		}
		if got.Status != want || len(got.Votes) != i+1 {
			t.Fatalf("after vote %d: %s with %d votes, want %s with %d", i, got.Status, len(got.Votes), want, i+1)
		}
	}
	got := get(t, s, r.ID)
	if got.Status != approval.StatusApproved || got.Decision.By != r.Approvers[2] || got.Decision.Comment != "ok "+r.Approvers[2] {
		t.Errorf("stored: %s decided by %+v; want approved by the last approver", got.Status, got.Decision)
	}
}

func testVotesGroups(t *testing.T, s approval.Store) {
	h := newHarness(s)
	ctx := t.Context()
	r, toks := h.create(t, approval.NewRequest{Groups: []approval.GroupInput{
		{Name: "eng", Approvers: []string{"a@example.com", "b@example.com"}, Min: 1},
		{Name: "security", Approvers: []string{"s@example.com", "b@example.com"}, Min: 2},
	}})
	steps := []struct {
		who  string
		want approval.Status
	}{
		{"a@example.com", approval.StatusPending}, // eng 1/1, security 0/2
		{"s@example.com", approval.StatusPending}, // security 1/2
		{"b@example.com", approval.StatusApproved},
	}
	for _, st := range steps {
		got, err := h.svc.Decide(ctx, approval.DecideInput{Token: toks[st.who], Choice: approval.Approve})
		if err != nil {
			t.Fatalf("vote of %s: %v", st.who, err)
		}
		if got.Status != st.want {
			t.Fatalf("after %s: %s, want %s", st.who, got.Status, st.want)
		}
	}
	got := get(t, s, r.ID)
	if v := got.Votes[2]; strings.Join(v.Groups, ",") != "eng,security" {
		t.Errorf("the vote of a member of two groups counts in %v, want eng and security", v.Groups)
	}
}

func testVoteOncePerPerson(t *testing.T, s approval.Store) {
	h := newHarness(s)
	ctx := t.Context()
	r, toks := h.create(t, approval.NewRequest{Approvers: []string{"alice@example.com", "bob@example.com", "carol@example.com"}, Policy: "quorum:2"})
	if _, err := h.svc.Decide(ctx, approval.DecideInput{Token: toks["alice@example.com"], Choice: approval.Approve}); err != nil {
		t.Fatal(err)
	}
	_, err := h.svc.Decide(ctx, approval.DecideInput{Token: toks["alice@example.com"], Choice: approval.Reject})
	wantErr(t, "second vote with the same link", err, approval.ErrAlreadyVoted)
	_, err = h.svc.DecideInChat(ctx, r.ID, approval.Approve, "", approval.Identity{ID: "U0ALICE001", Email: "Alice@Example.com"})
	wantErr(t, "second vote of the same person in Slack", err, approval.ErrAlreadyVoted)
	_, err = h.svc.DecideInChat(ctx, r.ID, approval.Approve, "", approval.Identity{ID: "U0MALLORY1", Email: "mallory@example.com"})
	wantErr(t, "vote of someone who is not an approver", err, approval.ErrNotApprover)
	got := get(t, s, r.ID)
	if got.Status != approval.StatusPending || len(got.Votes) != 1 {
		t.Errorf("after refused votes: %s with %d votes, want pending with 1", got.Status, len(got.Votes))
	}
}

func testVoteAnyCloses(t *testing.T, s approval.Store) {
	h := newHarness(s)
	ctx := t.Context()
	r, toks := h.create(t, approval.NewRequest{Approvers: []string{"alice@example.com", "ci@example.com"}})
	_, err := h.svc.Decide(ctx, approval.DecideInput{Token: toks["ci@example.com"], Choice: approval.Approve})
	wantErr(t, "the requester approving", err, approval.ErrSelfApproval)
	got, err := h.svc.Decide(ctx, approval.DecideInput{Token: toks["alice@example.com"], Choice: approval.Reject, Comment: "no"})
	if err != nil || got.Status != approval.StatusRejected {
		t.Fatalf("reject: %v, %v; want rejected", got, err)
	}
	_, err = h.svc.Decide(ctx, approval.DecideInput{Token: toks["ci@example.com"], Choice: approval.Reject})
	wantErr(t, "a vote after the close", err, approval.ErrAlreadyDecided)
	stored := get(t, s, r.ID)
	if len(h.pages.m) != 0 {
		t.Errorf("%d pages still published after the close", len(h.pages.m))
	}
	if stored.Decision == nil || stored.Decision.By != "alice@example.com" || !stored.Delivered() {
		t.Errorf("stored decision %+v delivered %v; want alice's, delivered", stored.Decision, stored.Delivered())
	}
}

// quickFixture is a pending request that any one vote decides, with alice,
// bob and the requester ci as email recipients.
func quickFixture(createdAt time.Time) *approval.Request {
	r := Fixture(createdAt)
	r.Rule = approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny}
	r.Votes = nil
	r.Approvers = []string{"alice@example.com", "bob@example.com", "ci@example.com"}
	r.Recipients = r.Recipients[:2]
	tok := approval.NewRequestToken(r.ID)
	r.Recipients = append(r.Recipients, approval.Recipient{Address: "ci@example.com", Channel: approval.ChannelEmail, TokenHash: approval.HashToken(tok), PageKey: approval.NewPageKey()})
	return r
}

func testQuickVote(t *testing.T, s approval.Store) {
	qv := s.(approval.QuickVoter)
	ctx := t.Context()
	at := Base.Add(10 * time.Minute)
	effects := []approval.Effect{{Kind: approval.EffectPages, State: approval.EffectPending, Attempts: 1, Lease: "L", LeaseUntil: at.Add(approval.EffectLease)}}

	r := quickFixture(Base)
	create(t, s, r)
	alice, bob, ci := r.Recipients[0].TokenHash, r.Recipients[1].TokenHash, r.Recipients[2].TokenHash
	refused := func(what, id, hash string, v approval.Vote, want *approval.Request) {
		t.Helper()
		got, err := qv.QuickVote(ctx, id, hash, v, effects)
		wantErr(t, what, err, approval.ErrConflict)
		wantRequest(t, what+": the request returned", got, want)
	}
	refused("the requester approving", r.ID, ci, approval.Vote{Choice: approval.Approve, At: at}, r)
	refused("an unknown token", r.ID, approval.HashToken("x"), approval.Vote{Choice: approval.Reject, At: at}, r)
	refused("at expiry", r.ID, alice, approval.Vote{Choice: approval.Approve, At: r.ExpiresAt}, r)
	_, err := qv.QuickVote(ctx, approval.NewID(), alice, approval.Vote{Choice: approval.Approve, At: at}, effects)
	wantErr(t, "an unknown request", err, approval.ErrNotFound)

	got, err := qv.QuickVote(ctx, r.ID, bob, approval.Vote{Choice: approval.Approve, Comment: "ship it", At: at}, effects)
	if err != nil {
		t.Fatalf("QuickVote: %v", err)
	}
	want := r.Clone()
	if !want.CloseByQuickVote(bob, approval.Vote{Choice: approval.Approve, Comment: "ship it", At: at}, effects) {
		t.Fatal("CloseByQuickVote refused the reference vote")
	}
	want.Version = 2
	wantRequest(t, "the request as written", got, want)
	wantRequest(t, "the request as stored", get(t, s, r.ID), want)
	if got.Decision.By != "bob@example.com" || got.Votes[0].Channel != approval.ChannelEmail {
		t.Errorf("decision %+v, want bob's through email", got.Decision)
	}
	refused("a second vote", r.ID, alice, approval.Vote{Choice: approval.Reject, At: at}, want)
	if due, err := s.ListDue(ctx, at.Add(approval.EffectLease), 10); err != nil || len(due) != 1 || due[0].ID != r.ID {
		t.Errorf("ListDue once the close's lease lapsed: %v, %v; want the request", ids(due), err)
	}
	if rs, _, err := s.List(ctx, approval.Query{Limit: 10}); err != nil || len(rs) != 0 {
		t.Errorf("List of pending requests after the close: %v, %v; want none", ids(rs), err)
	}

	// A rule that one vote does not decide is refused, with the request.
	q := quickFixture(Base.Add(time.Second))
	q.Rule.Policy = approval.PolicyQuorum(2)
	create(t, s, q)
	refused("a quorum request's first approval", q.ID, q.Recipients[0].TokenHash, approval.Vote{Choice: approval.Approve, At: at}, q)

	// Once alice's approval is recorded (by a full write, with its pages
	// effect done), the vote that meets the rule closes it in one write: bob's
	// approval, appended to alice's, its voter named with his groups, the
	// close's pages effect taking the place of the earlier one.
	q.Rule.Groups = []approval.Group{{Name: "eng", Approvers: []string{"alice@example.com", "bob@example.com"}, Min: 2}}
	q.Rule.Policy = ""
	q.Votes = []approval.Vote{{By: "alice@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, At: at, Groups: []string{"eng"}}}
	q.Effects = append(q.Effects, approval.Effect{Kind: approval.EffectPages, State: approval.EffectDone, Attempts: 1, At: at})
	update(t, s, q)
	refused("alice again", q.ID, q.Recipients[0].TokenHash, approval.Vote{Choice: approval.Reject, At: at}, q)
	refused("the requester", q.ID, q.Recipients[2].TokenHash, approval.Vote{Choice: approval.Approve, At: at}, q)
	got, err = qv.QuickVote(ctx, q.ID, q.Recipients[1].TokenHash, approval.Vote{Choice: approval.Approve, Comment: "second", At: at.Add(time.Second)}, effects)
	if err != nil {
		t.Fatalf("QuickVote of the vote that meets the rule: %v", err)
	}
	want = q.Clone()
	if !want.CloseByQuickVote(q.Recipients[1].TokenHash, approval.Vote{Choice: approval.Approve, Comment: "second", At: at.Add(time.Second)}, effects) {
		t.Fatal("CloseByQuickVote refused the reference vote that meets the rule")
	}
	want.Version = q.Version + 1
	wantRequest(t, "the request closed by the vote that meets the rule, as written", got, want)
	wantRequest(t, "the request closed by the vote that meets the rule, as stored", get(t, s, q.ID), want)
	if len(got.Votes) != 2 || got.Votes[1].By != "bob@example.com" || !slices.Equal(got.Votes[1].Groups, []string{"eng"}) ||
		got.Status != approval.StatusApproved || got.Decision.By != "bob@example.com" {
		t.Errorf("votes %+v, status %s, decision %+v; want alice's and bob's (in eng), approved by bob", got.Votes, got.Status, got.Decision)
	}
	if n := slices.IndexFunc(got.Effects, func(e approval.Effect) bool { return e.Kind == approval.EffectPages }); n < 0 ||
		got.Effects[n].State != approval.EffectPending || got.Effects[n].Lease != "L" ||
		slices.ContainsFunc(got.Effects[n+1:], func(e approval.Effect) bool { return e.Kind == approval.EffectPages }) {
		t.Errorf("effects %+v; want one pages effect, the close's", got.Effects)
	}
}

func testQuickVoteConcurrent(t *testing.T, s approval.Store) {
	qv := s.(approval.QuickVoter)
	r := quickFixture(Base)
	create(t, s, r)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		mu    sync.Mutex
		won   int
	)
	for i := range 30 {
		hash := r.Recipients[i%2].TokenHash
		c := []approval.Choice{approval.Approve, approval.Reject}[i%2]
		wg.Go(func() {
			<-start
			_, err := qv.QuickVote(context.WithoutCancel(t.Context()), r.ID, hash, approval.Vote{Choice: c, At: Base.Add(time.Minute)}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case !errors.Is(err, approval.ErrConflict):
				t.Errorf("QuickVote: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	got := get(t, s, r.ID)
	if won != 1 || len(got.Votes) != 1 || got.Version != 2 {
		t.Errorf("%d quick votes won, %d stored, version %d; want 1, 1, 2", won, len(got.Votes), got.Version)
	}
}
