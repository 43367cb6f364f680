package awsapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// testClock is the service's injected clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// scheduledEvent is what an EventBridge rule with a schedule expression sends,
// built with aws-lambda-go's own type.
func scheduledEvent(t *testing.T, source, detailType string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(events.EventBridgeEvent{
		Version: "0", ID: "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", DetailType: detailType, Source: source,
		AccountID: "123456789012", Time: time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC), Region: "us-east-1",
		Resources: []string{"arn:aws:events:us-east-1:123456789012:rule/ApprovalBot-Sweep"},
		Detail:    json.RawMessage(`{}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// did is what a sweep did to the requests: its output without the
// checkpoints of the audit trail it wrote.
func did(v any) SweepOutput {
	o, _ := v.(SweepOutput)
	o.Checkpoints = 0
	return o
}

func TestHandleDispatch(t *testing.T) {
	tests := []struct {
		name string
		in   func(t *testing.T) json.RawMessage
		want any   // the output, when the event is accepted
		err  error // the error's type, when it is refused
		msg  string
	}{
		{name: "scheduled event sweeps",
			in:   func(t *testing.T) json.RawMessage { return scheduledEvent(t, ScheduledSource, ScheduledDetailType) },
			want: SweepOutput{}},
		{name: "step functions task notifies",
			in: func(*testing.T) json.RawMessage { return json.RawMessage(goodEvent) },
			want: NotifyOutput{RequestID: approval.IDFromTaskToken("tt-1"), Created: true, Status: "pending", ExpiresAt: "2026-11-25T15:00:00Z",
				Notifications: []Notification{{To: "alice@example.com", Channel: "email", State: "sent"}, {To: "bob@example.com", Channel: "email", State: "sent"}}}},
		{name: "other EventBridge event",
			in:  func(t *testing.T) json.RawMessage { return scheduledEvent(t, "aws.s3", "Object Created") },
			err: &UnsupportedEvent{}, msg: `not an event with source "aws.s3" and detail-type "Object Created"`},
		{name: "source alone",
			in:  func(*testing.T) json.RawMessage { return json.RawMessage(`{"source":"aws.events"}`) },
			err: &UnsupportedEvent{}, msg: `or an EventBridge scheduled event (source "aws.events", detail-type "Scheduled Event")`},
		{name: "task with a detail-type",
			in: func(*testing.T) json.RawMessage {
				return json.RawMessage(`{"taskToken":"x","detail-type":"Scheduled Event"}`)
			},
			err: &UnsupportedEvent{}, msg: `detail-type "Scheduled Event"`},
		{name: "not json",
			in:  func(*testing.T) json.RawMessage { return json.RawMessage(`{`) },
			err: &InvalidRequest{}, msg: "not valid JSON"},
		{name: "not an object",
			in:  func(*testing.T) json.RawMessage { return json.RawMessage(`[1]`) },
			err: &InvalidRequest{}, msg: "must be a JSON object"},
		{name: "task without request",
			in:  func(*testing.T) json.RawMessage { return json.RawMessage(`{"taskToken":"x"}`) },
			err: &InvalidRequest{}, msg: "request is required"},
		{name: "unknown field",
			in:  func(*testing.T) json.RawMessage { return json.RawMessage(`{"taskToken":"x","detail":{}}`) },
			err: &InvalidRequest{}, msg: `unknown field "detail"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, _ := memoryApp(t)
			a.Service.Now = (&testClock{now: time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)}).Now
			got, err := a.Handle(context.Background(), tt.in(t))
			if tt.err == nil {
				if err != nil {
					t.Fatalf("Handle: %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("Handle output (-want +got):\n%s", diff)
				}
				return
			}
			var (
				ue *UnsupportedEvent
				ir *InvalidRequest
			)
			switch tt.err.(type) {
			case *UnsupportedEvent:
				if !errors.As(err, &ue) {
					t.Fatalf("Handle = %v, %v; want *UnsupportedEvent", got, err)
				}
			case *InvalidRequest:
				if !errors.As(err, &ir) {
					t.Fatalf("Handle = %v, %v; want *InvalidRequest", got, err)
				}
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Handle error %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

// sweepApp is an App on the in-process adapters with an injected clock and
// JSON logs in a buffer.
func sweepApp(t *testing.T) (*App, *testClock, *memory.Pages, *memory.Mailer, *memory.Workflow, *strings.Builder) {
	t.Helper()
	a, pg, mail := memoryApp(t)
	clock := &testClock{now: time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)}
	a.Service.Now = clock.Now
	logs := &strings.Builder{}
	a.Log = slog.New(slog.NewJSONHandler(logs, nil))
	a.Service.Log = a.Log
	return a, clock, pg, mail, a.Service.Workflow.(*memory.Workflow), logs
}

// event is goodEvent for another task token and timeout.
func event(token string, timeoutSeconds string) json.RawMessage {
	ev := strings.Replace(goodEvent, `"tt-1"`, `"`+token+`"`, 1)
	return json.RawMessage(strings.Replace(ev, `"timeoutSeconds":3600`, `"timeoutSeconds":`+timeoutSeconds, 1))
}

// recordingChat is a Slack stand-in that keeps the updates it is asked for.
type recordingChat struct {
	mu      sync.Mutex
	updates []string // "<request ID> <status>"
}

func (c *recordingChat) Post(_ context.Context, r *approval.Request) (approval.ChatMessage, error) {
	return approval.ChatMessage{Channel: r.SlackChannel, TS: "1700000000." + r.ID[:6]}, nil
}

func (c *recordingChat) DirectMessage(_ context.Context, r *approval.Request, user string) (approval.ChatMessage, error) {
	return approval.ChatMessage{Channel: "D" + user[1:], TS: "1700000001." + r.ID[:6]}, nil
}

func (c *recordingChat) Update(_ context.Context, r *approval.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updates = append(c.updates, r.ID+" "+string(r.Status))
	return nil
}

func (c *recordingChat) Notice(context.Context, *approval.Request, approval.Notice) error { return nil }

func (c *recordingChat) PostIn(_ context.Context, r *approval.Request, channel string) (approval.ChatMessage, error) {
	return approval.ChatMessage{Channel: channel, TS: "1700000002." + r.ID[:6]}, nil
}

func (c *recordingChat) Updates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.updates...)
}

func TestSweepExpires(t *testing.T) {
	ctx := context.Background()
	a, clock, pg, _, wf, logs := sweepApp(t)
	chat := &recordingChat{}
	a.Service.Chat, a.Service.DefaultSlackChannel = chat, "C0123456"
	if _, err := a.Handle(ctx, event("tt-short", "60")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Handle(ctx, event("tt-long", "3600")); err != nil {
		t.Fatal(err)
	}
	short, long := approval.IDFromTaskToken("tt-short"), approval.IDFromTaskToken("tt-long")
	longRequest, err := a.Service.Store.GetRequest(ctx, long)
	if err != nil {
		t.Fatal(err)
	}

	clock.Advance(59 * time.Second)
	if got, err := a.Handle(ctx, scheduledEvent(t, ScheduledSource, ScheduledDetailType)); err != nil || did(got) != (SweepOutput{}) {
		t.Errorf("sweep before the expiry = %+v, %v; want nothing done", got, err)
	}
	clock.Advance(2 * time.Second)
	got, err := a.Handle(ctx, scheduledEvent(t, ScheduledSource, ScheduledDetailType))
	if err != nil || did(got) != (SweepOutput{Expired: 1, Advanced: 1}) {
		t.Fatalf("sweep after the expiry = %+v, %v; want one expired", got, err)
	}
	r, err := a.Service.Store.GetRequest(ctx, short)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != approval.StatusExpired || !r.Delivered() {
		t.Errorf("swept request: status %q delivered %v; want expired and delivered", r.Status, r.Delivered())
	}
	if d := wf.Delivered(); len(d) != 1 || d[0].RequestID != short || d[0].Decision != "expired" {
		t.Errorf("workflow deliveries %+v, want one expiry of %s", d, short)
	}
	if diff := cmp.Diff([]string{short + " expired"}, chat.Updates()); diff != "" {
		t.Errorf("Slack updates (-want +got):\n%s", diff)
	}
	// Only the open request's pages are left.
	if diff := cmp.Diff(longRequest.PageKeys(), pg.Keys(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("pages left (-want +got):\n%s", diff)
	}
	if !strings.Contains(logs.String(), `"msg":"sweep: done","rules":["arn:aws:events:us-east-1:123456789012:rule/ApprovalBot-Sweep"],"expired":1,"advanced":1,"undelivered":0`) {
		t.Errorf("no JSON log line with the sweep's counts:\n%s", logs)
	}
	// Nothing is due any more.
	if got, err := a.Sweep(ctx); err != nil || did(got) != (SweepOutput{}) {
		t.Errorf("second sweep = %+v, %v; want nothing done", got, err)
	}
}

// An outcome whose delivery failed is delivered by the sweep once its retry
// time has come, and not before.
func TestSweepRedelivers(t *testing.T) {
	ctx := context.Background()
	a, clock, _, mail, wf, _ := sweepApp(t)
	if _, err := a.Handle(ctx, json.RawMessage(goodEvent)); err != nil {
		t.Fatal(err)
	}
	id := approval.IDFromTaskToken("tt-1")
	wf.SetErr(errors.New("ThrottlingException: rate exceeded"))
	decided, err := a.Service.Decide(ctx, approval.DecideInput{Token: tokenFromEmail(t, a, mail.Sent()[0]), Choice: approval.Approve})
	if err != nil {
		t.Fatalf("Decide with Step Functions failing: %v (the decision must stand)", err)
	}
	if decided.Status != approval.StatusApproved || decided.Delivered() {
		t.Fatalf("after Decide: status %s, delivered %v; want approved, not delivered", decided.Status, decided.Delivered())
	}
	wf.SetErr(nil)

	// Before its retry time the delivery is not due.
	if got, err := a.Sweep(ctx); err != nil || did(got) != (SweepOutput{}) {
		t.Errorf("sweep before the retry time = %+v, %v; want nothing done", got, err)
	}
	if d := wf.Delivered(); len(d) != 0 {
		t.Errorf("sweep before the retry time delivered %+v", d)
	}

	clock.Advance(time.Minute)
	if got, err := a.Sweep(ctx); err != nil || did(got) != (SweepOutput{Advanced: 1}) {
		t.Errorf("sweep after the retry time = %+v, %v; want the request advanced and delivered", got, err)
	}
	if d := wf.Delivered(); len(d) != 1 || d[0].RequestID != id || d[0].Decision != "approved" {
		t.Errorf("workflow deliveries %+v, want the approval of %s once", d, id)
	}
	if r, err := a.Service.Store.GetRequest(ctx, id); err != nil || r.Status != approval.StatusApproved || !r.Delivered() {
		t.Errorf("request after the sweep: %+v, %v; want approved and delivered", r, err)
	}
	clock.Advance(time.Hour)
	if got, err := a.Sweep(ctx); err != nil || did(got) != (SweepOutput{}) {
		t.Errorf("later sweep = %+v, %v; want nothing done", got, err)
	}
	if n := wf.Attempts(); n != 2 {
		t.Errorf("%d delivery attempts, want 2", n)
	}
}

// lostAnswer is a workflow whose first send takes effect but whose answer is
// lost; every later send finds the task closed, as Step Functions answers.
type lostAnswer struct {
	mu       sync.Mutex
	received []approval.Result
	attempts int
}

func (w *lostAnswer) Deliver(_ context.Context, r *approval.Request) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts++
	if len(w.received) > 0 {
		return fmt.Errorf("deliver %s: %w: TaskTimedOut", r.ID, approval.ErrWorkflowGone)
	}
	w.received = append(w.received, r.Result())
	return errors.New("read tcp: connection reset by peer")
}

// Issue 9: a send that took effect but whose answer was lost is delivered, not
// expired: the sweep's "task already closed" after our own attempt is success.
func TestSweepAfterLostAnswer(t *testing.T) {
	ctx := context.Background()
	a, clock, _, mail, _, _ := sweepApp(t)
	wf := &lostAnswer{}
	a.Service.Workflow = wf
	if _, err := a.Handle(ctx, json.RawMessage(goodEvent)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Service.Decide(ctx, approval.DecideInput{Token: tokenFromEmail(t, a, mail.Sent()[0]), Choice: approval.Approve}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	clock.Advance(time.Minute)
	if got, err := a.Sweep(ctx); err != nil || did(got) != (SweepOutput{Advanced: 1}) {
		t.Errorf("sweep = %+v, %v; want the request advanced", got, err)
	}
	r, err := a.Service.Store.GetRequest(ctx, approval.IDFromTaskToken("tt-1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != approval.StatusApproved || r.Reason != "" || !r.Delivered() {
		t.Errorf("request after the sweep: status %s, reason %q, delivered %v; want approved and delivered", r.Status, r.Reason, r.Delivered())
	}
	if len(wf.received) != 1 || wf.received[0].Decision != "approved" || wf.attempts != 2 {
		t.Errorf("workflow received %+v in %d attempts, want the approval once in 2", wf.received, wf.attempts)
	}
}

// failingDue is a store whose due index fails.
type failingDue struct{ approval.Store }

func (failingDue) ListDue(context.Context, time.Time, int) ([]*approval.Request, error) {
	return nil, errors.New("dynamodb: throttled")
}

func TestSweepFailed(t *testing.T) {
	a, _, _, _, _, logs := sweepApp(t)
	a.Service.Store = failingDue{a.Service.Store}
	_, err := a.Handle(context.Background(), scheduledEvent(t, ScheduledSource, ScheduledDetailType))
	var sf *SweepFailed
	if !errors.As(err, &sf) || !strings.Contains(err.Error(), "throttled") {
		t.Errorf("sweep with the store failing = %v, want *SweepFailed with the cause", err)
	}
	if !strings.Contains(logs.String(), `"msg":"sweep: failed"`) {
		t.Errorf("no log line of the failed sweep:\n%s", logs)
	}
}

// The sweep seals the audit trails that grew since its last run into a
// checkpoint, and writes none when nothing grew.
func TestSweepCheckpoints(t *testing.T) {
	ctx := context.Background()
	a, _, _, _, _, _ := sweepApp(t)
	if _, err := a.Handle(ctx, json.RawMessage(goodEvent)); err != nil {
		t.Fatal(err)
	}
	if got, err := a.Sweep(ctx); err != nil || got.Checkpoints != 1 {
		t.Errorf("first sweep = %+v, %v; want one checkpoint", got, err)
	}
	cp, err := a.Service.Store.LastCheckpoint(ctx)
	if err != nil || len(cp.Heads) != 1 || cp.Heads[0].RequestID != approval.IDFromTaskToken("tt-1") {
		t.Errorf("checkpoint %+v, %v; want one sealing the request", cp, err)
	}
	if got, err := a.Sweep(ctx); err != nil || got.Checkpoints != 0 {
		t.Errorf("second sweep = %+v, %v; want no checkpoint", got, err)
	}
}
