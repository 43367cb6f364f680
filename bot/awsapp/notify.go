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
	"approvalbot/bot/awsapp/lambdaenv"
	"approvalbot/bot/web"
)

// NotifyEvent is what a Step Functions task
// "arn:aws:states:::lambda:invoke.waitForTaskToken" passes to the notifier:
//
//	"Payload": {"taskToken.$": "$$.Task.Token", "request.$": "$.request"}
type NotifyEvent struct {
	TaskToken string        `json:"taskToken"`
	Request   *RequestInput `json:"request"`
	// TaskTimeoutSeconds is the waiting task's TimeoutSeconds, when the
	// state machine passes it: the request's timeout may not be longer, and
	// it cannot be extended past the task's end. Without it the bot does not
	// know when the task stops waiting (see README, "Timing and hand-offs").
	TaskTimeoutSeconds int64 `json:"taskTimeoutSeconds,omitempty"`
	// StateEnteredTime is when the task started ("$$.State.EnteredTime"),
	// from which TaskTimeoutSeconds counts; without it, from the notifier's
	// invocation.
	StateEnteredTime string `json:"stateEnteredTime,omitempty"`
}

// RequestInput is the approval request inside a NotifyEvent. Its fields have
// the names of the embedded bot's API.
type RequestInput struct {
	Title          string          `json:"title"`
	Details        string          `json:"details,omitempty"`
	Requester      string          `json:"requester,omitempty"`
	Approvers      []string        `json:"approvers,omitempty"`
	TimeoutSeconds int64           `json:"timeoutSeconds"`
	Links          []approval.Link `json:"links,omitempty"`
	SlackChannel   string          `json:"slackChannel,omitempty"`
	// Policy is any (the default), all or quorum:N.
	Policy string `json:"policy,omitempty"`
	// Groups replace Approvers and Policy: every group needs Min approvals
	// from its members.
	Groups []GroupInput `json:"groups,omitempty"`
	// RejectPolicy is any (the default: one reject rejects) or impossible
	// (rejected once the policy can no longer be met).
	RejectPolicy string `json:"rejectPolicy,omitempty"`
	// AllowSelfApproval lets the requester approve their own request.
	AllowSelfApproval bool `json:"allowSelfApproval,omitempty"`
	// Timing and hand-offs, as in the embedded bot's API (lifecycle.go).
	OnTimeout       string           `json:"onTimeout,omitempty"`
	Reminders       *RemindersInput  `json:"reminders,omitempty"`
	Escalation      *EscalationInput `json:"escalation,omitempty"`
	AllowDelegation *bool            `json:"allowDelegation,omitempty"`
}

// GroupInput is one group of a RequestInput.
type GroupInput struct {
	Name      string   `json:"name"`
	Approvers []string `json:"approvers"`
	Min       int      `json:"min,omitempty"` // default 1
}

// NotifyOutput is the notifier's answer. Step Functions ignores it (the task
// waits for its token); it shows in the Lambda's logs and tests.
type NotifyOutput struct {
	RequestID string `json:"requestId"`
	// Created is false when a retried invocation found the request that an
	// earlier one created for the same task token.
	Created   bool   `json:"created"`
	Status    string `json:"status"`
	ExpiresAt string `json:"expiresAt"`
	// Notifications are the states of the approvers' notifications when the
	// notifier answered. Those that failed are retried by the sweep; when
	// every one has been given up the task fails with NotificationFailed.
	Notifications []Notification `json:"notifications"`
}

// Notification is the state of one approver's notification.
type Notification struct {
	To      string `json:"to"`
	Channel string `json:"channel"`
	State   string `json:"state"` // sent, pending, retrying or failed
	Error   string `json:"error,omitempty"`
}

// InvalidRequest is the error of an event the notifier cannot accept. Lambda
// reports it with errorType "InvalidRequest", so the Step Functions task fails
// at once with error "InvalidRequest" and a cause that says what is wrong,
// instead of waiting until it times out.
type InvalidRequest struct {
	Field   string // the offending field, such as "request.approvers"
	Message string // a sentence a person can act on
}

func (e *InvalidRequest) Error() string { return "invalid approval request: " + e.Message }

// Is makes errors.Is(err, approval.ErrInvalid) true.
func (e *InvalidRequest) Is(target error) bool { return target == approval.ErrInvalid }

// NotifierError is the error of a request that could not be created (the store
// or S3 failed; nothing was sent). Lambda reports it with errorType
// "NotifierError"; a Retry on it in the state machine is safe and useful, since
// the notifier is idempotent on the task token.
type NotifierError struct{ Err error }

func (e *NotifierError) Error() string { return "approval request not created: " + e.Err.Error() }
func (e *NotifierError) Unwrap() error { return e.Err }

// maxEvent bounds the notifier's input (Step Functions' own limit is 256 KiB).
const maxEvent = 256 << 10

// Notify answers the Step Functions task (Handle, the notifier Lambda's
// handler, passes it every event that is not from EventBridge): it validates
// the event, then creates the request idempotently on the task token: one page
// per email approver on S3, the request with its notifications in DynamoDB,
// then the notifications themselves (one email per email approver, the Slack
// message, a direct message per Slack approver). It answers once they have run
// and their states are recorded (the service is synchronous in a Lambda). A
// notification that failed does not fail the task: the sweep tries it again,
// and once every notification has been given up the request is closed and the
// task fails with NotificationFailed. A retried invocation for the same task
// token takes over the notifications that an earlier one left undone. Its
// errors are *InvalidRequest and *NotifierError.
func (a *App) Notify(ctx context.Context, raw json.RawMessage) (NotifyOutput, error) {
	ev, err := DecodeNotifyEvent(raw)
	if err != nil {
		a.Log.WarnContext(ctx, "notify: invalid event", "err", err)
		return NotifyOutput{}, err
	}
	log := a.Log.With("task", approval.ShortHash(ev.TaskToken))
	if a.Service.DecideURL == "" {
		log.ErrorContext(ctx, "notify: CALLBACK_URL is not set")
		return NotifyOutput{}, &NotifierError{Err: fmt.Errorf("%s is not set: the pages would have nowhere to post", lambdaenv.CallbackURL)}
	}
	in := ev.Request
	nr := approval.NewRequest{
		Title:             in.Title,
		Details:           in.Details,
		Requester:         in.Requester,
		Approvers:         in.Approvers,
		Links:             in.Links,
		Timeout:           time.Duration(in.TimeoutSeconds) * time.Second,
		Policy:            in.Policy,
		RejectPolicy:      in.RejectPolicy,
		AllowSelfApproval: in.AllowSelfApproval,
		SlackChannel:      in.SlackChannel,
		TaskToken:         ev.TaskToken,
	}
	for _, g := range in.Groups {
		nr.Groups = append(nr.Groups, approval.GroupInput{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
	}
	if err := ev.lifecycle(&nr, a.now()); err != nil {
		log.WarnContext(ctx, "notify: invalid request", "err", err)
		return NotifyOutput{}, err
	}
	r, created, err := a.Service.Create(ctx, nr)
	var ve *approval.ValidationError
	switch {
	case errors.As(err, &ve):
		log.WarnContext(ctx, "notify: invalid request", "field", ve.Field, "err", ve.Message)
		return NotifyOutput{}, &InvalidRequest{Field: "request." + jsonField(ve.Field), Message: "request." + jsonField(ve.Field) + ": " + ve.Message}
	case err != nil:
		log.ErrorContext(ctx, "notify: request not created", "err", err)
		return NotifyOutput{}, &NotifierError{Err: err}
	}
	out := NotifyOutput{
		RequestID: r.ID, Created: created, Status: string(r.Status), ExpiresAt: r.ExpiresAt.UTC().Format(time.RFC3339),
		Notifications: []Notification{},
	}
	sent := 0
	for _, n := range r.Notifications() {
		out.Notifications = append(out.Notifications, Notification{To: n.To, Channel: string(n.Channel), State: n.State, Error: n.Error})
		if n.State == "sent" {
			sent++
		}
	}
	attrs := []any{"request_id", r.ID, "created", created, "status", r.Status, "notifications", len(out.Notifications), "sent", sent}
	if sent < len(out.Notifications) {
		log.WarnContext(ctx, "notify: some notifications not sent; the sweep tries them again", attrs...)
	} else {
		log.InfoContext(ctx, "notify: done", attrs...)
	}
	return out, nil
}

// jsonField maps the core's field names to the event's.
func jsonField(f string) string {
	switch f {
	case "timeout":
		return "timeoutSeconds"
	case "decision", "":
		return "request"
	}
	return f
}

// DecodeNotifyEvent parses the notifier's input strictly: unknown fields,
// wrong types and a missing task token or request are *InvalidRequest errors
// that name the field.
func DecodeNotifyEvent(raw []byte) (*NotifyEvent, error) {
	if len(raw) > maxEvent {
		return nil, &InvalidRequest{Field: "", Message: fmt.Sprintf("the input is larger than %d bytes", maxEvent)}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var ev NotifyEvent
	if err := dec.Decode(&ev); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &InvalidRequest{Message: "the input has data after its JSON object"}
	}
	var nameErr *web.FieldNameError
	if err := web.CheckFieldNames(raw, &ev); errors.As(err, &nameErr) {
		return nil, &InvalidRequest{Field: nameErr.Path, Message: "the input has an " + nameErr.Error()}
	}
	switch {
	case strings.TrimSpace(ev.TaskToken) == "":
		return nil, &InvalidRequest{Field: "taskToken", Message: `taskToken is required: pass "taskToken.$": "$$.Task.Token" in the task's Payload and use the .waitForTaskToken integration`}
	case ev.Request == nil:
		return nil, &InvalidRequest{Field: "request", Message: `request is required: pass "request": {"title", "approvers", "timeoutSeconds", ...} in the task's Payload`}
	case ev.Request.TimeoutSeconds == 0:
		return nil, &InvalidRequest{Field: "request.timeoutSeconds", Message: "request.timeoutSeconds is required: how long the approvers have, in seconds (60 to 2592000)"}
	}
	return &ev, nil
}

func decodeError(err error) error {
	var (
		typeErr   *json.UnmarshalTypeError
		syntaxErr *json.SyntaxError
	)
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return &InvalidRequest{Message: "the input must be a JSON object"}
		}
		got := "a JSON " + typeErr.Value
		if n, ok := strings.CutPrefix(typeErr.Value, "number "); ok {
			got = n // "number 60.5"
		}
		return &InvalidRequest{Field: field, Message: fmt.Sprintf("%s must be %s, not %s", field, kind(typeErr.Type.Kind().String()), got)}
	case errors.As(err, &syntaxErr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return &InvalidRequest{Message: "the input is not valid JSON"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return &InvalidRequest{Message: fmt.Sprintf("the input has an unknown field %s (known: taskToken, taskTimeoutSeconds, stateEnteredTime, "+
			"request.title, details, requester, approvers, timeoutSeconds, links, slackChannel, policy, groups, rejectPolicy, allowSelfApproval, "+
			"onTimeout, reminders, escalation, allowDelegation)", name)}
	}
	return &InvalidRequest{Message: "the input cannot be read: " + err.Error()}
}

func kind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "slice":
		return "a list"
	case "struct", "ptr":
		return "an object"
	case "int64", "int", "float64":
		return "a whole number"
	case "bool":
		return "true or false"
	}
	return "a " + k
}
