package sfn

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"approvalbot/bot/approval"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/go-cmp/cmp"
)

// fakeSFN records the calls, and the options each was given, and answers
// with err.
type fakeSFN struct {
	success    []*sfn.SendTaskSuccessInput
	failure    []*sfn.SendTaskFailureInput
	heartbeats []*sfn.SendTaskHeartbeatInput
	options    []sfn.Options // as each call's options left them
	err        error
}

func (f *fakeSFN) apply(opts []func(*sfn.Options)) {
	var o sfn.Options
	for _, fn := range opts {
		fn(&o)
	}
	f.options = append(f.options, o)
}

func (f *fakeSFN) SendTaskSuccess(_ context.Context, in *sfn.SendTaskSuccessInput, opts ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error) {
	f.success = append(f.success, in)
	f.apply(opts)
	return &sfn.SendTaskSuccessOutput{}, f.err
}

func (f *fakeSFN) SendTaskFailure(_ context.Context, in *sfn.SendTaskFailureInput, opts ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error) {
	f.failure = append(f.failure, in)
	f.apply(opts)
	return &sfn.SendTaskFailureOutput{}, f.err
}

func (f *fakeSFN) SendTaskHeartbeat(_ context.Context, in *sfn.SendTaskHeartbeatInput, opts ...func(*sfn.Options)) (*sfn.SendTaskHeartbeatOutput, error) {
	f.heartbeats = append(f.heartbeats, in)
	f.apply(opts)
	return &sfn.SendTaskHeartbeatOutput{}, f.err
}

var decidedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func decided(status approval.Status) *approval.Request {
	r := &approval.Request{ID: "abcdefghijklmnop", TaskToken: "task-token", Status: status}
	if status.Decided() {
		r.Decision = &approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, Comment: "ok", At: decidedAt}
		if status == approval.StatusRejected {
			r.Decision.Choice = approval.Reject
		}
		r.Votes = []approval.Vote{{By: r.Decision.By, Channel: r.Decision.Channel, Choice: r.Decision.Choice, Comment: "ok", At: decidedAt}}
	}
	return r
}

func TestDeliverCalls(t *testing.T) {
	tests := []struct {
		status      approval.Status
		reason      string
		wantSuccess bool
		wantError   string
	}{
		{approval.StatusApproved, "", true, ""},
		{approval.StatusRejected, "", false, "Rejected"},
		{approval.StatusExpired, "", false, "Expired"},
		{approval.StatusExpired, approval.ReasonWorkflowGone, false, "Expired"},
		{approval.StatusCanceled, "", false, "Canceled"},
		{approval.StatusCanceled, approval.ReasonNotificationFailed, false, "NotificationFailed"},
	}
	for _, tt := range tests {
		t.Run(string(tt.status)+" "+tt.reason, func(t *testing.T) {
			f := &fakeSFN{}
			r := decided(tt.status)
			r.Reason = tt.reason
			if err := New(f).Deliver(context.Background(), r); err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			want, _ := json.Marshal(r.Result())
			if tt.wantSuccess {
				if len(f.success) != 1 || len(f.failure) != 0 {
					t.Fatalf("got %d successes, %d failures; want 1, 0", len(f.success), len(f.failure))
				}
				if got := aws.ToString(f.success[0].Output); got != string(want) {
					t.Errorf("output = %s, want %s", got, want)
				}
				if got := aws.ToString(f.success[0].TaskToken); got != "task-token" {
					t.Errorf("task token = %q, want %q", got, "task-token")
				}
				return
			}
			if len(f.success) != 0 || len(f.failure) != 1 {
				t.Fatalf("got %d successes, %d failures; want 0, 1", len(f.success), len(f.failure))
			}
			in := f.failure[0]
			if got := aws.ToString(in.Error); got != tt.wantError {
				t.Errorf("error = %q, want %q", got, tt.wantError)
			}
			if got := aws.ToString(in.Cause); got != string(want) {
				t.Errorf("cause = %s, want %s", got, want)
			}
		})
	}
}

func TestDeliverNoTaskToken(t *testing.T) {
	f := &fakeSFN{err: errors.New("must not be called")}
	r := decided(approval.StatusApproved)
	r.TaskToken = ""
	if err := New(f).Deliver(context.Background(), r); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if n := len(f.success) + len(f.failure); n != 0 {
		t.Errorf("got %d calls, want none", n)
	}
}

func TestDeliverPending(t *testing.T) {
	err := New(&fakeSFN{}).Deliver(context.Background(), decided(approval.StatusPending))
	if !errors.Is(err, approval.ErrConflict) {
		t.Errorf("Deliver(pending) = %v, want ErrConflict", err)
	}
}

func TestDeliverErrors(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantGone bool
	}{
		{"timed out", &types.TaskTimedOut{Message: aws.String("x")}, true},
		{"does not exist", &types.TaskDoesNotExist{Message: aws.String("x")}, true},
		{"invalid token", &types.InvalidToken{Message: aws.String("x")}, true},
		{"throttled", errors.New("throttling"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New(&fakeSFN{err: tt.err}).Deliver(context.Background(), decided(approval.StatusRejected))
			if err == nil {
				t.Fatal("Deliver: got nil error")
			}
			if got := errors.Is(err, approval.ErrWorkflowGone); got != tt.wantGone {
				t.Errorf("errors.Is(%v, ErrWorkflowGone) = %v, want %v", err, got, tt.wantGone)
			}
		})
	}
}

// The Result JSON is the contract with the workflow: keep its field names.
func TestResultJSON(t *testing.T) {
	tests := []struct {
		name string
		r    *approval.Request
		want string
	}{
		{"approved", decided(approval.StatusApproved), `{"requestId":"abcdefghijklmnop","decision":"approved","decidedBy":"alice@example.com",` +
			`"channel":"email","comment":"ok","decidedAt":"2026-01-02T03:04:05Z",` +
			`"votes":[{"by":"alice@example.com","channel":"email","choice":"approve","comment":"ok","at":"2026-01-02T03:04:05Z"}]}`},
		{"notification failed", func() *approval.Request {
			r := decided(approval.StatusCanceled)
			r.Reason = approval.ReasonNotificationFailed
			return r
		}(), `{"requestId":"abcdefghijklmnop","decision":"canceled","reason":"notification_failed","votes":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.r.Result())
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("result JSON (-want +got):\n%s", diff)
			}
		})
	}
}

// Every send goes out with SendOnce: the SDK retries only what certainly did
// not take effect.
func TestDeliverSendsOnce(t *testing.T) {
	for _, status := range []approval.Status{approval.StatusApproved, approval.StatusRejected} {
		f := &fakeSFN{}
		if err := New(f).Deliver(context.Background(), decided(status)); err != nil {
			t.Fatal(err)
		}
		if len(f.options) != 1 || f.options[0].Retryer == nil {
			t.Fatalf("%s: options %+v, want one call with its own retryer", status, f.options)
		}
		checkRetryer(t, f.options[0].Retryer)
	}
}

func checkRetryer(t *testing.T, r aws.Retryer) {
	t.Helper()
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"throttled", &smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}, true},
		{"connection refused", &smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "https://states", Err: refused}}, true},
		{"connection reset after sending", &smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "https://states", Err: reset}}, false},
		{"server error", &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 500}},
			Err: &smithy.GenericAPIError{Code: "InternalFailure"}}, false},
		{"bad gateway", &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 502}},
			Err: errors.New("bad gateway")}, false},
		{"timeout", &smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: "https://states", Err: context.DeadlineExceeded}}, false},
		{"task timed out", &types.TaskTimedOut{Message: aws.String("x")}, false},
	}
	for _, tt := range tests {
		if got := r.IsErrorRetryable(tt.err); got != tt.want {
			t.Errorf("%s: retryable = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWaitingProbesWithAHeartbeat(t *testing.T) {
	pending := &approval.Request{ID: "abcdefghijklmnop", TaskToken: "task-token", Status: approval.StatusPending}
	for _, tc := range []struct {
		name     string
		err      error
		wantGone bool
		wantErr  bool
	}{
		{"waiting", nil, false, false},
		{"timed out", &types.TaskTimedOut{Message: aws.String("timed out")}, true, true},
		{"stopped", &types.TaskDoesNotExist{Message: aws.String("no task")}, true, true},
		{"invalid token", &types.InvalidToken{Message: aws.String("bad")}, true, true},
		{"throttled", errors.New("throttled"), false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeSFN{err: tc.err}
			err := New(f).Waiting(t.Context(), pending)
			if (err != nil) != tc.wantErr || errors.Is(err, approval.ErrWorkflowGone) != tc.wantGone {
				t.Errorf("Waiting: %v; want error %v, gone %v", err, tc.wantErr, tc.wantGone)
			}
			if len(f.heartbeats) != 1 || aws.ToString(f.heartbeats[0].TaskToken) != "task-token" {
				t.Errorf("heartbeats %v, want one with the task token", f.heartbeats)
			}
		})
	}
	f := &fakeSFN{}
	if err := New(f).Waiting(t.Context(), &approval.Request{ID: "abcdefghijklmnop", Status: approval.StatusPending}); err != nil || len(f.heartbeats) != 0 {
		t.Errorf("without a task token: %v, %d heartbeats; want nil, none", err, len(f.heartbeats))
	}
}
