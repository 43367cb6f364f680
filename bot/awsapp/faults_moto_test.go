package awsapp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/awsflow"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Issue 9's fault matrix on moto: the votes of a quorum:2 request (a vote
// that does not decide, then the one that does) are cast with the nth AWS
// call of the callback failing, before it reaches moto or after it took
// effect, for every n. After recovery (the sweeps, and the approvers
// pressing again), the request is approved with both votes, the workflow
// received the approval (one execution SUCCEEDED, no SendTaskFailure), no
// effect is left due, and no page of the closed request is published.
func TestVoteFaultsOnMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f := startSweepFlow(t)
	faultMatrix(t, "the votes", 6, func(t *testing.T, n int, after bool) []string { return f.voteWithFault(t, ctx, n, after) })
}

// voteWithFault runs the scenario with the nth AWS call of the votes failing
// (none for 0), recovers, checks what must hold, and returns the names of
// the calls the votes made.
func (f *sweepFlow) voteWithFault(t *testing.T, ctx context.Context, n int, after bool) []string {
	sm, exec, r := f.startRequest(t, ctx, map[string]any{
		"title": "Deploy v2.5", "requester": "ci@example.com", "policy": "quorum:2", "timeoutSeconds": 86400,
		"approvers": []string{"alice@example.com", "bob@example.com", "carol@example.com"},
	})
	defer f.discard(t, sm, exec)
	tokens := map[string]string{}
	for _, rc := range r.Recipients {
		tokens[rc.Address] = f.pageToken(t, ctx, rc.PageKey)
	}
	successes, failures := len(f.proxy.Recorded(successTarget)), len(f.proxy.Recorded(failureTarget))
	votes := func() {
		for _, who := range []string{"alice@example.com", "bob@example.com"} {
			if _, err := f.decide(t, ctx, approval.DecideInput{Token: tokens[who], Choice: approval.Approve, Comment: "ok by " + who}); err != nil {
				t.Logf("vote of %s: %v", who, err)
			}
		}
	}

	f.proxy.FailCall(n, after)
	votes()
	calls := f.proxy.StopFaults()
	f.recover(t, ctx, r.ID)
	votes() // the approvers press again
	f.recover(t, ctx, r.ID)

	stored, err := f.notifier.Service.Store.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	var voters []string
	for _, v := range stored.Votes {
		voters = append(voters, v.By)
	}
	slices.Sort(voters) // in the order they were recorded: bob first when alice's first press failed
	if stored.Status != approval.StatusApproved || strings.Join(voters, ",") != "alice@example.com,bob@example.com" || !stored.Delivered() || !stored.DueAt().IsZero() {
		t.Errorf("request after recovery: status %s, votes %v, delivered %v, due %v; want approved by alice and bob, delivered, nothing due",
			stored.Status, voters, stored.Delivered(), stored.DueAt())
	}
	d, err := awsflow.WaitExecution(ctx, f.sfn, exec)
	if err != nil {
		t.Fatal(err)
	}
	var res approval.Result
	if d.Status != types.ExecutionStatusSucceeded || json.Unmarshal([]byte(aws.ToString(d.Output)), &res) != nil || res.Decision != "approved" || len(res.Votes) != 2 {
		t.Errorf("execution %s with output %s; want SUCCEEDED with the approval and both votes", d.Status, aws.ToString(d.Output))
	}
	if got := len(f.proxy.Recorded(successTarget)) - successes; got < 1 {
		t.Errorf("%d SendTaskSuccess calls, want at least one", got)
	}
	if got := len(f.proxy.Recorded(failureTarget)) - failures; got != 0 {
		t.Errorf("%d SendTaskFailure calls, want none", got)
	}
	for _, key := range r.PageKeys() {
		if f.pageExists(t, ctx, key) {
			t.Errorf("page %s of the closed request is still published", key)
		}
	}
	return calls
}

// recover runs the scheduled sweep, past each effect's lease and retry time,
// until request id has nothing due (at most 12 times).
func (f *sweepFlow) recover(t *testing.T, ctx context.Context, id string) {
	t.Helper()
	for range 12 {
		r, err := f.notifier.Service.Store.GetRequest(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if due := r.DueAt(); due.IsZero() || (r.Status == approval.StatusPending && due.Equal(r.ExpiresAt)) {
			return
		}
		f.clock.Advance(approval.EffectLease + time.Minute)
		f.sweep(t, ctx)
	}
}

// The same for creating a request: the notifier's nth AWS call fails, before
// or after it took effect, for every n. After Step Functions invokes it again
// with the same event (as the state machine's Retry does) and the sweeps, the
// request is stored once with every notification sent, each approver got an
// email with their link, and every page on S3 is one of the stored request's.
func TestNotifyFaultsOnMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	f := startSweepFlow(t)
	// The events carry made-up task tokens, which the sweep's probe would
	// find to be no execution's: this test is about creating, not delivery.
	f.notifier.Service.Workflow = unprobed{f.notifier.Service.Workflow}
	faultMatrix(t, "the notifier", 4, func(t *testing.T, n int, after bool) []string { return f.notifyWithFault(t, ctx, n, after) })
}

// faultMatrix runs scenario once without a fault to learn its AWS calls
// (fewer than least fails the test), then once for each of them failing,
// before and after it took effect, each run a subtest. scenario
// fails the nth call (none for 0), checks what must hold after recovery, and
// returns the calls of the phase it failed one of.
func faultMatrix(t *testing.T, what string, least int, scenario func(t *testing.T, n int, after bool) []string) {
	t.Helper()
	calls := scenario(t, 0, false)
	if len(calls) < least {
		t.Fatalf("%s made %d AWS calls (%v), want at least %d", what, len(calls), calls, least)
	}
	t.Logf("AWS calls of %s: %v", what, calls)
	for _, after := range []bool{false, true} {
		for n := 1; n <= len(calls); n++ {
			t.Run(fmt.Sprintf("call%02d/after=%v", n, after), func(t *testing.T) {
				if got := scenario(t, n, after); len(got) >= n {
					t.Logf("failed call %d of %v", n, got)
				} else {
					t.Errorf("%s made %d calls (%v), fewer than the %d to fail", what, len(got), got, n)
				}
			})
		}
	}
}

// notifyWithFault creates a request with the nth AWS call of the notifier
// failing (none for 0), recovers, checks what must hold, and returns the
// names of the calls the first invocation made.
func (f *sweepFlow) notifyWithFault(t *testing.T, ctx context.Context, n int, after bool) []string {
	before := f.pageObjects(t, ctx)
	sentBefore, err := f.moto.SentMail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := json.Marshal(map[string]any{
		"taskToken": fmt.Sprintf("fault-task-%d-%v-%d", n, after, time.Now().UnixNano()),
		"request": map[string]any{
			"title": "Deploy v2.6", "requester": "ci@example.com", "timeoutSeconds": 86400,
			"approvers": []string{"alice@example.com", "bob@example.com"},
		},
	})
	f.proxy.FailCall(n, after)
	out, err := f.notifier.Notify(ctx, ev)
	calls := f.proxy.StopFaults()
	for try := 0; err != nil && try < 3; try++ {
		t.Logf("notifier: %v; invoked again", err)
		out, err = f.notifier.Notify(ctx, ev)
	}
	if err != nil {
		t.Fatalf("the notifier after retries: %v", err)
	}
	f.recover(t, ctx, out.RequestID)

	r, err := f.notifier.Service.Store.GetRequest(ctx, out.RequestID)
	if err != nil {
		t.Fatal(err)
	}
	for _, no := range r.Notifications() {
		if no.State != "sent" {
			t.Errorf("notification %+v, want sent", no)
		}
	}
	sent, err := f.moto.SentMail(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range r.Recipients {
		found := false
		for _, m := range sent[len(sentBefore):] {
			found = found || (slices.Contains(m.To, rc.Address) && strings.Contains(m.Body, rc.PageKey))
		}
		if !found {
			t.Errorf("no email to %s with the link to its page %s", rc.Address, rc.PageKey)
		}
	}
	for key := range f.pageObjects(t, ctx) {
		if !before[key] && !slices.Contains(r.PageKeys(), key) {
			t.Errorf("page %s on S3 is not one of the stored request's (%v)", key, r.PageKeys())
		}
	}
	for _, key := range r.PageKeys() {
		if !f.pageExists(t, ctx, key) {
			t.Errorf("the pending request's page %s is not on S3", key)
		}
	}
	return calls
}

// pageObjects are the page keys on S3 (without the pages' prefix).
func (f *sweepFlow) pageObjects(t *testing.T, ctx context.Context) map[string]bool {
	t.Helper()
	keys := map[string]bool{}
	prefix := f.notifier.Config.PagesPrefix
	p := s3.NewListObjectsV2Paginator(f.s3, &s3.ListObjectsV2Input{Bucket: aws.String(f.notifier.Config.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListObjectsV2: %v", err)
		}
		for _, o := range page.Contents {
			keys[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = true
		}
	}
	return keys
}

// unprobed is a workflow without approval.WorkflowProber: the sweep does not
// ask it whether a task still waits.
type unprobed struct{ approval.Workflow }
