package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
	"approvalbot/pages"
)

// vote posts a confirmed vote with token and returns the status and body.
func (f *fixture) vote(token string, c approval.Choice, comment string) (int, string) {
	f.t.Helper()
	resp := f.postForm(url.Values{"token": {token}, "decision": {string(c)}, "comment": {comment}, "confirmed": {"1"}})
	return resp.StatusCode, readBody(f.t, resp)
}

// get reads the request as stored.
func (f *fixture) get(id string) *approval.Request {
	f.t.Helper()
	r, err := f.store.GetRequest(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// pageServed reports whether the one-time page of approver a is served.
func (f *fixture) pageServed(r *approval.Request, a string) bool {
	f.t.Helper()
	for _, rc := range r.Recipients {
		if rc.Address == a {
			resp := f.do("GET", "/p/"+rc.PageKey, nil)
			return resp.StatusCode == http.StatusOK
		}
	}
	f.t.Fatalf("no page for %s", a)
	return false
}

// step is one vote of a policy scenario and what it must answer.
type step struct {
	who    string
	choice approval.Choice
	status int
	says   []string
	after  approval.Status
}

// Each policy through the emailed pages: votes that do not close the request
// are recorded and say how many approvals are still needed, while everyone
// else's page stays live; the vote that meets the rule closes the request and
// every page goes; later votes are told it was already decided.
func TestPolicies(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    func(*approval.NewRequest)
		steps []step
	}{
		{
			name: "quorum:2 of 3",
			in: func(in *approval.NewRequest) {
				in.Approvers = []string{"alice@example.com", "bob@example.com", "carol@example.com"}
				in.Policy = "quorum:2"
			},
			steps: []step{
				{"alice@example.com", approval.Approve, 200, []string{"Your approval is recorded", "1 more approval is needed.", "2 of 3 approvers must approve", "1 of 2 approvals", "alice@example.com"}, approval.StatusPending},
				{"bob@example.com", approval.Approve, 200, []string{"Approved", "Your approval was the last one needed", "2 of 2 approvals", "alice@example.com", "bob@example.com"}, approval.StatusApproved},
				{"carol@example.com", approval.Reject, 409, []string{"already decided by bob@example.com"}, approval.StatusApproved},
			},
		},
		{
			name: "all",
			in: func(in *approval.NewRequest) {
				in.Policy = "all"
			},
			steps: []step{
				{"bob@example.com", approval.Approve, 200, []string{"Your approval is recorded", "1 more approval is needed.", "every approver must approve"}, approval.StatusPending},
				{"alice@example.com", approval.Approve, 200, []string{"Your approval was the last one needed"}, approval.StatusApproved},
			},
		},
		{
			name: "all, one reject rejects",
			in: func(in *approval.NewRequest) {
				in.Policy = "all"
			},
			steps: []step{
				{"bob@example.com", approval.Approve, 200, []string{"Your approval is recorded"}, approval.StatusPending},
				{"alice@example.com", approval.Reject, 200, []string{"Rejected", "alice@example.com"}, approval.StatusRejected},
			},
		},
		{
			name: "quorum:2 of 3, rejected once impossible",
			in: func(in *approval.NewRequest) {
				in.Approvers = []string{"alice@example.com", "bob@example.com", "carol@example.com"}
				in.Policy, in.RejectPolicy = "quorum:2", "impossible"
			},
			steps: []step{
				{"alice@example.com", approval.Reject, 200, []string{"Your rejection is recorded", "2 more approvals are needed.", "can no longer be met"}, approval.StatusPending},
				{"bob@example.com", approval.Reject, 200, []string{"Rejected", "can no longer be met"}, approval.StatusRejected},
			},
		},
		{
			name: "groups",
			in: func(in *approval.NewRequest) {
				in.Approvers = nil
				in.Groups = []approval.GroupInput{
					{Name: "eng", Approvers: []string{"alice@example.com", "bob@example.com"}, Min: 1},
					{Name: "security", Approvers: []string{"sec@example.com"}, Min: 1},
				}
			},
			steps: []step{
				{"alice@example.com", approval.Approve, 200, []string{"Your approval is recorded", "1 more approval is needed: waiting for security (0 of 1).", "one approval from each group: eng, security"}, approval.StatusPending},
				{"bob@example.com", approval.Approve, 200, []string{"Your approval is recorded", "waiting for security (0 of 1)"}, approval.StatusPending},
				{"sec@example.com", approval.Approve, 200, []string{"Your approval was the last one needed", "(satisfied)"}, approval.StatusApproved},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r, tokens := f.create(withWebhook, tc.in)
			voted := map[string]bool{}
			for i, s := range tc.steps {
				status, body := f.vote(tokens[s.who], s.choice, fmt.Sprintf("vote %d", i))
				if status != s.status {
					t.Errorf("step %d (%s %s): status %d, want %d\n%s", i, s.who, s.choice, status, s.status, body)
				}
				for _, w := range s.says {
					if !strings.Contains(body, w) {
						t.Errorf("step %d (%s %s): page does not say %q\n%s", i, s.who, s.choice, w, body)
					}
				}
				f.idle()
				got := f.get(r.ID)
				if got.Status != s.after {
					t.Errorf("step %d (%s %s): request %s, want %s", i, s.who, s.choice, got.Status, s.after)
				}
				if status == http.StatusOK {
					voted[s.who] = true
				}
				// A voter's page goes; the others stay while the request is
				// pending, and all go once it closes.
				for _, rc := range r.Recipients {
					want := got.Status == approval.StatusPending && !voted[rc.Address]
					if served := f.pageServed(r, rc.Address); served != want {
						t.Errorf("step %d: page of %s served %v, want %v", i, rc.Address, served, want)
					}
				}
			}
			final := f.get(r.ID)
			if n := len(final.Votes); n != len(voted) {
				t.Errorf("%d votes recorded, want %d: %+v", n, len(voted), final.Votes)
			}
			if got := len(f.workflow.Delivered()); got != 1 {
				t.Errorf("outcome delivered %d times, want once", got)
			}
		})
	}
}

// The requester may not approve their own request: the approve is refused
// with a page that says so (403, not an error), before and after the
// confirmation step, and they may still reject.
func TestSelfApprovalRefused(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create(withWebhook, func(in *approval.NewRequest) { in.Requester = "Alice@Example.com" })
	alice := tokens["alice@example.com"]
	var key string
	for _, rc := range r.Recipients {
		if rc.Address == "alice@example.com" {
			key = rc.PageKey
		}
	}
	page := readBody(t, f.do("GET", "/p/"+key, nil))
	if !strings.Contains(page, "you cannot approve it; you may still reject it") || strings.Contains(page, `name="decision" value="approve"`) {
		t.Errorf("the requester's page offers Approve, or does not say why not:\n%s", page)
	}
	for _, confirmed := range []string{"", "1"} {
		resp := f.postForm(url.Values{"token": {alice}, "decision": {"approve"}, "confirmed": {confirmed}})
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("confirmed=%q: self-approval answered %d, want 403\n%s", confirmed, resp.StatusCode, body)
		}
		for _, w := range []string{"You cannot approve your own request", "You asked for this approval, so you cannot approve it; you may still reject it", `href="` + f.pages.URL(key) + `"`} {
			if !strings.Contains(body, w) {
				t.Errorf("confirmed=%q: the refusal does not say %q\n%s", confirmed, w, body)
			}
		}
	}
	f.idle()
	if got := f.get(r.ID); got.Status != approval.StatusPending || len(got.Votes) != 0 {
		t.Fatalf("after a refused self-approval the request is %s with %d votes, want pending with none", got.Status, len(got.Votes))
	}
	if status, body := f.vote(alice, approval.Reject, "changed my mind"); status != http.StatusOK || !strings.Contains(body, "Rejected") {
		t.Errorf("the requester's reject: status %d, want 200 Rejected\n%s", status, body)
	}
	f.idle()
	if got := f.get(r.ID); got.Status != approval.StatusRejected || got.Decision == nil || got.Decision.By != "alice@example.com" {
		t.Errorf("request %s decided by %+v, want rejected by alice", got.Status, got.Decision)
	}
}

// A person votes once: a second vote through the same page, or through their
// page after voting in Slack, is refused with "You already approved at T"
// (409), never recorded.
func TestSecondVoteRefused(t *testing.T) {
	quorum := func(in *approval.NewRequest) {
		in.Approvers = []string{"alice@example.com", "bob@example.com", "carol@example.com"}
		in.Policy = "quorum:2"
	}
	t.Run("same page", func(t *testing.T) {
		f := newFixture(t)
		r, tokens := f.create(quorum)
		if status, body := f.vote(tokens["alice@example.com"], approval.Approve, ""); status != http.StatusOK {
			t.Fatalf("first vote: status %d\n%s", status, body)
		}
		for _, confirmed := range []string{"", "1"} {
			resp := f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"reject"}, "confirmed": {confirmed}})
			body := readBody(t, resp)
			if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "You already approved at Wed 25 Nov 2026, 13:00 UTC") {
				t.Errorf("confirmed=%q: second vote answered %d, want 409 \"You already approved at ...\"\n%s", confirmed, resp.StatusCode, body)
			}
		}
		f.idle()
		if got := f.get(r.ID); got.Status != approval.StatusPending || len(got.Votes) != 1 {
			t.Errorf("request %s with %d votes, want pending with 1", got.Status, len(got.Votes))
		}
	})
	t.Run("Slack, then the emailed page", func(t *testing.T) {
		f := newFixture(t)
		r, tokens := f.create(quorum)
		f.clock.Add(3 * time.Minute)
		alice := approval.Identity{ID: "U0ALICE001", Email: "Alice@example.com"}
		if _, err := f.svc.DecideInChat(context.Background(), r.ID, approval.Approve, "from Slack", alice); err != nil {
			t.Fatalf("vote in Slack: %v", err)
		}
		f.idle()
		status, body := f.vote(tokens["alice@example.com"], approval.Approve, "")
		if status != http.StatusConflict || !strings.Contains(body, "You already approved at Wed 25 Nov 2026, 13:03 UTC, through Slack") {
			t.Errorf("vote through the page after Slack: status %d, want 409 \"You already approved at ... through Slack\"\n%s", status, body)
		}
		if got := f.get(r.ID); len(got.Votes) != 1 {
			t.Errorf("%d votes recorded, want 1", len(got.Votes))
		}
	})
}

// Race: 200 concurrent confirmed approvals spread over the five approvers'
// pages of a quorum:3 request. Exactly three approvals count, the request is
// approved once and its outcome delivered once, every other attempt is told
// that it was already decided or that its sender already voted, and none gets
// a 5xx.
func TestConcurrentQuorumVotes(t *testing.T) {
	f := newFixture(t)
	approvers := []string{"a1@example.com", "a2@example.com", "a3@example.com", "a4@example.com", "a5@example.com"}
	r, tokens := f.create(withWebhook, func(in *approval.NewRequest) {
		in.Approvers, in.Policy = approvers, "quorum:3"
	})
	const attempts = 200
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[string]int{}
		start  = make(chan struct{})
	)
	kind := regexp.MustCompile(`<p class="status [^"]+">([^<]+)</p>`)
	for i := range attempts {
		wg.Go(func() {
			<-start
			form := url.Values{"token": {tokens[approvers[i%len(approvers)]]}, "decision": {"approve"}, "confirmed": {"1"}}
			resp := f.postForm(form)
			body := readBody(t, resp)
			badge := ""
			if m := kind.FindStringSubmatch(body); m != nil {
				badge = m[1]
			}
			mu.Lock()
			defer mu.Unlock()
			counts[fmt.Sprintf("%d %s", resp.StatusCode, badge)]++
		})
	}
	close(start)
	wg.Wait()
	f.idle()

	recorded, approved := counts["200 Vote recorded"], counts["200 Approved"]
	if recorded != 2 || approved != 1 {
		t.Errorf("answers %v: want 2 \"Vote recorded\" and 1 \"Approved\"", counts)
	}
	if refused := counts["409 Already decided"] + counts["409 Already voted"]; refused != attempts-3 {
		t.Errorf("answers %v: want %d refused as already decided or already voted", counts, attempts-3)
	}
	for k := range counts {
		if k >= "500" {
			t.Errorf("answers %v include a 5xx", counts)
		}
	}
	got := f.get(r.ID)
	if got.Status != approval.StatusApproved {
		t.Errorf("request %s, want approved", got.Status)
	}
	voters := map[string]bool{}
	for _, v := range got.Votes {
		if v.Choice != approval.Approve || voters[v.By] {
			t.Errorf("vote %+v: not an approval, or a second one by the same person", v)
		}
		voters[v.By] = true
	}
	if len(got.Votes) != 3 {
		t.Errorf("%d votes counted, want 3: %+v", len(got.Votes), got.Votes)
	}
	if got.Decision == nil || !voters[got.Decision.By] {
		t.Errorf("decision %+v is not one of the counted votes", got.Decision)
	}
	delivered := f.workflow.Delivered()
	if len(delivered) != 1 || delivered[0].Decision != "approved" || len(delivered[0].Votes) != 3 {
		t.Errorf("delivered %+v, want one approved outcome with 3 votes", delivered)
	}
	if keys := f.pages.Keys(); len(keys) != 0 {
		t.Errorf("%d pages still published after the request closed", len(keys))
	}
}

// A link of the first version (a bare token, naming no request, posted for a
// whole Slack channel) still works after an upgrade: the store finds its
// request, and its first answer decides for the channel.
func TestLegacyToken(t *testing.T) {
	f := newFixture(t)
	r, _ := f.create(func(in *approval.NewRequest) { in.Policy = "quorum:2" })
	raw, hash := approval.NewToken()
	stored := f.get(r.ID)
	stored.Recipients = append(stored.Recipients, approval.Recipient{Address: "C0123ABCD", Channel: approval.ChannelSlack, TokenHash: hash})
	if err := f.store.UpdateRequest(context.Background(), stored); err != nil {
		t.Fatal(err)
	}
	f.store.(*memory.Store).AddLegacyToken(hash, r.ID)

	resp := f.postForm(url.Values{"token": {raw}, "decision": {"approve"}})
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="confirmed" value="1"`) ||
		!strings.Contains(body, "this decides the request for everyone") {
		t.Errorf("confirmation step with a first-version token: status %d\n%s", resp.StatusCode, body)
	}
	status, body := f.vote(raw, approval.Approve, "for the channel")
	if status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Errorf("vote with a first-version token: status %d, want 200 Approved\n%s", status, body)
	}
	f.idle()
	got := f.get(r.ID)
	if got.Status != approval.StatusApproved || got.Decision == nil || got.Decision.By != "Slack channel C0123ABCD" {
		t.Errorf("request %s decided by %+v, want approved by the channel", got.Status, got.Decision)
	}
	if status, body := f.vote(raw, approval.Reject, ""); status != http.StatusConflict {
		t.Errorf("second use of the token: status %d, want 409\n%s", status, body)
	}
}

// Every answer of the service maps to one status and result page: refusals
// and late votes are 4xx with a page that says why, only our own failures are
// 5xx.
func TestOutcomeMapping(t *testing.T) {
	pending := &approval.Request{ID: "abcdefghijklmnop", Status: approval.StatusPending}
	with := func(s approval.Status, decided bool) *approval.Request {
		r := *pending
		r.Status = s
		if decided {
			r.Decision = &approval.Decision{Choice: approval.Approve, By: "alice@example.com"}
		}
		return &r
	}
	for _, tc := range []struct {
		name   string
		req    *approval.Request
		err    error
		status int
		kind   pages.ResultKind
	}{
		{"approved", with(approval.StatusApproved, true), nil, 200, pages.ResultApproved},
		{"rejected", with(approval.StatusRejected, true), nil, 200, pages.ResultRejected},
		{"recorded", pending, nil, 200, pages.ResultRecorded},
		{"closed as gone", with(approval.StatusExpired, true), nil, 410, pages.ResultGone},
		{"already voted", pending, approval.ErrAlreadyVoted, 409, pages.ResultAlreadyVoted},
		{"already decided", with(approval.StatusApproved, true), approval.ErrAlreadyDecided, 409, pages.ResultAlreadyDecided},
		{"self-approval", pending, approval.ErrSelfApproval, 403, pages.ResultSelfApproval},
		{"not an approver", pending, approval.ErrNotApprover, 403, pages.ResultNotApprover},
		{"expired", with(approval.StatusExpired, false), approval.ErrExpired, 410, pages.ResultExpired},
		{"withdrawn", with(approval.StatusCanceled, false), approval.ErrExpired, 410, pages.ResultExpired},
		{"expired after a decision", with(approval.StatusExpired, true), approval.ErrExpired, 410, pages.ResultGone},
		{"workflow gone", with(approval.StatusExpired, true), approval.ErrWorkflowGone, 410, pages.ResultGone},
		{"unknown token", nil, fmt.Errorf("decide: %w", approval.ErrNotFound), 404, pages.ResultNotFound},
		{"invalid", nil, approval.Invalidf("comment", "too long"), 400, pages.ResultInvalid},
		{"busy", nil, fmt.Errorf("vote: too many concurrent changes: %w", approval.ErrConflict), 503, pages.ResultBusy},
		{"store down", nil, fmt.Errorf("vote: %w", context.DeadlineExceeded), 500, pages.ResultError},
		{"no request and no error", nil, nil, 500, pages.ResultError},
	} {
		status, res := outcome(tc.req, tc.err)
		if status != tc.status || res.Kind != tc.kind {
			t.Errorf("%s: %d %s, want %d %s", tc.name, status, res.Kind, tc.status, tc.kind)
		}
	}
}
