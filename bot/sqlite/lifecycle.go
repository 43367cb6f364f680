package sqlite

import (
	"time"

	"approvalbot/bot/approval"
)

// lifecycleJSON is the part of the doc column that holds a request's timers
// and hand-offs (embedded in docJSON, so its fields sit at the doc's top
// level). Durations are milliseconds, times Unix milliseconds; everything is
// left out when unset, so that rows written before hold none of it.
type (
	lifecycleJSON struct {
		OnTimeout    string           `json:"onTimeout,omitempty"`
		Reminders    *remindersJSON   `json:"reminders,omitempty"`
		RemindedAt   int64            `json:"remindedAt,omitempty"`
		Escalation   *escalationJSON  `json:"escalation,omitempty"`
		NoDelegation bool             `json:"noDelegation,omitempty"`
		Delegations  []delegationJSON `json:"delegations,omitempty"`
		Extensions   []extensionJSON  `json:"extensions,omitempty"`
		TaskDeadline int64            `json:"taskDeadline,omitempty"`
	}
	remindersJSON struct {
		Every        int64   `json:"every,omitempty"`
		BeforeExpiry []int64 `json:"beforeExpiry,omitempty"`
	}
	escalationJSON struct {
		After        int64       `json:"after"`
		Approvers    []string    `json:"approvers,omitempty"`
		Groups       []groupJSON `json:"groups,omitempty"`
		SlackChannel string      `json:"slackChannel,omitempty"`
		At           int64       `json:"at,omitempty"`
		Message      *chatJSON   `json:"message,omitempty"`
	}
	delegationJSON struct {
		From    string `json:"from"`
		To      string `json:"to"`
		At      int64  `json:"at"`
		Channel string `json:"channel,omitempty"`
	}
	extensionJSON struct {
		By   string `json:"by"`
		At   int64  `json:"at"`
		From int64  `json:"from"`
		To   int64  `json:"to"`
	}
)

func durMS(d time.Duration) int64     { return d.Milliseconds() }
func fromDurMS(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// encodeLifecycle is the doc part of r's timers and hand-offs.
func encodeLifecycle(r *approval.Request) lifecycleJSON {
	l := lifecycleJSON{
		OnTimeout: string(r.OnTimeout), RemindedAt: ms(r.RemindedAt), NoDelegation: r.NoDelegation, TaskDeadline: ms(r.TaskDeadline),
	}
	if !r.Reminders.IsZero() {
		l.Reminders = &remindersJSON{Every: durMS(r.Reminders.Every)}
		for _, b := range r.Reminders.BeforeExpiry {
			l.Reminders.BeforeExpiry = append(l.Reminders.BeforeExpiry, durMS(b))
		}
	}
	if e := r.Escalation; e != nil {
		l.Escalation = &escalationJSON{After: durMS(e.After), Approvers: e.Approvers, SlackChannel: e.SlackChannel, At: ms(e.At)}
		for _, g := range e.Groups {
			l.Escalation.Groups = append(l.Escalation.Groups, groupJSON{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
		}
		if e.Message != (approval.ChatMessage{}) {
			m := chatJSON(e.Message)
			l.Escalation.Message = &m
		}
	}
	for _, d := range r.Delegations {
		l.Delegations = append(l.Delegations, delegationJSON{From: d.From, To: d.To, At: ms(d.At), Channel: string(d.Channel)})
	}
	for _, x := range r.Extensions {
		l.Extensions = append(l.Extensions, extensionJSON{By: x.By, At: ms(x.At), From: ms(x.From), To: ms(x.To)})
	}
	return l
}

// decodeLifecycle sets r's timers and hand-offs from l.
func decodeLifecycle(r *approval.Request, l *lifecycleJSON) {
	r.OnTimeout = approval.TimeoutAction(l.OnTimeout)
	r.RemindedAt, r.NoDelegation, r.TaskDeadline = fromMS(l.RemindedAt), l.NoDelegation, fromMS(l.TaskDeadline)
	if m := l.Reminders; m != nil {
		r.Reminders.Every = fromDurMS(m.Every)
		for _, b := range m.BeforeExpiry {
			r.Reminders.BeforeExpiry = append(r.Reminders.BeforeExpiry, fromDurMS(b))
		}
	}
	if e := l.Escalation; e != nil {
		r.Escalation = &approval.Escalation{After: fromDurMS(e.After), Approvers: e.Approvers, SlackChannel: e.SlackChannel, At: fromMS(e.At)}
		for _, g := range e.Groups {
			r.Escalation.Groups = append(r.Escalation.Groups, approval.Group{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
		}
		if e.Message != nil {
			r.Escalation.Message = approval.ChatMessage(*e.Message)
		}
	}
	for _, d := range l.Delegations {
		r.Delegations = append(r.Delegations, approval.Delegation{From: d.From, To: d.To, At: fromMS(d.At), Channel: approval.Channel(d.Channel)})
	}
	for _, x := range l.Extensions {
		r.Extensions = append(r.Extensions, approval.Extension{By: x.By, At: fromMS(x.At), From: fromMS(x.From), To: fromMS(x.To)})
	}
}
