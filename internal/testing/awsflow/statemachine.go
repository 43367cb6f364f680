package awsflow

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

// Account is the AWS account moto uses for every resource.
const Account = "123456789012"

// FunctionARN is the ARN of the Lambda function name in region, in moto's account.
func FunctionARN(region, name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", region, Account, name)
}

// Definition is the Amazon States Language of a one-state machine that asks for
// an approval: it invokes functionARN with .waitForTaskToken, passing
// {"taskToken": $$.Task.Token, "request": $.request}, and ends with the decision
// as output (or fails with Rejected or Expired).
func Definition(functionARN string, timeout time.Duration) string {
	task := map[string]any{
		"Type":     "Task",
		"Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
		"Parameters": map[string]any{
			"FunctionName": functionARN,
			"Payload": map[string]any{
				"taskToken.$": "$$.Task.Token",
				"request.$":   "$.request",
			},
		},
		"End": true,
	}
	if timeout > 0 {
		task["TimeoutSeconds"] = int(timeout / time.Second)
		// As the CDK stack's: a heartbeat timeout just short of the task's.
		// moto 5.2.1 answers SendTaskHeartbeat (the sweep's probe) with
		// InvalidToken for a task without one, as if it did not exist.
		task["HeartbeatSeconds"] = max(int(timeout/time.Second)-1, 1)
	}
	b, _ := json.Marshal(map[string]any{
		"Comment": "Wait for a human decision through approvalbot.",
		"StartAt": "Approval",
		"States":  map[string]any{"Approval": task},
	})
	return string(b)
}

// CreateStateMachine creates a state machine with Definition and returns its ARN.
func CreateStateMachine(ctx context.Context, c *sfn.Client, name, functionARN string, timeout time.Duration) (string, error) {
	out, err := c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
		Name:       aws.String(name),
		Definition: aws.String(Definition(functionARN, timeout)),
		RoleArn:    aws.String("arn:aws:iam::" + Account + ":role/approvalbot-demo"),
	})
	if err != nil {
		return "", fmt.Errorf("create state machine %s: %w", name, err)
	}
	return aws.ToString(out.StateMachineArn), nil
}

// WaitExecution polls an execution until it is no longer running, or ctx ends,
// and returns its description.
func WaitExecution(ctx context.Context, c *sfn.Client, executionARN string) (*sfn.DescribeExecutionOutput, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(executionARN)})
		if err != nil {
			return nil, fmt.Errorf("describe execution: %w", err)
		}
		if out.Status != types.ExecutionStatusRunning {
			return out, nil
		}
		select {
		case <-ctx.Done():
			return out, fmt.Errorf("execution still %s: %w", out.Status, ctx.Err())
		case <-tick.C:
		}
	}
}

// Discard stops an execution if it still runs and deletes its state machine.
//
// moto 5.2.1 deep-copies a state machine together with its whole backend on
// StartExecution, and fails ("cannot pickle '_thread.RLock'") once the backend
// holds an execution that has run. So on moto: one state machine per execution,
// one execution at a time, and Discard before the next StartExecution.
func Discard(ctx context.Context, c *sfn.Client, stateMachineARN, executionARN string) error {
	if executionARN != "" {
		out, err := c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(executionARN)})
		if err == nil && out.Status == types.ExecutionStatusRunning {
			if _, err := c.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: aws.String(executionARN)}); err != nil {
				return fmt.Errorf("stop execution: %w", err)
			}
		}
	}
	if _, err := c.DeleteStateMachine(ctx, &sfn.DeleteStateMachineInput{StateMachineArn: aws.String(stateMachineARN)}); err != nil {
		return fmt.Errorf("delete state machine: %w", err)
	}
	return nil
}

// Failure returns the error and cause with which an execution failed. moto 5.2.1
// leaves the cause out of DescribeExecution, so it is read from the execution's
// history when missing.
func Failure(ctx context.Context, c *sfn.Client, d *sfn.DescribeExecutionOutput) (errName, cause string, err error) {
	errName, cause = aws.ToString(d.Error), aws.ToString(d.Cause)
	if cause != "" {
		return errName, cause, nil
	}
	p := sfn.NewGetExecutionHistoryPaginator(c, &sfn.GetExecutionHistoryInput{ExecutionArn: d.ExecutionArn, ReverseOrder: true})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return errName, "", fmt.Errorf("execution history: %w", err)
		}
		for _, e := range page.Events {
			switch {
			case e.ExecutionFailedEventDetails != nil && e.ExecutionFailedEventDetails.Cause != nil:
				return firstNonEmpty(errName, aws.ToString(e.ExecutionFailedEventDetails.Error)), aws.ToString(e.ExecutionFailedEventDetails.Cause), nil
			case e.TaskFailedEventDetails != nil && e.TaskFailedEventDetails.Cause != nil:
				return firstNonEmpty(errName, aws.ToString(e.TaskFailedEventDetails.Error)), aws.ToString(e.TaskFailedEventDetails.Cause), nil
			}
		}
	}
	return errName, "", nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
