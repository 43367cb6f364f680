package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Timers are due times kept with the request and folded into DueAt: the next
// round of reminders and the escalation (the expiry, with its timeout action,
// is the third). The sweep acts on them through advance, in the same
// versioned write that records their effects, so that two sweeps at once, or
// a sweep racing a vote, remind or escalate once.

// Reminders say when approvers who have not voted yet are reminded, while the
// request is pending.
type Reminders struct {
	// Every, when set, reminds every Every from the request's creation.
	Every time.Duration
	// BeforeExpiry reminds at each of these durations before the expiry.
	BeforeExpiry []time.Duration
}

// Limits of the timers.
const (
	MinReminderEvery = 5 * time.Minute
	MaxReminders     = 10 // beforeExpirySeconds values
)

// IsZero reports whether no reminder is asked for.
func (m Reminders) IsZero() bool { return m.Every == 0 && len(m.BeforeExpiry) == 0 }

// Escalation is who else is asked, and where, if a request is still pending
// After its creation.
type Escalation struct {
	After time.Duration
	// Approvers join a request without groups, under its policy.
	Approvers []string
	// Groups add members to the named groups of a request with groups (their
	// Min is not used).
	Groups []Group
	// SlackChannel is where the request is posted when it escalates.
	SlackChannel string
	// At is when the request escalated; zero while it has not.
	At time.Time
	// Message is the post in SlackChannel, once made.
	Message ChatMessage
}

func (e Escalation) clone() Escalation {
	c := e
	c.Approvers = slices.Clone(e.Approvers)
	c.Groups = Rule{Groups: e.Groups}.clone().Groups
	return c
}

// People are everyone the escalation adds, in order, without repeats.
func (e *Escalation) People() []string {
	var out []string
	add := func(a string) {
		if !slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, a) }) {
			out = append(out, a)
		}
	}
	for _, a := range e.Approvers {
		add(a)
	}
	for _, g := range e.Groups {
		for _, a := range g.Approvers {
			add(a)
		}
	}
	return out
}

// EscalatesAt is when the request escalates, or zero when it has no
// escalation, has escalated already, or expires first.
func (r *Request) EscalatesAt() time.Time {
	e := r.Escalation
	if e == nil || !e.At.IsZero() || r.Status != StatusPending {
		return time.Time{}
	}
	t := r.CreatedAt.Add(e.After)
	if !t.Before(r.ExpiresAt) {
		return time.Time{}
	}
	return t
}

// NextReminder is when the next round of reminders is due, or zero when none
// is left before the expiry (or the request is not pending). A round missed
// (the bot was down) is not made up for: one round goes out, and the next is
// the first scheduled after it.
func (r *Request) NextReminder() time.Time {
	if r.Status != StatusPending || r.Reminders.IsZero() {
		return time.Time{}
	}
	after := r.RemindedAt
	if after.Before(r.CreatedAt) {
		after = r.CreatedAt
	}
	var next time.Time
	consider := func(t time.Time) {
		if t.After(after) && t.Before(r.ExpiresAt) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if every := r.Reminders.Every; every > 0 {
		k := after.Sub(r.CreatedAt)/every + 1
		consider(r.CreatedAt.Add(k * every))
	}
	for _, b := range r.Reminders.BeforeExpiry {
		consider(r.ExpiresAt.Add(-b))
	}
	return next
}

// nextTimer is the earliest of the next reminder and the escalation, or zero.
func (r *Request) nextTimer() time.Time {
	a, b := r.NextReminder(), r.EscalatesAt()
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// WaitingFor are the approvers who have not voted and may still approve: those
// a reminder is for.
func (r *Request) WaitingFor() []string {
	var out []string
	for _, a := range r.Approvers {
		if r.voteOf(Identity{ID: a}) == nil && r.mayApprove(a) {
			out = append(out, a)
		}
	}
	return out
}

// fireTimers does what is due at now on r (the request about to be written)
// besides its expiry: a round of reminders (for those asked so far), then the
// escalation, each with its effects leased to lease. It reports whether it
// changed r, and returns the pages of the escalated approvers (made for r as
// escalated), to be published before r is written. On error r is unchanged.
func (s *Service) fireTimers(r *Request, lease string, now time.Time) (bool, map[string][]byte, error) {
	if r.Status != StatusPending || r.ExpiredAt(now) {
		return false, nil, nil
	}
	remind := !r.NextReminder().IsZero() && !now.Before(r.NextReminder())
	escalate := !r.EscalatesAt().IsZero() && !now.Before(r.EscalatesAt())
	if !remind && !escalate {
		return false, nil, nil
	}
	next := r.Clone()
	if remind {
		s.remind(next, lease, now)
	}
	var pages map[string][]byte
	if escalate {
		added := s.escalate(next, lease, now)
		var err error
		if pages, err = s.mintEmailLinks(next, added, s.DecideURL); err != nil {
			return false, nil, fmt.Errorf("escalate %s: %w", r.ID, err)
		}
	}
	*r = *next
	return true, pages, nil
}

// remind records a round of reminders on r: one per approver who has not
// voted (an email with their personal link, or a Slack direct message), and
// a reply in the channel message's thread naming them.
func (s *Service) remind(r *Request, lease string, now time.Time) {
	r.RemindedAt = now
	waiting := r.WaitingFor()
	for _, a := range waiting {
		switch {
		case IsSlackUserID(a) && s.Chat != nil:
			r.want(EffectRemind, a, lease, now)
		case !IsSlackUserID(a) && r.emailRecipient(a) != nil:
			r.want(EffectRemind, a, lease, now)
		}
	}
	if len(waiting) > 0 && s.Chat != nil && r.SlackChannel != "" {
		r.want(EffectRemindThread, "", lease, now)
	}
	s.log().Info("reminders due", "request_id", r.ID, "waiting", len(waiting))
}

// emailRecipient is the personal link emailed to approver a, or nil.
func (r *Request) emailRecipient(a string) *Recipient {
	for i, rc := range r.Recipients {
		if rc.Channel == ChannelEmail && strings.EqualFold(rc.Address, a) {
			return &r.Recipients[i]
		}
	}
	return nil
}

// escalationAdds returns who the escalation of r adds as approvers: for each,
// the group indexes they join (none without groups). People who are already
// approvers, or handed their vote on, are left out.
func (r *Request) escalationAdds() (people []string, groups map[string][]int) {
	e := r.Escalation
	groups = map[string][]int{}
	add := func(a string) bool {
		id := Identity{ID: a}
		if r.approverOf(id) != "" || r.delegatedAway(id) {
			return false
		}
		if !slices.Contains(people, a) {
			people = append(people, a)
		}
		return true
	}
	for _, a := range e.Approvers {
		add(a)
	}
	for _, eg := range e.Groups {
		gi := slices.IndexFunc(r.Rule.Groups, func(g Group) bool { return g.Name == eg.Name })
		if gi < 0 {
			continue
		}
		for _, a := range eg.Approvers {
			if add(a) || slices.Contains(people, a) {
				groups[a] = append(groups[a], gi)
			}
		}
	}
	return people, groups
}

// escalate adds the escalation's people to r as approvers (in their groups),
// records their notifications, the post in the escalation channel and the
// update of the request's messages. It returns who it added.
func (s *Service) escalate(r *Request, lease string, now time.Time) []string {
	people, groups := r.escalationAdds()
	for _, a := range people {
		r.Approvers = append(r.Approvers, a)
		for _, gi := range groups[a] {
			r.Rule.Groups[gi].Approvers = append(r.Rule.Groups[gi].Approvers, a)
		}
		switch {
		case IsSlackUserID(a) && s.Chat != nil:
			r.want(EffectDM, a, lease, now)
		case !IsSlackUserID(a):
			r.want(EffectEmail, a, lease, now)
		}
	}
	r.Escalation.At = now
	if s.Chat != nil && r.Escalation.SlackChannel != "" {
		r.want(EffectEscalatePost, r.Escalation.SlackChannel, lease, now)
	}
	if s.Chat != nil && r.hasChat() {
		r.want(EffectUpdate, "", lease, now)
	}
	s.log().Info("request escalated", "request_id", r.ID, "added", len(people))
	return people
}

// performTimed runs one reminder, escalation post or cancel notice. A
// reminder for a request that has closed, or for someone who has voted since,
// is not sent.
func (s *Service) performTimed(ctx context.Context, r *Request, e Effect) outcome {
	o := outcome{kind: e.Kind, target: e.Target}
	switch e.Kind {
	case EffectRemind:
		id := Identity{ID: e.Target}
		if r.Status != StatusPending || r.voteOf(id) != nil || r.approverOf(id) == "" {
			break
		}
		if IsSlackUserID(e.Target) {
			if s.Chat != nil {
				o.err = s.Chat.Notice(ctx, r, Notice{Kind: NoticeReminder, To: e.Target})
			}
			break
		}
		o.err = s.sendReminder(ctx, r, e.Target)
	case EffectRemindThread:
		if waiting := r.WaitingFor(); s.Chat != nil && r.Status == StatusPending && r.ChatMessage.TS != "" && len(waiting) > 0 {
			o.err = s.Chat.Notice(ctx, r, Notice{Kind: NoticeReminder, Waiting: waiting})
		}
	case EffectEscalatePost:
		if s.Chat == nil || r.Status != StatusPending {
			break
		}
		var m ChatMessage
		if m, o.err = s.Chat.PostIn(ctx, r, e.Target); o.err == nil {
			o.apply = func(n *Request) {
				if n.Escalation != nil {
					n.Escalation.Message = m
				}
			}
		}
	case EffectCancelNotice:
		if s.Chat != nil && r.ChatMessage.TS != "" {
			o.err = s.Chat.Notice(ctx, r, Notice{Kind: NoticeCanceled})
		}
	default:
		o.err = errors.New("not a timed effect")
	}
	return o
}

// sendReminder emails approver to their personal link again, as a reminder.
func (s *Service) sendReminder(ctx context.Context, r *Request, to string) error {
	rc := r.emailRecipient(to)
	if s.Mailer == nil || rc == nil {
		return nil
	}
	m, err := s.Renderer.Email(EmailView{Request: r, Recipient: *rc, PageURL: s.Pages.URL(rc.PageKey), Reminder: true})
	if err != nil {
		return fmt.Errorf("render reminder: %w", err)
	}
	return s.Mailer.Send(ctx, m)
}
