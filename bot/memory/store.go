// Package memory holds in-process implementations of the core's interfaces: a
// store, a page host, a mailer and a workflow. They keep everything in memory, are
// safe for concurrent use and let tests look at what happened. They serve tests
// and local runs; nothing survives the process.
package memory

import (
	"context"
	"fmt"
	"slices"
	"strconv"
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
	tokens   map[string]string // first-version token hash → request ID
}

var _ approval.Store = (*Store)(nil)

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{requests: map[string]*approval.Request{}, tokens: map[string]string{}}
}

// CreateRequest stores a copy of r at version 1, or returns ErrConflict if the
// ID is taken.
func (s *Store) CreateRequest(_ context.Context, r *approval.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.requests[r.ID]; ok {
		return fmt.Errorf("create request %s: %w", r.ID, approval.ErrConflict)
	}
	r.Version = 1
	s.requests[r.ID] = r.Clone()
	return nil
}

// AddLegacyToken records a token of the first version, which names no
// request, as belonging to request id (for tests of upgraded data).
func (s *Store) AddLegacyToken(hash, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[hash] = id
}

// GetRequest returns a copy of the request, or ErrNotFound.
func (s *Store) GetRequest(_ context.Context, id string) (*approval.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return nil, fmt.Errorf("get request %s: %w", id, approval.ErrNotFound)
	}
	return r.Clone(), nil
}

// UpdateRequest replaces the request if its stored version is r.Version.
func (s *Store) UpdateRequest(_ context.Context, r *approval.Request) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.requests[r.ID]
	switch {
	case !ok:
		return fmt.Errorf("update request %s: %w", r.ID, approval.ErrNotFound)
	case old.Version != r.Version:
		return fmt.Errorf("update request %s: version %d, not %d: %w", r.ID, old.Version, r.Version, approval.ErrConflict)
	}
	r.Version++
	s.requests[r.ID] = r.Clone()
	return nil
}

// LegacyToken returns the request of a first-version token, or ErrNotFound.
func (s *Store) LegacyToken(_ context.Context, hash string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.tokens[hash]
	if !ok {
		return "", fmt.Errorf("legacy token: %w", approval.ErrNotFound)
	}
	return id, nil
}

// ListPending returns a page of pending requests, newest first. The cursor is
// the creation time and ID of the last request of the previous page, so that a
// request closed since does not lose the place.
func (s *Store) ListPending(_ context.Context, cursor string, limit int) ([]*approval.Request, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*approval.Request
	for _, r := range s.requests {
		if r.Status == approval.StatusPending {
			all = append(all, r)
		}
	}
	slices.SortFunc(all, func(a, b *approval.Request) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	if cursor != "" {
		ms, id, ok := strings.Cut(cursor, ".")
		at, err := strconv.ParseInt(ms, 10, 64)
		if !ok || err != nil {
			return nil, "", approval.Invalidf("cursor", "cursor %q is not one this list gave", cursor)
		}
		after := time.UnixMilli(at)
		i := slices.IndexFunc(all, func(r *approval.Request) bool {
			c := r.CreatedAt.Compare(after)
			return c < 0 || (c == 0 && r.ID < id)
		})
		if i < 0 {
			i = len(all)
		}
		all = all[i:]
	}
	next := ""
	if limit > 0 && len(all) > limit {
		all = all[:limit]
		last := all[limit-1]
		next = fmt.Sprintf("%d.%s", last.CreatedAt.UnixMilli(), last.ID)
	}
	out := make([]*approval.Request, len(all))
	for i, r := range all {
		out[i] = r.Clone()
	}
	return out, next, nil
}

// ListDue returns up to limit requests due at now, earliest first.
func (s *Store) ListDue(_ context.Context, now time.Time, limit int) ([]*approval.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct {
		at time.Time
		r  *approval.Request
	}
	var due []entry
	for _, r := range s.requests {
		if at := r.DueAt(); !at.IsZero() && !at.After(now) {
			due = append(due, entry{at, r})
		}
	}
	slices.SortFunc(due, func(a, b entry) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return strings.Compare(a.r.ID, b.r.ID)
	})
	if limit > 0 && len(due) > limit {
		due = due[:limit]
	}
	out := make([]*approval.Request, len(due))
	for i, e := range due {
		out[i] = e.r.Clone()
	}
	return out, nil
}

var _ approval.QuickVoter = (*Store)(nil)

// QuickVote records a vote that closes the request in one step under the
// store's lock (see approval.QuickVoter).
func (s *Store) QuickVote(_ context.Context, id, tokenHash string, v approval.Vote, effects []approval.Effect) (*approval.Request, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return nil, fmt.Errorf("quick vote %s: %w", id, approval.ErrNotFound)
	}
	next := r.Clone()
	if !next.CloseByQuickVote(tokenHash, v, effects) {
		return r.Clone(), fmt.Errorf("quick vote %s: %w", id, approval.ErrConflict)
	}
	next.Version++
	s.requests[id] = next.Clone()
	return next, nil
}
