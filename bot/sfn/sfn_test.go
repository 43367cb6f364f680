package sfn

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"approvalbot/bot/approval"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/google/go-cmp/cmp"
)

// fakeSFN records the calls and answers with err.
type fakeSFN struct {
	success []*sfn.SendTaskSuccessInput
	failure []*sfn.SendTaskFailureInput
	err     error
}

func (f *fakeSFN) SendTaskSuccess(_ context.Context, in *sfn.SendTaskSuccessInput, _ ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error) {
	f.success = append(f.success, in)
	return &sfn.SendTaskSuccessOutput{}, f.err
}

func (f *fakeSFN) SendTaskFailure(_ context.Context, in *sfn.SendTaskFailureInput, _ ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error) {
	f.failure = append(f.failure, in)
	return &sfn.SendTaskFailureOutput{}, f.err
}

func decided(status approval.Status) *approval.Request {
	r := &approval.Request{ID: "abcdefghijklmnop", TaskToken: "task-token", Status: status}
	if status.Decided() {
		r.Decision = &approval.Decision{By: "alice@example.com", Channel: approval.ChannelEmail, Comment: "ok", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	}
	return r
}

func TestDeliverCalls(t *testing.T) {
	tests := []struct {
		status      approval.Status
		wantSuccess bool
		wantError   string
	}{
		{approval.StatusApproved, true, ""},
		{approval.StatusRejected, false, "Rejected"},
		{approval.StatusExpired, false, "Expired"},
		{approval.StatusCanceled, false, "Canceled"},
	}
	for _, tt := range tests {
		t.Run(string(tt.status), func(t *testing.T) {
			f := &fakeSFN{}
			r := decided(tt.status)
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
	b, err := json.Marshal(decided(approval.StatusApproved).Result())
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"requestId": "abcdefghijklmnop", "decision": "approved", "decidedBy": "alice@example.com",
		"channel": "email", "comment": "ok", "decidedAt": "2026-01-02T03:04:05Z",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result JSON (-want +got):\n%s", diff)
	}
}
