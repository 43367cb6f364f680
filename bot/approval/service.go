package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Service runs the lifecycle of approval requests over the interfaces it is given.
// Store, Pages and Renderer are required; Mailer, Chat and Workflow may be nil
// (no email, no chat, nothing waiting). NewService builds one and checks that
// the required ones are there; its fields are not changed once it runs.
type Service struct {
	Store    Store
	Pages    Pages
	Renderer Renderer
	Mailer   Mailer
	Chat     Chat
	Workflow Workflow

	// DecideURL is where the one-time pages post votes.
	DecideURL string
	// DefaultSlackChannel is used for requests that name no Slack channel when
	// Chat is set.
	DefaultSlackChannel string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives one line per event worth knowing; nil discards.
	Log *slog.Logger
	// Sync makes every call wait until the effects it caused are done and
	// recorded before it returns (a Lambda, whose process may be frozen once it
	// answers). Otherwise a call returns once the effects its answer depends
	// on are done (the workflow told), and the rest finish in the background
	// (see Idle).
	Sync bool

	watchMu  sync.Mutex
	watchers map[string][]chan struct{}

	background inFlight
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC().Truncate(time.Millisecond)
	}
	return time.Now().UTC().Truncate(time.Millisecond)
}

func (s *Service) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.New(slog.DiscardHandler)
}

// decideURLKey is the context key of WithDecideURL.
type decideURLKey struct{}

// WithDecideURL returns a copy of ctx under which the pages a call mints
// (a delegate's, a personal link's) post to decideURL instead of the
// service's DecideURL. The callback Lambda, which cannot be told its own
// address, learns it from the request it serves.
func WithDecideURL(ctx context.Context, decideURL string) context.Context {
	return context.WithValue(ctx, decideURLKey{}, decideURL)
}

// decideURL is where the pages minted under ctx post to.
func (s *Service) decideURL(ctx context.Context) string {
	if u, ok := ctx.Value(decideURLKey{}).(string); ok && u != "" {
		return u
	}
	return s.DecideURL
}

// Idle waits until the effects running in the background are done and
// recorded, or ctx is done.
func (s *Service) Idle(ctx context.Context) error {
	select {
	case <-s.background.idle():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inFlight counts the work running in the background. Unlike a
// sync.WaitGroup, it may be waited on while new work starts (a callback
// waiting for its effects while another call on the service starts its own).
type inFlight struct {
	mu   sync.Mutex
	n    int
	done chan struct{} // closed when n falls back to 0
}

func (f *inFlight) add() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		f.done = make(chan struct{})
	}
	f.n++
}

func (f *inFlight) finish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n--; f.n == 0 {
		close(f.done)
	}
}

// idle is closed once nothing runs.
func (f *inFlight) idle() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return f.done
}

// Create validates in, mints one personal token per email approver, publishes
// their one-time pages and stores the request together with its notifications
// (one email per email approver, the channel message, one direct message per
// Slack approver), which then run at once. It returns once the request is
// stored. With a task token it is idempotent: a second call for the same token
// returns the request created by the first, with created false.
func (s *Service) Create(ctx context.Context, in NewRequest) (r *Request, created bool, err error) {
	r, err = in.validate()
	if err != nil {
		return nil, false, err
	}
	if r.SlackChannel == "" && s.Chat != nil {
		r.SlackChannel = s.DefaultSlackChannel
	}
	if s.Chat == nil && r.SlackChannel != "" {
		return nil, false, Invalidf("slackChannel", "slackChannel %q cannot be used: Slack is not configured on this bot", r.SlackChannel)
	}
	r.ID = NewID()
	if r.TaskToken != "" {
		// A retried notification for the same task finds the request it
		// created through the conflict of the conditional create (no read
		// first: a create is the common case).
		r.ID = IDFromTaskToken(r.TaskToken)
	}
	now := s.now()
	r.CreatedAt = now
	r.ExpiresAt = now.Add(in.Timeout)
	if err := s.checkLifecycle(r); err != nil {
		return nil, false, err
	}

	pages, err := s.mintEmailLinks(r, r.Approvers, s.decideURL(ctx))
	if err != nil {
		return nil, false, fmt.Errorf("create request: %w", err)
	}
	if err := s.notifiable(r); err != nil {
		return nil, false, err
	}
	lease := newLease()
	for _, rc := range r.Recipients {
		r.want(EffectEmail, rc.Address, lease, now)
	}
	if r.SlackChannel != "" {
		r.want(EffectPost, "", lease, now)
	}
	if s.Chat != nil {
		for _, a := range r.Approvers {
			if IsSlackUserID(a) {
				r.want(EffectDM, a, lease, now)
			}
		}
	}

	// The request and its pages in one write where the page host keeps them
	// in the store's database. Otherwise pages first: nobody has their links
	// until the notifications run, after the request is stored; if storing
	// fails they are removed again.
	withPages := s.pagesWithRequest()
	if withPages == nil {
		if err := s.putPages(ctx, pages); err != nil {
			s.deletePages(context.WithoutCancel(ctx), r.PageKeys())
			return nil, false, fmt.Errorf("create request %s: %w", r.ID, err)
		}
	}
	if err := s.createRequest(ctx, r, withPages, pages); err != nil {
		return s.createFailed(ctx, r, lease, err)
	}
	s.log().Info("request created", "request_id", r.ID, "approvers", len(r.Approvers), "rule", r.Rule.Describe(len(r.Approvers)), "expires_at", r.ExpiresAt)
	r = s.runEffects(ctx, r, lease, false)
	return r, true, nil
}

// createFailed handles a CreateRequest that failed. A request that is not
// stored has its pages removed; one that was stored all the same (the write
// took effect but its answer was lost) is kept, and its notifications are left
// to the sweep; when that cannot be told, the pages stay (their links name a
// request that may not exist, and decide nothing then).
func (s *Service) createFailed(ctx context.Context, r *Request, lease string, err error) (*Request, bool, error) {
	bg := context.WithoutCancel(ctx)
	old, gerr := s.Store.GetRequest(bg, r.ID)
	switch {
	case errors.Is(gerr, ErrNotFound):
		s.deletePages(bg, r.PageKeys())
	case gerr != nil:
		s.log().Error("request may or may not be stored; its pages are kept", "request_id", r.ID, "err", gerr)
	case !old.CreatedAt.Equal(r.CreatedAt) || !slices.Equal(old.Recipients, r.Recipients):
		// Created by an earlier call for the same task token: ours are unused.
		s.deletePages(bg, r.PageKeys())
		if r.TaskToken != "" {
			return s.advance(ctx, old), false, nil
		}
	default:
		s.log().Warn("request stored although the store reported an error", "request_id", r.ID, "err", err)
		return s.runEffects(ctx, old, lease, false), true, nil
	}
	return nil, false, fmt.Errorf("create request %s: %w", r.ID, err)
}

// mintEmailLinks gives each email approver among approvers a personal token
// and page on r, posting to decideURL, and returns the rendered pages by key.
func (s *Service) mintEmailLinks(r *Request, approvers []string, decideURL string) (map[string][]byte, error) {
	pages := map[string][]byte{}
	for _, a := range approvers {
		if IsSlackUserID(a) {
			continue // reached through Slack, where they ask for a personal link
		}
		rc, html, err := s.mint(r, a, ChannelEmail, decideURL)
		if err != nil {
			return nil, err
		}
		r.Recipients = append(r.Recipients, rc)
		pages[rc.PageKey] = html
	}
	return pages, nil
}

// mint makes a personal token and page for approver a of r; the page posts
// to decideURL.
func (s *Service) mint(r *Request, a string, c Channel, decideURL string) (Recipient, []byte, error) {
	tok := NewRequestToken(r.ID)
	rc := Recipient{Address: a, Channel: c, TokenHash: HashToken(tok), PageKey: NewPageKey()}
	html, err := s.Renderer.Page(PageView{Request: r, Recipient: rc, Token: tok, DecideURL: decideURL})
	if err != nil {
		return Recipient{}, nil, fmt.Errorf("render page: %w", err)
	}
	return rc, html, nil
}

// notifiable refuses a request that no notification could reach.
func (s *Service) notifiable(r *Request) error {
	if r.SlackChannel != "" || (s.Mailer != nil && len(r.Recipients) > 0) {
		return nil
	}
	for _, a := range r.Approvers {
		if IsSlackUserID(a) && s.Chat != nil {
			return nil
		}
	}
	if s.Chat == nil {
		for _, a := range r.Approvers {
			if IsSlackUserID(a) {
				return Invalidf("approvers", "approver %s is a Slack user, but Slack is not configured", a)
			}
		}
	}
	if len(r.Recipients) > 0 {
		return nil // pages without mail: links are read from the pages themselves
	}
	return Invalidf("approvers", "no approver can be reached")
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
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func (s *Service) deletePages(ctx context.Context, keys []string) {
	if len(keys) == 0 {
		return
	}
	if err := s.Pages.Delete(ctx, keys); err != nil {
		s.log().Error("pages not deleted", "err", err)
	}
}

// Get returns the request with the given ID, closing it as expired first if it
// is past its expiry.
func (s *Service) Get(ctx context.Context, id string) (*Request, error) {
	r, err := s.Store.GetRequest(ctx, id)
	if err != nil {
		return nil, err // the store's error names the request
	}
	if r.Status == StatusPending && r.ExpiredAt(s.now()) {
		r = s.advance(ctx, r)
	}
	return r, nil
}

// SweepStats counts what one sweep did.
type SweepStats struct {
	Expired  int // requests closed as expired
	Advanced int // requests whose due effects were taken over
	Left     int // requests still undelivered after the sweep
	// Gone counts the pending requests closed as canceled because their
	// workflow stopped waiting (see WorkflowProber).
	Gone int
}

// sweepBatch is how many due requests one sweep reads at a time, and
// sweepParallel how many it advances at once.
const (
	sweepBatch    = 100
	sweepParallel = 8
)

// Sweep does what is due: it closes expired requests (as their timeout action
// says), sends the reminders and escalations that are due, and takes over
// every effect whose run died (its lease lapsed) or whose retry time came. It
// reads the due index a page at a time and advances requests in bounded
// parallel. With a Workflow that is a WorkflowProber it then closes the
// pending requests whose workflow stopped waiting.
func (s *Service) Sweep(ctx context.Context) (SweepStats, error) {
	var (
		st   SweepStats
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	now := s.now()
	for round := 0; round < 1000; round++ {
		due, err := s.Store.ListDue(ctx, now, sweepBatch)
		if err != nil {
			return st, fmt.Errorf("sweep: %w", err)
		}
		var todo []*Request
		for _, r := range due {
			if !seen[r.ID] {
				seen[r.ID] = true
				todo = append(todo, r)
			}
		}
		if len(todo) == 0 {
			break
		}
		sem := make(chan struct{}, sweepParallel)
		var wg sync.WaitGroup
		for _, r := range todo {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				wasPending := r.Status == StatusPending
				after := s.advanceSync(ctx, r)
				mu.Lock()
				defer mu.Unlock()
				st.Advanced++
				if wasPending && after.Status == StatusExpired {
					st.Expired++
				}
				if after.Status != StatusPending && !after.Delivered() {
					st.Left++
				}
			})
		}
		wg.Wait()
		if len(due) < sweepBatch {
			break
		}
	}
	gone, err := s.probe(ctx)
	st.Gone = gone
	if err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	return st, nil
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
			wake = 5 * time.Second // also notices votes taken by another process
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
