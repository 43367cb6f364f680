package approval

import (
	"slices"
	"time"
)

// EffectKind names what an effect does.
type EffectKind string

// The effects a change of a request can cause. Each is idempotent: running it
// twice has the effect of running it once.
const (
	// EffectEmail sends approver Target their email with their personal link.
	EffectEmail EffectKind = "email"
	// EffectPost posts the request to its Slack channel.
	EffectPost EffectKind = "post"
	// EffectDM sends Slack approver Target a direct message with the buttons.
	EffectDM EffectKind = "dm"
	// EffectUpdate rewrites the request's chat messages to show it as it stands.
	EffectUpdate EffectKind = "update"
	// EffectPages deletes the pages that must no longer be published.
	EffectPages EffectKind = "pages"
	// EffectDeliver hands the outcome to the workflow (Step Functions or a webhook).
	EffectDeliver EffectKind = "deliver"
	// EffectRemind reminds approver Target, who has not voted: an email with
	// their same personal link, or a Slack direct message.
	EffectRemind EffectKind = "remind"
	// EffectRemindThread replies in the thread of the channel message,
	// naming the approvers who have not voted.
	EffectRemindThread EffectKind = "remind-thread"
	// EffectEscalatePost posts the escalated request to channel Target.
	EffectEscalatePost EffectKind = "escalate-post"
	// EffectCancelNotice replies in the thread of the channel message who
	// canceled the request and why.
	EffectCancelNotice EffectKind = "cancel-notice"
)

// notifies reports whether the effect reaches an approver.
func (k EffectKind) notifies() bool { return k == EffectEmail || k == EffectPost || k == EffectDM }

// EffectState is where an effect stands.
type EffectState string

// The states of an effect.
const (
	EffectPending EffectState = "pending"
	EffectDone    EffectState = "done"
	EffectFailed  EffectState = "failed" // given up after MaxAttempts
)

// Effect is one thing a change of a request requires, recorded in the same write
// as the change. It runs under a lease: only the holder runs it until
// LeaseUntil; after that anyone (the next change, the sweep, a restart) may take
// it over.
type Effect struct {
	Kind   EffectKind
	Target string // the recipient of a notification; empty otherwise
	State  EffectState
	// Attempts counts the leases taken on the effect, each one a run.
	Attempts int
	// Lease names the run holding the effect until LeaseUntil.
	Lease      string
	LeaseUntil time.Time
	// NextAt is the earliest time of the next attempt after a failure.
	NextAt time.Time
	// Error is the last failure, in words.
	Error string
	// At is when the effect was done or given up.
	At time.Time
}

// Effect timing.
const (
	// EffectLease is how long a run holds an effect. Runs are abandoned well
	// before (EffectTimeout), so that a lease never lapses while its run may
	// still take effect.
	EffectLease = 2 * time.Minute
	// EffectTimeout bounds one attempt of one effect.
	EffectTimeout = 30 * time.Second
	// MaxAttempts is how often an effect is tried before it is given up.
	MaxAttempts = 8
)

// retryDelay is the pause before attempt n+1 (n >= 1): 1 s, 2 s, 4 s … up to 5 min.
func retryDelay(n int) time.Duration {
	d := time.Second << min(max(n-1, 0), 9)
	return min(d, 5*time.Minute)
}

// effect returns the request's effect of kind k for target, or nil.
func (r *Request) effect(k EffectKind, target string) *Effect {
	for i := range r.Effects {
		if r.Effects[i].Kind == k && r.Effects[i].Target == target {
			return &r.Effects[i]
		}
	}
	return nil
}

// SupersedeEffects folds each effect into the earlier one of the same kind
// and target, which it replaces in place: the request as a store that appends
// a change's effects (a quick vote) must read it back, and as want would have
// recorded it.
func (r *Request) SupersedeEffects() {
	out := r.Effects[:0]
	for _, e := range r.Effects {
		if i := slices.IndexFunc(out, func(o Effect) bool { return o.Kind == e.Kind && o.Target == e.Target }); i >= 0 {
			out[i] = e
			continue
		}
		out = append(out, e)
	}
	clear(r.Effects[len(out):])
	r.Effects = out
}

// want records that effect (k, target) must run (again), leased to lease until
// until: a change made it necessary, and its writer runs it at once.
func (r *Request) want(k EffectKind, target, lease string, now time.Time) {
	e := r.effect(k, target)
	if e == nil {
		r.Effects = append(r.Effects, Effect{Kind: k, Target: target})
		e = &r.Effects[len(r.Effects)-1]
	}
	*e = Effect{Kind: k, Target: target, State: EffectPending, Attempts: 1, Lease: lease, LeaseUntil: now.Add(EffectLease)}
}

// due reports whether an effect may be taken over at now.
func (e *Effect) due(now time.Time) bool {
	return e.State == EffectPending && !now.Before(e.LeaseUntil) && !now.Before(e.NextAt)
}

// DueAt is when something must next happen to the request: while pending,
// its expiry, its next round of reminders and its escalation (timers.go); or
// the earliest time an unfinished effect may be taken over. It is zero when
// nothing is due; stores index it (the due index).
func (r *Request) DueAt() time.Time {
	var (
		at  time.Time
		set bool
	)
	take := func(t time.Time) {
		if !set || t.Before(at) {
			at, set = t, true
		}
	}
	if r.Status == StatusPending {
		take(r.ExpiresAt)
		if t := r.nextTimer(); !t.IsZero() {
			take(t)
		}
	}
	for _, e := range r.Effects {
		if e.State == EffectPending {
			t := later(e.LeaseUntil, e.NextAt)
			if t.IsZero() {
				t = r.CreatedAt // never leased, no retry time: due at once
			}
			take(t)
		}
	}
	return at
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// NotificationState is one approver's notification as the API shows it.
type NotificationState struct {
	To      string
	Channel Channel
	State   string // sent, pending, retrying or failed
	Error   string
}

// Notifications are the states of the request's notifications.
func (r *Request) Notifications() []NotificationState {
	var out []NotificationState
	for _, e := range r.Effects {
		if !e.Kind.notifies() {
			continue
		}
		n := NotificationState{To: e.Target, Channel: ChannelSlack, Error: e.Error}
		if e.Kind == EffectEmail {
			n.Channel = ChannelEmail
		}
		if e.Kind == EffectPost {
			n.To = r.SlackChannel
		}
		switch {
		case e.State == EffectDone:
			n.State, n.Error = "sent", ""
		case e.State == EffectFailed:
			n.State = "failed"
		case e.Error != "":
			n.State = "retrying"
		default:
			n.State = "pending"
		}
		out = append(out, n)
	}
	return out
}
