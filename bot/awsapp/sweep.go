package awsapp

import (
	"context"
	"encoding/json"
	"fmt"
)

// The EventBridge scheduled event that starts a sweep: what a rule with a
// schedule expression such as "rate(5 minutes)" sends its targets.
const (
	ScheduledSource     = "aws.events"
	ScheduledDetailType = "Scheduled Event"
)

// SweepOutput is the answer to a scheduled event: what the sweep did.
type SweepOutput struct {
	// Expired is how many requests past their expiry the sweep closed.
	Expired int `json:"expired"`
	// Advanced is how many requests the sweep took up because something on
	// them was due: an expiry, or an effect (a notification, the delivery of
	// the outcome, deleting pages, updating Slack) whose run died or whose
	// retry time came.
	Advanced int `json:"advanced"`
	// Undelivered is how many closed requests still wait for their outcome to
	// reach the workflow after the sweep (delivery failed again; a later sweep
	// tries again).
	Undelivered int `json:"undelivered"`
	// Canceled is how many pending requests the sweep closed as canceled
	// because their execution no longer waits (stopped, timed out, deleted).
	Canceled int `json:"canceled"`
	// Checkpoints is how many checkpoints of the audit trail the sweep
	// wrote (each seals the requests whose trails grew since the last).
	Checkpoints int `json:"checkpoints"`
}

// SweepFailed is the error of a sweep that could not read the requests that
// are due. Lambda reports it with errorType "SweepFailed"; the next
// scheduled sweep tries again.
type SweepFailed struct{ Err error }

func (e *SweepFailed) Error() string { return "sweep: " + e.Err.Error() }
func (e *SweepFailed) Unwrap() error { return e.Err }

// UnsupportedEvent is the error of an EventBridge event other than a scheduled
// one. Lambda reports it with errorType "UnsupportedEvent".
type UnsupportedEvent struct {
	Source, DetailType string
}

func (e *UnsupportedEvent) Error() string {
	return fmt.Sprintf("the notifier takes a Step Functions task ({\"taskToken\", \"request\"}) or an EventBridge scheduled event "+
		"(source %q, detail-type %q), not an event with source %q and detail-type %q",
		ScheduledSource, ScheduledDetailType, e.Source, e.DetailType)
}

// Handle is the notifier Lambda's handler. An EventBridge scheduled event
// (source "aws.events", detail-type "Scheduled Event") runs Sweep; any other
// event carrying a source or detail-type is refused with *UnsupportedEvent;
// an event with an "action" (cancel, extend) goes to Act; everything else is
// a Step Functions task for Notify, which parses it strictly.
func (a *App) Handle(ctx context.Context, raw json.RawMessage) (any, error) {
	// The fields of events.EventBridgeEvent that matter here.
	var env struct {
		Source     *string  `json:"source"`
		DetailType *string  `json:"detail-type"`
		Resources  []string `json:"resources"`
		Action     *string  `json:"action"`
	}
	// Too large, not JSON or not an object: Notify says what is wrong with it.
	if len(raw) > maxEvent {
		return a.Notify(ctx, raw)
	}
	if err := json.Unmarshal(raw, &env); err != nil || (env.Source == nil && env.DetailType == nil && env.Action == nil) {
		return a.Notify(ctx, raw)
	}
	if env.Source == nil && env.DetailType == nil {
		return a.Act(ctx, raw)
	}
	if deref(env.Source) != ScheduledSource || deref(env.DetailType) != ScheduledDetailType {
		err := &UnsupportedEvent{Source: deref(env.Source), DetailType: deref(env.DetailType)}
		a.Log.WarnContext(ctx, "notifier: unsupported event", "source", err.Source, "detail_type", err.DetailType)
		return nil, err
	}
	return a.Sweep(ctx, env.Resources...)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Sweep does on AWS what the embedded bot's background loop does
// (approval.Service.Sweep): it reads the requests on which something is due,
// a page at a time, closes those past their expiry (their pages deleted, their
// Slack messages updated, the task failed with "Expired"), and takes over every
// effect whose run died or whose retry time came: notifications that failed,
// outcomes not yet delivered (a "task already closed" after an earlier send of
// ours counts as delivered), pages to delete, messages to update. Then it
// writes the audit trail's checkpoints (approval.Service.Checkpoint). rules
// names what triggered the sweep, for the log.
func (a *App) Sweep(ctx context.Context, rules ...string) (SweepOutput, error) {
	log := a.Log.With("rules", rules)
	st, err := a.Service.Sweep(ctx)
	out := SweepOutput{Expired: st.Expired, Advanced: st.Advanced, Undelivered: st.Left, Canceled: st.Gone}
	if err != nil {
		log.ErrorContext(ctx, "sweep: failed", "expired", out.Expired, "advanced", out.Advanced, "undelivered", out.Undelivered, "canceled", out.Canceled, "err", err)
		return out, &SweepFailed{Err: err}
	}
	// The trails the sweep itself grew are sealed by the next sweep's
	// checkpoint, once the audit journal's index has settled.
	n, err := a.Service.Checkpoint(ctx)
	out.Checkpoints = n
	if err != nil {
		log.ErrorContext(ctx, "sweep: audit checkpoint failed; the next sweep tries again", "err", err)
	}
	log.InfoContext(ctx, "sweep: done", "expired", out.Expired, "advanced", out.Advanced, "undelivered", out.Undelivered, "canceled", out.Canceled, "checkpoints", out.Checkpoints)
	return out, nil
}
