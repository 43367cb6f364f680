package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Service runs the lifecycle of approval requests over the interfaces it is given.
// Store, Pages and Renderer are required; Mailer, Chat and Workflow may be nil
// (no email, no chat, nothing waiting).
type Service struct {
	Store    Store
	Pages    Pages
	Renderer Renderer
	Mailer   Mailer
	Chat     Chat
	Workflow Workflow

	// DecideURL is where the one-time pages post decisions.
	DecideURL string
	// DefaultSlackChannel is used for requests that name no Slack channel when
	// Chat is set.
	DefaultSlackChannel string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives one line per event worth knowing; nil discards.
	Log *slog.Logger

	watchMu  sync.Mutex
	watchers map[string][]chan struct{}

	deliverMu  sync.Mutex
	delivering map[string]bool
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// Create validates in, mints one token per recipient (each email approver and the
// Slack channel), publishes the one-time pages, stores the request and notifies
// the recipients. With a task token it is idempotent: a second call for the same
// token returns the request created by the first, with created false.
func (s *Service) Create(ctx context.Context, in NewRequest) (r *Request, created bool, err error) {
	r, err = in.validate()
	if err != nil {
		return nil, false, err
	}
	if r.SlackChannel == "" && s.Chat != nil {
		r.SlackChannel = s.DefaultSlackChannel
	}
	if s.Chat == nil && r.SlackChannel != "" {
		s.log().Warn("request names a Slack channel but Slack is not configured", "slack_channel", r.SlackChannel)
		r.SlackChannel = ""
	}
	now := s.now()
	r.ID = NewID()
	if r.TaskToken != "" {
		r.ID = IDFromTaskToken(r.TaskToken)
		if old, err := s.Store.GetRequest(ctx, r.ID); err == nil {
			return old, false, nil
		} else if !errors.Is(err, ErrNotFound) {
			return nil, false, fmt.Errorf("create request: %w", err)
		}
	}
	r.CreatedAt = now.Truncate(time.Millisecond)
	r.ExpiresAt = r.CreatedAt.Add(in.Timeout)

	// Mint tokens and render everything before any side effect.
	var (
		tokens []Token
		pages  = map[string][]byte{}
		mails  []Email
	)
	add := func(addr string, c Channel) error {
		tok, hash := NewToken()
		rc := Recipient{Address: addr, Channel: c, TokenHash: hash, PageKey: NewPageKey()}
		r.Recipients = append(r.Recipients, rc)
		tokens = append(tokens, Token{Hash: hash, RequestID: r.ID, Recipient: addr, Channel: c, PageKey: rc.PageKey, ExpiresAt: r.ExpiresAt})
		html, err := s.Renderer.Page(PageView{Request: r, Recipient: rc, Token: tok, DecideURL: s.DecideURL})
		if err != nil {
			return fmt.Errorf("render page: %w", err)
		}
		pages[rc.PageKey] = html
		if c == ChannelEmail && s.Mailer != nil {
			m, err := s.Renderer.Email(EmailView{Request: r, Recipient: rc, PageURL: s.Pages.URL(rc.PageKey)})
			if err != nil {
				return fmt.Errorf("render email: %w", err)
			}
			mails = append(mails, m)
		}
		return nil
	}
	for _, a := range r.Approvers {
		if IsSlackUserID(a) {
			continue // reached through Slack only
		}
		if err := add(a, ChannelEmail); err != nil {
			return nil, false, fmt.Errorf("create request: %w", err)
		}
	}
	if r.SlackChannel != "" {
		if err := add(r.SlackChannel, ChannelSlack); err != nil {
			return nil, false, fmt.Errorf("create request: %w", err)
		}
	}
	if len(r.Recipients) == 0 {
		return nil, false, Invalidf("approvers", "no approver can be reached: Slack user IDs need a Slack channel")
	}

	// Pages first: unreachable until someone has the link, harmless if the
	// request is never stored.
	if err := s.putPages(ctx, pages); err != nil {
		s.deletePages(ctx, r)
		return nil, false, fmt.Errorf("create request %s: %w", r.ID, err)
	}
	if err := s.Store.CreateRequest(ctx, r, tokens); err != nil {
		s.deletePages(ctx, r)
		if errors.Is(err, ErrConflict) && r.TaskToken != "" {
			old, gerr := s.Store.GetRequest(ctx, r.ID)
			if gerr == nil {
				return old, false, nil
			}
		}
		return nil, false, fmt.Errorf("create request %s: %w", r.ID, err)
	}
	s.log().Info("request created", "request_id", r.ID, "recipients", len(r.Recipients), "expires_at", r.ExpiresAt)
	return r, true, s.notify(ctx, r, mails)
}

func (s *Service) putPages(ctx context.Context, pages map[string][]byte) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(pages))
	for key, html := range pages {
		wg.Go(func() {
			if err := s.Pages.Put(ctx, key, html); err != nil {
				errs <- fmt.Errorf("put page: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

// notify sends the emails and posts the chat message, concurrently. A failure to
// reach one recipient does not stop the others; it is logged and returned.
func (s *Service) notify(ctx context.Context, r *Request, mails []Email) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(mails)+1)
	for _, m := range mails {
		wg.Go(func() {
			if err := s.Mailer.Send(ctx, m); err != nil {
				s.log().Error("email not sent", "request_id", r.ID, "to", m.To, "err", err)
				errs <- fmt.Errorf("email %s: %w", m.To, err)
			}
		})
	}
	if rc, ok := r.Recipient(ChannelSlack); ok && s.Chat != nil {
		wg.Go(func() {
			msg, err := s.Chat.Post(ctx, r, s.Pages.URL(rc.PageKey))
			if err == nil {
				r.ChatMessage = msg
				err = s.Store.SetChatMessage(ctx, r.ID, msg)
			}
			if err == nil {
				// A decision taken while the message was being posted found no
				// message to update: update it now.
				if cur, gerr := s.Store.GetRequest(ctx, r.ID); gerr == nil && cur.Status != StatusPending {
					s.updateChat(ctx, cur)
				}
			}
			if err != nil {
				s.log().Error("chat message not posted", "request_id", r.ID, "err", err)
				errs <- fmt.Errorf("chat message: %w", err)
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(collect(errs)...); err != nil {
		return fmt.Errorf("notify request %s: %w", r.ID, err)
	}
	return nil
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// DecideInput is one press of Approve or Reject on a one-time page.
type DecideInput struct {
	Token   string // the raw one-time token
	Choice  Choice
	Comment string
	By      string // who decided; empty means the token's recipient
}

// Decide claims the token and, if this is the first valid claim, records the
// decision and hands it on. Errors: ErrNotFound (unknown token), ErrAlreadyDecided
// and ErrExpired (with the request returned, so the caller can say by whom and
// when), ErrWorkflowGone (the decision was taken but nothing waits for it any more;
// the request is returned, closed as expired), ErrInvalid (bad input).
func (s *Service) Decide(ctx context.Context, in DecideInput) (*Request, error) {
	if in.Token == "" {
		return nil, Invalidf("token", "the link has no token")
	}
	tok, err := s.Store.GetToken(ctx, HashToken(in.Token))
	if err != nil {
		return nil, fmt.Errorf("decide: %w", err)
	}
	by := in.By
	if by == "" {
		by = tok.Recipient
		if tok.Channel == ChannelSlack {
			by = "Slack channel " + tok.Recipient
		}
	}
	return s.claim(ctx, tok.Hash, in.Choice, in.Comment, by, tok.Channel)
}

// DecideInChat decides request id on behalf of a chat user who pressed a button
// in the request's chat message. The caller has checked that by is an approver.
func (s *Service) DecideInChat(ctx context.Context, id string, c Choice, comment, by string) (*Request, error) {
	r, err := s.Store.GetRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("decide in chat: %w", err)
	}
	rc, ok := r.Recipient(ChannelSlack)
	if !ok {
		return nil, fmt.Errorf("decide in chat: request %s has no chat recipient: %w", id, ErrNotFound)
	}
	return s.claim(ctx, rc.TokenHash, c, comment, by, ChannelSlack)
}

func (s *Service) claim(ctx context.Context, hash string, c Choice, comment, by string, ch Channel) (*Request, error) {
	if c != Approve && c != Reject {
		return nil, Invalidf("decision", "decision must be %q or %q", Approve, Reject)
	}
	comment = strings.TrimSpace(NormalizeNewlines(comment))
	if utf8.RuneCountInString(comment) > MaxComment {
		return nil, Invalidf("comment", "comment is longer than %d characters", MaxComment)
	}
	d := Decision{Choice: c, By: by, Channel: ch, Comment: comment, At: s.now().Truncate(time.Millisecond)}
	r, err := s.Store.Claim(ctx, hash, d)
	switch {
	case err == nil:
		s.log().Info("request decided", "request_id", r.ID, "decision", r.Status, "channel", ch)
		r = s.finish(ctx, r)
		if r.Status == StatusExpired {
			return r, ErrWorkflowGone
		}
		return r, nil
	case errors.Is(err, ErrAlreadyDecided), errors.Is(err, ErrExpired):
		tok, terr := s.Store.GetToken(ctx, hash)
		if terr != nil {
			return nil, fmt.Errorf("claim: %w", terr)
		}
		r, gerr := s.Store.GetRequest(ctx, tok.RequestID)
		if gerr != nil {
			return nil, fmt.Errorf("claim: %w", gerr)
		}
		if r.Status == StatusPending && r.ExpiredAt(d.At) {
			r = s.expire(ctx, r)
		} else if r.Status != StatusPending && !r.Delivered && r.closedAt().Before(d.At.Add(-RedeliverGrace)) {
			// A decision whose delivery failed earlier: this attempt delivers it.
			// Within the grace period the winner (perhaps in another process) may
			// still be delivering it; a second send would find the task closed.
			r = s.finish(ctx, r)
		}
		if r.Status.Decided() {
			return r, ErrAlreadyDecided
		}
		return r, ErrExpired
	default:
		return nil, fmt.Errorf("claim: %w", err)
	}
}

// RedeliverGrace is how long after a request closed a later attempt on it may
// take over an undelivered outcome. It keeps a second process from sending the
// outcome while the first is still sending it.
const RedeliverGrace = 30 * time.Second

// closedAt is when the request left pending: its decision, or its expiry.
func (r *Request) closedAt() time.Time {
	if r.Decision != nil && r.Status.Decided() {
		return r.Decision.At
	}
	return r.ExpiresAt
}

// finish hands the outcome of a closed request on: it delivers it to the workflow,
// deletes every page, updates the chat message and wakes waiting callers. It
// returns the request as it stands afterwards. It runs to its end even if ctx
// is cancelled: the request is already closed, and a caller that goes away (a
// long poll at its deadline, a closed page, a server shutting down) must not
// leave its outcome undelivered or its pages published.
func (s *Service) finish(ctx context.Context, r *Request) *Request {
	ctx = context.WithoutCancel(ctx)
	var wg sync.WaitGroup
	closed := r
	wg.Go(func() { s.deletePages(ctx, closed) })
	if !r.Delivered {
		r = s.deliver(ctx, r)
	}
	wg.Go(func() { s.updateChat(ctx, r) })
	wg.Wait()
	s.signal(r.ID)
	return r
}

func (s *Service) deliver(ctx context.Context, r *Request) *Request {
	// One delivery of a request at a time: a losing claim that finds the outcome
	// undelivered must not deliver it again while the winner is delivering it
	// (a second delivery can even be taken for a vanished workflow).
	if !s.startDelivery(r.ID) {
		return r
	}
	defer s.endDelivery(r.ID)
	if cur, err := s.Store.GetRequest(ctx, r.ID); err == nil {
		if cur.Delivered {
			return cur // delivered by another attempt meanwhile
		}
		r = cur
	}
	if s.Workflow == nil {
		if err := s.Store.MarkDelivered(ctx, r.ID); err != nil {
			s.log().Error("mark delivered", "request_id", r.ID, "err", err)
		}
		r.Delivered = true
		return r
	}
	// One delivery across processes too: only the holder of the store's
	// delivery lease sends. Another process sending at the same time would
	// find the task closed by this send and close the request as expired.
	now := s.now()
	until := now.Add(DeliveryLease)
	if err := s.Store.LeaseDelivery(ctx, r.ID, now, until); err != nil {
		if errors.Is(err, ErrConflict) {
			// Being delivered elsewhere, or delivered already.
			if cur, gerr := s.Store.GetRequest(ctx, r.ID); gerr == nil {
				return cur
			}
			return r
		}
		s.log().Error("delivery lease not taken; will retry", "request_id", r.ID, "err", err)
		return r
	}
	// A send never outlives its lease, after which another process may send.
	sendCtx, cancel := context.WithTimeout(ctx, DeliveryLease)
	err := s.Workflow.Deliver(sendCtx, r)
	cancel()
	switch {
	case err == nil:
		if err := s.Store.MarkDelivered(ctx, r.ID); err != nil {
			s.log().Error("mark delivered", "request_id", r.ID, "err", err)
		}
		r.Delivered = true
		s.log().Info("outcome delivered", "request_id", r.ID, "decision", r.Status)
	case errors.Is(err, ErrWorkflowGone):
		// Another process may have delivered it first, which closes the task:
		// that is no reason to close the request as expired.
		if cur, gerr := s.Store.GetRequest(ctx, r.ID); gerr == nil && cur.Delivered {
			return cur
		}
		s.log().Warn("workflow no longer waiting; request closed as expired", "request_id", r.ID)
		gone, gerr := s.Store.MarkWorkflowGone(ctx, r.ID)
		if gerr != nil {
			s.log().Error("mark workflow gone", "request_id", r.ID, "err", gerr)
			return r
		}
		return gone
	default:
		s.log().Error("outcome not delivered; will retry", "request_id", r.ID, "err", err)
		s.releaseDelivery(ctx, r.ID, until)
	}
	return r
}

// DeliveryLease is how long a process holds the store's delivery lease of a
// request while it sends the outcome: no other process sends it meanwhile. A
// send is abandoned when its lease runs out.
const DeliveryLease = time.Minute

// releaseDelivery ends the delivery lease taken until until after a send that
// failed, so that a later attempt (after RedeliverGrace) need not wait for it
// to run out. It asks for the lease as of its own end, up to the present: that
// is granted only while the lease running is this one (any lease taken since
// this one ran out ends later), so another process's lease is never cut short.
func (s *Service) releaseDelivery(ctx context.Context, id string, until time.Time) {
	if now := s.now(); now.Before(until) {
		if err := s.Store.LeaseDelivery(ctx, id, until, now); err != nil && !errors.Is(err, ErrConflict) {
			s.log().Warn("delivery lease not released; it runs out by itself", "request_id", id, "err", err)
		}
	}
}

func (s *Service) startDelivery(id string) bool {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	if s.delivering[id] {
		return false
	}
	if s.delivering == nil {
		s.delivering = map[string]bool{}
	}
	s.delivering[id] = true
	return true
}

func (s *Service) endDelivery(id string) {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	delete(s.delivering, id)
}

func (s *Service) deletePages(ctx context.Context, r *Request) {
	if keys := r.PageKeys(); len(keys) > 0 {
		if err := s.Pages.Delete(ctx, keys); err != nil {
			s.log().Error("pages not deleted", "request_id", r.ID, "err", err)
		}
	}
}

// chatRetries is how often a failed chat update is tried again.
var chatRetries = []time.Duration{200 * time.Millisecond, time.Second}

func (s *Service) updateChat(ctx context.Context, r *Request) {
	if s.Chat == nil || r.ChatMessage.TS == "" {
		return
	}
	var err error
	for attempt := 0; ; attempt++ {
		if err = s.Chat.Update(ctx, r); err == nil {
			return
		}
		if attempt == len(chatRetries) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(chatRetries[attempt]):
		}
	}
	s.log().Error("chat message not updated", "request_id", r.ID, "err", err)
}

func (s *Service) expire(ctx context.Context, r *Request) *Request {
	closed, err := s.Store.Expire(ctx, r.ID, s.now())
	if err != nil {
		if !errors.Is(err, ErrAlreadyDecided) && !errors.Is(err, ErrConflict) {
			s.log().Error("expire request", "request_id", r.ID, "err", err)
		}
		if now, gerr := s.Store.GetRequest(ctx, r.ID); gerr == nil {
			return now
		}
		return r
	}
	s.log().Info("request expired", "request_id", r.ID)
	return s.finish(ctx, closed)
}

// Get returns the request with the given ID, closing it as expired first if it is
// past its expiry.
func (s *Service) Get(ctx context.Context, id string) (*Request, error) {
	r, err := s.Store.GetRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	if r.Status == StatusPending && r.ExpiredAt(s.now()) {
		r = s.expire(ctx, r)
	}
	return r, nil
}

// Lookup returns the request behind a raw one-time token and whether the token
// can still decide it, without deciding anything.
func (s *Service) Lookup(ctx context.Context, token string) (*Request, error) {
	tok, err := s.Store.GetToken(ctx, HashToken(token))
	if err != nil {
		return nil, fmt.Errorf("lookup token: %w", err)
	}
	r, err := s.Get(ctx, tok.RequestID)
	if err != nil {
		return nil, err
	}
	switch {
	case r.Status.Decided():
		return r, ErrAlreadyDecided
	case r.Status != StatusPending || !tok.UsedAt.IsZero():
		return r, ErrExpired
	}
	return r, nil
}

// ListPending returns the requests still waiting for a decision, newest first.
func (s *Service) ListPending(ctx context.Context) ([]*Request, error) {
	all, err := s.Store.ListPending(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pending: %w", err)
	}
	now := s.now()
	live := all[:0]
	for _, r := range all {
		if !r.ExpiredAt(now) {
			live = append(live, r)
		}
	}
	return live, nil
}

// ExpireDue closes every pending request past its expiry and hands the outcome
// on. It returns how many it closed.
func (s *Service) ExpireDue(ctx context.Context) (int, error) {
	all, err := s.Store.ListPending(ctx)
	if err != nil {
		return 0, fmt.Errorf("expire due: %w", err)
	}
	n, now := 0, s.now()
	for _, r := range all {
		if r.ExpiredAt(now) {
			if s.expire(ctx, r).Status == StatusExpired {
				n++
			}
		}
	}
	return n, nil
}

// Redeliver tries again to deliver every outcome whose delivery failed. It
// takes over only outcomes closed more than RedeliverGrace ago: a younger one
// may still be on its way from the process that closed it (another Lambda), and
// a second send would find the task closed and mark the request expired. It
// returns how many are still undelivered, those left to the grace included.
func (s *Service) Redeliver(ctx context.Context) (int, error) {
	all, err := s.Store.ListUndelivered(ctx)
	if err != nil {
		return 0, fmt.Errorf("redeliver: %w", err)
	}
	left, cutoff := 0, s.now().Add(-RedeliverGrace)
	for _, r := range all {
		if !r.closedAt().Before(cutoff) {
			left++
			continue
		}
		if r = s.deliver(ctx, r); !r.Delivered {
			left++
		} else {
			s.updateChat(ctx, r)
			s.signal(r.ID)
		}
	}
	return left, nil
}

// Wait blocks until request id is no longer pending, or ctx is done, and returns
// the request as it then stands.
func (s *Service) Wait(ctx context.Context, id string) (*Request, error) {
	for {
		ch := s.watch(id)
		r, err := s.Get(ctx, id)
		if err != nil || r.Status != StatusPending {
			s.unwatch(id, ch)
			return r, err
		}
		wake := r.ExpiresAt.Sub(s.now()) + 10*time.Millisecond
		if wake > 5*time.Second {
			wake = 5 * time.Second // also notices decisions made by another process
		}
		// Past its expiry yet still pending: closing it failed just now, so
		// try again in a while rather than in a busy loop.
		wake = max(wake, 100*time.Millisecond)
		t := time.NewTimer(wake)
		select {
		case <-ctx.Done():
			t.Stop()
			s.unwatch(id, ch)
			return r, ctx.Err()
		case <-ch:
		case <-t.C:
			s.unwatch(id, ch)
		}
		t.Stop()
	}
}

func (s *Service) watch(id string) chan struct{} {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	if s.watchers == nil {
		s.watchers = map[string][]chan struct{}{}
	}
	ch := make(chan struct{})
	s.watchers[id] = append(s.watchers[id], ch)
	return ch
}

func (s *Service) unwatch(id string, ch chan struct{}) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	list := s.watchers[id]
	for i, c := range list {
		if c == ch {
			s.watchers[id] = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(s.watchers[id]) == 0 {
		delete(s.watchers, id)
	}
}

func (s *Service) signal(id string) {
	s.watchMu.Lock()
	defer s.watchMu.Unlock()
	for _, ch := range s.watchers[id] {
		close(ch)
	}
	delete(s.watchers, id)
}
