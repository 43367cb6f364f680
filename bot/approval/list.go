package approval

import (
	"context"
	"strings"
	"time"
)

// ListStatus selects requests by status: one of the statuses, or "closed"
// (every status but pending).
type ListStatus string

// StatusClosed selects every request that is no longer pending.
const StatusClosed ListStatus = "closed"

// ParseListStatus validates a status to list; the empty string means pending.
func ParseListStatus(s string) (ListStatus, error) {
	switch st := ListStatus(strings.ToLower(strings.TrimSpace(s))); st {
	case "":
		return ListStatus(StatusPending), nil
	case ListStatus(StatusPending), ListStatus(StatusApproved), ListStatus(StatusRejected),
		ListStatus(StatusExpired), ListStatus(StatusCanceled), StatusClosed:
		return st, nil
	}
	return "", Invalidf("status", "status %q is unknown; use pending, approved, rejected, expired, canceled or closed", s)
}

// Matches reports whether a request of status st is selected by ls.
func (ls ListStatus) Matches(st Status) bool {
	if ls == StatusClosed {
		return st != StatusPending
	}
	return Status(ls) == st
}

// Query asks for a page of requests, newest first (by creation time, then
// by ID, both descending).
type Query struct {
	// Status selects by status; empty means pending.
	Status ListStatus
	// Approver, when set, keeps the requests this person may vote on: an
	// approver entry matching their ID or email address (ignoring case).
	Approver Identity
	// Requester, when set, keeps the requests this person asked for
	// (ignoring case).
	Requester string
	// Since and Until, when set, keep the requests created at or after Since
	// and before Until.
	Since, Until time.Time
	// Cursor continues a listing after the page that returned it; empty
	// starts at the newest.
	Cursor string
	// Limit is the most requests a page holds; 0 or less lets the store
	// choose.
	Limit int
}

// status is q.Status with the default applied.
func (q Query) status() ListStatus {
	if q.Status == "" {
		return ListStatus(StatusPending)
	}
	return q.Status
}

// Normalized returns q with its defaults applied (Status pending), for
// stores.
func (q Query) Normalized() Query {
	q.Status = q.status()
	q.Requester = strings.TrimSpace(q.Requester)
	q.Approver.ID = strings.TrimSpace(q.Approver.ID)
	q.Approver.Email = strings.TrimSpace(q.Approver.Email)
	return q
}

// Match reports whether r is selected by q's status and filters (not by its
// cursor). Stores use it to filter what their indexes cannot.
func (q Query) Match(r *Request) bool {
	q = q.Normalized()
	switch {
	case !q.status().Matches(r.Status):
		return false
	case !q.Since.IsZero() && r.CreatedAt.Before(q.Since):
		return false
	case !q.Until.IsZero() && !r.CreatedAt.Before(q.Until):
		return false
	case q.Requester != "" && !strings.EqualFold(strings.TrimSpace(r.Requester), q.Requester):
		return false
	case (q.Approver.ID != "" || q.Approver.Email != "") && r.approverOf(q.Approver) == "":
		return false
	}
	return true
}

// Filtered reports whether q filters by approver or requester, which the
// indexes of some stores cannot: such a store reads a bounded number of
// entries per call and may answer a short page with a cursor to go on.
func (q Query) Filtered() bool {
	return q.Approver.ID != "" || q.Approver.Email != "" || strings.TrimSpace(q.Requester) != ""
}

// Check validates q: its status and that Since is before Until.
func (q Query) Check() error {
	if _, err := ParseListStatus(string(q.Status)); err != nil {
		return err
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return Invalidf("until", "until must be after since")
	}
	return nil
}

// List returns a page of requests matching q, newest first, and the cursor
// of the next page ("" after the last). A page may hold fewer than q.Limit
// requests and still have a next page (a store bounds the work of one call).
// Pending requests past their expiry are left out (the sweep closes them).
func (s *Service) List(ctx context.Context, q Query) ([]*Request, string, error) {
	if err := q.Check(); err != nil {
		return nil, "", err
	}
	q = q.Normalized()
	rs, next, err := s.Store.List(ctx, q)
	if err != nil {
		return nil, "", err // the store's error says what it listed
	}
	if q.Status != ListStatus(StatusPending) {
		return rs, next, nil
	}
	now := s.now()
	live := rs[:0]
	for _, r := range rs {
		if !r.ExpiredAt(now) {
			live = append(live, r)
		}
	}
	return live, next, nil
}

// ListPending returns up to limit requests still waiting for a decision,
// newest first, from cursor on, and the next page's cursor.
func (s *Service) ListPending(ctx context.Context, cursor string, limit int) ([]*Request, string, error) {
	return s.List(ctx, Query{Status: ListStatus(StatusPending), Cursor: cursor, Limit: limit})
}

// ClosedBy says who or what closed a request, for history listings: the
// voter whose vote decided it, who canceled it, or "" (it expired, or no
// approver could be reached).
func (r *Request) ClosedBy() string {
	switch {
	case r.Canceled != nil:
		return r.Canceled.By
	case r.Decision != nil:
		return r.Decision.By
	}
	return ""
}
