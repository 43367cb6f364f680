// Package sqlite is the approval.Store of the embedded mode, on SQLite through the
// pure-Go modernc.org/sqlite driver. Its tables mirror the DynamoDB data model:
// one row per request, one row per token keyed by the token's SHA-256. Claims are
// single immediate transactions of conditional updates, so that of any number of
// concurrent claims on a request's tokens at most one wins.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
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
	// writer admits one write transaction of this process at a time. SQLite
	// allows one writer anyway; queueing here rather than in SQLite's busy
	// handler (which sleeps and polls) keeps contended claims fast. Writers in
	// other processes are still handled by busy_timeout.
	writer chan struct{}
}

var _ approval.Store = (*Store)(nil)

// Open opens (creating if needed) the database at path and brings its schema up
// to date. The path ":memory:" opens a private in-memory database.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, migrations)
}

// open opens the database at path and applies steps, a prefix of migrations.
func open(ctx context.Context, path string, steps []string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("open sqlite: invalid database path %q", path)
	}
	// Every transaction begins IMMEDIATE: it takes the write lock up front, so two
	// writers never both read and then fail to upgrade (which busy_timeout
	// cannot retry). WAL lets readers run while one writes.
	dsn := path + fmt.Sprintf("?_txlock=immediate&_busy_timeout=%d&_foreign_keys=1&_journal_mode=WAL&_synchronous=NORMAL",
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
	}
	s := &Store{db: db, writer: make(chan struct{}, 1)}
	if err := s.migrate(ctx, steps); err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close sqlite: %w", err)
	}
	return nil
}

// migrations are applied in order; PRAGMA user_version counts those applied.
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
}

// begin starts a write transaction; done must be called when it is over.
func (s *Store) begin(ctx context.Context) (tx *sql.Tx, done func(), err error) {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	tx, err = s.db.BeginTx(ctx, nil)
	if err != nil {
		<-s.writer
		return nil, nil, err
	}
	return tx, func() { tx.Rollback(); <-s.writer }, nil
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

// Rows in JSON columns. The tags stay here, never on the core's types.
type (
	linkJSON struct {
		Label string `json:"label,omitempty"`
		URL   string `json:"url"`
	}
	recipientJSON struct {
		Address   string `json:"address"`
		Channel   string `json:"channel"`
		TokenHash string `json:"tokenHash"`
		PageKey   string `json:"pageKey"`
	}
)

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

// CreateRequest stores r and its tokens in one transaction.
func (s *Store) CreateRequest(ctx context.Context, r *approval.Request, tokens []approval.Token) error {
	links := make([]linkJSON, 0, len(r.Links))
	for _, l := range r.Links {
		links = append(links, linkJSON(l))
	}
	rcs := make([]recipientJSON, 0, len(r.Recipients))
	for _, rc := range r.Recipients {
		rcs = append(rcs, recipientJSON{Address: rc.Address, Channel: string(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey})
	}
	approvers := r.Approvers
	if approvers == nil {
		approvers = []string{}
	}
	linksJS, err := json.Marshal(links)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	approversJS, err := json.Marshal(approvers)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	rcsJS, err := json.Marshal(rcs)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	var dc, dby, dch, dcom any
	var dat any
	if d := r.Decision; d != nil {
		dc, dby, dch, dcom, dat = string(d.Choice), d.By, string(d.Channel), d.Comment, ms(d.At)
	}

	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	defer done()
	res, err := tx.ExecContext(ctx, `INSERT INTO requests (
		id, task_token, webhook_url, title, details, links, requester, approvers, policy,
		slack_channel, chat_channel, chat_ts, status, created_at, expires_at,
		decision_choice, decision_by, decision_channel, decision_comment, decision_at,
		delivered, recipients)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO NOTHING`,
		r.ID, r.TaskToken, r.WebhookURL, r.Title, r.Details, string(linksJS), r.Requester, string(approversJS), string(r.Policy),
		r.SlackChannel, r.ChatMessage.Channel, r.ChatMessage.TS, string(r.Status), ms(r.CreatedAt), ms(r.ExpiresAt),
		dc, dby, dch, dcom, dat, r.Delivered, string(rcsJS))
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	} else if n == 0 {
		return fmt.Errorf("create request %s: %w", r.ID, approval.ErrConflict)
	}
	for _, t := range tokens {
		var used any
		if !t.UsedAt.IsZero() {
			used = ms(t.UsedAt)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO tokens (hash, request_id, recipient, channel, page_key, expires_at, used_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING`,
			t.Hash, t.RequestID, t.Recipient, string(t.Channel), t.PageKey, ms(t.ExpiresAt), used)
		if err != nil {
			return fmt.Errorf("create request %s: token: %w", r.ID, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("create request %s: token: %w", r.ID, err)
		} else if n == 0 {
			return fmt.Errorf("create request %s: token exists: %w", r.ID, approval.ErrConflict)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	return nil
}

const requestColumns = `id, task_token, webhook_url, title, details, links, requester, approvers, policy,
	slack_channel, chat_channel, chat_ts, status, created_at, expires_at,
	decision_choice, decision_by, decision_channel, decision_comment, decision_at,
	delivered, recipients`

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

type scanner interface {
	Scan(dest ...any) error
}

func scanRequest(row scanner) (*approval.Request, error) {
	var (
		r                                approval.Request
		links, approvers, rcs            string
		policy, status                   string
		created, expires                 int64
		dChoice, dBy, dChannel, dComment sql.NullString
		dAt                              sql.NullInt64
		delivered                        bool
	)
	err := row.Scan(&r.ID, &r.TaskToken, &r.WebhookURL, &r.Title, &r.Details, &links, &r.Requester, &approvers, &policy,
		&r.SlackChannel, &r.ChatMessage.Channel, &r.ChatMessage.TS, &status, &created, &expires,
		&dChoice, &dBy, &dChannel, &dComment, &dAt, &delivered, &rcs)
	if err != nil {
		return nil, err
	}
	r.Policy, r.Status, r.Delivered = approval.Policy(policy), approval.Status(status), delivered
	r.CreatedAt, r.ExpiresAt = fromMS(created), fromMS(expires)
	if dChoice.Valid {
		r.Decision = &approval.Decision{
			Choice: approval.Choice(dChoice.String), By: dBy.String, Channel: approval.Channel(dChannel.String),
			Comment: dComment.String, At: fromMS(dAt.Int64),
		}
	}
	var ls []linkJSON
	if err := json.Unmarshal([]byte(links), &ls); err != nil {
		return nil, fmt.Errorf("request %s: links: %w", r.ID, err)
	}
	for _, l := range ls {
		r.Links = append(r.Links, approval.Link(l))
	}
	if err := json.Unmarshal([]byte(approvers), &r.Approvers); err != nil {
		return nil, fmt.Errorf("request %s: approvers: %w", r.ID, err)
	}
	var rs []recipientJSON
	if err := json.Unmarshal([]byte(rcs), &rs); err != nil {
		return nil, fmt.Errorf("request %s: recipients: %w", r.ID, err)
	}
	for _, rc := range rs {
		r.Recipients = append(r.Recipients, approval.Recipient{
			Address: rc.Address, Channel: approval.Channel(rc.Channel), TokenHash: rc.TokenHash, PageKey: rc.PageKey,
		})
	}
	return &r, nil
}

func getRequest(ctx context.Context, q querier, id string) (*approval.Request, error) {
	r, err := scanRequest(q.QueryRowContext(ctx, "SELECT "+requestColumns+" FROM requests WHERE id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, approval.ErrNotFound
	}
	return r, err
}

func getToken(ctx context.Context, q querier, hash string) (*approval.Token, error) {
	var (
		t       approval.Token
		channel string
		expires int64
		used    sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT hash, request_id, recipient, channel, page_key, expires_at, used_at
		FROM tokens WHERE hash = ?`, hash).Scan(&t.Hash, &t.RequestID, &t.Recipient, &channel, &t.PageKey, &expires, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, approval.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t.Channel, t.ExpiresAt = approval.Channel(channel), fromMS(expires)
	if used.Valid {
		t.UsedAt = fromMS(used.Int64)
	}
	return &t, nil
}

// GetRequest returns the request with the given ID, or ErrNotFound.
func (s *Store) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	r, err := getRequest(ctx, s.db, id)
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

// GetToken returns the token stored under hash, or ErrNotFound.
func (s *Store) GetToken(ctx context.Context, hash string) (*approval.Token, error) {
	t, err := getToken(ctx, s.db, hash)
	if err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

func (s *Store) list(ctx context.Context, where string) ([]*approval.Request, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+requestColumns+" FROM requests WHERE "+where)
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

// ListPending returns the pending requests, newest first.
func (s *Store) ListPending(ctx context.Context) ([]*approval.Request, error) {
	rs, err := s.list(ctx, "status = 'pending' ORDER BY created_at DESC, id DESC")
	if err != nil {
		return nil, fmt.Errorf("list pending: %w", err)
	}
	return rs, nil
}

// ListUndelivered returns the closed requests whose outcome is not delivered,
// oldest first.
func (s *Store) ListUndelivered(ctx context.Context) ([]*approval.Request, error) {
	rs, err := s.list(ctx, "status <> 'pending' AND delivered = 0 ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list undelivered: %w", err)
	}
	return rs, nil
}

// Claim uses the token to record d in one immediate transaction of two
// conditional updates: the token, if unused and unexpired at d.At; then its
// request, if pending and unexpired at d.At. If either matches no row, the
// transaction works out why from what it sees and rolls back.
func (s *Store) Claim(ctx context.Context, hash string, d approval.Decision) (*approval.Request, error) {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	defer done()
	at := ms(d.At)
	var id string
	err = tx.QueryRowContext(ctx, `UPDATE tokens SET used_at = ?1
		WHERE hash = ?2 AND used_at IS NULL AND expires_at > ?1
		RETURNING request_id`, at, hash).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("claim: %w", whyNot(ctx, tx, hash, at, false))
	}
	if err != nil {
		return nil, fmt.Errorf("claim: %w", err)
	}
	res, err := tx.ExecContext(ctx, `UPDATE requests SET status = ?1,
		decision_choice = ?2, decision_by = ?3, decision_channel = ?4, decision_comment = ?5, decision_at = ?6
		WHERE id = ?7 AND status = 'pending' AND expires_at > ?6`,
		string(d.Choice.Status()), string(d.Choice), d.By, string(d.Channel), d.Comment, at, id)
	if err != nil {
		return nil, fmt.Errorf("claim request %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("claim request %s: %w", id, err)
	} else if n != 1 {
		return nil, fmt.Errorf("claim request %s: %w", id, whyNot(ctx, tx, hash, at, true))
	}
	r, err := getRequest(ctx, tx, id)
	if err != nil {
		return nil, fmt.Errorf("claim request %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim request %s: %w", id, err)
	}
	return r, nil
}

// whyNot explains, inside the claim's transaction, why a claim at at matched no
// row. tokenOK says the token's own update succeeded, so only the request is at
// fault.
func whyNot(ctx context.Context, tx *sql.Tx, hash string, at int64, tokenOK bool) error {
	t, err := getToken(ctx, tx, hash)
	if err != nil {
		return err
	}
	var (
		status  approval.Status
		expires int64
	)
	err = tx.QueryRowContext(ctx, "SELECT status, expires_at FROM requests WHERE id = ?", t.RequestID).Scan(&status, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("request %s: %w", t.RequestID, approval.ErrNotFound)
	}
	if err != nil {
		return err
	}
	switch {
	case status.Decided(), !tokenOK && !t.UsedAt.IsZero():
		return approval.ErrAlreadyDecided
	case status != approval.StatusPending, !tokenOK && ms(t.ExpiresAt) <= at, expires <= at:
		return approval.ErrExpired
	}
	return fmt.Errorf("request %s changed during the claim: %w", t.RequestID, approval.ErrConflict)
}

// Expire closes a pending request that is due at now.
func (s *Store) Expire(ctx context.Context, id string, now time.Time) (*approval.Request, error) {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("expire request %s: %w", id, err)
	}
	defer done()
	res, err := tx.ExecContext(ctx, `UPDATE requests SET status = 'expired'
		WHERE id = ? AND status = 'pending' AND expires_at <= ?`, id, ms(now))
	if err != nil {
		return nil, fmt.Errorf("expire request %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return nil, fmt.Errorf("expire request %s: %w", id, err)
	}
	r, err := getRequest(ctx, tx, id)
	if err != nil {
		return nil, fmt.Errorf("expire request %s: %w", id, err)
	}
	if n == 0 {
		if r.Status != approval.StatusPending {
			return nil, fmt.Errorf("expire request %s: %w", id, approval.ErrAlreadyDecided)
		}
		return nil, fmt.Errorf("expire request %s: not due: %w", id, approval.ErrConflict)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("expire request %s: %w", id, err)
	}
	return r, nil
}

// MarkWorkflowGone closes the request as expired and delivered, keeping any
// decision.
func (s *Store) MarkWorkflowGone(ctx context.Context, id string) (*approval.Request, error) {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("mark workflow gone %s: %w", id, err)
	}
	defer done()
	if _, err := tx.ExecContext(ctx, "UPDATE requests SET status = 'expired', delivered = 1, delivery_lease_until = NULL WHERE id = ?", id); err != nil {
		return nil, fmt.Errorf("mark workflow gone %s: %w", id, err)
	}
	r, err := getRequest(ctx, tx, id)
	if err != nil {
		return nil, fmt.Errorf("mark workflow gone %s: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("mark workflow gone %s: %w", id, err)
	}
	return r, nil
}

func (s *Store) update(ctx context.Context, op, id, query string, args ...any) error {
	select {
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%s %s: %w", op, id, ctx.Err())
	}
	res, err := s.db.ExecContext(ctx, query, args...)
	<-s.writer
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, id, err)
	}
	if n == 0 {
		return fmt.Errorf("%s %s: %w", op, id, approval.ErrNotFound)
	}
	return nil
}

// MarkDelivered records that the outcome reached the workflow.
func (s *Store) MarkDelivered(ctx context.Context, id string) error {
	return s.update(ctx, "mark delivered", id, "UPDATE requests SET delivered = 1, delivery_lease_until = NULL WHERE id = ?", id)
}

// LeaseDelivery takes the delivery lease of a closed, undelivered request whose
// lease is not running at now, until until: one conditional update. When it
// matches no row, a read in the same transaction tells ErrNotFound from
// ErrConflict.
func (s *Store) LeaseDelivery(ctx context.Context, id string, now, until time.Time) error {
	tx, done, err := s.begin(ctx)
	if err != nil {
		return fmt.Errorf("lease delivery %s: %w", id, err)
	}
	defer done()
	res, err := tx.ExecContext(ctx, `UPDATE requests SET delivery_lease_until = ?1
		WHERE id = ?2 AND status <> 'pending' AND delivered = 0
		AND (delivery_lease_until IS NULL OR delivery_lease_until <= ?3)`, ms(until), id, ms(now))
	if err != nil {
		return fmt.Errorf("lease delivery %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("lease delivery %s: %w", id, err)
	}
	if n == 0 {
		var one int
		err := tx.QueryRowContext(ctx, "SELECT 1 FROM requests WHERE id = ?", id).Scan(&one)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("lease delivery %s: %w", id, approval.ErrNotFound)
		case err != nil:
			return fmt.Errorf("lease delivery %s: %w", id, err)
		}
		return fmt.Errorf("lease delivery %s: pending, delivered or leased: %w", id, approval.ErrConflict)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("lease delivery %s: %w", id, err)
	}
	return nil
}

// SetChatMessage records where the request's chat message was posted.
func (s *Store) SetChatMessage(ctx context.Context, id string, m approval.ChatMessage) error {
	return s.update(ctx, "set chat message", id,
		"UPDATE requests SET chat_channel = ?, chat_ts = ? WHERE id = ?", m.Channel, m.TS, id)
}
