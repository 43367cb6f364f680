package approval

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// outcome is the result of one run of one effect.
type outcome struct {
	kind   EffectKind
	target string
	err    error
	// apply records what the effect learned (where a message was posted, that
	// the workflow was gone) on the request.
	apply func(*Request)
}

// runEffects runs the effects of r (as just written) that are leased to lease,
// in parallel, and records each as done or to retry. It returns once the
// effects the caller's answer depends on are done (delivery to a Step
// Functions workflow), with r as it then stands; the others finish, and are
// recorded, in the background. With s.Sync, or wait, it returns only when all
// are done and recorded.
func (s *Service) runEffects(ctx context.Context, r *Request, lease string, wait bool) *Request {
	ctx = context.WithoutCancel(ctx) // the change is written: see it through
	var held []Effect
	for _, e := range r.Effects {
		if e.Lease == lease && e.State == EffectPending {
			held = append(held, e)
		}
	}
	if len(held) == 0 {
		return r
	}
	outs := make([]outcome, len(held))
	var fg, all sync.WaitGroup
	for i, e := range held {
		foreground := e.Kind == EffectDeliver && r.TaskToken != ""
		if foreground {
			fg.Add(1)
		}
		all.Add(1)
		go func() {
			defer all.Done()
			if foreground {
				defer fg.Done()
			}
			outs[i] = s.perform(ctx, r, e)
		}()
	}
	finish := func() *Request {
		all.Wait()
		cur, next := s.record(ctx, r, lease, outs)
		if next != "" {
			cur = s.runEffects(ctx, cur, next, true)
		}
		return cur
	}
	if wait || s.Sync {
		return finish()
	}
	fg.Wait()
	answer := r
	for i, e := range held {
		// Only the foreground outcomes are written yet.
		if e.Kind == EffectDeliver && r.TaskToken != "" && outs[i].apply != nil {
			answer = r.Clone()
			outs[i].apply(answer)
		}
	}
	s.background.add()
	go func() {
		defer s.background.finish()
		finish()
	}()
	return answer
}

// perform runs one effect once, bounded by EffectTimeout.
func (s *Service) perform(ctx context.Context, r *Request, e Effect) outcome {
	ctx, cancel := context.WithTimeout(ctx, EffectTimeout)
	defer cancel()
	o := outcome{kind: e.Kind, target: e.Target}
	switch e.Kind {
	case EffectEmail:
		o.err = s.sendEmail(ctx, r, e.Target)
	case EffectPost:
		if s.Chat == nil {
			break
		}
		var m ChatMessage
		if m, o.err = s.Chat.Post(ctx, r); o.err == nil {
			o.apply = func(n *Request) { n.ChatMessage = m }
		}
	case EffectDM:
		if s.Chat == nil {
			break
		}
		var m ChatMessage
		if m, o.err = s.Chat.DirectMessage(ctx, r, e.Target); o.err == nil {
			o.apply = func(n *Request) {
				for _, old := range n.DirectMessages {
					if old == m {
						return
					}
				}
				n.DirectMessages = append(n.DirectMessages, m)
			}
		}
	case EffectUpdate:
		if s.Chat != nil && len(r.Messages()) > 0 {
			o.err = s.Chat.Update(ctx, r)
		}
	case EffectPages:
		if keys := r.deadPageKeys(); len(keys) > 0 {
			o.err = s.removePages(ctx, r, keys)
		}
	case EffectDeliver:
		o = s.deliver(ctx, r, e)
	case EffectRemind, EffectRemindThread, EffectEscalatePost, EffectCancelNotice:
		o = s.performTimed(ctx, r, e)
	default:
		o.err = fmt.Errorf("unknown effect %q", e.Kind)
	}
	if o.err != nil {
		s.log().Warn("effect failed", "request_id", r.ID, "effect", e.Kind, "attempt", e.Attempts, "err", o.err)
	}
	return o
}

func (s *Service) sendEmail(ctx context.Context, r *Request, to string) error {
	if s.Mailer == nil {
		return nil
	}
	for _, rc := range r.Recipients {
		if rc.Address == to && rc.Channel == ChannelEmail {
			m, err := s.Renderer.Email(EmailView{Request: r, Recipient: rc, PageURL: s.Pages.URL(rc.PageKey)})
			if err != nil {
				return fmt.Errorf("render email: %w", err)
			}
			return s.Mailer.Send(ctx, m)
		}
	}
	return nil // no personal link for this address: nothing to send
}

// deliver hands the outcome to the workflow. A workflow that no longer waits
// after an earlier attempt has most likely received that attempt's send: that
// is success. On the first attempt it means the workflow stopped waiting before
// the outcome: the request is closed as expired, its decision kept.
func (s *Service) deliver(ctx context.Context, r *Request, e Effect) outcome {
	o := outcome{kind: EffectDeliver}
	if s.Workflow == nil || (r.TaskToken == "" && r.WebhookURL == "") {
		return o // nothing waits for the outcome
	}
	err := s.Workflow.Deliver(ctx, r)
	switch {
	case err == nil:
		s.log().Info("outcome delivered", "request_id", r.ID, "decision", r.Status)
	case errors.Is(err, ErrWorkflowGone) && e.Attempts > 1:
		s.log().Info("outcome already delivered by an earlier attempt", "request_id", r.ID, "decision", r.Status)
	case errors.Is(err, ErrWorkflowGone):
		s.log().Warn("workflow no longer waiting; request closed as expired", "request_id", r.ID)
		o.apply = func(n *Request) {
			n.Reason = ReasonWorkflowGone
			n.Status = StatusExpired
		}
	default:
		o.err = err
	}
	return o
}

// maxRecordAttempts bounds how often recording a run is tried again after a
// concurrent change.
const maxRecordAttempts = 64

// record writes the outcomes of the run leased to lease onto the request,
// starting from snap (the request as that run wrote it). Effects that another
// run has taken over since are left alone. It also records what the outcomes
// call for next (a chat update when the request changed while its messages
// were written; closing a request no approver could be reached for), leased to
// the returned lease ("" when nothing follows).
func (s *Service) record(ctx context.Context, snap *Request, lease string, outs []outcome) (*Request, string) {
	cur := snap
	for attempt := 0; attempt < maxRecordAttempts; attempt++ {
		if attempt > 0 {
			r, err := s.Store.GetRequest(ctx, snap.ID)
			if err != nil {
				s.log().Error("effects not recorded; their leases will lapse", "request_id", snap.ID, "err", err)
				return cur, ""
			}
			cur = r
		}
		now := s.now()
		next := cur.Clone()
		changed, chatWritten := false, false
		for _, o := range outs {
			e := next.effect(o.kind, o.target)
			if e == nil || e.Lease != lease || e.State != EffectPending {
				continue // taken over by another run
			}
			changed = true
			e.Lease = ""
			switch {
			case o.err == nil:
				e.State, e.Error, e.At = EffectDone, "", now
				if o.apply != nil {
					o.apply(next)
				}
				chatWritten = chatWritten || o.kind == EffectPost || o.kind == EffectDM || o.kind == EffectUpdate || o.kind == EffectEscalatePost
			case e.Attempts >= MaxAttempts:
				e.State, e.Error, e.At = EffectFailed, o.err.Error(), now
			default:
				e.Error, e.LeaseUntil, e.NextAt = o.err.Error(), now, now.Add(retryDelay(e.Attempts))
			}
		}
		if !changed {
			return cur, ""
		}
		follow := newLease()
		followed := false
		if next.Status == StatusPending && next.unreachable() {
			next.Status, next.Reason = StatusCanceled, ReasonNotificationFailed
			s.log().Error("no approver could be reached; request closed", "request_id", next.ID)
		}
		// Only a change made here calls for its effects: a change that
		// another writer made since snap recorded its own.
		if next.Status != cur.Status || next.Reason != cur.Reason {
			s.wantAfterChange(next, follow, now)
			followed = true
		} else if chatWritten && s.Chat != nil && len(next.Votes) != len(snap.Votes) {
			next.want(EffectUpdate, "", follow, now) // the messages show an older state
			followed = true
		}
		if err := s.updateRequest(ctx, next); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			s.log().Error("effects not recorded; their leases will lapse", "request_id", snap.ID, "err", err)
			return cur, ""
		}
		if next.Status != cur.Status {
			s.signal(next.ID)
		}
		if !followed {
			follow = ""
		}
		return next, follow
	}
	s.log().Error("effects not recorded: too many concurrent changes; their leases will lapse", "request_id", snap.ID)
	return cur, ""
}

// unreachable reports whether every notification of the request has been
// given up.
func (r *Request) unreachable() bool {
	n := 0
	for _, e := range r.Effects {
		if e.Kind.notifies() {
			if e.State != EffectFailed {
				return false
			}
			n++
		}
	}
	return n > 0
}

// advance does what is due on r now: it closes it as expired when it is past
// its expiry, and takes over the effects whose lease lapsed and whose retry
// time came, running them like the change that caused them. It returns the
// request as it then stands.
func (s *Service) advance(ctx context.Context, r *Request) *Request {
	return s.advanceWait(ctx, r, false)
}

// advanceSync is advance, returning only once the effects are recorded.
func (s *Service) advanceSync(ctx context.Context, r *Request) *Request {
	return s.advanceWait(ctx, r, true)
}

func (s *Service) advanceWait(ctx context.Context, r *Request, wait bool) *Request {
	for attempt := 0; attempt < maxRecordAttempts; attempt++ {
		if attempt > 0 {
			cur, err := s.Store.GetRequest(ctx, r.ID)
			if err != nil {
				s.log().Error("advance request", "request_id", r.ID, "err", err)
				return r
			}
			r = cur
		}
		now := s.now()
		next := r.Clone()
		lease := newLease()
		changed := false
		if next.Status == StatusPending && next.ExpiredAt(now) {
			next.closeAtTimeout()
			s.wantAfterChange(next, lease, now)
			changed = true
		}
		// Reminders and escalation due: their effects, and the pages of
		// escalated approvers, which go up before the write.
		fired, pages, err := s.fireTimers(next, lease, now) // leaves next as it was on error
		if err != nil {
			s.log().Error("advance request: timers", "request_id", r.ID, "err", err)
		}
		changed = changed || fired
		if err := s.putPages(ctx, pages); err != nil {
			s.log().Error("advance request: escalation pages not published; it is tried again", "request_id", r.ID, "err", err)
			s.deletePages(ctx, slices.Collect(maps.Keys(pages)))
			return r
		}
		for i := range next.Effects {
			e := &next.Effects[i]
			if e.due(now) {
				e.Attempts++
				e.Lease, e.LeaseUntil = lease, now.Add(EffectLease)
				changed = true
			}
		}
		if !changed {
			return r
		}
		if err := s.updateRequest(ctx, next); err != nil {
			s.deletePages(ctx, slices.Collect(maps.Keys(pages)))
			if errors.Is(err, ErrConflict) {
				continue
			}
			s.log().Error("advance request", "request_id", r.ID, "err", err)
			return r
		}
		if next.Status != r.Status {
			s.log().Info("request closed at its expiry", "request_id", r.ID, "status", next.Status)
			s.signal(r.ID)
		}
		return s.runEffects(ctx, next, lease, wait)
	}
	return r
}
