package approval_test

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
	"approvalbot/internal/testing/memory"
)

// taskWorkflow behaves like a Step Functions task: the first outcome sent
// completes it; every later send is answered "task closed" (ErrWorkflowGone).
type taskWorkflow struct {
	mu        sync.Mutex
	completed map[string]approval.Result
	completes int
	sends     int
	err       error // every send fails with err while it is set
	block     chan struct{}
}

func newTaskWorkflow() *taskWorkflow { return &taskWorkflow{completed: map[string]approval.Result{}} }

func (w *taskWorkflow) Deliver(ctx context.Context, r *approval.Request) error {
	if w.block != nil {
		select {
		case <-w.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.sends++
	if w.err != nil {
		return w.err
	}
	if _, ok := w.completed[r.ID]; ok {
		return fmt.Errorf("task closed: %w", approval.ErrWorkflowGone)
	}
	w.completed[r.ID] = r.Result()
	w.completes++
	return nil
}

func (w *taskWorkflow) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

// sweepUntilQuiet advances the clock and sweeps until nothing is due.
func sweepUntilQuiet(t *testing.T, h *harness, step time.Duration) {
	t.Helper()
	for range 40 {
		h.clock.Advance(step)
		if _, err := h.svc.Sweep(t.Context()); err != nil {
			t.Fatalf("Sweep: %v", err)
		}
		due, err := h.store.ListDue(t.Context(), h.clock.Now().Add(10*time.Minute), 10)
		if err != nil {
			t.Fatal(err)
		}
		busy := false
		for _, r := range due {
			busy = busy || r.Status != approval.StatusPending || !r.DueAt().Equal(r.ExpiresAt)
		}
		if !busy {
			return
		}
	}
	t.Fatal("effects still due after 40 sweeps")
}

func TestNotificationRetried(t *testing.T) {
	h := newHarness(t, false)
	h.mail.SetErr(errors.New("smtp: 451 try again later"))
	r := h.create(t, validInput())
	var states []string
	for _, n := range r.Notifications() {
		states = append(states, n.State)
	}
	if strings.Join(states, ",") != "retrying,retrying" || r.Status != approval.StatusPending {
		t.Fatalf("after failed emails: %s, notifications %v; want pending, both retrying", r.Status, states)
	}
	if r.Notifications()[0].Error == "" {
		t.Error("a failed notification shows no error")
	}
	h.mail.SetErr(nil)
	sweepUntilQuiet(t, h, time.Second)
	got := h.get(t, r.ID)
	for _, n := range got.Notifications() {
		if n.State != "sent" {
			t.Errorf("notification to %s is %s, want sent", n.To, n.State)
		}
	}
	if n := len(h.mail.Sent()); n != 2 {
		t.Errorf("sent %d emails, want 2", n)
	}
}

func TestNoApproverReachableCloses(t *testing.T) {
	h := newHarness(t, false)
	wf := newTaskWorkflow()
	h.svc.Workflow = wf
	h.mail.SetErr(errors.New("smtp: connection refused"))
	in := validInput()
	in.TaskToken = "task-1"
	r := h.create(t, in)
	sweepUntilQuiet(t, h, time.Minute)
	got := h.get(t, r.ID)
	if got.Status != approval.StatusCanceled || got.Reason != approval.ReasonNotificationFailed {
		t.Fatalf("after every email failed for good: %s (%s); want canceled, notification_failed", got.Status, got.Reason)
	}
	if res := wf.completed[r.ID]; res.Reason != approval.ReasonNotificationFailed || wf.completes != 1 {
		t.Errorf("workflow got %+v (%d completions); want one notification_failed", res, wf.completes)
	}
	if len(h.pages.Keys()) != 0 {
		t.Errorf("pages of a closed request still published: %v", h.pages.Keys())
	}
	if h.clock.Now().Sub(start) > 30*time.Minute {
		t.Errorf("closed only after %v", h.clock.Now().Sub(start))
	}
}

func TestDeliveryRetried(t *testing.T) {
	h := newHarness(t, false)
	wf := newTaskWorkflow()
	h.svc.Workflow = wf
	wf.setErr(errors.New("sfn: throttled"))
	in := validInput()
	in.TaskToken = "task-1"
	r := h.create(t, in)
	got, err := h.decide(t, r, "alice@example.com", approval.Approve)
	if err != nil || got.Status != approval.StatusApproved || got.Delivered() {
		t.Fatalf("vote with the workflow down: %v, %v, delivered %v; want approved, undelivered", got.Status, err, got.Delivered())
	}
	wf.setErr(nil)
	sweepUntilQuiet(t, h, time.Second)
	if got := h.get(t, r.ID); !got.Delivered() || got.Status != approval.StatusApproved || wf.completes != 1 {
		t.Errorf("after the sweep: %s delivered %v, %d completions; want approved, delivered once", got.Status, got.Delivered(), wf.completes)
	}
}

// failingStore fails UpdateRequest calls while fail is set, after they took
// effect when after is set.
type failingStore struct {
	*memory.Store
	mu    sync.Mutex
	fail  bool
	after bool
}

func (s *failingStore) UpdateRequest(ctx context.Context, r *approval.Request) error {
	s.mu.Lock()
	fail, after := s.fail, s.after
	s.mu.Unlock()
	if fail && !after {
		return errors.New("injected: store unavailable")
	}
	err := s.Store.UpdateRequest(ctx, r)
	if fail && err == nil {
		return errors.New("injected: answer lost")
	}
	return err
}

func (s *failingStore) set(fail, after bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.after = fail, after
}

// A delivered outcome whose recording failed is never taken for a vanished
// workflow: the repeated send's "task closed" is its own earlier success.
func TestDeliveredButNotRecorded(t *testing.T) {
	h := newHarness(t, true)
	fs := &failingStore{Store: h.store}
	h.svc.Store = fs
	wf := newTaskWorkflow()
	h.svc.Workflow = wf
	in := validInput()
	in.TaskToken = "task-1"
	r := h.create(t, in)
	tok := h.token(t, r, "alice@example.com")
	// The vote is written; then every later write fails: the effects run but
	// are not recorded.
	wf.block = make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := h.svc.Decide(context.WithoutCancel(t.Context()), approval.DecideInput{Token: tok, Choice: approval.Approve})
		done <- err
	}()
	for wf.sendCount() == 0 && len(h.get(t, r.ID).Votes) == 0 {
		time.Sleep(time.Millisecond) // the vote is not yet written
	}
	fs.set(true, false)
	close(wf.block)
	if err := <-done; err != nil {
		t.Fatalf("Decide: %v", err)
	}
	stored := h.get(t, r.ID)
	if stored.Delivered() || wf.completes != 1 {
		t.Fatalf("recorded delivered %v, %d completions; want undelivered in the store, completed once", stored.Delivered(), wf.completes)
	}
	fs.set(false, false)
	sweepUntilQuiet(t, h, time.Minute)
	got := h.get(t, r.ID)
	if got.Status != approval.StatusApproved || !got.Delivered() || got.Reason != "" {
		t.Errorf("after the sweep: %s (%q) delivered %v; want approved, delivered, no reason", got.Status, got.Reason, got.Delivered())
	}
	if wf.completes != 1 || wf.sendCount() != 2 {
		t.Errorf("%d completions in %d sends; want 1 in 2", wf.completes, wf.sendCount())
	}
	if h.chat.lastUpdate() != "approved 1" {
		t.Errorf("chat shows %q, want approved", h.chat.lastUpdate())
	}
}

func (w *taskWorkflow) sendCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sends
}

func TestWorkflowGoneOnFirstSend(t *testing.T) {
	h := newHarness(t, false)
	wf := newTaskWorkflow()
	h.svc.Workflow = wf
	in := validInput()
	in.TaskToken = "task-1"
	r := h.create(t, in)
	wf.completed[r.ID] = approval.Result{Decision: "timed out"} // Step Functions gave up
	got, err := h.decide(t, r, "alice@example.com", approval.Approve)
	if !errors.Is(err, approval.ErrWorkflowGone) || got.Status != approval.StatusExpired || got.Reason != approval.ReasonWorkflowGone || got.Decision == nil {
		t.Fatalf("vote on a task that timed out: %v (%s), %v; want expired, workflow_gone, decision kept, ErrWorkflowGone", got.Status, got.Reason, err)
	}
	if s := h.get(t, r.ID); s.Status != approval.StatusExpired || !s.Delivered() {
		t.Errorf("stored %s delivered %v", s.Status, s.Delivered())
	}
}

// A webhook never holds the approver's answer.
func TestSlowWebhookDoesNotHoldTheAnswer(t *testing.T) {
	h := newHarness(t, false)
	h.svc.Sync = false
	wf := newTaskWorkflow()
	wf.block = make(chan struct{})
	h.svc.Workflow = wf
	r := h.create(t, validInput()) // a webhook URL, no task token
	got, err := h.decide(t, r, "alice@example.com", approval.Approve)
	if err != nil || got.Status != approval.StatusApproved {
		t.Fatalf("vote: %v, %v", got, err)
	}
	if wf.sendCount() != 0 {
		t.Fatal("the webhook answered before the vote did")
	}
	close(wf.block)
	if err := h.svc.Idle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if s := h.get(t, r.ID); !s.Delivered() || wf.completes != 1 {
		t.Errorf("after Idle: delivered %v, %d completions", s.Delivered(), wf.completes)
	}
}

// A vote taken while the channel message is being posted: the message ends up
// showing the vote.
func TestVoteWhilePostingUpdatesTheMessage(t *testing.T) {
	h := newHarness(t, true)
	var once sync.Once
	h.chat.onPost = func(r *approval.Request) {
		once.Do(func() {
			tok := h.token(t, r, "alice@example.com")
			if _, err := h.svc.Decide(context.WithoutCancel(t.Context()), approval.DecideInput{Token: tok, Choice: approval.Approve}); err != nil {
				t.Errorf("vote during the post: %v", err)
			}
		})
	}
	in := validInput()
	in.Policy = "all"
	r := h.create(t, in)
	if got := h.chat.lastUpdate(); got != "pending 1" {
		t.Errorf("last update %q, want pending 1 (the vote taken while posting)", got)
	}
	if s := h.get(t, r.ID); s.ChatMessage.TS == "" {
		t.Error("the message's place was not recorded")
	}
}

// faults fails the failAt-th call of any port, before it takes effect or
// after (its answer lost).
type faults struct {
	mu     sync.Mutex
	n      int
	failAt int
	after  bool
	names  []string
}

var errInjected = errors.New("injected fault")

// call runs fn as the next port call named name.
func (f *faults) call(name string, fn func() error) error {
	f.mu.Lock()
	f.n++
	f.names = append(f.names, name)
	hit := f.n == f.failAt
	after := f.after
	f.mu.Unlock()
	if hit && !after {
		return fmt.Errorf("%s: %w", name, errInjected)
	}
	err := fn()
	if hit {
		return fmt.Errorf("%s: %w (after it took effect)", name, errInjected)
	}
	return err
}

func (f *faults) off() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failAt = -1
}

type faultStore struct {
	s approval.Store
	f *faults
}

func (s faultStore) CreateRequest(ctx context.Context, r *approval.Request) error {
	return s.f.call("store.CreateRequest", func() error { return s.s.CreateRequest(ctx, r) })
}

func (s faultStore) GetRequest(ctx context.Context, id string) (r *approval.Request, err error) {
	err = s.f.call("store.GetRequest", func() error { r, err = s.s.GetRequest(ctx, id); return err })
	return r, err
}

func (s faultStore) UpdateRequest(ctx context.Context, r *approval.Request) error {
	return s.f.call("store.UpdateRequest", func() error { return s.s.UpdateRequest(ctx, r) })
}

func (s faultStore) LegacyToken(ctx context.Context, h string) (id string, err error) {
	err = s.f.call("store.LegacyToken", func() error { id, err = s.s.LegacyToken(ctx, h); return err })
	return id, err
}

func (s faultStore) List(ctx context.Context, q approval.Query) (rs []*approval.Request, next string, err error) {
	err = s.f.call("store.List", func() error { rs, next, err = s.s.List(ctx, q); return err })
	return rs, next, err
}

func (s faultStore) ReadAudit(ctx context.Context, q approval.AuditQuery) (es []approval.AuditEntry, next string, err error) {
	err = s.f.call("store.ReadAudit", func() error { es, next, err = s.s.ReadAudit(ctx, q); return err })
	return es, next, err
}

func (s faultStore) AuditChanged(ctx context.Context, mark string, now time.Time, n int) (hs []approval.AuditHead, next string, err error) {
	err = s.f.call("store.AuditChanged", func() error { hs, next, err = s.s.AuditChanged(ctx, mark, now, n); return err })
	return hs, next, err
}

func (s faultStore) LastCheckpoint(ctx context.Context) (e approval.AuditEntry, err error) {
	err = s.f.call("store.LastCheckpoint", func() error { e, err = s.s.LastCheckpoint(ctx); return err })
	return e, err
}

func (s faultStore) AddCheckpoint(ctx context.Context, e approval.AuditEntry) error {
	return s.f.call("store.AddCheckpoint", func() error { return s.s.AddCheckpoint(ctx, e) })
}

func (s faultStore) ListDue(ctx context.Context, now time.Time, n int) (rs []*approval.Request, err error) {
	err = s.f.call("store.ListDue", func() error { rs, err = s.s.ListDue(ctx, now, n); return err })
	return rs, err
}

// quickFaultStore is a faultStore whose store records quick votes too.
type quickFaultStore struct{ faultStore }

func (s quickFaultStore) QuickVote(ctx context.Context, id, hash string, v approval.Vote, e []approval.Effect) (r *approval.Request, err error) {
	err = s.f.call("store.QuickVote", func() error { r, err = s.s.(approval.QuickVoter).QuickVote(ctx, id, hash, v, e); return err })
	return r, err
}

type faultPages struct {
	p approval.Pages
	f *faults
}

func (p faultPages) Put(ctx context.Context, key string, html []byte) error {
	return p.f.call("pages.Put", func() error { return p.p.Put(ctx, key, html) })
}

func (p faultPages) Delete(ctx context.Context, keys []string) error {
	return p.f.call("pages.Delete", func() error { return p.p.Delete(ctx, keys) })
}

func (p faultPages) URL(key string) string { return p.p.URL(key) }

type faultMailer struct {
	m approval.Mailer
	f *faults
}

func (m faultMailer) Send(ctx context.Context, e approval.Email) error {
	return m.f.call("mail.Send", func() error { return m.m.Send(ctx, e) })
}

type faultChat struct {
	c approval.Chat
	f *faults
}

func (c faultChat) Post(ctx context.Context, r *approval.Request) (m approval.ChatMessage, err error) {
	err = c.f.call("chat.Post", func() error { m, err = c.c.Post(ctx, r); return err })
	return m, err
}

func (c faultChat) DirectMessage(ctx context.Context, r *approval.Request, u string) (m approval.ChatMessage, err error) {
	err = c.f.call("chat.DirectMessage", func() error { m, err = c.c.DirectMessage(ctx, r, u); return err })
	return m, err
}

func (c faultChat) Update(ctx context.Context, r *approval.Request) error {
	return c.f.call("chat.Update", func() error { return c.c.Update(ctx, r) })
}

func (c faultChat) Notice(ctx context.Context, r *approval.Request, n approval.Notice) error {
	return c.f.call("chat.Notice", func() error { return c.c.Notice(ctx, r, n) })
}

func (c faultChat) PostIn(ctx context.Context, r *approval.Request, ch string) (m approval.ChatMessage, err error) {
	err = c.f.call("chat.PostIn", func() error { m, err = c.c.PostIn(ctx, r, ch); return err })
	return m, err
}

type faultWorkflow struct {
	w approval.Workflow
	f *faults
}

func (w faultWorkflow) Deliver(ctx context.Context, r *approval.Request) error {
	return w.f.call("workflow.Deliver", func() error { return w.w.Deliver(ctx, r) })
}

// faultRun runs the scenario (create a quorum:2 request of three email
// approvers and a Slack approver, two approvals) with the failAt-th port call
// failing, then recovers (the sweep; a retried create and repeated presses, as
// the workflow and the people would) and checks what must hold whatever failed.
// It returns how many port calls the scenario made.
func faultRun(t *testing.T, policy string, failAt int, after bool) int {
	h := newHarness(t, true)
	f := &faults{failAt: failAt, after: after}
	wf := newTaskWorkflow()
	h.svc.Store = quickFaultStore{faultStore{h.store, f}}
	h.svc.Pages = faultPages{h.pages, f}
	h.svc.Mailer = faultMailer{h.mail, f}
	h.svc.Chat = faultChat{h.chat, f}
	h.svc.Workflow = faultWorkflow{wf, f}
	ctx := t.Context()
	in := validInput()
	in.Approvers = []string{"alice@example.com", "bob@example.com", "carol@example.com", "U0DAVE0001"}
	in.Policy, in.TaskToken, in.Timeout = policy, "task-1", 30*24*time.Hour
	wantVotes := 2
	if policy == "any" {
		wantVotes = 1
	}
	id := approval.IDFromTaskToken(in.TaskToken)

	tokens := map[string]string{}
	scenario := func() {
		if _, _, err := h.svc.Create(ctx, in); err != nil {
			t.Logf("create: %v", err)
		}
		r, err := h.store.GetRequest(ctx, id)
		if err != nil {
			return
		}
		for _, a := range []string{"alice@example.com", "bob@example.com"} {
			for _, rc := range r.Recipients {
				if page, ok := h.pages.Get(rc.PageKey); ok && rc.Address == a && tokens[a] == "" {
					for line := range strings.Lines(string(page)) {
						if tok, ok := strings.CutPrefix(strings.TrimSpace(line), "token="); ok {
							tokens[a] = tok
						}
					}
				}
			}
			if tokens[a] == "" {
				continue
			}
			_, err := h.svc.Decide(ctx, approval.DecideInput{Token: tokens[a], Choice: approval.Approve})
			if err != nil && !errors.Is(err, approval.ErrAlreadyVoted) && !errors.Is(err, approval.ErrAlreadyDecided) {
				t.Logf("vote of %s: %v", a, err)
			}
		}
	}
	scenario()
	f.mu.Lock()
	calls := f.n
	t.Logf("port calls: %v", f.names)
	f.mu.Unlock()
	f.off()
	sweepUntilQuiet(t, h, time.Minute)
	scenario() // the workflow retries its task; people press again
	sweepUntilQuiet(t, h, time.Minute)

	r, err := h.store.GetRequest(ctx, id)
	if err != nil {
		t.Fatalf("request not stored after recovery: %v", err)
	}
	if r.Status != approval.StatusApproved || len(r.Votes) != wantVotes || r.Decision == nil {
		t.Errorf("outcome %s with %d votes, decision %+v; want approved by exactly %d votes", r.Status, len(r.Votes), r.Decision, wantVotes)
	}
	if wf.completes != 1 || wf.completed[id].Decision != "approved" || len(wf.completed[id].Votes) != wantVotes {
		t.Errorf("workflow completed %d times with %+v; want once, approved with %d votes", wf.completes, wf.completed[id], wantVotes)
	}
	for _, e := range r.Effects {
		if e.State != approval.EffectDone {
			t.Errorf("effect %s %s is %s (%s), want done", e.Kind, e.Target, e.State, e.Error)
		}
	}
	sent := map[string]bool{}
	for _, m := range h.mail.Sent() {
		sent[m.To] = true
	}
	if len(sent) != 3 {
		t.Errorf("emails reached %v, want all three email approvers", sent)
	}
	// No page of the closed request is published; any other page left by a
	// failed create decides nothing.
	for _, key := range h.pages.Keys() {
		if slices.ContainsFunc(r.Recipients, func(rc approval.Recipient) bool { return rc.PageKey == key }) {
			t.Errorf("page %s of the closed request is still published", key)
			continue
		}
		page, _ := h.pages.Get(key)
		for line := range strings.Lines(string(page)) {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(line), "token="); ok {
				if _, err := h.svc.Decide(ctx, approval.DecideInput{Token: tok, Choice: approval.Reject}); !errors.Is(err, approval.ErrNotFound) {
					t.Errorf("an orphan page's token: %v, want ErrNotFound", err)
				}
			}
		}
	}
	if got, want := h.chat.lastUpdate(), fmt.Sprintf("approved %d", wantVotes); got != want {
		t.Errorf("chat shows %q, want %q", got, want)
	}
	return calls
}

// TestFaultMatrix fails every port call of the scenario in turn, before and
// after it takes effect, under a rule that one vote decides (the quick vote)
// and one that needs two.
func TestFaultMatrix(t *testing.T) {
	for _, policy := range []string{"any", "quorum:2"} {
		calls := faultRun(t, policy, -1, false)
		if calls < 10 {
			t.Fatalf("the %s scenario made only %d port calls", policy, calls)
		}
		for _, after := range []bool{false, true} {
			for n := 1; n <= calls; n++ {
				t.Run(fmt.Sprintf("%s/call%02d/after=%v", policy, n, after), func(t *testing.T) {
					faultRun(t, policy, n, after)
				})
			}
		}
	}
}
