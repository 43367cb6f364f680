package approval_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

// sweep runs one sweep at the clock's time.
func (h *harness) sweep(t *testing.T) approval.SweepStats {
	t.Helper()
	st, err := h.svc.Sweep(t.Context())
	if err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	return st
}

// reminders returns the addresses of the reminder emails sent so far, in
// order.
func (h *harness) reminders() []string {
	var out []string
	for _, m := range h.mail.Sent() {
		if strings.HasPrefix(m.Subject, "Reminder: ") {
			out = append(out, m.To)
		}
	}
	return out
}

func TestRemindersEvery(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.Approvers = []string{"alice@example.com", "bob@example.com", "carol@example.com"}
	in.Policy = "quorum:2"
	in.Timeout = 4 * time.Hour
	in.Reminders.Every = time.Hour
	r := h.create(t, in)
	if got, want := r.NextReminder(), r.CreatedAt.Add(time.Hour); !got.Equal(want) || !r.DueAt().Equal(want) {
		t.Fatalf("next reminder %v, due %v; want both %v", got, r.DueAt(), want)
	}

	h.clock.Advance(time.Hour - time.Second)
	h.sweep(t)
	if got := h.reminders(); len(got) != 0 {
		t.Fatalf("reminders before their time: %v", got)
	}
	h.clock.Advance(time.Second)
	h.sweep(t)
	if got, want := h.reminders(), in.Approvers; !slices.Equal(sorted(got), want) {
		t.Fatalf("first round reminded %v, want %v", got, want)
	}
	// The same link: the reminder names the page the first email did.
	sent := h.mail.Sent()
	if sent[0].Text != sent[len(sent)-1].Text && !strings.Contains(sent[len(sent)-1].Text, "/p/") {
		t.Errorf("reminder text %q does not link the page", sent[len(sent)-1].Text)
	}
	// A second sweep at the same instant sends nothing again.
	h.sweep(t)
	if n := len(h.reminders()); n != 3 {
		t.Fatalf("after a second sweep at once: %d reminders, want 3", n)
	}

	if _, err := h.decide(t, r, "alice@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Hour)
	h.sweep(t)
	if got, want := h.reminders()[3:], []string{"bob@example.com", "carol@example.com"}; !slices.Equal(sorted(got), want) {
		t.Errorf("second round reminded %v, want only those who have not voted: %v", got, want)
	}
	if _, err := h.decide(t, r, "bob@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	got := h.get(t, r.ID)
	if got.Status != approval.StatusApproved || !got.NextReminder().IsZero() {
		t.Fatalf("after the decision: %s, next reminder %v; want approved, none", got.Status, got.NextReminder())
	}
	n := len(h.reminders())
	h.clock.Advance(2 * time.Hour)
	h.sweep(t)
	if len(h.reminders()) != n {
		t.Errorf("reminders sent after the request closed")
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// A request of 90 seconds asking for a reminder 30 seconds before its expiry:
// the email approver gets an email, the Slack approver a direct message, and
// the channel message a thread reply naming both.
func TestRemindersBeforeExpiry(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = []string{"alice@example.com", "U0BOB00001"}
	in.Timeout = 90 * time.Second
	in.Reminders.BeforeExpiry = []time.Duration{30 * time.Second}
	r := h.create(t, in)
	if want := r.ExpiresAt.Add(-30 * time.Second); !r.DueAt().Equal(want) {
		t.Fatalf("due %v, want %v", r.DueAt(), want)
	}
	h.clock.Advance(59 * time.Second)
	h.sweep(t)
	if len(h.chat.noticeList()) != 0 || len(h.reminders()) != 0 {
		t.Fatalf("reminded too early: %v %v", h.chat.noticeList(), h.reminders())
	}
	h.clock.Advance(time.Second)
	h.sweep(t)
	if got := h.reminders(); !slices.Equal(got, []string{"alice@example.com"}) {
		t.Errorf("reminder emails to %v, want alice", got)
	}
	want := []string{"reminder U0BOB00001", "reminder thread:alice@example.com,U0BOB00001"}
	if got := h.chat.noticeList(); !slices.Equal(sorted(got), want) {
		t.Errorf("chat notices %v, want %v", got, want)
	}
	if got := h.get(t, r.ID); !got.DueAt().Equal(got.ExpiresAt) {
		t.Errorf("after the last reminder due %v, want the expiry %v", got.DueAt(), got.ExpiresAt)
	}
	h.clock.Advance(time.Minute)
	h.sweep(t)
	if got := h.get(t, r.ID); got.Status != approval.StatusExpired || len(h.chat.noticeList()) != 2 {
		t.Errorf("at expiry: %s with %d notices; want expired, no more notices", got.Status, len(h.chat.noticeList()))
	}
}

// gateStore holds UpdateRequest calls while gate is set, so that tests can
// line writers up on one version.
type gateStore struct {
	*memory.Store
	gate    chan struct{}
	waiting atomic.Int32
}

func (s *gateStore) UpdateRequest(ctx context.Context, r *approval.Request) error {
	if s.gate != nil {
		s.waiting.Add(1)
		<-s.gate
	}
	return s.Store.UpdateRequest(ctx, r)
}

// Two sweeps at once and a vote at the same time: one round of reminders,
// one escalation, never two.
func TestTimersOnceUnderRaces(t *testing.T) {
	for i := range 30 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			h := newHarness(t, true)
			gs := &gateStore{Store: h.store}
			h.svc.Store = gs
			in := validInput()
			in.Approvers = []string{"alice@example.com", "bob@example.com", "U0DAN00001"}
			in.Policy = "quorum:2"
			in.Reminders.Every = 10 * time.Minute
			in.Escalation = &approval.EscalationInput{After: 10 * time.Minute, Approvers: []string{"carol@example.com"}, SlackChannel: "C0ESCALATE"}
			r := h.create(t, in)
			alice := h.token(t, r, "alice@example.com")
			h.clock.Advance(10 * time.Minute)

			gs.gate = make(chan struct{})
			var wg sync.WaitGroup
			for range 2 {
				wg.Go(func() { h.svc.Sweep(context.Background()) })
			}
			wg.Go(func() {
				h.svc.Decide(context.Background(), approval.DecideInput{Token: alice, Choice: approval.Approve})
			})
			for gs.waiting.Load() < 3 {
				time.Sleep(time.Millisecond) // the three writers reach the store
			}
			close(gs.gate)
			wg.Wait()
			gs.gate = nil
			h.sweep(t)

			got := h.get(t, r.ID)
			if len(got.Votes) != 1 || got.Escalation.At.IsZero() || !slices.Contains(got.Approvers, "carol@example.com") {
				t.Fatalf("votes %d, escalated %v, approvers %v", len(got.Votes), got.Escalation.At, got.Approvers)
			}
			carol := 0
			for _, m := range h.mail.Sent() {
				if m.To == "carol@example.com" {
					carol++
				}
			}
			if carol != 1 || len(h.chat.postsIn) != 1 {
				t.Errorf("carol got %d emails, %d escalation posts; want one each", carol, len(h.chat.postsIn))
			}
			// One round: each of those who had not voted when it was written,
			// once (alice may or may not be among them).
			rem := h.reminders()
			seen := map[string]int{}
			for _, a := range rem {
				seen[a]++
			}
			for a, n := range seen {
				if n != 1 {
					t.Errorf("%s reminded %d times", a, n)
				}
			}
			if seen["bob@example.com"] != 1 {
				t.Errorf("reminders %v: bob was not reminded", rem)
			}
			threads := 0
			for _, n := range h.chat.noticeList() {
				if strings.HasPrefix(n, "reminder thread:") {
					threads++
				}
			}
			if threads != 1 {
				t.Errorf("notices %v: want one reminder in the thread", h.chat.noticeList())
			}
		})
	}
}

func TestEscalation(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = []string{"alice@example.com"}
	in.Timeout = 4 * time.Hour
	in.Escalation = &approval.EscalationInput{After: 2 * time.Hour, Approvers: []string{"carol@example.com", "U0DAN00001"}, SlackChannel: "C0ESCALATE"}
	r := h.create(t, in)
	if want := r.CreatedAt.Add(2 * time.Hour); !r.EscalatesAt().Equal(want) || !r.DueAt().Equal(want) {
		t.Fatalf("escalates at %v, due %v; want %v", r.EscalatesAt(), r.DueAt(), want)
	}
	h.clock.Advance(2 * time.Hour)
	h.sweep(t)
	got := h.get(t, r.ID)
	if want := []string{"alice@example.com", "carol@example.com", "U0DAN00001"}; !slices.Equal(got.Approvers, want) {
		t.Fatalf("approvers after the escalation %v, want %v", got.Approvers, want)
	}
	if got.Escalation.At.IsZero() || got.Escalation.Message.Channel != "C0ESCALATE" {
		t.Errorf("escalation %+v: want done, posted in C0ESCALATE", got.Escalation)
	}
	if !slices.Equal(h.chat.postsIn, []string{"C0ESCALATE"}) || !slices.Contains(h.chat.dms, "U0DAN00001") {
		t.Errorf("posts in %v, DMs %v; want the escalation channel and a DM to dan", h.chat.postsIn, h.chat.dms)
	}
	if res := got.Result(); res.EscalatedAt == "" {
		t.Errorf("result %+v has no escalatedAt", res)
	}
	h.sweep(t)
	if len(h.chat.postsIn) != 1 {
		t.Errorf("escalated twice")
	}
	// carol can now vote with her own link, and decides.
	done, err := h.decide(t, got, "carol@example.com", approval.Approve)
	if err != nil || done.Status != approval.StatusApproved || done.Decision.By != "carol@example.com" {
		t.Fatalf("carol's vote: %v, %+v", err, done)
	}
}

func TestEscalationGroups(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.Approvers = nil
	in.Groups = []approval.GroupInput{{Name: "eng", Approvers: []string{"alice@example.com"}}, {Name: "ops", Approvers: []string{"bob@example.com"}}}
	in.Escalation = &approval.EscalationInput{After: time.Minute, Groups: []approval.GroupInput{{Name: "ops", Approvers: []string{"olga@example.com"}}}}
	r := h.create(t, in)
	h.clock.Advance(time.Minute)
	h.sweep(t)
	got := h.get(t, r.ID)
	if want := []string{"bob@example.com", "olga@example.com"}; !slices.Equal(got.Rule.Groups[1].Approvers, want) {
		t.Fatalf("ops after the escalation %v, want %v", got.Rule.Groups[1].Approvers, want)
	}
	if _, err := h.decide(t, got, "alice@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	done, err := h.decide(t, got, "olga@example.com", approval.Approve)
	if err != nil || done.Status != approval.StatusApproved || !slices.Equal(done.Votes[1].Groups, []string{"ops"}) {
		t.Fatalf("olga's vote: %v, %+v", err, done)
	}
}

func TestOnTimeout(t *testing.T) {
	tests := []struct {
		onTimeout  string
		rejectPol  string
		reject     bool // bob rejects before the timeout (reject policy "impossible" keeps it open)
		wantStatus approval.Status
		wantBy     string
	}{
		{"", "", false, approval.StatusExpired, ""},
		{"expire", "", false, approval.StatusExpired, ""},
		{"reject", "", false, approval.StatusRejected, "timeout"},
		{"approve", "", false, approval.StatusApproved, "timeout"},
		{"approve", "impossible", true, approval.StatusRejected, "timeout"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.onTimeout, tt.reject), func(t *testing.T) {
			h := newHarness(t, true)
			wf := newTaskWorkflow()
			h.svc.Workflow = wf
			in := validInput()
			in.TaskToken = "task-1"
			in.OnTimeout, in.RejectPolicy = tt.onTimeout, tt.rejectPol
			r := h.create(t, in)
			if tt.reject {
				if _, err := h.decide(t, r, "bob@example.com", approval.Reject); err != nil {
					t.Fatal(err)
				}
			}
			h.clock.Advance(time.Hour)
			h.sweep(t)
			got := h.get(t, r.ID)
			if got.Status != tt.wantStatus {
				t.Fatalf("status %s, want %s", got.Status, tt.wantStatus)
			}
			res := wf.completed[r.ID]
			if res.Decision != string(tt.wantStatus) || res.DecidedBy != tt.wantBy || wf.completes != 1 {
				t.Errorf("workflow got %+v (%d completions); want %s by %q", res, wf.completes, tt.wantStatus, tt.wantBy)
			}
			if tt.wantBy != "" {
				if !got.Decision.ByTimeout() || !got.Decision.At.Equal(got.ExpiresAt) || res.DecidedAt == "" || res.Channel != "" {
					t.Errorf("decision %+v, result %+v: want by the timeout at the expiry, no channel", got.Decision, res)
				}
			}
			if len(h.pages.Keys()) != 0 || !strings.HasPrefix(h.chat.lastUpdate(), string(tt.wantStatus)) {
				t.Errorf("pages %v, chat %q", h.pages.Keys(), h.chat.lastUpdate())
			}
		})
	}
}

// orderStore holds the first write of a vote and the first write of anything
// else, so that a test can choose which is written first.
type orderStore struct {
	*memory.Store
	vote, other chan struct{}
	arrived     chan string
}

func (s *orderStore) UpdateRequest(ctx context.Context, r *approval.Request) error {
	which, gate := "other", s.other
	if len(r.Votes) > 0 {
		which, gate = "vote", s.vote
	}
	s.arrived <- which
	<-gate
	return s.Store.UpdateRequest(ctx, r)
}

// QuickVote holds the one-write vote like any first write of a vote.
func (s *orderStore) QuickVote(ctx context.Context, id, hash string, v approval.Vote, e []approval.Effect) (*approval.Request, error) {
	s.arrived <- "vote"
	<-s.vote
	return s.Store.QuickVote(ctx, id, hash, v, e)
}

// A vote and the timeout outcome at the same instant, both computed from the
// same version: exactly one wins, whichever is written first, and the
// workflow hears one outcome.
func TestVoteAtTheTimeoutInstant(t *testing.T) {
	for _, voteFirst := range []bool{true, false} {
		t.Run(fmt.Sprintf("vote first %v", voteFirst), func(t *testing.T) {
			h := newHarness(t, false)
			wf := newTaskWorkflow()
			h.svc.Workflow = wf
			in := validInput()
			in.TaskToken, in.OnTimeout = "task-1", "approve"
			r := h.create(t, in)
			tok := h.token(t, r, "alice@example.com")
			// The vote is cast a moment before the expiry; the sweep runs at
			// the expiry.
			h.clock.Advance(time.Hour - time.Millisecond)
			os := &orderStore{Store: h.store, vote: make(chan struct{}), other: make(chan struct{}), arrived: make(chan string, 100)}
			h.svc.Store = os
			voted := make(chan error, 1)
			go func() {
				_, err := h.svc.Decide(context.Background(), approval.DecideInput{Token: tok, Choice: approval.Reject, Comment: "no"})
				voted <- err
			}()
			if w := <-os.arrived; w != "vote" {
				t.Fatalf("first writer %s, want the vote", w)
			}
			h.clock.Advance(time.Millisecond)
			swept := make(chan struct{})
			go func() { h.svc.Sweep(context.Background()); close(swept) }()
			if w := <-os.arrived; w != "other" {
				t.Fatalf("second writer %s, want the sweep", w)
			}
			var voteErr error
			if voteFirst {
				close(os.vote)
				voteErr = <-voted
				close(os.other)
				<-swept
			} else {
				close(os.other)
				<-swept
				close(os.vote)
				voteErr = <-voted
			}
			got := h.get(t, r.ID)
			if voteFirst {
				if voteErr != nil || got.Status != approval.StatusRejected || got.Decision.By != "alice@example.com" || len(got.Votes) != 1 {
					t.Errorf("vote written first: %v; request %s decided %+v, votes %d; want rejected by alice", voteErr, got.Status, got.Decision, len(got.Votes))
				}
			} else {
				if !errors.Is(voteErr, approval.ErrAlreadyDecided) || got.Status != approval.StatusApproved || !got.Decision.ByTimeout() || len(got.Votes) != 0 {
					t.Errorf("timeout written first: vote %v; request %s decided %+v, votes %d; want approved by timeout, the vote refused", voteErr, got.Status, got.Decision, len(got.Votes))
				}
			}
			if wf.completes != 1 {
				t.Errorf("workflow completed %d times, want once", wf.completes)
			}
		})
	}
}

// Many races of a vote against the sweep at the expiry: each time exactly one
// outcome, told once.
func TestVoteRacesTimeout(t *testing.T) {
	wins := map[string]int{}
	for range 50 {
		h := newHarness(t, false)
		wf := newTaskWorkflow()
		h.svc.Workflow = wf
		in := validInput()
		in.TaskToken, in.OnTimeout = "task-1", "reject"
		r := h.create(t, in)
		tok := h.token(t, r, "alice@example.com")
		h.clock.Advance(time.Hour - time.Millisecond)
		var wg sync.WaitGroup
		var voteErr error
		wg.Go(func() {
			_, voteErr = h.svc.Decide(context.Background(), approval.DecideInput{Token: tok, Choice: approval.Approve})
		})
		wg.Go(func() {
			h.clock.Advance(time.Millisecond)
			h.svc.Sweep(context.Background())
		})
		wg.Wait()
		h.sweep(t)
		got := h.get(t, r.ID)
		switch {
		case got.Status == approval.StatusApproved && voteErr == nil && len(got.Votes) == 1:
			wins["vote"]++
		case got.Status == approval.StatusRejected && got.Decision.ByTimeout() && len(got.Votes) == 0 &&
			(errors.Is(voteErr, approval.ErrAlreadyDecided)):
			wins["timeout"]++
		default:
			t.Fatalf("status %s, decision %+v, votes %d, vote error %v", got.Status, got.Decision, len(got.Votes), voteErr)
		}
		if wf.completes != 1 {
			t.Fatalf("workflow completed %d times", wf.completes)
		}
	}
	t.Logf("wins: %v", wins)
}

func TestExtend(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Policy = "quorum:2"
	in.Reminders.BeforeExpiry = []time.Duration{10 * time.Minute}
	r := h.create(t, in)
	aliceOld := h.token(t, r, "alice@example.com")
	if _, err := h.decide(t, r, "bob@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(30 * time.Minute)
	updates := len(h.chat.updates)

	for _, tt := range []struct {
		name    string
		timeout time.Duration
	}{
		{"not later", 20 * time.Minute},
		{"past 30 days", approval.MaxTimeout},
	} {
		if _, err := h.svc.Extend(t.Context(), r.ID, "api", tt.timeout); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("extend %s: %v, want ErrInvalid", tt.name, err)
		}
	}
	got, err := h.svc.Extend(t.Context(), r.ID, "api", 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := h.clock.Now().Truncate(time.Millisecond).Add(2 * time.Hour)
	if !got.ExpiresAt.Equal(want) || len(got.Extensions) != 1 || got.Extensions[0].By != "api" || !got.Extensions[0].From.Equal(r.ExpiresAt) {
		t.Fatalf("after extend: expires %v, extensions %+v; want %v, one by api", got.ExpiresAt, got.Extensions, want)
	}
	if !got.NextReminder().Equal(want.Add(-10 * time.Minute)) {
		t.Errorf("next reminder %v, want 10 minutes before the new expiry", got.NextReminder())
	}
	// alice's page shows the new expiry, under the same address; the old
	// token (a page still open) works too.
	for _, rc := range got.Recipients {
		page, ok := h.pages.Get(rc.PageKey)
		if rc.Address == "bob@example.com" {
			if ok {
				t.Errorf("bob's page, who voted, is published again")
			}
			continue
		}
		if !ok || !strings.Contains(string(page), "expires="+want.Format(time.RFC3339)) {
			t.Errorf("alice's page after the extension:\n%s", page)
		}
	}
	if n := len(h.chat.updates); n != updates+1 {
		t.Errorf("%d chat updates after the extension, want 1", n-updates)
	}
	done, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: aliceOld, Choice: approval.Approve})
	if err != nil || done.Status != approval.StatusApproved {
		t.Fatalf("vote with the token of the page before the extension: %v, %+v", err, done)
	}
	if _, err := h.svc.Extend(t.Context(), r.ID, "api", 3*time.Hour); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("extend a decided request: %v, want ErrAlreadyDecided", err)
	}
}

func TestExtendWithinTaskDeadline(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.TaskToken = "task-1"
	in.TaskDeadline = start.Add(2 * time.Hour)
	r := h.create(t, in)
	_, err := h.svc.Extend(t.Context(), r.ID, "api", 3*time.Hour)
	var ve *approval.ValidationError
	if !errors.As(err, &ve) || ve.Field != "timeout" || !strings.Contains(ve.Message, "task stops waiting") {
		t.Fatalf("extend past the task deadline: %v, want a timeout error naming the task", err)
	}
	if _, err := h.svc.Extend(t.Context(), r.ID, "api", 90*time.Minute); err != nil {
		t.Errorf("extend within the task deadline: %v", err)
	}
}

func TestDelegate(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.Approvers = []string{"alice@example.com", "bob@example.com"}
	in.Policy = "all"
	r := h.create(t, in)
	bobTok := h.token(t, r, "bob@example.com")
	for _, tt := range []struct {
		name, to  string
		wantField string
	}{
		{"to themselves", "Bob@example.com", "to"},
		{"to an approver", "alice@example.com", "to"},
		{"to the requester", "ci@example.com", "to"},
		{"to no address", "carol", "to"},
		{"to a Slack user without Slack", "U0CAROL001", "to"},
	} {
		_, err := h.svc.Delegate(t.Context(), bobTok, tt.to)
		var ve *approval.ValidationError
		if !errors.As(err, &ve) || ve.Field != tt.wantField {
			t.Errorf("delegate %s: %v, want a %q error", tt.name, err, tt.wantField)
		}
	}
	got, err := h.svc.Delegate(t.Context(), bobTok, "Carol@Example.com")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"alice@example.com", "carol@example.com"}; !slices.Equal(got.Approvers, want) {
		t.Errorf("approvers %v, want %v", got.Approvers, want)
	}
	if d := got.Delegations; len(d) != 1 || d[0].From != "bob@example.com" || d[0].To != "carol@example.com" || d[0].Channel != approval.ChannelEmail {
		t.Errorf("delegations %+v", d)
	}
	if res := got.Result(); len(res.Delegations) != 1 || res.Delegations[0].To != "carol@example.com" {
		t.Errorf("result delegations %+v", res.Delegations)
	}
	if sent := h.mail.Sent(); sent[len(sent)-1].To != "carol@example.com" {
		t.Errorf("last email to %s, want carol's link", sent[len(sent)-1].To)
	}
	for _, rc := range got.Recipients {
		if _, ok := h.pages.Get(rc.PageKey); ok == (rc.Address == "bob@example.com") {
			t.Errorf("page of %s published: %v", rc.Address, ok)
		}
	}
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: bobTok, Choice: approval.Approve}); !errors.Is(err, approval.ErrDelegated) {
		t.Errorf("bob votes after delegating: %v, want ErrDelegated", err)
	}
	if _, err := h.svc.Delegate(t.Context(), bobTok, "dave@example.com"); !errors.Is(err, approval.ErrDelegated) {
		t.Errorf("bob delegates again: %v, want ErrDelegated", err)
	}
	if _, err := h.decide(t, got, "alice@example.com", approval.Approve); err != nil {
		t.Fatal(err)
	}
	done, err := h.decide(t, got, "carol@example.com", approval.Approve)
	if err != nil || done.Status != approval.StatusApproved {
		t.Fatalf("carol's vote: %v, %+v; want approved under all", err, done)
	}
}

func TestDelegateInChatAndGroups(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = nil
	in.Groups = []approval.GroupInput{{Name: "sec", Approvers: []string{"U0BOB00001", "sam@example.com"}}}
	r := h.create(t, in)
	bob := approval.Identity{ID: "U0BOB00001", Email: "bob@example.com"}
	if _, err := h.svc.DelegateInChat(t.Context(), r.ID, approval.Identity{ID: "U0MALLORY1"}, "U0CAROL001"); !errors.Is(err, approval.ErrNotApprover) {
		t.Errorf("a stranger delegates: %v, want ErrNotApprover", err)
	}
	got, err := h.svc.DelegateInChat(t.Context(), r.ID, bob, "U0CAROL001")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"U0CAROL001", "sam@example.com"}; !slices.Equal(got.Rule.Groups[0].Approvers, want) {
		t.Errorf("group sec %v, want %v", got.Rule.Groups[0].Approvers, want)
	}
	if !slices.Contains(h.chat.dms, "U0CAROL001") {
		t.Errorf("DMs %v: carol got none", h.chat.dms)
	}
	if _, err := h.svc.DecideInChat(t.Context(), r.ID, approval.Approve, "", bob); !errors.Is(err, approval.ErrNotApprover) && !errors.Is(err, approval.ErrDelegated) {
		t.Errorf("bob votes after delegating: %v", err)
	}
	done, err := h.svc.DecideInChat(t.Context(), r.ID, approval.Approve, "", approval.Identity{ID: "U0CAROL001"})
	if err != nil || done.Status != approval.StatusApproved || !slices.Equal(done.Votes[0].Groups, []string{"sec"}) {
		t.Fatalf("carol's vote: %v %+v", err, done)
	}

	off := validInput()
	off.NoDelegation = true
	r2 := h.create(t, off)
	if _, err := h.svc.Delegate(t.Context(), h.token(t, r2, "bob@example.com"), "carol@example.com"); !errors.Is(err, approval.ErrNoDelegation) {
		t.Errorf("delegate with allowDelegation false: %v, want ErrNoDelegation", err)
	}
}

func TestCancelNotice(t *testing.T) {
	h := newHarness(t, true)
	r := h.create(t, validInput())
	if _, err := h.svc.Cancel(t.Context(), r.ID, "ci@example.com", "superseded"); err != nil {
		t.Fatal(err)
	}
	if got := h.chat.noticeList(); !slices.Equal(got, []string{"canceled thread:"}) {
		t.Errorf("notices %v, want the cancel notice in the thread", got)
	}
}

// probeWorkflow is a Step Functions stand-in whose tasks can be stopped.
type probeWorkflow struct {
	*taskWorkflow
	mu      sync.Mutex
	stopped map[string]bool // task tokens
	probes  atomic.Int32
}

func (w *probeWorkflow) Waiting(_ context.Context, r *approval.Request) error {
	w.probes.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped[r.TaskToken] {
		return fmt.Errorf("task timed out: %w", approval.ErrWorkflowGone)
	}
	return nil
}

func TestSweepClosesStoppedWorkflows(t *testing.T) {
	h := newHarness(t, true)
	wf := &probeWorkflow{taskWorkflow: newTaskWorkflow(), stopped: map[string]bool{}}
	h.svc.Workflow = wf
	var ids []string
	for i := range 3 {
		in := validInput()
		in.TaskToken = fmt.Sprintf("task-%d", i)
		ids = append(ids, h.create(t, in).ID)
	}
	plain := h.create(t, validInput()) // no task token: never probed
	wf.stopped["task-1"] = true
	st := h.sweep(t)
	if st.Gone != 1 || wf.probes.Load() != 3 {
		t.Fatalf("sweep closed %d, probed %d; want 1 of 3", st.Gone, wf.probes.Load())
	}
	got := h.get(t, ids[1])
	if got.Status != approval.StatusCanceled || got.Reason != approval.ReasonWorkflowGone || got.Canceled.By != approval.WorkflowGoneBy || !got.Delivered() {
		t.Errorf("stopped workflow's request: %s (%s) %+v delivered %v", got.Status, got.Reason, got.Canceled, got.Delivered())
	}
	if wf.sendCount() != 0 {
		t.Errorf("%d sends to a workflow that is gone, want none", wf.sendCount())
	}
	for _, id := range []string{ids[0], ids[2], plain.ID} {
		if h.get(t, id).Status != approval.StatusPending {
			t.Errorf("request %s closed, want pending", id)
		}
	}
	if h.chat.lastUpdate() != "canceled 0" {
		t.Errorf("chat shows %q", h.chat.lastUpdate())
	}
}

// countingMailer records how many sends run at once.
type countingMailer struct {
	sent, now, peak atomic.Int32
}

func (m *countingMailer) Send(context.Context, approval.Email) error {
	n := m.now.Add(1)
	for {
		p := m.peak.Load()
		if n <= p || m.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(100 * time.Microsecond) // a send takes a while: overlapping sends show
	m.now.Add(-1)
	m.sent.Add(1)
	return nil
}

// 10,000 pending requests whose reminders are due: one sweep sends every
// reminder, in bounded batches (at most 8 requests at a time).
func TestRemindTenThousand(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 requests")
	}
	h := newHarness(t, false)
	h.svc.Mailer = nil
	const n = 10_000
	for i := range n {
		in := validInput()
		in.Approvers = []string{fmt.Sprintf("a%d@example.com", i)}
		in.WebhookURL = ""
		in.Reminders.Every = time.Hour
		in.Timeout = 2 * time.Hour
		h.create(t, in)
	}
	m := &countingMailer{}
	h.svc.Mailer = m
	h.clock.Advance(time.Hour)
	began := time.Now()
	st := h.sweep(t)
	took := time.Since(began)
	if m.sent.Load() != n || st.Advanced != n {
		t.Fatalf("sent %d reminders, advanced %d requests; want %d", m.sent.Load(), st.Advanced, n)
	}
	if p := m.peak.Load(); p > 8 {
		t.Errorf("%d reminders sent at once, want at most 8", p)
	}
	t.Logf("%d reminders in one sweep in %v, at most %d at once", n, took.Round(time.Millisecond), m.peak.Load())
}
