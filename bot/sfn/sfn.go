// Package sfn hands decisions back to AWS Step Functions: it completes the task
// that waits on a request's task token.
package sfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"approvalbot/bot/approval"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Error names with which a waiting task fails when the request was not approved.
const (
	ErrorRejected = "Rejected"
	ErrorExpired  = "Expired"
	ErrorCanceled = "Canceled"
	// ErrorNotificationFailed: the request was closed because none of its
	// approvers could be reached (approval.ReasonNotificationFailed).
	ErrorNotificationFailed = "NotificationFailed"
)

// api is the part of the Step Functions client that Workflow uses.
type api interface {
	SendTaskSuccess(ctx context.Context, in *sfn.SendTaskSuccessInput, opts ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error)
	SendTaskFailure(ctx context.Context, in *sfn.SendTaskFailureInput, opts ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error)
	SendTaskHeartbeat(ctx context.Context, in *sfn.SendTaskHeartbeatInput, opts ...func(*sfn.Options)) (*sfn.SendTaskHeartbeatOutput, error)
}

// Workflow delivers outcomes to Step Functions. It implements approval.Workflow.
type Workflow struct {
	client api
}

var (
	_ approval.Workflow       = (*Workflow)(nil)
	_ approval.WorkflowProber = (*Workflow)(nil)
)

// New returns a Workflow calling client (an *sfn.Client).
func New(client api) *Workflow { return &Workflow{client: client} }

// Deliver completes the request's task: success with the approval.Result JSON as
// output when approved; otherwise failure "Rejected", "Expired", "Canceled" or,
// for a request closed because nobody could be reached, "NotificationFailed",
// with that JSON as cause. A request without a task token has nothing to
// deliver. A task that timed out, no longer exists or whose token is not valid
// yields approval.ErrWorkflowGone.
//
// Each call is sent at most once unless the answer proves that it did not take
// effect (see SendOnce): the core tries a delivery again itself, and takes a
// "gone" after its own earlier attempt as that attempt's success. If the SDK
// retried a send whose answer was lost, the retry's "task already closed"
// would come back as the first attempt's answer, and an approval the workflow
// received would be recorded as expired.
func (w *Workflow) Deliver(ctx context.Context, r *approval.Request) error {
	if r.TaskToken == "" {
		return nil
	}
	res, err := json.Marshal(r.Result())
	if err != nil {
		return fmt.Errorf("deliver %s: %w", r.ID, err)
	}
	errName, err := ErrorName(r)
	if err != nil {
		return fmt.Errorf("deliver %s: %w", r.ID, err)
	}
	if errName == "" {
		_, err = w.client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{
			TaskToken: aws.String(r.TaskToken),
			Output:    aws.String(string(res)),
		}, SendOnce)
		return wrap(r.ID, err)
	}
	_, err = w.client.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{
		TaskToken: aws.String(r.TaskToken),
		Error:     aws.String(errName),
		Cause:     aws.String(string(res)),
	}, SendOnce)
	return wrap(r.ID, err)
}

// ErrorName is the error with which the task of a closed request fails, or ""
// for an approved request (whose task succeeds). A pending request is
// approval.ErrConflict.
func ErrorName(r *approval.Request) (string, error) {
	switch {
	case r.Status == approval.StatusApproved:
		return "", nil
	case r.Status == approval.StatusRejected:
		return ErrorRejected, nil
	case r.Status == approval.StatusExpired:
		return ErrorExpired, nil
	case r.Status == approval.StatusCanceled && r.Reason == approval.ReasonNotificationFailed:
		return ErrorNotificationFailed, nil
	case r.Status == approval.StatusCanceled:
		return ErrorCanceled, nil
	}
	return "", fmt.Errorf("request is %s, not closed: %w", r.Status, approval.ErrConflict)
}

// SendOnce is the per-call option of SendTaskSuccess and SendTaskFailure: the
// SDK's standard retryer, restricted to the errors that prove the call did not
// take effect, namely throttling (refused before any work) and a failed dial
// (nothing was sent). A 5xx, a timeout or a connection dropped after the
// request was written is not retried: the task may have been completed, and
// the answer to a retry ("task already closed") would hide that.
func SendOnce(o *sfn.Options) {
	o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
		so.Retryables = []retry.IsErrorRetryable{
			retry.NoRetryCanceledError{},
			retry.RetryableErrorCode{Codes: retry.DefaultThrottleErrorCodes},
			retry.IsErrorRetryableFunc(notSent),
		}
	})
}

// notSent reports whether err shows that the request never left this process:
// the connection to the service could not be opened.
func notSent(err error) aws.Ternary {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return aws.TrueTernary
	}
	return aws.UnknownTernary
}

// Waiting tells whether the task of pending request r still waits: it sends
// the task a heartbeat. A task that timed out, no longer exists (its
// execution was stopped) or whose token is not valid yields
// approval.ErrWorkflowGone. A request without a task token has nothing to
// wait for it and answers nil. The heartbeat also restarts the task's
// HeartbeatSeconds, when the state machine sets one; its TimeoutSeconds still
// ends the wait.
func (w *Workflow) Waiting(ctx context.Context, r *approval.Request) error {
	if r.TaskToken == "" {
		return nil
	}
	_, err := w.client.SendTaskHeartbeat(ctx, &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(r.TaskToken)})
	if err == nil {
		return nil
	}
	if gone(err) {
		return fmt.Errorf("probe %s: %w: %w", r.ID, approval.ErrWorkflowGone, err)
	}
	return fmt.Errorf("probe %s: %w", r.ID, err)
}

// gone reports whether err says that the task no longer waits: it timed out,
// does not exist, or its token is not valid.
func gone(err error) bool {
	var (
		timedOut *types.TaskTimedOut
		missing  *types.TaskDoesNotExist
		invalid  *types.InvalidToken
	)
	return errors.As(err, &timedOut) || errors.As(err, &missing) || errors.As(err, &invalid)
}

func wrap(id string, err error) error {
	if err == nil {
		return nil
	}
	if gone(err) {
		return fmt.Errorf("deliver %s: %w: %w", id, approval.ErrWorkflowGone, err)
	}
	return fmt.Errorf("deliver %s: %w", id, err)
}
