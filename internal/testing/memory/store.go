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
	// log is the audit log: every entry of every request's chain and every
	// checkpoint, in the order they were stored.
	log []approval.AuditEntry
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
	s.appendLog(r, 0)
	return nil
}

// appendLog appends to the log the entries of r's chain after seq.
func (s *Store) appendLog(r *approval.Request, seq int) {
	for _, e := range r.Audit {
		if e.Seq > seq {
			s.log = append(s.log, e)
		}
	}
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
	s.appendLog(r, old.Head().Seq)
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

// List returns a page of the requests matching q, newest first. The cursor
// is the creation time and ID of the last request of the previous page, so
// that a request closed since does not lose the place.
func (s *Store) List(_ context.Context, q approval.Query) ([]*approval.Request, string, error) {
	q = q.Normalized()
	var after *approval.Request
	if q.Cursor != "" {
		ms, id, ok := strings.Cut(q.Cursor, ".")
		at, err := strconv.ParseInt(ms, 10, 64)
		if !ok || err != nil {
			return nil, "", approval.Invalidf("cursor", "cursor %q is not one this list gave", q.Cursor)
		}
		after = &approval.Request{ID: id, CreatedAt: time.UnixMilli(at)}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*approval.Request
	for _, r := range s.requests {
		if q.Match(r) && (after == nil || newer(after, r)) {
			all = append(all, r)
		}
	}
	slices.SortFunc(all, func(a, b *approval.Request) int {
		if newer(a, b) {
			return -1
		}
		return 1
	})
	next := ""
	if q.Limit > 0 && len(all) > q.Limit {
		all = all[:q.Limit]
		last := all[q.Limit-1]
		next = fmt.Sprintf("%d.%s", last.CreatedAt.UnixMilli(), last.ID)
	}
	out := make([]*approval.Request, len(all))
	for i, r := range all {
		out[i] = r.Clone()
	}
	return out, next, nil
}

// ListPending returns a page of pending requests, newest first (List for
// pending requests).
func (s *Store) ListPending(ctx context.Context, cursor string, limit int) ([]*approval.Request, string, error) {
	return s.List(ctx, approval.Query{Cursor: cursor, Limit: limit})
}

// newer reports whether a comes before b in a list: created later, or at the
// same time with a greater ID.
func newer(a, b *approval.Request) bool {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c > 0
	}
	return a.ID > b.ID
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

// ReadAudit returns a page of the audit log, in the order it was stored. The
// cursor is the position in the log.
func (s *Store) ReadAudit(_ context.Context, q approval.AuditQuery) ([]approval.AuditEntry, string, error) {
	from := 0
	if q.Cursor != "" {
		n, err := strconv.Atoi(q.Cursor)
		if err != nil || n < 0 {
			return nil, "", approval.Invalidf("cursor", "cursor %q is not one this log gave", q.Cursor)
		}
		from = n
	}
	limit := q.Limit
	if limit <= 0 {
		limit = 1000
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []approval.AuditEntry
	i := from
	for ; i < len(s.log) && len(out) < limit; i++ {
		if e := s.log[i]; q.Since.IsZero() || !e.At.Before(q.Since) {
			out = append(out, e)
		}
	}
	next := ""
	if i < len(s.log) {
		next = strconv.Itoa(i)
	}
	return out, next, nil
}

// AuditChanged returns the heads of the requests with entries in the log
// after position mark.
func (s *Store) AuditChanged(_ context.Context, mark string, _ time.Time, limit int) ([]approval.AuditHead, string, error) {
	from := 0
	if mark != "" {
		n, err := strconv.Atoi(mark)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("audit changed: mark %q: %w", mark, approval.ErrInvalid)
		}
		from = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var heads []approval.AuditHead
	i := from
	for ; i < len(s.log); i++ {
		id := s.log[i].RequestID
		if id == "" || seen[id] {
			continue
		}
		if limit > 0 && len(heads) == limit {
			break
		}
		seen[id] = true
		if r, ok := s.requests[id]; ok {
			heads = append(heads, r.Head())
		}
	}
	if i == from {
		return nil, mark, nil
	}
	return heads, strconv.Itoa(i), nil
}

// LastCheckpoint returns the newest checkpoint, or ErrNotFound.
func (s *Store) LastCheckpoint(context.Context) (approval.AuditEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.log) - 1; i >= 0; i-- {
		if s.log[i].RequestID == "" {
			return s.log[i], nil
		}
	}
	return approval.AuditEntry{}, fmt.Errorf("last checkpoint: %w", approval.ErrNotFound)
}

// AddCheckpoint appends checkpoint e to the log, or returns ErrConflict if
// one with its Seq exists.
func (s *Store) AddCheckpoint(_ context.Context, e approval.AuditEntry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.log {
		if x.RequestID == "" && x.Seq == e.Seq {
			return fmt.Errorf("add checkpoint %d: %w", e.Seq, approval.ErrConflict)
		}
	}
	s.log = append(s.log, e)
	return nil
}

// TamperAudit lets tests change the stored audit log: fn gets the log and
// returns the log to keep.
func (s *Store) TamperAudit(fn func([]approval.AuditEntry) []approval.AuditEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = fn(slices.Clone(s.log))
}
