// Package memory holds in-process implementations of the core's interfaces: a
// store, a page host, a mailer and a workflow. They keep everything in memory, are
// safe for concurrent use and let tests look at what happened. They serve tests
// and local runs; nothing survives the process.
package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"approvalbot/bot/approval"
)

// Store is an approval.Store in memory. Every value going in or out is copied, so
// callers cannot change what is stored.
type Store struct {
	mu       sync.Mutex
	requests map[string]*approval.Request
	tokens   map[string]approval.Token
	leases   map[string]time.Time // request ID → end of its delivery lease
}

var _ approval.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{
		requests: map[string]*approval.Request{},
		tokens:   map[string]approval.Token{},
		leases:   map[string]time.Time{},
	}
}

func clone(r *approval.Request) *approval.Request {
	c := *r
	c.Links = slices.Clone(r.Links)
	c.Approvers = slices.Clone(r.Approvers)
	c.Recipients = slices.Clone(r.Recipients)
	if r.Decision != nil {
		d := *r.Decision
		c.Decision = &d
	}
	return &c
}

// CreateRequest stores r and its tokens, or returns ErrConflict if the ID or a
// token hash is taken.
func (s *Store) CreateRequest(_ context.Context, r *approval.Request, tokens []approval.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[r.ID]; ok {
		return fmt.Errorf("create request %s: %w", r.ID, approval.ErrConflict)
	}
	for _, t := range tokens {
		if _, ok := s.tokens[t.Hash]; ok {
			return fmt.Errorf("create request %s: token exists: %w", r.ID, approval.ErrConflict)
		}
	}
	s.requests[r.ID] = clone(r)
	for _, t := range tokens {
		s.tokens[t.Hash] = t
	}
	return nil
}

// GetRequest returns a copy of the request, or ErrNotFound.
func (s *Store) GetRequest(_ context.Context, id string) (*approval.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return nil, fmt.Errorf("get request %s: %w", id, approval.ErrNotFound)
	}
	return clone(r), nil
}

// GetToken returns a copy of the token, or ErrNotFound.
func (s *Store) GetToken(_ context.Context, hash string) (*approval.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[hash]
	if !ok {
		return nil, fmt.Errorf("get token: %w", approval.ErrNotFound)
	}
	return &t, nil
}

// list returns copies of the requests that keep says, ordered by creation time,
// newest first if desc.
func (s *Store) list(keep func(*approval.Request) bool, desc bool) []*approval.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*approval.Request
	for _, r := range s.requests {
		if keep(r) {
			out = append(out, clone(r))
		}
	}
	slices.SortFunc(out, func(a, b *approval.Request) int {
		c := a.CreatedAt.Compare(b.CreatedAt)
		if c == 0 {
			c = strings.Compare(a.ID, b.ID)
		}
		if desc {
			return -c
		}
		return c
	})
	return out
}

// ListPending returns the pending requests, newest first.
func (s *Store) ListPending(context.Context) ([]*approval.Request, error) {
	return s.list(func(r *approval.Request) bool { return r.Status == approval.StatusPending }, true), nil
}

// ListUndelivered returns the closed requests whose outcome is not delivered,
// oldest first.
func (s *Store) ListUndelivered(context.Context) ([]*approval.Request, error) {
	return s.list(func(r *approval.Request) bool {
		return r.Status != approval.StatusPending && !r.Delivered
	}, false), nil
}

// Claim uses the token to record d, under the store's lock.
func (s *Store) Claim(_ context.Context, hash string, d approval.Decision) (*approval.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[hash]
	if !ok {
		return nil, fmt.Errorf("claim: %w", approval.ErrNotFound)
	}
	r, ok := s.requests[t.RequestID]
	if !ok {
		return nil, fmt.Errorf("claim: request %s: %w", t.RequestID, approval.ErrNotFound)
	}
	switch {
	case r.Status.Decided() || !t.UsedAt.IsZero():
		return nil, fmt.Errorf("claim request %s: %w", r.ID, approval.ErrAlreadyDecided)
	case r.Status != approval.StatusPending || !d.At.Before(t.ExpiresAt) || r.ExpiredAt(d.At):
		return nil, fmt.Errorf("claim request %s: %w", r.ID, approval.ErrExpired)
	}
	t.UsedAt = d.At
	s.tokens[hash] = t
	r.Status = d.Choice.Status()
	r.Decision = &d
	return clone(r), nil
}

// Expire closes a pending request that is due at now.
func (s *Store) Expire(_ context.Context, id string, now time.Time) (*approval.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	switch {
	case !ok:
		return nil, fmt.Errorf("expire request %s: %w", id, approval.ErrNotFound)
	case r.Status != approval.StatusPending:
		return nil, fmt.Errorf("expire request %s: %w", id, approval.ErrAlreadyDecided)
	case !r.ExpiredAt(now):
		return nil, fmt.Errorf("expire request %s: not due: %w", id, approval.ErrConflict)
	}
	r.Status = approval.StatusExpired
	return clone(r), nil
}

// MarkWorkflowGone closes the request as expired and delivered.
func (s *Store) MarkWorkflowGone(_ context.Context, id string) (*approval.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return nil, fmt.Errorf("mark workflow gone %s: %w", id, approval.ErrNotFound)
	}
	r.Status = approval.StatusExpired
	r.Delivered = true
	delete(s.leases, id)
	return clone(r), nil
}

// LeaseDelivery takes the delivery lease of a closed, undelivered request
// whose lease is not running at now, until until.
func (s *Store) LeaseDelivery(_ context.Context, id string, now, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	switch {
	case !ok:
		return fmt.Errorf("lease delivery %s: %w", id, approval.ErrNotFound)
	case r.Status == approval.StatusPending:
		return fmt.Errorf("lease delivery %s: pending: %w", id, approval.ErrConflict)
	case r.Delivered:
		return fmt.Errorf("lease delivery %s: delivered: %w", id, approval.ErrConflict)
	}
	if end, ok := s.leases[id]; ok && end.After(now) {
		return fmt.Errorf("lease delivery %s: leased: %w", id, approval.ErrConflict)
	}
	s.leases[id] = until
	return nil
}

// MarkDelivered records that the outcome reached the workflow.
func (s *Store) MarkDelivered(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return fmt.Errorf("mark delivered %s: %w", id, approval.ErrNotFound)
	}
	r.Delivered = true
	delete(s.leases, id)
	return nil
}

// SetChatMessage records where the request's chat message was posted.
func (s *Store) SetChatMessage(_ context.Context, id string, m approval.ChatMessage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return fmt.Errorf("set chat message %s: %w", id, approval.ErrNotFound)
	}
	r.ChatMessage = m
	return nil
}
