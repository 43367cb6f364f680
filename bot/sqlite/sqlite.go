// Package sqlite is the approval.Store of the embedded mode, on one SQLite
// database file through the pure-Go modernc.org/sqlite driver, and the one-time
// pages of that mode (Pages), kept in the same database.
//
// A request is one row of the requests table. Its scalar fields (title,
// status, created_at, expires_at, the closing decision, ...) have their own
// columns, written on every change so that the indexes and the tools that read
// the table keep working; the parts of the decision core v2 (the rule, the
// votes, the recipients, the effects, the direct messages, the reason and the
// decision) are one JSON document in the doc column. Every change of a request
// is one UPDATE conditional on the row's version (optimistic concurrency: of
// any number of changes computed from one version exactly one is written).
// The due_at column holds Request.DueAt in Unix milliseconds, NULL when nothing
// is due; its partial index is the due index the sweep reads (ListDue).
// Pending requests are listed newest first through the pending index, a page
// at a time, with an opaque cursor naming the last request of the page.
//
// Writes of one process queue for SQLite's single writer in the Store rather
// than in SQLite's busy handler, and whoever's turn it is writes everything
// queued in one transaction (group commit), each statement with its own
// condition and outcome; writers in other processes wait through
// busy_timeout.
//
// Rows written by the first version (doc IS NULL) are read from their old
// columns: policy any, the old recipients (including a whole Slack channel's
// link), the decision, and an outcome that was never delivered as a pending
// deliver effect, so that the sweep delivers it. Their first change rewrites
// them in the new form. Their tokens, which do not name their request, stay in
// the tokens table for LegacyToken.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"approvalbot/bot/approval"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// busyTimeout is how long a connection waits for another's write lock before it
// fails with SQLITE_BUSY. Writes are short, so this is only reached when the
// disk stalls.
const busyTimeout = 10 * time.Second

// Store is an approval.Store in one SQLite database file.
type Store struct {
	db *sql.DB
	// writer admits one writer of this process at a time. SQLite allows one
	// writer anyway; queueing here rather than in SQLite's busy handler (which
	// sleeps and polls) keeps contended writes fast, and lets the holder
	// write everything queued in one transaction (see exec). Writers in other
	// processes are still handled by busy_timeout.
	writer chan struct{}
	mu     sync.Mutex
	queue  []*write // writes waiting for the writer, oldest first
	// stmt holds the statements prepared at Open, by query (see prepared).
	stmt map[string]*sql.Stmt
}

var _ approval.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and brings its schema up
// to date. The path ":memory:" opens a private in-memory database.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, migrations)
}

// open opens the database at path and applies steps, a prefix of migrations.
// A store opened with fewer steps than migrations (an older schema, for
// tests of upgrades) is only fit to be closed.
func open(ctx context.Context, path string, steps []string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite: invalid database path %q", path)
	}
	// Every transaction begins IMMEDIATE: it takes the write lock up front, so two
	// writers never both read and then fail to upgrade (which busy_timeout
	// cannot retry). WAL lets readers run while one writes. Temporary
	// storage is in memory: the statement journal of each write of a group
	// commit (see exec) would otherwise be a file, written page by page.
	dsn := path + fmt.Sprintf("?_txlock=immediate&_busy_timeout=%d&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL&_pragma=temp_store(memory)",
		busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if path == ":memory:" {
		// Each connection to ":memory:" is its own database: keep exactly one.
		db.SetMaxOpenConns(1)
		db.SetConnMaxIdleTime(0)
		db.SetConnMaxLifetime(0)
	} else {
		// Enough connections for readers beside the writer, all kept open:
		// opening a connection costs far more than a read.
		n := max(4, 2*runtime.GOMAXPROCS(0))
		db.SetMaxOpenConns(n)
		db.SetMaxIdleConns(n)
	}
	s := &Store{db: db, writer: make(chan struct{}, 1)}
	if err := s.migrate(ctx, steps); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if len(steps) == len(migrations) {
		if err := s.prepare(ctx); err != nil {
			db.Close()
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
	}
	return s, nil
}

// prepared are the queries run on every vote and creation, prepared once at
// Open rather than parsed on every call (the parse of the request update,
// with its triggers, costs as much as running it).
var prepared = []string{
	insertRequest, updateRequest, getRequest, getVersion, getLegacyToken, putPage, importPage, getPage,
}

func (s *Store) prepare(ctx context.Context) error {
	s.stmt = make(map[string]*sql.Stmt, len(prepared))
	for _, q := range prepared {
		st, err := s.db.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.stmt[q] = st
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	for _, st := range s.stmt {
		st.Close()
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}

// migrations are applied in order; PRAGMA user_version counts those applied.
// Never change a step once released: append a new one.
var migrations = []string{
	`CREATE TABLE requests (
		id               TEXT PRIMARY KEY,
		task_token       TEXT NOT NULL,
		webhook_url      TEXT NOT NULL,
		title            TEXT NOT NULL,
		details          TEXT NOT NULL,
		links            TEXT NOT NULL,   -- JSON array of {label, url}
		requester        TEXT NOT NULL,
		approvers        TEXT NOT NULL,   -- JSON array of strings
		policy           TEXT NOT NULL,
		slack_channel    TEXT NOT NULL,
		chat_channel     TEXT NOT NULL DEFAULT '',
		chat_ts          TEXT NOT NULL DEFAULT '',
		status           TEXT NOT NULL,
		created_at       INTEGER NOT NULL, -- Unix milliseconds
		expires_at       INTEGER NOT NULL, -- Unix milliseconds
		decision_choice  TEXT,             -- decision_* are NULL until decided
		decision_by      TEXT,
		decision_channel TEXT,
		decision_comment TEXT,
		decision_at      INTEGER,
		delivered        INTEGER NOT NULL DEFAULT 0,
		recipients       TEXT NOT NULL    -- JSON array of recipients
	) STRICT;
	CREATE INDEX requests_pending ON requests (created_at) WHERE status = 'pending';
	CREATE INDEX requests_undelivered ON requests (created_at) WHERE status <> 'pending' AND delivered = 0;
	CREATE TABLE tokens (
		hash       TEXT PRIMARY KEY,      -- hex SHA-256 of the raw token
		request_id TEXT NOT NULL REFERENCES requests (id) ON DELETE CASCADE,
		recipient  TEXT NOT NULL,
		channel    TEXT NOT NULL,
		page_key   TEXT NOT NULL,
		expires_at INTEGER NOT NULL,      -- Unix milliseconds
		used_at    INTEGER                -- NULL while unused
	) STRICT;
	CREATE INDEX tokens_request ON tokens (request_id);`,
	// 2: the delivery lease (Unix milliseconds), NULL when none was taken or
	// the outcome is delivered.
	`ALTER TABLE requests ADD COLUMN delivery_lease_until INTEGER;`,
	// 3: decision core v2. version counts a row's writes (0: written by the
	// first version); doc holds the v2 parts as JSON (NULL: a row of the
	// first version, read from its old columns); due_at is Request.DueAt (Unix
	// milliseconds), NULL when nothing is due, and its partial index is the due
	// index. Rows of the first version are due at their expiry while pending,
	// and at the end of their delivery lease (or at once) while their outcome
	// is undelivered. The pages table holds the one-time pages; a page is
	// linked to its request (request_id) by the write that stores the request
	// with the page's key among its recipients, and served only while that
	// request is pending.
	`ALTER TABLE requests ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE requests ADD COLUMN doc TEXT;
	ALTER TABLE requests ADD COLUMN due_at INTEGER;
	UPDATE requests SET due_at = CASE
		WHEN status = 'pending' THEN expires_at
		WHEN delivered = 0 THEN coalesce(delivery_lease_until, created_at)
	END;
	CREATE INDEX requests_due ON requests (due_at, id) WHERE due_at IS NOT NULL;
	CREATE TABLE pages (
		key        TEXT PRIMARY KEY,
		request_id TEXT,               -- NULL until its request is stored
		html       BLOB NOT NULL,
		created_at INTEGER NOT NULL    -- Unix milliseconds
	) STRICT;
	CREATE INDEX pages_request ON pages (request_id);
	CREATE TRIGGER requests_pages_insert AFTER INSERT ON requests BEGIN
		UPDATE pages SET request_id = NEW.id
		WHERE request_id IS NULL
		AND key IN (SELECT json_extract(value, '$.pageKey') FROM json_each(NEW.recipients));
	END;
	CREATE TRIGGER requests_pages_update AFTER UPDATE OF recipients ON requests
	WHEN OLD.recipients IS NOT NEW.recipients BEGIN
		UPDATE pages SET request_id = NEW.id
		WHERE request_id IS NULL
		AND key IN (SELECT json_extract(value, '$.pageKey') FROM json_each(NEW.recipients));
	END;`,
	// 4: history and the audit trail. The closed index lists the closed
	// requests newest first, and the status index those of one status
	// (pending too: it replaces the pending index, whose ties by ID SQLite
	// had to sort). The audit
	// table is the append-only log of the audit trail: every entry of every
	// request's chain (copied from the doc's "audit" array by the triggers,
	// in the write that seals it) and every checkpoint (request_id ''), in
	// the order they were stored (gseq). Its entries are never updated or
	// deleted (the guard triggers refuse it). A page taken down keeps its
	// row, without its html, so that its link still finds its request.
	`CREATE INDEX requests_closed ON requests (created_at DESC, id DESC) WHERE status <> 'pending';
	CREATE INDEX requests_status ON requests (status, created_at DESC, id DESC);
	DROP INDEX requests_pending;
	CREATE TABLE audit (
		gseq       INTEGER PRIMARY KEY AUTOINCREMENT,
		request_id TEXT NOT NULL,      -- '' for a checkpoint
		seq        INTEGER NOT NULL,
		at         TEXT NOT NULL,      -- the entry's time: RFC 3339, UTC, milliseconds
		entry      TEXT NOT NULL,      -- the entry as exported (one line of JSON)
		UNIQUE (request_id, seq)
	) STRICT;
	CREATE INDEX audit_at ON audit (at);
	CREATE TRIGGER requests_audit_insert AFTER INSERT ON requests WHEN NEW.doc IS NOT NULL BEGIN
		INSERT INTO audit (request_id, seq, at, entry)
		SELECT NEW.id, json_extract(value, '$.seq'), json_extract(value, '$.at'), value
		FROM json_each(NEW.doc, '$.audit') ORDER BY key;
	END;
	CREATE TRIGGER requests_audit_update AFTER UPDATE ON requests WHEN NEW.doc IS NOT NULL BEGIN
		INSERT INTO audit (request_id, seq, at, entry)
		SELECT NEW.id, json_extract(value, '$.seq'), json_extract(value, '$.at'), value
		FROM json_each(NEW.doc, '$.audit')
		WHERE json_extract(value, '$.seq') > coalesce((SELECT max(seq) FROM audit WHERE request_id = NEW.id), 0)
		ORDER BY key;
	END;
	CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN
		SELECT RAISE(ABORT, 'the audit log is append-only');
	END;
	CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN
		SELECT RAISE(ABORT, 'the audit log is append-only');
	END;`,
}

// begin starts a write transaction; done must be called when it is over.
func (s *Store) begin(ctx context.Context) (tx *sql.Tx, done func(), err error) {
	if err := s.lock(ctx); err != nil {
		return nil, nil, err
	}
	tx, err = s.db.BeginTx(ctx, nil)
	if err != nil {
		s.unlock()
		return nil, nil, err
	}
	return tx, func() { tx.Rollback(); s.unlock() }, nil
}

// lock waits for this process's turn to write; unlock ends it.
func (s *Store) lock(ctx context.Context) error {
	select {
	case s.writer <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) unlock() { <-s.writer }

// queryRow runs a query that reads one row, prepared if it is one of
// prepared.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.stmt[query]; st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.db.QueryRowContext(ctx, query, args...)
}

func (s *Store) migrate(ctx context.Context, steps []string) error {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	defer done()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if version > len(steps) {
		return fmt.Errorf("migrate: database schema version %d is newer than this program's %d", version, len(steps))
	}
	if version == len(steps) {
		return nil
	}
	for i := version; i < len(steps); i++ {
		if _, err := tx.ExecContext(ctx, steps[i]); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(steps))); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// SchemaVersion returns the database's schema version (PRAGMA user_version).
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("schema version: %w", err)
	}
	return v, nil
}

// requestColumns are the columns a request is read from, in scanRequest's
// order.
const requestColumns = `id, version, task_token, webhook_url, title, details, links, requester, approvers,
	slack_channel, chat_channel, chat_ts, status, created_at, expires_at,
	decision_choice, decision_by, decision_channel, decision_comment, decision_at,
	delivered, delivery_lease_until, recipients, doc`

// The statements of the store's methods.
const (
	insertRequest = `INSERT INTO requests (
		id, version, task_token, webhook_url, title, details, links, requester, approvers, policy,
		slack_channel, chat_channel, chat_ts, status, created_at, expires_at,
		decision_choice, decision_by, decision_channel, decision_comment, decision_at,
		delivered, delivery_lease_until, recipients, doc, due_at)
		VALUES (?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`
	// updateRequest is the one write of a change: the whole row, over the
	// version it was read at.
	updateRequest = `UPDATE requests SET version = version + 1,
		task_token = ?, webhook_url = ?, title = ?, details = ?, links = ?, requester = ?, approvers = ?, policy = ?,
		slack_channel = ?, chat_channel = ?, chat_ts = ?, status = ?, created_at = ?, expires_at = ?,
		decision_choice = ?, decision_by = ?, decision_channel = ?, decision_comment = ?, decision_at = ?,
		delivered = ?, delivery_lease_until = ?, recipients = ?, doc = ?, due_at = ?
		WHERE id = ? AND version = ?`
	getRequest     = "SELECT " + requestColumns + " FROM requests WHERE id = ?"
	getVersion     = "SELECT version FROM requests WHERE id = ?"
	getLegacyToken = "SELECT request_id FROM tokens WHERE hash = ?"
)

// CreateRequest stores r at version 1, or returns ErrConflict if its ID is
// taken.
func (s *Store) CreateRequest(ctx context.Context, r *approval.Request) error {
	row, err := encodeRequest(r)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	n, err := s.exec(ctx, insertRequest, append([]any{r.ID}, row.values()...)...)
	return created(r, n, err)
}

// created ends the create of r, whose insert gave err or touched n rows (none
// when its ID is taken): r is at version 1 once stored.
func created(r *approval.Request, n int64, err error) error {
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	if n == 0 {
		return fmt.Errorf("create request %s: %w", r.ID, approval.ErrConflict)
	}
	r.Version = 1
	return nil
}

// GetRequest returns the request with the given ID, or ErrNotFound.
func (s *Store) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	r, err := scanRequest(s.queryRow(ctx, getRequest, id))
	if errors.Is(err, sql.ErrNoRows) {
		err = approval.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

// UpdateRequest writes r over the stored request in one UPDATE conditional on
// the stored version being r.Version, and then increments r.Version. It
// returns ErrConflict if the stored version differs and ErrNotFound if there is
// no such request.
func (s *Store) UpdateRequest(ctx context.Context, r *approval.Request) error {
	row, err := encodeRequest(r)
	if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	n, err := s.exec(ctx, updateRequest, append(row.values(), r.ID, r.Version)...)
	if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	if n == 0 {
		// Nothing written: say why. Rows are never deleted, so a row seen
		// now existed at the write.
		var stored int64
		err := s.queryRow(ctx, getVersion, r.ID).Scan(&stored)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("update request %s: %w", r.ID, approval.ErrNotFound)
		case err != nil:
			return fmt.Errorf("update request %s: %w", r.ID, err)
		}
		return fmt.Errorf("update request %s: version %d, not %d: %w", r.ID, stored, r.Version, approval.ErrConflict)
	}
	r.Version++
	return nil
}

// LegacyToken returns the request of a token of the first version, from the
// tokens table, or ErrNotFound.
func (s *Store) LegacyToken(ctx context.Context, hash string) (string, error) {
	var id string
	err := s.queryRow(ctx, getLegacyToken, hash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = approval.ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("legacy token: %w", err)
	}
	return id, nil
}

// List returns up to q.Limit requests matching q (all of them when the
// limit is 0 or less), newest first, ties by ID descending, starting after
// q.Cursor, and the cursor of the next page ("" after the last). It reads
// through an index of the status asked for (pending, closed, or one closed
// status), filters in the same query, and stops after one more than the
// limit. The cursor is opaque: it encodes the creation time and ID of the
// last request of the page.
func (s *Store) List(ctx context.Context, q approval.Query) ([]*approval.Request, string, error) {
	q = q.Normalized()
	query, args, err := listQuery(q)
	if err != nil {
		return nil, "", err
	}
	rs, err := s.list(ctx, query, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list %s requests: %w", q.Status, err)
	}
	next := ""
	if q.Limit > 0 && len(rs) > q.Limit {
		rs = rs[:q.Limit]
		last := rs[q.Limit-1]
		next = makeCursor(last.CreatedAt.UnixMilli(), last.ID)
	}
	return rs, next, nil
}

// ListPending is List for the pending requests.
func (s *Store) ListPending(ctx context.Context, cursor string, limit int) ([]*approval.Request, string, error) {
	return s.List(ctx, approval.Query{Cursor: cursor, Limit: limit})
}

// listQuery is the query of a page of q, and its arguments.
func listQuery(q approval.Query) (string, []any, error) {
	var (
		where []string
		args  []any
	)
	switch q.Status {
	case approval.ListStatus(approval.StatusPending):
		where = append(where, "status = 'pending'")
	case approval.StatusClosed:
		where = append(where, "status <> 'pending'")
	default:
		where = append(where, "status = ?")
		args = append(args, string(q.Status))
	}
	if q.Cursor != "" {
		at, id, err := parseCursor(q.Cursor)
		if err != nil {
			return "", nil, err
		}
		where = append(where, "created_at <= ? AND (created_at < ? OR id < ?)")
		args = append(args, at, at, id)
	}
	if !q.Since.IsZero() {
		where = append(where, "created_at >= ?")
		args = append(args, q.Since.UnixMilli())
	}
	if !q.Until.IsZero() {
		where = append(where, "created_at < ?")
		args = append(args, q.Until.UnixMilli())
	}
	if q.Requester != "" {
		where = append(where, "lower(requester) = lower(?)")
		args = append(args, q.Requester)
	}
	if a := q.Approver; a.ID != "" || a.Email != "" {
		where = append(where, "EXISTS (SELECT 1 FROM json_each(requests.approvers) WHERE lower(value) IN (lower(?), lower(?)))")
		email := a.Email
		if email == "" {
			email = a.ID
		}
		args = append(args, a.ID, email)
	}
	query := "SELECT " + requestColumns + " FROM requests WHERE " + strings.Join(where, " AND ") + " ORDER BY created_at DESC, id DESC"
	if q.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(q.Limit+1)
	}
	return query, args, nil
}

// makeCursor and parseCursor write and read a List cursor.
func makeCursor(createdAt int64, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(createdAt, 10) + "." + id))
}

func parseCursor(c string) (int64, string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		at, id, ok := strings.Cut(string(b), ".")
		if n, perr := strconv.ParseInt(at, 10, 64); ok && perr == nil && id != "" {
			return n, id, nil
		}
	}
	return 0, "", approval.Invalidf("cursor", "cursor %q is not a cursor of this list", c)
}

// ListDue returns up to limit requests (all when limit is 0 or less) whose due
// time is set and at or before now, earliest first: the due index.
func (s *Store) ListDue(ctx context.Context, now time.Time, limit int) ([]*approval.Request, error) {
	rs, err := s.list(ctx, dueQuery(limit), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("list due: %w", err)
	}
	return rs, nil
}

// dueQuery reads the due index up to a time, earliest first.
func dueQuery(limit int) string {
	q := "SELECT " + requestColumns + " FROM requests WHERE due_at IS NOT NULL AND due_at <= ? ORDER BY due_at, id"
	if limit > 0 {
		q += " LIMIT " + strconv.Itoa(limit)
	}
	return q
}

func (s *Store) list(ctx context.Context, query string, args ...any) ([]*approval.Request, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*approval.Request
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
