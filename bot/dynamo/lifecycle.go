package dynamo

import (
	"time"

	"approvalbot/bot/approval"
)

// lifecycleItem holds a request's timers and hand-offs, embedded in
// requestItem (its attributes sit at the item's top level). Durations are
// milliseconds (N), times strings of timeLayout; everything is left out when
// unset, so that items written before hold none of it.
type lifecycleItem struct {
	OnTimeout    string           `dynamodbav:"onTimeout,omitempty"`
	Reminders    *remindersItem   `dynamodbav:"reminders,omitempty"`
	RemindedAt   string           `dynamodbav:"remindedAt,omitempty"`
	Escalation   *escalationItem  `dynamodbav:"escalation,omitempty"`
	NoDelegation bool             `dynamodbav:"noDelegation,omitempty"`
	Delegations  []delegationItem `dynamodbav:"delegations,omitempty"`
	Extensions   []extensionItem  `dynamodbav:"extensions,omitempty"`
	TaskDeadline string           `dynamodbav:"taskDeadline,omitempty"`
}

type remindersItem struct {
	EveryMS        int64   `dynamodbav:"everyMs,omitempty"`
	BeforeExpiryMS []int64 `dynamodbav:"beforeExpiryMs,omitempty"`
}

type escalationItem struct {
	AfterMS      int64       `dynamodbav:"afterMs"`
	Approvers    []string    `dynamodbav:"approvers,omitempty"`
	Groups       []groupItem `dynamodbav:"groups,omitempty"`
	SlackChannel string      `dynamodbav:"slackChannel,omitempty"`
	At           string      `dynamodbav:"at,omitempty"`
	Message      *chatItem   `dynamodbav:"message,omitempty"`
}

type delegationItem struct {
	From    string `dynamodbav:"from"`
	To      string `dynamodbav:"to"`
	At      string `dynamodbav:"at"`
	Channel string `dynamodbav:"channel,omitempty"`
}

type extensionItem struct {
	By   string `dynamodbav:"by"`
	At   string `dynamodbav:"at"`
	From string `dynamodbav:"from"`
	To   string `dynamodbav:"to"`
}

func newLifecycleItem(r *approval.Request) lifecycleItem {
	l := lifecycleItem{
		OnTimeout: string(r.OnTimeout), RemindedAt: formatTime(r.RemindedAt), NoDelegation: r.NoDelegation,
		TaskDeadline: formatTime(r.TaskDeadline),
	}
	if !r.Reminders.IsZero() {
		l.Reminders = &remindersItem{EveryMS: r.Reminders.Every.Milliseconds()}
		for _, b := range r.Reminders.BeforeExpiry {
			l.Reminders.BeforeExpiryMS = append(l.Reminders.BeforeExpiryMS, b.Milliseconds())
		}
	}
	if e := r.Escalation; e != nil {
		l.Escalation = &escalationItem{
			AfterMS: e.After.Milliseconds(), Approvers: append([]string(nil), e.Approvers...), SlackChannel: e.SlackChannel, At: formatTime(e.At),
		}
		for _, g := range e.Groups {
			l.Escalation.Groups = append(l.Escalation.Groups, groupItem{Name: g.Name, Approvers: append([]string(nil), g.Approvers...), Min: g.Min})
		}
		if e.Message != (approval.ChatMessage{}) {
			l.Escalation.Message = &chatItem{Channel: e.Message.Channel, TS: e.Message.TS}
		}
	}
	for _, d := range r.Delegations {
		l.Delegations = append(l.Delegations, delegationItem{From: d.From, To: d.To, At: formatTime(d.At), Channel: string(d.Channel)})
	}
	for _, x := range r.Extensions {
		l.Extensions = append(l.Extensions, extensionItem{By: x.By, At: formatTime(x.At), From: formatTime(x.From), To: formatTime(x.To)})
	}
	return l
}

func millis(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// set decodes l onto r.
func (l *lifecycleItem) set(r *approval.Request) error {
	var err error
	r.OnTimeout, r.NoDelegation = approval.TimeoutAction(l.OnTimeout), l.NoDelegation
	if r.RemindedAt, err = parseTime("remindedAt", l.RemindedAt); err != nil {
		return err
	}
	if r.TaskDeadline, err = parseTime("taskDeadline", l.TaskDeadline); err != nil {
		return err
	}
	if m := l.Reminders; m != nil {
		r.Reminders.Every = millis(m.EveryMS)
		for _, b := range m.BeforeExpiryMS {
			r.Reminders.BeforeExpiry = append(r.Reminders.BeforeExpiry, millis(b))
		}
	}
	if e := l.Escalation; e != nil {
		at, err := parseTime("escalation.at", e.At)
		if err != nil {
			return err
		}
		r.Escalation = &approval.Escalation{After: millis(e.AfterMS), Approvers: e.Approvers, SlackChannel: e.SlackChannel, At: at}
		for _, g := range e.Groups {
			r.Escalation.Groups = append(r.Escalation.Groups, approval.Group{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
		}
		if e.Message != nil {
			r.Escalation.Message = approval.ChatMessage{Channel: e.Message.Channel, TS: e.Message.TS}
		}
	}
	for _, d := range l.Delegations {
		at, err := parseTime("delegations.at", d.At)
		if err != nil {
			return err
		}
		r.Delegations = append(r.Delegations, approval.Delegation{From: d.From, To: d.To, At: at, Channel: approval.Channel(d.Channel)})
	}
	for _, x := range l.Extensions {
		var e approval.Extension
		e.By = x.By
		for _, f := range []struct {
			dst  *time.Time
			name string
			v    string
		}{{&e.At, "extensions.at", x.At}, {&e.From, "extensions.from", x.From}, {&e.To, "extensions.to", x.To}} {
			if *f.dst, err = parseTime(f.name, f.v); err != nil {
				return err
			}
		}
		r.Extensions = append(r.Extensions, e)
	}
	return nil
}
