package awsflow_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/awsapp"
	"approvalbot/internal/testing/awsflow"
	"approvalbot/internal/testing/mototest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// flow is the AWS form running on moto: Step Functions invokes the notifier
// (this process, through the proxy), the pages are served from the S3 bucket
// and the callback through a function-URL stand-in, both on one loopback site.
type flow struct {
	moto  *mototest.Server
	proxy *awsflow.Proxy
	site  *awsflow.Site
	app   *awsapp.App
	sfn   *sfn.Client
	s3    *s3.Client
	web   *http.Client

	notified chan error // one value per notifier invocation
}

const (
	successTarget = "AWSStepFunctions.SendTaskSuccess"
	failureTarget = "AWSStepFunctions.SendTaskFailure"
)

func startFlow(t *testing.T) *flow {
	t.Helper()
	notified := make(chan error, 4)
	// Every AWS call of this process goes through the proxy, which forwards it to
	// moto and keeps the Step Functions calls for the assertions.
	st, err := awsflow.Start(context.Background(), awsflow.StackConfig{
		Table: mototest.UniqueName("approvals"), Bucket: mototest.UniqueName("pages"),
		Log:        slog.New(slog.NewJSONHandler(t.Output(), nil)),
		HTTPClient: mototest.HTTPClient(),
		OnNotify:   func(inv awsflow.Invocation) { notified <- inv.Err },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	st.Proxy.Record(successTarget)
	st.Proxy.Record(failureTarget)
	return &flow{
		moto: &mototest.Server{URL: st.Moto.URL}, proxy: st.Proxy, site: st.Site, app: st.Notifier,
		sfn: st.SFN, s3: st.S3, web: &http.Client{Timeout: 30 * time.Second}, notified: notified,
	}
}

// execution is one run of a fresh approval state machine.
type execution struct {
	sm, arn string
}

// start runs the approval state machine on input and waits until the notifier
// has answered; it returns the notifier's error.
func (f *flow) start(t *testing.T, ctx context.Context, input string) (execution, error) {
	t.Helper()
	sm, err := awsflow.CreateStateMachine(ctx, f.sfn, mototest.UniqueName("approval"), awsflow.FunctionARN(awsflow.Region, awsflow.NotifierName), 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	out, err := f.sfn.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(sm), Name: aws.String(mototest.UniqueName("run")), Input: aws.String(input),
	})
	if err != nil {
		t.Fatalf("StartExecution: %v", err)
	}
	e := execution{sm: sm, arn: aws.ToString(out.ExecutionArn)}
	t.Cleanup(func() {
		if err := awsflow.Discard(context.Background(), f.sfn, e.sm, e.arn); err != nil {
			t.Error(err)
		}
	})
	select {
	case err := <-f.notified:
		return e, err
	case <-ctx.Done():
		t.Fatalf("the notifier was not invoked: %v", ctx.Err())
	}
	return e, nil
}

func (f *flow) wait(t *testing.T, ctx context.Context, e execution) *sfn.DescribeExecutionOutput {
	t.Helper()
	out, err := awsflow.WaitExecution(ctx, f.sfn, e.arn)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pageLinks returns the page link mailed to each address since the test began.
func (f *flow) pageLinks(t *testing.T, seen int) map[string]string {
	t.Helper()
	link := regexp.MustCompile(regexp.QuoteMeta(f.site.URL()) + `/p/[A-Za-z0-9_-]+`)
	links := map[string]string{}
	for _, m := range f.moto.SentEmails(t)[seen:] {
		if m.From != f.app.Config.MailFrom {
			t.Errorf("mail from %q, want %q", m.From, f.app.Config.MailFrom)
		}
		l := link.FindString(m.Body)
		if l == "" {
			t.Fatalf("no page link in the mail to %v:\n%s", m.To, m.Body)
		}
		for _, to := range m.To {
			links[to] = l
		}
	}
	return links
}

// pageKeys are the one-time pages on S3 that still take a vote: every
// object but those that a late visitor's page replaced (metadata
// s3pages.LateMetadata).
func (f *flow) pageKeys(t *testing.T, ctx context.Context) []string {
	t.Helper()
	out, err := f.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(f.app.Config.Bucket), Prefix: aws.String(f.app.Config.PagesPrefix)})
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}
	var keys []string
	for _, o := range out.Contents {
		head, err := f.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(f.app.Config.Bucket), Key: o.Key})
		if err != nil {
			t.Fatalf("HeadObject: %v", err)
		}
		if head.Metadata["approvalbot-page"] != "late" {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys
}

// late reports whether p is the page a late visitor sees: what happened,
// with no token and no form.
func late(p *awsflow.Page, says string) bool {
	return p != nil && p.Status == http.StatusOK && strings.Contains(p.Body, "nothing on it can decide anything") &&
		strings.Contains(p.Body, says) && !strings.Contains(p.Body, `name="token"`) && !strings.Contains(p.Body, "<form")
}

func input(title string, approvers ...string) string {
	b, _ := json.Marshal(map[string]any{"request": map[string]any{
		"title": title, "details": "Release 2.4 to production.", "requester": "ci@example.com",
		"approvers": approvers, "timeoutSeconds": 3600,
		"links": []map[string]string{{"label": "Changes", "url": "https://example.com/compare/v2.3...v2.4"}},
	}})
	return string(b)
}

func decodeResult(t *testing.T, s string) approval.Result {
	t.Helper()
	var r approval.Result
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("decode result %q: %v", s, err)
	}
	return r
}

// lastSent decodes the cause or output of the last recorded call to target.
func (f *flow) lastSent(t *testing.T, target string) (approval.Result, int) {
	t.Helper()
	sent := f.proxy.Recorded(target)
	if len(sent) == 0 {
		t.Fatalf("no %s was sent", target)
	}
	var in struct{ Output, Cause, Error string }
	if err := json.Unmarshal(sent[len(sent)-1], &in); err != nil {
		t.Fatal(err)
	}
	return decodeResult(t, in.Output+in.Cause), len(sent)
}

var ignoreTime = cmp.Options{
	cmpopts.IgnoreFields(approval.Result{}, "DecidedAt", "RequestID"),
	cmpopts.IgnoreFields(approval.VoteResult{}, "At"),
}

// One moto server for every case; executions run one at a time.
func TestFlow(t *testing.T) {
	f := startFlow(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Run("approve", func(t *testing.T) { testApprove(t, ctx, f) })
	t.Run("reject", func(t *testing.T) { testReject(t, ctx, f) })
	t.Run("concurrent clicks", func(t *testing.T) { testConcurrentClicks(t, ctx, f) })
	t.Run("click after stop", func(t *testing.T) { testClickAfterStop(t, ctx, f) })
	t.Run("bad input", func(t *testing.T) { testBadInput(t, ctx, f) })
	t.Run("retried notification", func(t *testing.T) { testRetriedNotification(t, ctx, f) })
	t.Run("quorum", func(t *testing.T) { testQuorum(t, ctx, f) })
	t.Run("cancel", func(t *testing.T) { testCancel(t, ctx, f) })
	t.Run("stopped execution", func(t *testing.T) { testStoppedExecution(t, ctx, f) })
	t.Run("reject on timeout", func(t *testing.T) { testRejectOnTimeout(t, ctx, f) })
}

// Issue 11: a cancel through the notifier ({"action": "cancel"}) fails the
// execution with Canceled, who canceled and why in the cause; the pages go.
func testCancel(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	e, err := f.start(t, ctx, input("Resize the cluster", "kim@example.com"))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}
	links := f.pageLinks(t, seen)
	id := approval.IDFromTaskToken(taskToken(t, f, e))
	out, err := f.app.Handle(ctx, json.RawMessage(`{"action":"cancel","requestId":"`+id+`","reason":"superseded by v2.5","by":"release-bot"}`))
	if err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if got := out.(awsapp.ActionOutput); got.Status != "canceled" {
		t.Errorf("cancel answered %+v", got)
	}
	got := f.wait(t, ctx, e)
	errName, _, err := awsflow.Failure(ctx, f.sfn, got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != types.ExecutionStatusFailed || errName != "Canceled" {
		t.Fatalf("execution %s with error %q, want FAILED with Canceled", got.Status, errName)
	}
	cause, _ := f.lastSent(t, failureTarget)
	if cause.Decision != "canceled" || cause.CanceledBy != "release-bot" || cause.CancelReason != "superseded by v2.5" {
		t.Errorf("failure cause %+v, want canceled by release-bot with the reason", cause)
	}
	if p, err := awsflow.Get(ctx, f.web, links["kim@example.com"]); err != nil || !late(p, "withdrawn") {
		t.Errorf("the page after cancel: %v, %v; want the late visitor's page", p, err)
	}
}

// Issue 11: a request whose execution was stopped is closed as canceled at
// the next sweep (its task answers the sweep's heartbeat as gone), not left
// pending until its expiry; nothing is sent to the stopped task.
func testStoppedExecution(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	failures := len(f.proxy.Recorded(failureTarget))
	e, err := f.start(t, ctx, input("Reindex the search", "lee@example.com"))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}
	links := f.pageLinks(t, seen)
	id := approval.IDFromTaskToken(taskToken(t, f, e))
	// (Other cases' requests whose task is gone may be closed now.)
	if _, err := f.app.Sweep(ctx); err != nil {
		t.Fatalf("sweep while the execution runs: %v", err)
	}
	if r, _ := f.app.Service.Get(ctx, id); r.Status != approval.StatusPending {
		t.Fatalf("request %s while its execution runs, want pending", r.Status)
	}
	if _, err := f.sfn.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(e.arn), Error: aws.String("Aborted")}); err != nil {
		t.Fatalf("StopExecution: %v", err)
	}
	// moto 5.2.1 keeps a stopped execution's task answering heartbeats;
	// deleting the state machine makes it answer InvalidToken, as AWS
	// answers TaskTimedOut or TaskDoesNotExist for a stopped execution.
	if _, err := f.sfn.DeleteStateMachine(ctx, &sfn.DeleteStateMachineInput{StateMachineArn: aws.String(e.sm)}); err != nil {
		t.Fatal(err)
	}
	st, err := f.app.Sweep(ctx)
	if err != nil || st.Canceled != 1 {
		t.Fatalf("sweep after the stop: %+v, %v; want the request canceled", st, err)
	}
	r, err := f.app.Service.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != approval.StatusCanceled || r.Reason != approval.ReasonWorkflowGone || r.Canceled == nil || r.Canceled.By != approval.WorkflowGoneBy {
		t.Errorf("request after the sweep: %s (%s) %+v; want canceled, workflow_gone", r.Status, r.Reason, r.Canceled)
	}
	if n := len(f.proxy.Recorded(failureTarget)) - failures; n != 0 {
		t.Errorf("%d SendTaskFailure to the stopped task, want none", n)
	}
	if p, err := awsflow.Get(ctx, f.web, links["lee@example.com"]); err != nil || !late(p, "withdrawn") {
		t.Errorf("the page after the sweep: %v, %v; want the late visitor's page", p, err)
	}
}

// Issue 11: onTimeout "reject": at the expiry the sweep rejects the request
// by timeout and the execution fails with Rejected, decidedBy "timeout".
func testRejectOnTimeout(t *testing.T, ctx context.Context, f *flow) {
	b, _ := json.Marshal(map[string]any{"request": map[string]any{
		"title": "Rotate the certificate", "requester": "ci@example.com", "approvers": []string{"max@example.com"},
		"timeoutSeconds": 300, "onTimeout": "reject",
	}})
	e, err := f.start(t, ctx, string(b))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}
	f.app.Service.Now = func() time.Time { return time.Now().Add(301 * time.Second) }
	defer func() { f.app.Service.Now = nil }()
	if _, err := f.app.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	got := f.wait(t, ctx, e)
	errName, _, err := awsflow.Failure(ctx, f.sfn, got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != types.ExecutionStatusFailed || errName != "Rejected" {
		t.Fatalf("execution %s with error %q, want FAILED with Rejected", got.Status, errName)
	}
	cause, _ := f.lastSent(t, failureTarget)
	if cause.Decision != "rejected" || cause.DecidedBy != "timeout" || cause.Channel != "" || len(cause.Votes) != 0 {
		t.Errorf("failure cause %+v, want rejected, decidedBy timeout, no vote", cause)
	}
}

// Issue 10: under quorum:2 of 3 email approvers the execution keeps running
// after the first approval (whose page goes; the others' stay), and succeeds
// after the second, with both votes in its output.
func testQuorum(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	successes := len(f.proxy.Recorded(successTarget))
	pagesBefore := len(f.pageKeys(t, ctx)) // other cases' pending requests
	in := map[string]any{"request": map[string]any{
		"title": "Promote the release", "requester": "ci@example.com", "timeoutSeconds": 3600, "policy": "quorum:2",
		"approvers": []string{"hana@example.com", "ivan@example.com", "jade@example.com"},
	}}
	b, _ := json.Marshal(in)
	e, err := f.start(t, ctx, string(b))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}
	links := f.pageLinks(t, seen)
	if len(links) != 3 {
		t.Fatalf("page links by recipient = %v, want one for each of the 3 approvers", links)
	}
	page, err := awsflow.Get(ctx, f.web, links["hana@example.com"])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.Body, "2 of 3 approvers must approve") {
		t.Errorf("the page does not say the rule:\n%s", page.Body)
	}

	first, err := awsflow.Decide(ctx, f.web, links["hana@example.com"], "approve", "One.")
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	if first.Status != http.StatusOK || !strings.Contains(first.Body, "is recorded") || !strings.Contains(first.Body, "1 more approval is needed") {
		t.Errorf("result page of the first approval: status %d:\n%s", first.Status, first.Body)
	}
	d, err := f.sfn.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(e.arn)})
	if err != nil || d.Status != types.ExecutionStatusRunning {
		t.Fatalf("execution after one approval: %+v, %v; want RUNNING", d, err)
	}
	if n := len(f.proxy.Recorded(successTarget)) - successes; n != 0 {
		t.Errorf("%d SendTaskSuccess after one approval, want none", n)
	}
	// The voter's page is replaced by what happened; the others' stay.
	if n := len(f.pageKeys(t, ctx)) - pagesBefore; n != 2 {
		t.Errorf("%d pages added on S3 after one approval, want the 2 of those who have not voted", n)
	}
	if p, err := awsflow.Get(ctx, f.web, links["hana@example.com"]); err != nil || !late(p, "still waiting for other approvers") {
		t.Errorf("hana's page after her vote: %v, %v; want the late visitor's page", p, err)
	}
	if p, err := awsflow.Get(ctx, f.web, links["jade@example.com"]); err != nil || p.Status != http.StatusOK {
		t.Errorf("jade's page after hana's vote: %v, %v; want 200", p, err)
	}

	second, err := awsflow.Decide(ctx, f.web, links["ivan@example.com"], "approve", "Two.")
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	if second.Status != http.StatusOK || !strings.Contains(second.Body, "approved") {
		t.Errorf("result page of the second approval: status %d:\n%s", second.Status, second.Body)
	}
	got := f.wait(t, ctx, e)
	if got.Status != types.ExecutionStatusSucceeded {
		t.Fatalf("execution %s (%s), want SUCCEEDED", got.Status, aws.ToString(got.Error))
	}
	want := approval.Result{
		Decision: "approved", DecidedBy: "ivan@example.com", Channel: "email", Comment: "Two.",
		Votes: []approval.VoteResult{
			{By: "hana@example.com", Channel: "email", Choice: "approve", Comment: "One."},
			{By: "ivan@example.com", Channel: "email", Choice: "approve", Comment: "Two."},
		},
	}
	if diff := cmp.Diff(want, decodeResult(t, aws.ToString(got.Output)), ignoreTime); diff != "" {
		t.Errorf("execution output (-want +got):\n%s", diff)
	}
	if n := len(f.proxy.Recorded(successTarget)) - successes; n != 1 {
		t.Errorf("%d SendTaskSuccess, want 1", n)
	}
	if n := len(f.pageKeys(t, ctx)) - pagesBefore; n != 0 {
		t.Errorf("%d pages of the request that take a vote left on S3 after the decision, want none", n)
	}
	if p, err := awsflow.Decide(ctx, f.web, links["jade@example.com"], "approve", ""); err == nil || !late(p, "was approved by ivan@example.com") {
		t.Errorf("jade's page after the decision: %+v, %v; want the late visitor's page, with nothing to press", p, err)
	}
}

// A retried invocation for the same task token (a Lambda retry, or the state
// machine's Retry) creates nothing new: same request, no second page or email.
func testRetriedNotification(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	pagesBefore := len(f.pageKeys(t, ctx))
	ev := `{"taskToken":"retried-task-token","request":{"title":"Retry me","approvers":["gina@example.com"],"timeoutSeconds":600}}`
	first, err := f.app.Notify(ctx, json.RawMessage(ev))
	if err != nil {
		t.Fatal(err)
	}
	second, err := f.app.Notify(ctx, json.RawMessage(ev))
	if err != nil {
		t.Fatal(err)
	}
	if !first.Created || second.Created || second.RequestID != first.RequestID {
		t.Errorf("first %+v, second %+v; want one request created once", first, second)
	}
	if n := len(f.moto.SentEmails(t)) - seen; n != 1 {
		t.Errorf("%d emails sent, want 1", n)
	}
	if n := len(f.pageKeys(t, ctx)) - pagesBefore; n != 1 {
		t.Errorf("%d pages added, want 1", n)
	}
}

func testApprove(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	e, err := f.start(t, ctx, input("Deploy v2.4", "alice@example.com", "bob@example.com"))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}

	// One page per approver on S3, one email each with the link to it.
	if keys := f.pageKeys(t, ctx); len(keys) != 2 {
		t.Fatalf("pages on S3 = %v, want 2", keys)
	}
	links := f.pageLinks(t, seen)
	if len(links) != 2 || links["alice@example.com"] == "" || links["bob@example.com"] == "" || links["alice@example.com"] == links["bob@example.com"] {
		t.Fatalf("page links by recipient = %v, want one for each approver", links)
	}
	page, err := awsflow.Get(ctx, f.web, links["alice@example.com"])
	if err != nil {
		t.Fatal(err)
	}
	if page.Status != http.StatusOK || page.Header.Get("Content-Type") != "text/html; charset=utf-8" || page.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("page: status %d, Content-Type %q, Cache-Control %q", page.Status, page.Header.Get("Content-Type"), page.Header.Get("Cache-Control"))
	}
	if !strings.Contains(page.Body, "Deploy v2.4") || !strings.Contains(page.Body, f.app.Config.DecideURL()) {
		t.Errorf("page does not show the title and post to %s:\n%s", f.app.Config.DecideURL(), page.Body)
	}
	// Opening the page decided nothing.
	if d, _ := f.sfn.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(e.arn)}); d == nil || d.Status != types.ExecutionStatusRunning {
		t.Fatalf("execution after opening the page: %+v, want RUNNING", d)
	}

	result, err := awsflow.Decide(ctx, f.web, links["alice@example.com"], "approve", "Looks good.")
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	if result.Status != http.StatusOK || !strings.Contains(result.Body, "approved") {
		t.Errorf("result page: status %d:\n%s", result.Status, result.Body)
	}

	got := f.wait(t, ctx, e)
	if got.Status != types.ExecutionStatusSucceeded {
		t.Fatalf("execution %s (%s), want SUCCEEDED", got.Status, aws.ToString(got.Error))
	}
	want := approval.Result{Decision: "approved", DecidedBy: "alice@example.com", Channel: "email", Comment: "Looks good.",
		Votes: []approval.VoteResult{{By: "alice@example.com", Channel: "email", Choice: "approve", Comment: "Looks good."}}}
	out := decodeResult(t, aws.ToString(got.Output))
	if diff := cmp.Diff(want, out, ignoreTime); diff != "" {
		t.Errorf("execution output (-want +got):\n%s", diff)
	}
	if _, err := time.Parse(time.RFC3339, out.DecidedAt); err != nil || !approval.ValidID(out.RequestID) {
		t.Errorf("output decidedAt %q, requestId %q: want RFC 3339 time and request ID", out.DecidedAt, out.RequestID)
	}

	// Every page of the request is taken down; bob's link says what
	// happened.
	if keys := f.pageKeys(t, ctx); len(keys) != 0 {
		t.Errorf("pages that take a vote left on S3 after the decision: %v", keys)
	}
	if p, err := awsflow.Get(ctx, f.web, links["bob@example.com"]); err != nil || !late(p, "was approved by alice@example.com") {
		t.Errorf("bob's page after the decision: %v, %v; want the late visitor's page", p, err)
	}
}

func testReject(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	e, err := f.start(t, ctx, input("Drop the old table", "carol@example.com"))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}
	links := f.pageLinks(t, seen)
	result, err := awsflow.Decide(ctx, f.web, links["carol@example.com"], "reject", "Not on a Friday.")
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	if result.Status != http.StatusOK || !strings.Contains(result.Body, "rejected") {
		t.Errorf("result page: status %d:\n%s", result.Status, result.Body)
	}
	got := f.wait(t, ctx, e)
	errName, _, err := awsflow.Failure(ctx, f.sfn, got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != types.ExecutionStatusFailed || errName != "Rejected" {
		t.Fatalf("execution %s with error %q, want FAILED with Rejected", got.Status, errName)
	}
	// moto 5.2.1 drops the cause of SendTaskFailure: check what was sent.
	cause, _ := f.lastSent(t, failureTarget)
	want := approval.Result{Decision: "rejected", DecidedBy: "carol@example.com", Channel: "email", Comment: "Not on a Friday.",
		Votes: []approval.VoteResult{{By: "carol@example.com", Channel: "email", Choice: "reject", Comment: "Not on a Friday."}}}
	if diff := cmp.Diff(want, cause, ignoreTime); diff != "" {
		t.Errorf("failure cause sent (-want +got):\n%s", diff)
	}
}

func testConcurrentClicks(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	successes, failures := len(f.proxy.Recorded(successTarget)), len(f.proxy.Recorded(failureTarget))
	e, err := f.start(t, ctx, input("Rotate the keys", "dave@example.com", "erin@example.com"))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}
	links := f.pageLinks(t, seen)

	// Both open their page and press their button; then both confirm at once.
	who := map[string]string{"dave@example.com": "approve", "erin@example.com": "reject"}
	confirms := map[string]awsflow.Form{}
	for addr, choice := range who {
		page, err := awsflow.Get(ctx, f.web, links[addr])
		if err != nil {
			t.Fatal(err)
		}
		form := findForm(t, page, func(fm awsflow.Form) bool { return len(fm.Buttons["decision"]) > 0 })
		form.Fields.Set("decision", choice)
		confirm, err := awsflow.PostForm(ctx, f.web, form.Action, form.Fields)
		if err != nil {
			t.Fatal(err)
		}
		confirms[addr] = findForm(t, confirm, func(fm awsflow.Form) bool { return fm.Fields.Get("confirmed") != "" })
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results = map[string]*awsflow.Page{}
	)
	for addr, form := range confirms {
		wg.Go(func() {
			p, err := awsflow.PostForm(ctx, f.web, form.Action, form.Fields)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			results[addr] = p
			mu.Unlock()
		})
	}
	wg.Wait()

	got := f.wait(t, ctx, e)
	var winner string
	switch got.Status {
	case types.ExecutionStatusSucceeded:
		winner = "dave@example.com"
		if r := decodeResult(t, aws.ToString(got.Output)); r.DecidedBy != winner {
			t.Errorf("output decided by %q, want %q", r.DecidedBy, winner)
		}
	case types.ExecutionStatusFailed:
		winner = "erin@example.com"
	default:
		t.Fatalf("execution %s, want SUCCEEDED or FAILED", got.Status)
	}
	loser := map[string]string{"dave@example.com": "erin@example.com", "erin@example.com": "dave@example.com"}[winner]
	if n := len(f.proxy.Recorded(successTarget)) - successes + len(f.proxy.Recorded(failureTarget)) - failures; n != 1 {
		t.Errorf("%d decisions sent to Step Functions, want 1", n)
	}
	if p := results[winner]; p == nil || !strings.Contains(p.Body, map[string]string{"approve": "approved", "reject": "rejected"}[who[winner]]) {
		t.Errorf("winner's result page: %+v", p)
	}
	if p := results[loser]; p == nil || p.Status >= 500 || !strings.Contains(strings.ToLower(p.Body), "already decided") {
		t.Errorf("loser's result page, want \"already decided\": %+v", p)
	}
	r, err := f.app.Service.Get(ctx, approval.IDFromTaskToken(taskToken(t, f, e)))
	if err != nil {
		t.Fatal(err)
	}
	if r.Decision == nil || r.Decision.By != winner {
		t.Errorf("stored decision %+v, want by %s", r.Decision, winner)
	}
}

func testClickAfterStop(t *testing.T, ctx context.Context, f *flow) {
	seen := len(f.moto.SentEmails(t))
	e, err := f.start(t, ctx, input("Open the firewall", "frank@example.com"))
	if err != nil {
		t.Fatalf("notifier: %v", err)
	}
	links := f.pageLinks(t, seen)
	id := approval.IDFromTaskToken(taskToken(t, f, e))
	if _, err := f.sfn.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(e.arn), Error: aws.String("Canceled")}); err != nil {
		t.Fatalf("StopExecution: %v", err)
	}
	// moto 5.2.1 keeps a stopped execution's task waiting and accepting its
	// token; deleting the state machine makes moto answer InvalidToken, as AWS
	// answers TaskTimedOut for the task of a stopped execution.
	if _, err := f.sfn.DeleteStateMachine(ctx, &sfn.DeleteStateMachineInput{StateMachineArn: aws.String(e.sm)}); err != nil {
		t.Fatal(err)
	}
	result, err := awsflow.Decide(ctx, f.web, links["frank@example.com"], "approve", "")
	if err != nil {
		t.Fatalf("decide: %v", err)
	}
	if result.Status >= 500 || !strings.Contains(result.Body, "no longer waiting") {
		t.Errorf("result page: status %d, want \"no longer waiting\":\n%s", result.Status, result.Body)
	}
	r, err := f.app.Service.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != approval.StatusExpired {
		t.Errorf("request status %s, want expired", r.Status)
	}
}

func testBadInput(t *testing.T, ctx context.Context, f *flow) {
	e, err := f.start(t, ctx, `{"request":{"title":"No one to ask","approvers":[],"timeoutSeconds":3600}}`)
	if err == nil {
		t.Fatal("the notifier accepted a request without approvers")
	}
	got := f.wait(t, ctx, e)
	errName, cause, err := awsflow.Failure(ctx, f.sfn, got)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != types.ExecutionStatusFailed || errName != "InvalidRequest" {
		t.Fatalf("execution %s with error %q, want FAILED with InvalidRequest", got.Status, errName)
	}
	if !strings.Contains(cause, "request.approvers: at least one approver is required") {
		t.Errorf("cause %q does not say what is wrong", cause)
	}
}

func findForm(t *testing.T, p *awsflow.Page, match func(awsflow.Form) bool) awsflow.Form {
	t.Helper()
	forms, err := awsflow.Forms(p.URL, p.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, fm := range forms {
		if match(fm) {
			return fm
		}
	}
	t.Fatalf("no matching form on %s (status %d):\n%s", p.URL, p.Status, p.Body)
	return awsflow.Form{}
}

// taskToken reads the task token the execution's notifier was given, from its
// history.
func taskToken(t *testing.T, f *flow, e execution) string {
	t.Helper()
	h, err := f.sfn.GetExecutionHistory(context.Background(), &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(e.arn)})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range h.Events {
		if d := ev.TaskScheduledEventDetails; d != nil {
			var p struct{ Payload struct{ TaskToken string } }
			if err := json.Unmarshal([]byte(aws.ToString(d.Parameters)), &p); err == nil && p.Payload.TaskToken != "" {
				return p.Payload.TaskToken
			}
		}
	}
	t.Fatal("no task token in the execution history")
	return ""
}
