package approval

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// EscalationInput is the escalation of a new request.
type EscalationInput struct {
	// After is how long after its creation a request still pending
	// escalates: positive and shorter than the timeout.
	After time.Duration
	// Approvers join a request without groups (under its policy).
	Approvers []string
	// Groups add members to the named groups of a request with groups.
	Groups []GroupInput
	// SlackChannel is where the request is posted when it escalates.
	SlackChannel string
}

// validateLifecycle checks the timing and hand-off fields of in and sets them
// on r, whose approvers and rule are already set. Errors name the field as the
// API does ("reminders.everySeconds", "escalation.approvers"...).
func (in NewRequest) validateLifecycle(r *Request) error {
	a, err := ParseTimeoutAction(in.OnTimeout)
	if err != nil {
		return err
	}
	r.OnTimeout = a
	r.NoDelegation = in.NoDelegation
	r.TaskDeadline = in.TaskDeadline
	if err := in.validateReminders(r); err != nil {
		return err
	}
	if in.Escalation != nil {
		e, err := in.validateEscalation(r)
		if err != nil {
			return err
		}
		r.Escalation = e
	}
	return nil
}

func (in NewRequest) validateReminders(r *Request) error {
	m := in.Reminders
	switch {
	case m.Every < 0 || (m.Every > 0 && m.Every < MinReminderEvery):
		return Invalidf("reminders.everySeconds", "reminders.everySeconds must be at least %d (5 minutes), got %d", int64(MinReminderEvery/time.Second), int64(m.Every/time.Second))
	case m.Every > 0 && m.Every >= in.Timeout:
		return Invalidf("reminders.everySeconds", "reminders.everySeconds (%d) must be shorter than the timeout (%d seconds)", int64(m.Every/time.Second), int64(in.Timeout/time.Second))
	case len(m.BeforeExpiry) > MaxReminders:
		return Invalidf("reminders.beforeExpirySeconds", "reminders.beforeExpirySeconds has at most %d values", MaxReminders)
	}
	var before []time.Duration
	for _, b := range m.BeforeExpiry {
		switch {
		case b <= 0:
			return Invalidf("reminders.beforeExpirySeconds", "reminders.beforeExpirySeconds values must be positive, got %d", int64(b/time.Second))
		case b >= in.Timeout:
			return Invalidf("reminders.beforeExpirySeconds", "reminders.beforeExpirySeconds value %d is not shorter than the timeout (%d seconds)", int64(b/time.Second), int64(in.Timeout/time.Second))
		case slices.Contains(before, b):
			return Invalidf("reminders.beforeExpirySeconds", "reminders.beforeExpirySeconds value %d is given twice", int64(b/time.Second))
		}
		before = append(before, b)
	}
	slices.SortFunc(before, func(a, b time.Duration) int { return cmp.Compare(b, a) }) // earliest reminder first
	r.Reminders = Reminders{Every: m.Every, BeforeExpiry: before}
	return nil
}

func (in NewRequest) validateEscalation(r *Request) (*Escalation, error) {
	ei := in.Escalation
	e := &Escalation{After: ei.After, SlackChannel: strings.TrimSpace(ei.SlackChannel)}
	switch {
	case ei.After <= 0:
		return nil, Invalidf("escalation.afterSeconds", "escalation.afterSeconds must be positive")
	case ei.After >= in.Timeout:
		return nil, Invalidf("escalation.afterSeconds", "escalation.afterSeconds (%d) must be shorter than the timeout (%d seconds)", int64(ei.After/time.Second), int64(in.Timeout/time.Second))
	case e.SlackChannel != "" && !slackChannelRe.MatchString(e.SlackChannel):
		return nil, Invalidf("escalation.slackChannel", "escalation.slackChannel %q is not a Slack channel ID or name", e.SlackChannel)
	case r.Rule.Policy == PolicyAll && len(r.Rule.Groups) == 0:
		return nil, Invalidf("escalation", `escalation under policy "all" would only ask for more approvals; use "any", "quorum:N" or groups`)
	}
	taken := func(field, a string) error {
		if r.approverOf(Identity{ID: a}) != "" {
			return Invalidf(field, "%s is already an approver of this request", a)
		}
		return nil
	}
	if len(r.Rule.Groups) > 0 {
		if len(ei.Approvers) > 0 {
			return nil, Invalidf("escalation.approvers", "the request has groups: give escalation.groups, naming the group each escalation approver joins")
		}
		if len(ei.Groups) == 0 {
			return nil, Invalidf("escalation.groups", "escalation.groups is required: who joins which group when the request escalates")
		}
		seen := map[string]bool{}
		for _, g := range ei.Groups {
			name := strings.TrimSpace(g.Name)
			if !slices.ContainsFunc(r.Rule.Groups, func(x Group) bool { return x.Name == name }) {
				return nil, Invalidf("escalation.groups", "escalation.groups names %q, which is not a group of the request", g.Name)
			}
			if seen[name] {
				return nil, Invalidf("escalation.groups", "escalation.groups names %q twice", name)
			}
			seen[name] = true
			if g.Min != 0 {
				return nil, Invalidf("escalation.groups", "escalation.groups %q: min is the request's group's own; leave it out", name)
			}
			members, err := normalizeApprovers("escalation.groups", g.Approvers)
			if err != nil {
				return nil, err
			}
			for _, m := range members {
				if err := taken("escalation.groups", m); err != nil {
					return nil, err
				}
			}
			e.Groups = append(e.Groups, Group{Name: name, Approvers: members})
		}
	} else {
		if len(ei.Groups) > 0 {
			return nil, Invalidf("escalation.groups", "the request has no groups: give escalation.approvers")
		}
		members, err := normalizeApprovers("escalation.approvers", ei.Approvers)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if err := taken("escalation.approvers", m); err != nil {
				return nil, err
			}
		}
		e.Approvers = members
	}
	field := "escalation.approvers"
	if len(e.Groups) > 0 {
		field = "escalation.groups"
	}
	if n := len(r.Approvers) + len(e.People()); n > MaxApprovers {
		return nil, Invalidf(field, "at most %d approvers are allowed, escalation included (%d given)", MaxApprovers, n)
	}
	return e, nil
}

// checkLifecycle refuses what the service cannot do for r: escalation
// approvers in Slack without Slack. An escalation channel without Slack is
// dropped with a warning, as the request's own channel is. (A timeout longer
// than the workflow's task is the caller's to refuse: it knows the task's
// timeout as a duration, where TaskDeadline only bounds extensions.)
func (s *Service) checkLifecycle(r *Request) error {
	e := r.Escalation
	if e == nil || s.Chat != nil {
		return nil
	}
	for _, a := range e.People() {
		if IsSlackUserID(a) {
			field := "escalation.approvers"
			if len(e.Groups) > 0 {
				field = "escalation.groups"
			}
			return Invalidf(field, "escalation approver %s is a Slack user, but Slack is not configured", a)
		}
	}
	if e.SlackChannel != "" {
		s.log().Warn("escalation names a Slack channel but Slack is not configured", "slack_channel", e.SlackChannel)
		e.SlackChannel = ""
	}
	return nil
}
