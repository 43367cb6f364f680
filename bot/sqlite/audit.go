package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// The audit log is the audit table: the triggers of the requests table copy
// every entry a write seals into it, in the same transaction, and
// AddCheckpoint inserts the checkpoints. Its order (gseq) is the order of the
// writes, so a cursor and a checkpoint's mark are positions in it.

// defaultAuditPage is the page size of ReadAudit asked for no limit.
const defaultAuditPage = 1000

// ReadAudit returns up to q.Limit entries of the log after q.Cursor, in the
// order they were stored, those at or after q.Since.
func (s *Store) ReadAudit(ctx context.Context, q approval.AuditQuery) ([]approval.AuditEntry, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultAuditPage
	}
	var after int64
	if q.Cursor != "" {
		n, err := strconv.ParseInt(q.Cursor, 10, 64)
		if err != nil || n < 0 {
			return nil, "", approval.Invalidf("cursor", "cursor %q is not a cursor of the audit log", q.Cursor)
		}
		after = n
	}
	since := ""
	if !q.Since.IsZero() {
		since = q.Since.UTC().Format("2006-01-02T15:04:05.000Z")
		if q.Cursor == "" {
			// Start at the first entry of that time, found through its
			// index, rather than read the log up to it.
			var first sql.NullInt64
			if err := s.db.QueryRowContext(ctx, "SELECT min(gseq) FROM audit WHERE at >= ?", since).Scan(&first); err != nil {
				return nil, "", fmt.Errorf("read audit: %w", err)
			}
			if !first.Valid {
				return nil, "", nil
			}
			after = first.Int64 - 1
		}
	}
	rows, err := s.db.QueryContext(ctx, "SELECT gseq, entry FROM audit WHERE gseq > ? AND at >= ? ORDER BY gseq LIMIT ?", after, since, limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("read audit: %w", err)
	}
	defer rows.Close()
	var (
		out  []approval.AuditEntry
		last int64
		more bool
	)
	for rows.Next() {
		if len(out) == limit {
			more = true
			break
		}
		var line string
		if err := rows.Scan(&last, &line); err != nil {
			return nil, "", fmt.Errorf("read audit: %w", err)
		}
		e, err := approval.ParseAuditEntry([]byte(line))
		if err != nil {
			// Keep it: the verification names it. An entry that no longer
			// reads is a broken entry, not a broken log.
			e = approval.AuditEntry{Detail: "unreadable entry at position " + strconv.FormatInt(last, 10) + ": " + err.Error()}
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("read audit: %w", err)
	}
	next := ""
	if more {
		next = strconv.FormatInt(last, 10)
	}
	return out, next, nil
}

// AuditChanged returns the heads of the requests with entries in the log
// after position mark, at most limit of them, read from their records.
func (s *Store) AuditChanged(ctx context.Context, mark string, _ time.Time, limit int) ([]approval.AuditHead, string, error) {
	var after int64
	if mark != "" {
		n, err := strconv.ParseInt(mark, 10, 64)
		if err != nil || n < 0 {
			return nil, "", fmt.Errorf("audit changed: mark %q: %w", mark, approval.ErrInvalid)
		}
		after = n
	}
	if limit <= 0 {
		limit = defaultAuditPage
	}
	rows, err := s.db.QueryContext(ctx, "SELECT gseq, request_id FROM audit WHERE gseq > ? ORDER BY gseq LIMIT ?", after, 16*limit)
	if err != nil {
		return nil, "", fmt.Errorf("audit changed: %w", err)
	}
	var ids []string
	seen := map[string]bool{}
	end := after
	for rows.Next() {
		var (
			gseq int64
			id   string
		)
		if err := rows.Scan(&gseq, &id); err != nil {
			rows.Close()
			return nil, "", fmt.Errorf("audit changed: %w", err)
		}
		if id != "" && !seen[id] {
			if len(ids) == limit {
				break
			}
			seen[id] = true
			ids = append(ids, id)
		}
		end = gseq
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("audit changed: %w", err)
	}
	heads, err := s.heads(ctx, ids)
	if err != nil {
		return nil, "", fmt.Errorf("audit changed: %w", err)
	}
	if end == after {
		return heads, mark, nil
	}
	return heads, strconv.FormatInt(end, 10), nil
}

// heads reads the heads of the chains of requests ids from their records.
func (s *Store) heads(ctx context.Context, ids []string) ([]approval.AuditHead, error) {
	var heads []approval.AuditHead
	for start := 0; start < len(ids); start += 500 {
		batch := ids[start:min(start+500, len(ids))]
		args := make([]any, len(batch))
		for i, id := range batch {
			args[i] = id
		}
		rows, err := s.db.QueryContext(ctx, "SELECT id, json_extract(doc, '$.audit[#-1]') FROM requests WHERE id IN (?"+strings.Repeat(", ?", len(batch)-1)+")", args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var (
				id   string
				last sql.NullString
			)
			if err := rows.Scan(&id, &last); err != nil {
				rows.Close()
				return nil, err
			}
			h := approval.AuditHead{RequestID: id}
			if last.Valid {
				e, err := approval.ParseAuditEntry([]byte(last.String))
				if err != nil {
					rows.Close()
					return nil, fmt.Errorf("request %s: last audit entry: %w", id, err)
				}
				h.Seq, h.Hash = e.Seq, e.Hash
			}
			heads = append(heads, h)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return heads, nil
}

// LastCheckpoint returns the newest checkpoint, or ErrNotFound.
func (s *Store) LastCheckpoint(ctx context.Context) (approval.AuditEntry, error) {
	var line string
	err := s.db.QueryRowContext(ctx, "SELECT entry FROM audit WHERE request_id = '' ORDER BY seq DESC LIMIT 1").Scan(&line)
	if errors.Is(err, sql.ErrNoRows) {
		err = approval.ErrNotFound
	}
	if err != nil {
		return approval.AuditEntry{}, fmt.Errorf("last checkpoint: %w", err)
	}
	e, err := approval.ParseAuditEntry([]byte(line))
	if err != nil {
		return approval.AuditEntry{}, fmt.Errorf("last checkpoint: %w", err)
	}
	return e, nil
}

// AddCheckpoint appends checkpoint e to the log, or returns ErrConflict if
// one with its Seq exists.
func (s *Store) AddCheckpoint(ctx context.Context, e approval.AuditEntry) error {
	line, err := e.MarshalJSON()
	if err != nil {
		return fmt.Errorf("add checkpoint %d: %w", e.Seq, err)
	}
	n, err := s.exec(ctx, `INSERT INTO audit (request_id, seq, at, entry) VALUES ('', ?, ?, ?)
		ON CONFLICT (request_id, seq) DO NOTHING`, e.Seq, e.At.UTC().Format("2006-01-02T15:04:05.000Z"), string(line))
	if err != nil {
		return fmt.Errorf("add checkpoint %d: %w", e.Seq, err)
	}
	if n == 0 {
		return fmt.Errorf("add checkpoint %d: %w", e.Seq, approval.ErrConflict)
	}
	return nil
}
