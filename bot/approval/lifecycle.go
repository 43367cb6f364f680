package approval

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// This file holds what happens around a decision besides the votes: what
// the expiry does (TimeoutAction), more time (Extend), handing a vote on
// (Delegate), and the workflow that stopped waiting (probed by the sweep).
// Reminders and escalation, the timers, are in timers.go.

// TimeoutAction is what the expiry of a request that is still pending does.
type TimeoutAction string

// The timeout actions.
const (
	// TimeoutExpire closes the request as expired: no decision.
	TimeoutExpire TimeoutAction = "expire"
	// TimeoutReject rejects it, decided by DecidedByTimeout.
	TimeoutReject TimeoutAction = "reject"
	// TimeoutApprove approves it unless someone rejected it ("approve unless
	// someone objects"), decided by DecidedByTimeout; a request with a
	// rejection is rejected instead.
	TimeoutApprove TimeoutAction = "approve"
)

// DecidedByTimeout is Decision.By of a request decided by its timeout action.
const DecidedByTimeout = "timeout"

// ParseTimeoutAction validates an onTimeout value; the empty string means
// TimeoutExpire.
func ParseTimeoutAction(s string) (TimeoutAction, error) {
	switch a := TimeoutAction(strings.ToLower(strings.TrimSpace(s))); a {
	case "", TimeoutExpire:
		return TimeoutExpire, nil
	case TimeoutReject, TimeoutApprove:
		return a, nil
	}
	return "", Invalidf("onTimeout", "onTimeout %q is unknown; use \"expire\", \"reject\" or \"approve\"", s)
}

// ByTimeout reports whether the decision was taken by the request's timeout
// action, not by a vote.
func (d *Decision) ByTimeout() bool { return d != nil && d.By == DecidedByTimeout && d.Channel == "" }

// Delegation records an approver handing their vote to someone else.
type Delegation struct {
	From    string // the approver who handed on their vote
	To      string // who holds it now (email address or Slack user ID)
	At      time.Time
	Channel Channel // where it was done: the page (email) or Slack
}

// Extension records a change of a request's expiry.
type Extension struct {
	By       string
	At       time.Time
	From, To time.Time // the expiry before and after
}

// DelegationResult is one delegation as the workflow and webhooks receive it.
type DelegationResult struct {
	From string `json:"from"`
	To   string `json:"to"`
	At   string `json:"at"`
}

// Errors of a delegation that is refused.
var (
	// ErrDelegated: the person handed their vote to someone else and can no
	// longer vote.
	ErrDelegated = fmt.Errorf("%w: the vote was handed to someone else", ErrForbidden)
	// ErrNoDelegation: the request does not allow delegation.
	ErrNoDelegation = fmt.Errorf("%w: this request does not allow delegation", ErrForbidden)
)

// cloneLifecycle deep-copies the lifecycle fields of r into c.
func (r *Request) cloneLifecycle(c *Request) {
	c.Reminders.BeforeExpiry = slices.Clone(r.Reminders.BeforeExpiry)
	if r.Escalation != nil {
		e := r.Escalation.clone()
		c.Escalation = &e
	}
	c.Delegations = slices.Clone(r.Delegations)
	c.Extensions = slices.Clone(r.Extensions)
}

// lifecycleResult adds the escalation and the delegations to res.
func (r *Request) lifecycleResult(res *Result) {
	if e := r.Escalation; e != nil && !e.At.IsZero() {
		res.EscalatedAt = e.At.UTC().Format(time.RFC3339)
	}
	for _, d := range r.Delegations {
		res.Delegations = append(res.Delegations, DelegationResult{From: d.From, To: d.To, At: d.At.UTC().Format(time.RFC3339)})
	}
}

// delegatedAway reports whether the person id handed their vote on and is no
// longer an approver.
func (r *Request) delegatedAway(id Identity) bool {
	if r.approverOf(id) != "" {
		return false
	}
	for _, d := range r.Delegations {
		if id.Matches(d.From) {
			return true
		}
	}
	return false
}

// DelegatedTo returns the delegation that made a an approver, if any.
func (r *Request) DelegatedTo(a string) *Delegation {
	for i := len(r.Delegations) - 1; i >= 0; i-- {
		if strings.EqualFold(r.Delegations[i].To, a) {
			return &r.Delegations[i]
		}
	}
	return nil
}

// DelegationOf returns the delegation by which the person id handed on their
// vote, if they did.
func (r *Request) DelegationOf(id Identity) *Delegation {
	if !r.delegatedAway(id) {
		return nil
	}
	for i := len(r.Delegations) - 1; i >= 0; i-- {
		if id.Matches(r.Delegations[i].From) {
			return &r.Delegations[i]
		}
	}
	return nil
}

// Messages are every chat message of the request that shows it: the channel
// message, the direct messages and the escalation post.
func (r *Request) Messages() []ChatMessage {
	var out []ChatMessage
	if r.ChatMessage.TS != "" {
		out = append(out, r.ChatMessage)
	}
	out = append(out, r.DirectMessages...)
	if e := r.Escalation; e != nil && e.Message.TS != "" {
		out = append(out, e.Message)
	}
	return out
}

// closeAtTimeout closes pending request r at its expiry as its timeout action
// says.
func (r *Request) closeAtTimeout() {
	c := Reject
	switch {
	case r.OnTimeout == TimeoutApprove && r.Tally().Rejections == 0:
		c = Approve
	case r.OnTimeout == TimeoutApprove, r.OnTimeout == TimeoutReject:
	default:
		r.Status = StatusExpired
		return
	}
	r.Status = c.Status()
	r.Decision = &Decision{Choice: c, By: DecidedByTimeout, At: r.ExpiresAt}
}

// Extend gives pending request id more time: it now expires timeout from now.
// The new expiry must be later than the current one, at most MaxTimeout after
// the request's creation and, when the workflow's task deadline is known, not
// after it. Every page still in use is made again to show the new expiry
// (same address; the link in the email keeps working), and the chat messages
// are updated. Errors: ErrNotFound, ErrAlreadyDecided and ErrExpired (with the
// request), ErrInvalid (field "timeout").
func (s *Service) Extend(ctx context.Context, id, by string, timeout time.Duration) (*Request, error) {
	by = strings.TrimSpace(by)
	if by == "" {
		return nil, Invalidf("by", "who extends must be given")
	}
	if timeout < MinTimeout {
		return nil, Invalidf("timeout", "timeout must be at least 1 minute, got %s", timeout)
	}
	for range maxVoteAttempts {
		r, err := s.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("extend: %w", err)
		}
		if err := r.openErr(); err != nil {
			return r, err
		}
		now := s.now()
		to := now.Add(timeout)
		switch limit := r.CreatedAt.Add(MaxTimeout); {
		case !to.After(r.ExpiresAt):
			return r, Invalidf("timeout", "the request already expires at %s; give a timeout that ends later than that", r.ExpiresAt.UTC().Format(time.RFC3339))
		case to.After(limit):
			return r, Invalidf("timeout", "a request lives at most 30 days from its creation: it can be extended until %s at the latest (a timeout of at most %s from now)",
				limit.UTC().Format(time.RFC3339), limit.Sub(now).Truncate(time.Second))
		case !r.TaskDeadline.IsZero() && to.After(r.TaskDeadline):
			return r, Invalidf("timeout", "the workflow's task stops waiting at %s: the request can be extended until then at the latest (a timeout of at most %s from now)",
				r.TaskDeadline.UTC().Format(time.RFC3339), max(r.TaskDeadline.Sub(now), 0).Truncate(time.Second))
		}
		next := r.Clone()
		next.Extensions = append(next.Extensions, Extension{By: by, At: now, From: r.ExpiresAt, To: to})
		next.ExpiresAt = to
		pages, err := s.remint(next, s.decideURL(ctx))
		if err != nil {
			return nil, fmt.Errorf("extend %s: %w", id, err)
		}
		lease := newLease()
		if s.Chat != nil && next.hasChat() {
			next.want(EffectUpdate, "", lease, now)
		}
		if err := s.updateRequest(ctx, next); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return nil, fmt.Errorf("extend %s: %w", id, err)
		}
		s.log().Info("request extended", "request_id", id, "expires_at", to)
		// The new pages go up after the write: until then, and if putting
		// one fails, the old page's token (kept as PrevHash) still works.
		if err := s.putPages(context.WithoutCancel(ctx), pages); err != nil {
			s.log().Error("pages not made again after an extension; the old pages still work", "request_id", id, "err", err)
		}
		s.signal(id)
		return s.runEffects(ctx, next, lease, false), nil
	}
	return nil, fmt.Errorf("extend %s: too many concurrent changes: %w", id, ErrConflict)
}

// remint gives every recipient whose page is still in use a new token (the
// old one kept as PrevHash) and renders their page again, for r as it now
// stands. It returns the pages by key.
func (s *Service) remint(r *Request, decideURL string) (map[string][]byte, error) {
	pages := map[string][]byte{}
	dead := map[string]bool{}
	for _, k := range r.deadPageKeys() {
		dead[k] = true
	}
	for i := range r.Recipients {
		rc := &r.Recipients[i]
		if rc.PageKey == "" || dead[rc.PageKey] || legacyVoter(rc.Identity()) {
			continue
		}
		tok := NewRequestToken(r.ID)
		rc.PrevHash, rc.TokenHash = rc.TokenHash, HashToken(tok)
		html, err := s.Renderer.Page(PageView{Request: r, Recipient: *rc, Token: tok, DecideURL: decideURL})
		if err != nil {
			return nil, fmt.Errorf("render page: %w", err)
		}
		pages[rc.PageKey] = html
	}
	return pages, nil
}

// Delegate hands the vote of the holder of a one-time token to the person to
// (an email address): see DelegateInChat. It is the "Delegate to…" form of the
// page.
func (s *Service) Delegate(ctx context.Context, token, to string) (*Request, error) {
	if token == "" {
		return nil, Invalidf("token", "the link has no token")
	}
	hash := HashToken(token)
	id, err := s.tokenRequest(ctx, token)
	if err != nil {
		return nil, fmt.Errorf("delegate: %w", err)
	}
	return s.delegate(ctx, id, to, func(r *Request) (Identity, Channel, error) {
		rc, ok := r.RecipientByHash(hash)
		if !ok {
			return Identity{}, "", ErrNotFound
		}
		if legacyVoter(rc.Identity()) {
			return Identity{}, "", ErrNotApprover
		}
		return rc.Identity(), rc.Channel, nil
	})
}

// DelegateInChat hands the vote of approver from (a Slack user, as Slack
// vouches) on request id to the person to (a Slack user ID or an email
// address). The delegate becomes an approver in the delegator's place (in the
// same groups) and gets their own way to vote: a personal link by email, or a
// direct message in Slack; the delegator can no longer vote. Errors:
// ErrNotFound, ErrAlreadyDecided, ErrExpired, ErrAlreadyVoted, ErrDelegated
// (each with the request), ErrNotApprover, ErrNoDelegation, ErrInvalid (field
// "to": not a person who can be reached, already an approver, the requester
// without self-approval, or the delegator themselves).
func (s *Service) DelegateInChat(ctx context.Context, id string, from Identity, to string) (*Request, error) {
	return s.delegate(ctx, id, to, func(r *Request) (Identity, Channel, error) {
		if r.approverOf(from) == "" {
			if r.delegatedAway(from) {
				return from, ChannelSlack, nil // canVote says so
			}
			return Identity{}, "", ErrNotApprover
		}
		return from, ChannelSlack, nil
	})
}

func (s *Service) delegate(ctx context.Context, id, to string, who func(*Request) (Identity, Channel, error)) (*Request, error) {
	to = strings.TrimSpace(to)
	if !IsSlackUserID(to) {
		list, err := normalizeApprovers("to", []string{to})
		if err != nil {
			return nil, Invalidf("to", "%q is not an email address (or Slack user)", to)
		}
		to = list[0]
	} else if s.Chat == nil {
		return nil, Invalidf("to", "%s is a Slack user, but Slack is not configured", to)
	}
	for range maxVoteAttempts {
		r, err := s.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("delegate: %w", err)
		}
		from, ch, err := who(r)
		if err != nil {
			return r, fmt.Errorf("delegate on %s: %w", id, err)
		}
		if err := r.canVote(from); err != nil {
			return r, err
		}
		if r.NoDelegation {
			return r, ErrNoDelegation
		}
		a := r.approverOf(from)
		if a == "" {
			return r, ErrNotApprover
		}
		toID := Identity{ID: to}
		switch {
		case from.Matches(to) || strings.EqualFold(a, to):
			return r, Invalidf("to", "you cannot delegate to yourself")
		case r.approverOf(toID) != "":
			return r, Invalidf("to", "%s is already an approver of this request", to)
		case r.IsRequester(toID) && !r.Rule.AllowSelfApproval:
			return r, Invalidf("to", "%s asked for this approval and may not approve it, so cannot hold a vote on it", to)
		case r.delegatedAway(toID):
			return r, Invalidf("to", "%s handed their vote on already", to)
		}
		now := s.now()
		next := r.Clone()
		next.replaceApprover(a, to)
		next.Delegations = append(next.Delegations, Delegation{From: a, To: to, At: now, Channel: ch})
		lease := newLease()
		var page map[string][]byte
		if IsSlackUserID(to) {
			next.want(EffectDM, to, lease, now)
		} else {
			rc, html, err := s.mint(next, to, ChannelEmail, s.decideURL(ctx))
			if err != nil {
				return nil, fmt.Errorf("delegate on %s: %w", id, err)
			}
			next.Recipients = append(next.Recipients, rc)
			page = map[string][]byte{rc.PageKey: html}
			next.want(EffectEmail, to, lease, now)
		}
		s.wantAfterChange(next, lease, now)
		if err := s.putPages(ctx, page); err != nil {
			return nil, fmt.Errorf("delegate on %s: %w", id, err)
		}
		if err := s.updateRequest(ctx, next); err != nil {
			s.deletePages(context.WithoutCancel(ctx), slices.Collect(maps.Keys(page)))
			if errors.Is(err, ErrConflict) {
				continue
			}
			return nil, fmt.Errorf("delegate on %s: %w", id, err)
		}
		s.log().Info("vote delegated", "request_id", id, "channel", ch)
		s.signal(id)
		return s.runEffects(ctx, next, lease, false), nil
	}
	return nil, fmt.Errorf("delegate on %s: too many concurrent changes: %w", id, ErrConflict)
}

// replaceApprover puts b in the place of approver a: in the approvers and in
// every group a is a member of.
func (r *Request) replaceApprover(a, b string) {
	for i, x := range r.Approvers {
		if strings.EqualFold(x, a) {
			r.Approvers[i] = b
		}
	}
	for gi := range r.Rule.Groups {
		g := &r.Rule.Groups[gi]
		for i, x := range g.Approvers {
			if strings.EqualFold(x, a) {
				g.Approvers[i] = b
			}
		}
	}
}

// WorkflowProber is implemented by a Workflow that can tell whether a task
// still waits for the outcome of a pending request (Step Functions: a
// heartbeat on the task token). The sweep probes the pending requests that
// have a task token and closes those whose workflow stopped waiting.
type WorkflowProber interface {
	// Waiting returns nil when the workflow of r still waits, an error
	// matching ErrWorkflowGone when it no longer does, or another error when
	// that cannot be told now.
	Waiting(ctx context.Context, r *Request) error
}

// Probing: pages of pending requests read per sweep, and probes at once.
const (
	probePage     = 100
	probeMaxPages = 200
	probeParallel = 16
)

// WorkflowGoneBy is Cancellation.By of a request closed because its workflow
// stopped waiting (an execution stopped, timed out or deleted).
const WorkflowGoneBy = "workflow"

// probe asks the workflow of every pending request that has a task token
// whether it still waits, a page at a time and in bounded parallel, and closes
// as canceled those whose workflow is gone. It returns how many it closed.
func (s *Service) probe(ctx context.Context) (int, error) {
	p, ok := s.Workflow.(WorkflowProber)
	if !ok {
		return 0, nil
	}
	var (
		closed int
		mu     sync.Mutex
		cursor string
	)
	sem := make(chan struct{}, probeParallel)
	for range probeMaxPages {
		rs, next, err := s.Store.List(ctx, Query{Cursor: cursor, Limit: probePage})
		if err != nil {
			return closed, fmt.Errorf("probe workflows: %w", err)
		}
		var wg sync.WaitGroup
		for _, r := range rs {
			if r.TaskToken == "" || r.Status != StatusPending {
				continue
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				pctx, cancel := context.WithTimeout(ctx, EffectTimeout)
				err := p.Waiting(pctx, r)
				cancel()
				switch {
				case err == nil:
				case errors.Is(err, ErrWorkflowGone):
					if s.closeGone(ctx, r) {
						mu.Lock()
						closed++
						mu.Unlock()
					}
				default:
					s.log().Warn("probe workflow", "request_id", r.ID, "err", err)
				}
			})
		}
		wg.Wait()
		if next == "" || next == cursor {
			break
		}
		cursor = next
	}
	return closed, nil
}

// closeGone closes pending request r, whose workflow no longer waits, as
// canceled by WorkflowGoneBy. Nothing is delivered (nothing waits); its pages
// go and its chat messages say so. It reports whether it closed it.
func (s *Service) closeGone(ctx context.Context, r *Request) bool {
	for attempt := 0; attempt < maxRecordAttempts; attempt++ {
		if attempt > 0 {
			cur, err := s.Store.GetRequest(ctx, r.ID)
			if err != nil {
				s.log().Error("close request of a stopped workflow", "request_id", r.ID, "err", err)
				return false
			}
			r = cur
		}
		if r.Status != StatusPending {
			return false
		}
		now := s.now()
		next := r.Clone()
		next.Status, next.Reason = StatusCanceled, ReasonWorkflowGone
		next.Canceled = &Cancellation{By: WorkflowGoneBy, Reason: "the workflow stopped waiting (its execution was stopped, timed out or deleted)", At: now}
		lease := newLease()
		s.wantAfterChange(next, lease, now)
		if e := next.effect(EffectDeliver, ""); e != nil {
			*e = Effect{Kind: EffectDeliver, State: EffectDone, At: now} // nothing waits for it
		}
		if err := s.updateRequest(ctx, next); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			s.log().Error("close request of a stopped workflow", "request_id", r.ID, "err", err)
			return false
		}
		s.log().Info("request closed: its workflow stopped waiting", "request_id", r.ID)
		s.signal(r.ID)
		s.runEffects(ctx, next, lease, true)
		return true
	}
	return false
}

// wantCancelNotice records the notice of a cancellation in the request's
// channel thread, leased to lease.
func (s *Service) wantCancelNotice(r *Request, lease string, now time.Time) {
	if s.Chat != nil && r.SlackChannel != "" {
		r.want(EffectCancelNotice, "", lease, now)
	}
}
