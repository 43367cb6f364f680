package sqlite

import (
	"context"
	"fmt"
	"strings"

	"approvalbot/bot/approval"
)

// SchemaLatest is the schema version Open brings a database to.
var SchemaLatest = len(migrations)

// OpenAtVersion opens the database at path and brings its schema only up to
// version, as an older build of the program left it.
func OpenAtVersion(ctx context.Context, path string, version int) (*Store, error) {
	return open(ctx, path, migrations[:version])
}

// Query names the store's list queries for QueryPlan.
type Query int

// The list queries.
const (
	QueryPending Query = iota
	QueryPendingAfter
	QueryDue
	QueryClosed
	QueryApprovedAfter
	QueryPendingOfApprover
)

// QueryPlan returns SQLite's plan for one of the list queries with limit 10,
// one line per step.
func (s *Store) QueryPlan(ctx context.Context, q Query) (string, error) {
	var (
		query string
		args  []any
	)
	list := func(q approval.Query) {
		q.Limit = 10
		query, args, _ = listQuery(q.Normalized())
	}
	switch q {
	case QueryPending:
		list(approval.Query{})
	case QueryPendingAfter:
		list(approval.Query{Cursor: makeCursor(1, "x")})
	case QueryClosed:
		list(approval.Query{Status: approval.StatusClosed})
	case QueryApprovedAfter:
		list(approval.Query{Status: "approved", Cursor: makeCursor(1, "x")})
	case QueryPendingOfApprover:
		list(approval.Query{Approver: approval.Identity{ID: "a@example.com"}})
	case QueryDue:
		query, args = dueQuery(10), []any{int64(1)}
	}
	rows, err := s.db.QueryContext(ctx, "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			return "", err
		}
		lines = append(lines, detail)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("query plan: %w", err)
	}
	return strings.Join(lines, "\n"), nil
}
