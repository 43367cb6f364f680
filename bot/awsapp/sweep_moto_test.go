package awsapp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/awsapp"
	"approvalbot/internal/testing/awsflow"
	"approvalbot/internal/testing/mototest"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

const (
	successTarget = "AWSStepFunctions.SendTaskSuccess"
	failureTarget = "AWSStepFunctions.SendTaskFailure"
)

// motoClock is the injected clock of both Lambdas.
type motoClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *motoClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *motoClock) Advance(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }

// flakyWorkflow fails the next delivery with a transient error when armed.
type flakyWorkflow struct {
	approval.Workflow
	mu   sync.Mutex
	fail bool
}

func (w *flakyWorkflow) Deliver(ctx context.Context, r *approval.Request) error {
	w.mu.Lock()
	fail := w.fail
	w.fail = false
	w.mu.Unlock()
	if fail {
		return errors.New("ThrottlingException: Rate exceeded")
	}
	return w.Workflow.Deliver(ctx, r)
}

// invocation is one answer of the notifier to Step Functions.
type invocation struct {
	out []byte
	err error
}

// sweepFlow is the notifier and the callback on moto (awsflow.Start), with
// Step Functions invoking the notifier's real handler (awsapp.App.Handle)
// through the proxy.
type sweepFlow struct {
	proxy    *awsflow.Proxy
	notifier *awsapp.App
	callback *awsapp.App
	handler  lambda.Handler
	clock    *motoClock
	sfn      *sfn.Client
	s3       *s3.Client
	moto     *awsflow.Moto
	notified chan invocation
}

func startSweepFlow(t *testing.T) *sweepFlow {
	t.Helper()
	notified := make(chan invocation, 4)
	st, err := awsflow.Start(context.Background(), awsflow.StackConfig{
		Table: mototest.UniqueName("approvals"), Bucket: mototest.UniqueName("pages"),
		Log:        slog.New(slog.NewJSONHandler(t.Output(), nil)),
		HTTPClient: mototest.HTTPClient(),
		OnNotify:   func(inv awsflow.Invocation) { notified <- invocation{inv.Out, inv.Err} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	st.Proxy.Record(successTarget)
	st.Proxy.Record(failureTarget)
	f := &sweepFlow{
		proxy: st.Proxy, notifier: st.Notifier, callback: st.Callback, clock: &motoClock{now: time.Now().UTC()},
		sfn: st.SFN, s3: st.S3, moto: st.Moto, notified: notified,
		// The notifier's handler as Step Functions invokes it, for the
		// scheduled sweep.
		handler: lambda.NewHandler(st.Notifier.Handle),
	}
	f.notifier.Service.Now, f.callback.Service.Now = f.clock.Now, f.clock.Now
	return f
}

// start runs a fresh approval state machine on a request with the given
// timeout, waits for the notifier and returns the execution's ARN, its state
// machine's and the created request.
func (f *sweepFlow) start(t *testing.T, ctx context.Context, timeoutSeconds int) (sm, exec string, r *approval.Request) {
	t.Helper()
	return f.startRequest(t, ctx, map[string]any{
		"title": "Deploy v2.4", "requester": "ci@example.com", "approvers": []string{"alice@example.com"}, "timeoutSeconds": timeoutSeconds,
	})
}

// startRequest is start with the request's input as given.
func (f *sweepFlow) startRequest(t *testing.T, ctx context.Context, request map[string]any) (sm, exec string, r *approval.Request) {
	t.Helper()
	sm, err := awsflow.CreateStateMachine(ctx, f.sfn, mototest.UniqueName("approval"), awsflow.FunctionARN(awsflow.Region, awsflow.NotifierName), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	input, _ := json.Marshal(map[string]any{"request": request})
	out, err := f.sfn.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(sm), Name: aws.String(mototest.UniqueName("run")), Input: aws.String(string(input)),
	})
	if err != nil {
		t.Fatalf("StartExecution: %v", err)
	}
	exec = aws.ToString(out.ExecutionArn)
	var inv invocation
	select {
	case inv = <-f.notified:
	case <-ctx.Done():
		t.Fatalf("the notifier was not invoked: %v", ctx.Err())
	}
	var n awsapp.NotifyOutput
	if inv.err != nil || json.Unmarshal(inv.out, &n) != nil || !n.Created {
		t.Fatalf("notifier answered %s, %v; want a created request", inv.out, inv.err)
	}
	if r, err = f.notifier.Service.Store.GetRequest(ctx, n.RequestID); err != nil {
		t.Fatal(err)
	}
	return sm, exec, r
}

// sweep invokes the notifier's handler with EventBridge's scheduled event
// and returns what it did to the requests. The audit checkpoints it wrote
// are left out: the store dates its audit journal by the wall clock, not by
// the test's clock, so whether a sweep finds journal items old enough to
// seal depends on how fast the test ran (TestSweepCheckpoints covers them).
func (f *sweepFlow) sweep(t *testing.T, ctx context.Context) awsapp.SweepOutput {
	t.Helper()
	ev, err := os.ReadFile("testdata/scheduled-event.json")
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.handler.Invoke(ctx, ev)
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	var got awsapp.SweepOutput
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("sweep answered %s: %v", out, err)
	}
	got.Checkpoints = 0
	return got
}

// pageExists reports whether the page object is on S3.
// pageExists reports whether the one-time page under key is on S3, still
// taking a vote (not replaced by a late visitor's page).
func (f *sweepFlow) pageExists(t *testing.T, ctx context.Context, key string) bool {
	t.Helper()
	out, err := f.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.notifier.Config.Bucket), Prefix: aws.String(f.notifier.Config.PagesPrefix + key)})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	if len(out.Contents) == 0 {
		return false
	}
	head, err := f.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(f.notifier.Config.Bucket), Key: out.Contents[0].Key})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	return head.Metadata["approvalbot-page"] != "late"
}

// decide votes through the callback's service and returns once the vote's
// effects are recorded, as the callback's invocation ends only then (its
// answer streams out before): what the test's clock and sweeps do next
// cannot overtake them.
func (f *sweepFlow) decide(t *testing.T, ctx context.Context, in approval.DecideInput) (*approval.Request, error) {
	t.Helper()
	r, err := f.callback.Service.Decide(ctx, in)
	if ierr := f.callback.Service.Idle(ctx); ierr != nil {
		t.Fatal(ierr)
	}
	return r, err
}

// token reads the one-time token from the request's (first) page on S3.
func (f *sweepFlow) token(t *testing.T, ctx context.Context, r *approval.Request) string {
	t.Helper()
	return f.pageToken(t, ctx, r.PageKeys()[0])
}

// pageToken reads the one-time token from the page under key on S3.
func (f *sweepFlow) pageToken(t *testing.T, ctx context.Context, key string) string {
	t.Helper()
	out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.notifier.Config.Bucket), Key: aws.String(f.notifier.Config.PagesPrefix + key)})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	defer out.Body.Close()
	page, _ := io.ReadAll(out.Body)
	_, rest, ok := strings.Cut(string(page), `name="token" value="`)
	tok, _, _ := strings.Cut(rest, `"`)
	if !ok || tok == "" {
		t.Fatalf("no token in the page:\n%s", page)
	}
	return tok
}

func (f *sweepFlow) discard(t *testing.T, sm, exec string) {
	t.Helper()
	if err := awsflow.Discard(context.Background(), f.sfn, sm, exec); err != nil {
		t.Error(err)
	}
}

// TestSweepOnMoto: the scheduled sweep closes an expired request (execution
// FAILED with Expired, page deleted) and delivers an approval whose
// SendTaskSuccess failed, once its retry time has come.
func TestSweepOnMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := startSweepFlow(t)

	// Expiry. moto runs one execution at a time (see awsflow.Discard).
	sm, exec, r := f.start(t, ctx, 60)
	if !f.pageExists(t, ctx, r.PageKeys()[0]) {
		t.Fatal("the page is not on S3 after the notifier ran")
	}
	if got := f.sweep(t, ctx); got != (awsapp.SweepOutput{}) {
		t.Errorf("sweep before the expiry = %+v, want nothing done", got)
	}
	f.clock.Advance(61 * time.Second)
	if got := f.sweep(t, ctx); got != (awsapp.SweepOutput{Expired: 1, Advanced: 1}) {
		t.Errorf("sweep after the expiry = %+v, want one expired", got)
	}
	d, err := awsflow.WaitExecution(ctx, f.sfn, exec)
	if err != nil {
		t.Fatal(err)
	}
	if errName, _, err := awsflow.Failure(ctx, f.sfn, d); d.Status != types.ExecutionStatusFailed || errName != "Expired" || err != nil {
		t.Errorf("execution %s with error %q (%v), want FAILED with Expired", d.Status, errName, err)
	}
	sent := f.proxy.Recorded(failureTarget)
	var failure struct{ Error, Cause string }
	if len(sent) != 1 || json.Unmarshal(sent[0], &failure) != nil || failure.Error != "Expired" || !strings.Contains(failure.Cause, `"decision":"expired"`) {
		t.Errorf("SendTaskFailure calls %q, want one with error Expired and the result as cause", sent)
	}
	if stored, err := f.notifier.Service.Store.GetRequest(ctx, r.ID); err != nil || stored.Status != approval.StatusExpired || !stored.Delivered() {
		t.Errorf("request after the sweep: %+v, %v; want expired and delivered", stored, err)
	}
	if f.pageExists(t, ctx, r.PageKeys()[0]) {
		t.Error("the page of the expired request is still on S3")
	}
	f.discard(t, sm, exec)

	// Redelivery: the callback's SendTaskSuccess fails with a transient error.
	sm, exec, r = f.start(t, ctx, 3600)
	flaky := &flakyWorkflow{Workflow: f.callback.Service.Workflow, fail: true}
	f.callback.Service.Workflow = flaky
	decided, err := f.decide(t, ctx, approval.DecideInput{Token: f.token(t, ctx, r), Choice: approval.Approve, Comment: "ship it"})
	if err != nil || decided.Status != approval.StatusApproved || decided.Delivered() {
		t.Fatalf("Decide with Step Functions throttling = %+v, %v; want approved, undelivered", decided, err)
	}
	if got := f.sweep(t, ctx); got != (awsapp.SweepOutput{}) {
		t.Errorf("sweep before the retry time = %+v, want nothing due", got)
	}
	if n := len(f.proxy.Recorded(successTarget)); n != 0 {
		t.Errorf("%d SendTaskSuccess before the retry time, want none", n)
	}
	f.clock.Advance(time.Minute)
	if got := f.sweep(t, ctx); got != (awsapp.SweepOutput{Advanced: 1}) {
		t.Errorf("sweep after the retry time = %+v, want the request advanced and delivered", got)
	}
	f.checkApproved(t, ctx, exec, r, "ship it")
	f.discard(t, sm, exec)
}

// checkApproved checks that the execution succeeded with the approval of r
// as output, that one SendTaskSuccess was sent, and that the stored request is
// approved and delivered.
func (f *sweepFlow) checkApproved(t *testing.T, ctx context.Context, exec string, r *approval.Request, comment string) {
	t.Helper()
	d, err := awsflow.WaitExecution(ctx, f.sfn, exec)
	if err != nil {
		t.Fatal(err)
	}
	var res approval.Result
	if d.Status != types.ExecutionStatusSucceeded || json.Unmarshal([]byte(aws.ToString(d.Output)), &res) != nil ||
		res.Decision != "approved" || res.Comment != comment || res.RequestID != r.ID || len(res.Votes) != 1 {
		t.Errorf("execution %s with output %s, want SUCCEEDED with the approval and its vote", d.Status, aws.ToString(d.Output))
	}
	stored, err := f.notifier.Service.Store.GetRequest(ctx, r.ID)
	if err != nil || stored.Status != approval.StatusApproved || stored.Reason != "" || !stored.Delivered() {
		t.Errorf("request after the sweep: %+v, %v; want approved and delivered", stored, err)
	}
}

// Issue 9: SendTaskSuccess takes effect but its answer is lost (the proxy
// drops the connection). The SDK must not send it again on its own (its
// "task already closed" would look like a workflow that stopped waiting);
// the sweep's attempt gets that answer after ours and counts it as
// delivered. The request ends approved, delivered once, never expired.
func TestLostAnswerOnMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := startSweepFlow(t)
	sm, exec, r := f.start(t, ctx, 3600)
	defer f.discard(t, sm, exec)

	f.proxy.DropResponses(successTarget, 1)
	decided, err := f.decide(t, ctx, approval.DecideInput{Token: f.token(t, ctx, r), Choice: approval.Approve, Comment: "lost"})
	if err != nil || decided.Status != approval.StatusApproved || decided.Delivered() {
		t.Fatalf("Decide with the answer lost = %+v, %v; want approved, not known to be delivered", decided, err)
	}
	if n := len(f.proxy.Recorded(successTarget)); n != 1 {
		t.Fatalf("%d SendTaskSuccess calls, want 1 (the SDK must not retry it)", n)
	}
	if d, err := awsflow.WaitExecution(ctx, f.sfn, exec); err != nil || d.Status != types.ExecutionStatusSucceeded {
		t.Fatalf("execution after the lost answer: %v, %v; want SUCCEEDED", d, err)
	}
	f.clock.Advance(time.Minute)
	if got := f.sweep(t, ctx); got != (awsapp.SweepOutput{Advanced: 1}) {
		t.Errorf("sweep = %+v, want the request advanced", got)
	}
	if n := len(f.proxy.Recorded(successTarget)); n != 2 {
		t.Errorf("%d SendTaskSuccess calls, want 2 (the callback's, lost, and the sweep's, answered as closed)", n)
	}
	f.checkApproved(t, ctx, exec, r, "lost")
	if n := len(f.proxy.Recorded(failureTarget)); n != 0 {
		t.Errorf("%d SendTaskFailure calls, want none", n)
	}
	if got := f.sweep(t, ctx); got != (awsapp.SweepOutput{}) {
		t.Errorf("second sweep = %+v, want nothing due", got)
	}
}

// downMailer fails every email, as SES would when the sender is not allowed.
type downMailer struct{}

func (downMailer) Send(context.Context, approval.Email) error {
	return errors.New("MessageRejected: Email address is not verified")
}

// No approver can be reached: the notifier answers (its notifications
// retrying), the sweeps try again with backoff, and once every notification
// has been given up the request is closed and the execution fails with
// NotificationFailed, the result as cause.
func TestNotificationFailedOnMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	f := startSweepFlow(t)
	f.notifier.Service.Mailer = downMailer{}
	sm, exec, r := f.start(t, ctx, 86400)
	defer f.discard(t, sm, exec)
	if n := r.Notifications(); len(n) != 1 || n[0].State != "retrying" {
		t.Fatalf("notifications after the notifier: %+v, want one retrying", n)
	}
	for i := 0; i < approval.MaxAttempts; i++ {
		f.clock.Advance(10 * time.Minute)
		f.sweep(t, ctx)
	}
	d, err := awsflow.WaitExecution(ctx, f.sfn, exec)
	if err != nil {
		t.Fatal(err)
	}
	if errName, _, err := awsflow.Failure(ctx, f.sfn, d); d.Status != types.ExecutionStatusFailed || errName != "NotificationFailed" || err != nil {
		t.Errorf("execution %s with error %q (%v), want FAILED with NotificationFailed", d.Status, errName, err)
	}
	sent := f.proxy.Recorded(failureTarget)
	var failure struct{ Error, Cause string }
	if len(sent) != 1 || json.Unmarshal(sent[0], &failure) != nil || failure.Error != "NotificationFailed" ||
		!strings.Contains(failure.Cause, `"decision":"canceled"`) || !strings.Contains(failure.Cause, `"reason":"notification_failed"`) {
		t.Errorf("SendTaskFailure calls %q, want one NotificationFailed with the result as cause", sent)
	}
	stored, err := f.notifier.Service.Store.GetRequest(ctx, r.ID)
	if err != nil || stored.Status != approval.StatusCanceled || stored.Reason != approval.ReasonNotificationFailed || !stored.Delivered() {
		t.Errorf("request after the sweeps: %+v, %v; want canceled for notification_failed, delivered", stored, err)
	}
	if f.pageExists(t, ctx, r.PageKeys()[0]) {
		t.Error("the page of the closed request is still on S3")
	}
}
