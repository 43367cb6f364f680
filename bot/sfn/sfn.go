// Package sfn hands decisions back to AWS Step Functions: it completes the task
// that waits on a request's task token.
package sfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"approvalbot/bot/approval"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Error names with which a waiting task fails when the request was not approved.
const (
	ErrorRejected = "Rejected"
	ErrorExpired  = "Expired"
	ErrorCanceled = "Canceled"
)

// api is the part of the Step Functions client that Workflow uses.
type api interface {
	SendTaskSuccess(ctx context.Context, in *sfn.SendTaskSuccessInput, opts ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error)
	SendTaskFailure(ctx context.Context, in *sfn.SendTaskFailureInput, opts ...func(*sfn.Options)) (*sfn.SendTaskFailureOutput, error)
}

// Workflow delivers outcomes to Step Functions. It implements approval.Workflow.
type Workflow struct {
	client api
}

var _ approval.Workflow = (*Workflow)(nil)

// New returns a Workflow calling client (an *sfn.Client).
func New(client api) *Workflow { return &Workflow{client: client} }

// Deliver completes the request's task: success with the approval.Result JSON as
// output when approved, failure "Rejected", "Expired" or "Canceled" with that JSON
// as cause otherwise. A request without a task token has nothing to deliver. A
// task that timed out, no longer exists or whose token is not valid yields
// approval.ErrWorkflowGone.
func (w *Workflow) Deliver(ctx context.Context, r *approval.Request) error {
	if r.TaskToken == "" {
		return nil
	}
	res, err := json.Marshal(r.Result())
	if err != nil {
		return fmt.Errorf("deliver %s: %w", r.ID, err)
	}
	var errName string
	switch r.Status {
	case approval.StatusApproved:
		_, err = w.client.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{
			TaskToken: aws.String(r.TaskToken),
			Output:    aws.String(string(res)),
		})
		return wrap(r.ID, err)
	case approval.StatusRejected:
		errName = ErrorRejected
	case approval.StatusExpired:
		errName = ErrorExpired
	case approval.StatusCanceled:
		errName = ErrorCanceled
	default:
		return fmt.Errorf("deliver %s: request is %s, not decided: %w", r.ID, r.Status, approval.ErrConflict)
	}
	_, err = w.client.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{
		TaskToken: aws.String(r.TaskToken),
		Error:     aws.String(errName),
		Cause:     aws.String(string(res)),
	})
	return wrap(r.ID, err)
}

func wrap(id string, err error) error {
	if err == nil {
		return nil
	}
	var (
		timedOut *types.TaskTimedOut
		missing  *types.TaskDoesNotExist
		invalid  *types.InvalidToken
	)
	if errors.As(err, &timedOut) || errors.As(err, &missing) || errors.As(err, &invalid) {
		return fmt.Errorf("deliver %s: %w: %w", id, approval.ErrWorkflowGone, err)
	}
	return fmt.Errorf("deliver %s: %w", id, err)
}
