package awsapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// RemindersInput is "reminders" of a RequestInput.
type RemindersInput struct {
	EverySeconds        int64   `json:"everySeconds,omitempty"`
	BeforeExpirySeconds []int64 `json:"beforeExpirySeconds,omitempty"`
}

// EscalationInput is "escalation" of a RequestInput.
type EscalationInput struct {
	AfterSeconds int64             `json:"afterSeconds"`
	Approvers    []string          `json:"approvers,omitempty"`
	Groups       []EscalationGroup `json:"groups,omitempty"`
	SlackChannel string            `json:"slackChannel,omitempty"`
}

// EscalationGroup adds approvers to a group of a request with groups when it
// escalates.
type EscalationGroup struct {
	Name      string   `json:"name"`
	Approvers []string `json:"approvers"`
}

func (a *App) now() time.Time {
	if a.Service.Now != nil {
		return a.Service.Now()
	}
	return time.Now()
}

// seconds turns a number of seconds into a duration, saturating far beyond
// every limit rather than overflowing.
func seconds(n int64) time.Duration {
	const most = int64(10 * approval.MaxTimeout / time.Second)
	return time.Duration(max(min(n, most), -most)) * time.Second
}

// lifecycle sets the timing and hand-off fields of nr from the event, and the
// task's deadline when the event gives the task's timeout. A request timeout
// longer than the task's is refused.
func (ev *NotifyEvent) lifecycle(nr *approval.NewRequest, now time.Time) error {
	in := ev.Request
	nr.OnTimeout = in.OnTimeout
	nr.NoDelegation = in.AllowDelegation != nil && !*in.AllowDelegation
	if m := in.Reminders; m != nil {
		nr.Reminders.Every = seconds(m.EverySeconds)
		for _, b := range m.BeforeExpirySeconds {
			nr.Reminders.BeforeExpiry = append(nr.Reminders.BeforeExpiry, seconds(b))
		}
	}
	if e := in.Escalation; e != nil {
		nr.Escalation = &approval.EscalationInput{After: seconds(e.AfterSeconds), Approvers: e.Approvers, SlackChannel: e.SlackChannel}
		for _, g := range e.Groups {
			nr.Escalation.Groups = append(nr.Escalation.Groups, approval.GroupInput{Name: g.Name, Approvers: g.Approvers})
		}
	}
	if ev.TaskTimeoutSeconds == 0 {
		if ev.StateEnteredTime != "" {
			return &InvalidRequest{Field: "taskTimeoutSeconds", Message: "stateEnteredTime is given without taskTimeoutSeconds"}
		}
		return nil
	}
	if ev.TaskTimeoutSeconds < 0 {
		return &InvalidRequest{Field: "taskTimeoutSeconds", Message: "taskTimeoutSeconds must be positive"}
	}
	if in.TimeoutSeconds > ev.TaskTimeoutSeconds {
		return &InvalidRequest{Field: "request.timeoutSeconds", Message: fmt.Sprintf(
			"request.timeoutSeconds (%d) is longer than the task's timeout, taskTimeoutSeconds (%d): the task would stop waiting before the request expires",
			in.TimeoutSeconds, ev.TaskTimeoutSeconds)}
	}
	from := now
	if ev.StateEnteredTime != "" {
		t, err := time.Parse(time.RFC3339Nano, ev.StateEnteredTime)
		if err != nil {
			return &InvalidRequest{Field: "stateEnteredTime", Message: fmt.Sprintf(`stateEnteredTime %q is not an RFC 3339 time; pass "stateEnteredTime.$": "$$.State.EnteredTime"`, ev.StateEnteredTime)}
		}
		from = t
	}
	nr.TaskDeadline = from.Add(seconds(ev.TaskTimeoutSeconds))
	return nil
}

// ActionEvent is an event that acts on a request through the notifier
// (aws lambda invoke, or a state of another workflow):
//
//	{"action": "cancel", "requestId": "...", "reason": "...", "by": "..."}
//	{"action": "extend", "requestId": "...", "timeoutSeconds": 7200, "by": "..."}
type ActionEvent struct {
	Action    string `json:"action"`
	RequestID string `json:"requestId"`
	// By is who acts, as the request records it; default "aws".
	By string `json:"by,omitempty"`
	// Reason is why a request is canceled (optional).
	Reason string `json:"reason,omitempty"`
	// TimeoutSeconds is how long from now an extended request waits.
	TimeoutSeconds int64 `json:"timeoutSeconds,omitempty"`
}

// ActionOutput is the answer to an ActionEvent: the request as it now stands.
type ActionOutput struct {
	RequestID string `json:"requestId"`
	Status    string `json:"status"`
	ExpiresAt string `json:"expiresAt"`
}

// ActionRefused is the error of an action on a request that is not pending
// or does not exist. Lambda reports it with errorType "ActionRefused".
type ActionRefused struct{ Message string }

func (e *ActionRefused) Error() string { return e.Message }

// DefaultActor is who acts when an ActionEvent names nobody.
const DefaultActor = "aws"

// Act runs an ActionEvent: cancel (the task fails with "Canceled", the pages
// go, Slack says who canceled and why) or extend (within the 30-day limit and
// the task's own timeout, when the request knows it). Its errors are
// *InvalidRequest, *ActionRefused and *NotifierError.
func (a *App) Act(ctx context.Context, raw json.RawMessage) (ActionOutput, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ev ActionEvent
	if err := dec.Decode(&ev); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return ActionOutput{}, &InvalidRequest{Message: "the action has an unknown field " + strings.TrimPrefix(err.Error(), "json: unknown field ") +
				" (known: action, requestId, by, reason, timeoutSeconds)"}
		}
		return ActionOutput{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return ActionOutput{}, &InvalidRequest{Message: "the input has data after its JSON object"}
	}
	if !approval.ValidID(ev.RequestID) {
		return ActionOutput{}, &InvalidRequest{Field: "requestId", Message: "requestId is required: the ID of a request (16 characters of a-z and 2-7)"}
	}
	by := strings.TrimSpace(ev.By)
	if by == "" {
		by = DefaultActor
	}
	log := a.Log.With("request_id", ev.RequestID, "action", ev.Action)
	var (
		r   *approval.Request
		err error
	)
	switch ev.Action {
	case "cancel":
		r, err = a.Service.Cancel(ctx, ev.RequestID, by, ev.Reason)
	case "extend":
		if ev.TimeoutSeconds <= 0 {
			return ActionOutput{}, &InvalidRequest{Field: "timeoutSeconds", Message: "timeoutSeconds is required: how long from now the request waits, in seconds"}
		}
		r, err = a.Service.Extend(ctx, ev.RequestID, by, seconds(ev.TimeoutSeconds))
	default:
		return ActionOutput{}, &InvalidRequest{Field: "action", Message: fmt.Sprintf("action %q is unknown; use \"cancel\" or \"extend\"", ev.Action)}
	}
	var ve *approval.ValidationError
	switch {
	case err == nil:
		log.InfoContext(ctx, "action: done", "status", r.Status)
		return ActionOutput{RequestID: r.ID, Status: string(r.Status), ExpiresAt: r.ExpiresAt.UTC().Format(time.RFC3339)}, nil
	case errors.As(err, &ve):
		return ActionOutput{}, &InvalidRequest{Field: jsonField(ve.Field), Message: jsonField(ve.Field) + ": " + ve.Message}
	case errors.Is(err, approval.ErrNotFound):
		return ActionOutput{}, &ActionRefused{Message: "no request has the ID " + ev.RequestID}
	case errors.Is(err, approval.ErrAlreadyDecided), errors.Is(err, approval.ErrExpired):
		return ActionOutput{}, &ActionRefused{Message: fmt.Sprintf("request %s is no longer pending: it is %s", ev.RequestID, r.Status)}
	}
	log.ErrorContext(ctx, "action: failed", "err", err)
	return ActionOutput{}, &NotifierError{Err: err}
}
