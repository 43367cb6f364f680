package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// Pages is the approval.Pages of the embedded mode: the one-time pages in the
// pages table of the Store's database, served at <baseURL>/p/<key>. Storing a
// page is one write through the Store's queue, with no file and no fsync of
// its own; the pages of a new request go in the same write as the request
// (CreateWithPages).
//
// A page is linked to its request by the write that stores the request with
// the page's key among its recipients (a trigger of the schema, for pages put
// before), or that stores the page as the request's (CreateWithPages), and Get
// serves it only while that request exists and is pending. So a page whose
// request was never stored (a creation that failed or crashed) and a page of
// a closed request are never served, even before they are deleted. A page
// of a stored request is taken down rather than deleted: its row keeps the
// key and the request, without the page, so that someone who opens its link
// later learns what happened (Get returns an *approval.PageGoneError).
type Pages struct {
	store   *Store
	baseURL string
	// Now is the clock of the pages' creation times; nil means time.Now.
	Now func() time.Time
}

var _ approval.Pages = (*Pages)(nil)

// pageKey is the shape of a page key: URL-safe base64, as approval.NewPageKey
// makes them (the same shape as the file-based pages accept).
var pageKey = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// The statements of Put and Get.
const (
	putPage = `INSERT INTO pages (key, html, created_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET html = excluded.html`
	// importPage stores a page as a page of a stored request.
	importPage = `INSERT INTO pages (key, request_id, html, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET request_id = excluded.request_id, html = excluded.html`
	// getPage reads a page, its request, the request's status (NULL when
	// the request is not stored) and expiry.
	getPage = `SELECT p.html, coalesce(p.request_id, ''), r.status, coalesce(r.expires_at, 0) FROM pages p
		LEFT JOIN requests r ON r.id = p.request_id WHERE p.key = ?`
)

// NewPages returns the pages kept in s's database. baseURL is the address at
// which the bot is reached, such as "http://127.0.0.1:8080".
func NewPages(s *Store, baseURL string) *Pages {
	return &Pages{store: s, baseURL: strings.TrimRight(baseURL, "/")}
}

func (p *Pages) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// URL is the address of the page stored under key.
func (p *Pages) URL(key string) string { return p.baseURL + "/p/" + key }

// Put stores the page under key, replacing any page there. A page is
// published once a request that names its key is stored.
func (p *Pages) Put(ctx context.Context, key string, html []byte) error {
	html, err := pageHTML(key, html)
	if err != nil {
		return fmt.Errorf("put page: %w", err)
	}
	_, err = p.store.exec(ctx, putPage, key, html, p.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("put page: %w", err)
	}
	return nil
}

// pageHTML checks that key is a page key and returns html as a page is
// stored (never NULL).
func pageHTML(key string, html []byte) ([]byte, error) {
	if !pageKey.MatchString(key) {
		return nil, fmt.Errorf("key of %d characters is not a page key", len(key))
	}
	if html == nil {
		return []byte{}, nil
	}
	return html, nil
}

// Import stores the page under key as a page of request requestID, served
// while that request is pending. It is for pages of requests stored before
// their pages lived here (the page files of the first version), which no
// later write of their request would link.
func (p *Pages) Import(ctx context.Context, requestID, key string, html []byte) error {
	html, err := pageHTML(key, html)
	if err != nil {
		return fmt.Errorf("import page: %w", err)
	}
	_, err = p.store.exec(ctx, importPage, key, requestID, html, p.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("import page: %w", err)
	}
	return nil
}

var _ approval.PagesWithRequest = (*Pages)(nil)

// InStore reports whether st is the Store that holds the pages.
func (p *Pages) InStore(st approval.Store) bool {
	s, ok := st.(*Store)
	return ok && s == p.store
}

// CreateWithPages stores r at version 1 and its pages (by key) in one write:
// the request, and when it is stored (its ID was free), the pages as its own.
// It returns approval.ErrConflict, having stored nothing, if the ID is taken.
func (p *Pages) CreateWithPages(ctx context.Context, r *approval.Request, pages map[string][]byte) error {
	row, err := encodeRequest(r)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	stmts := []stmt{{insertRequest, append([]any{r.ID}, row.values()...)}}
	now := p.now().UnixMilli()
	for key, html := range pages {
		html, err := pageHTML(key, html)
		if err != nil {
			return fmt.Errorf("create request %s: %w", r.ID, err)
		}
		stmts = append(stmts, stmt{importPage, []any{key, r.ID, html, now}})
	}
	n, err := p.store.execGroup(ctx, stmts...)
	return created(r, n, err)
}

// Delete takes the pages down: a page of a stored request keeps its row (the
// key and the request, without the page); any other is deleted. Keys that do
// not exist are not an error.
func (p *Pages) Delete(ctx context.Context, keys []string) error {
	args := make([]any, 0, len(keys))
	for _, k := range keys {
		if pageKey.MatchString(k) {
			args = append(args, k)
		}
	}
	if len(args) == 0 {
		return nil
	}
	in := "key IN (?" + strings.Repeat(", ?", len(args)-1) + ")"
	if _, err := p.store.exec(ctx, "UPDATE pages SET html = x'' WHERE request_id IS NOT NULL AND length(html) > 0 AND "+in, args...); err != nil {
		return fmt.Errorf("delete pages: %w", err)
	}
	if _, err := p.store.exec(ctx, "DELETE FROM pages WHERE request_id IS NULL AND "+in, args...); err != nil {
		return fmt.Errorf("delete pages: %w", err)
	}
	return nil
}

// Get returns the page stored under key while its request is stored and
// pending. A page taken down (its request closed, or its holder voted) whose
// request is stored is an *approval.PageGoneError naming the request; any
// other key is ErrNotFound.
func (p *Pages) Get(ctx context.Context, key string) ([]byte, error) {
	if !pageKey.MatchString(key) {
		return nil, fmt.Errorf("get page: %w", approval.ErrNotFound)
	}
	var (
		html    []byte
		id      string
		status  sql.NullString
		expires int64
	)
	err := p.store.queryRow(ctx, getPage, key).Scan(&html, &id, &status, &expires)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("get page: %w", approval.ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("get page: %w", err)
	case !status.Valid:
		return nil, fmt.Errorf("get page: no request stored: %w", approval.ErrNotFound)
	case status.String != string(approval.StatusPending) || len(html) == 0 || p.now().UnixMilli() >= expires:
		// Closed (the closing write retired it), taken down, or past the
		// expiry that nothing has closed yet.
		return nil, fmt.Errorf("get page: %w", &approval.PageGoneError{RequestID: id})
	}
	return html, nil
}

var _ approval.RetiringPages = (*Pages)(nil)

// RetiresPages marks Pages as a host that serves a page only while its
// request is pending and unexpired (see Get): the write that closes a request
// retires its pages, and Prune removes them later.
func (p *Pages) RetiresPages() {}

// Page is Get, under the name the web server's page source uses.
func (p *Pages) Page(ctx context.Context, key string) ([]byte, error) { return p.Get(ctx, key) }

// Prune removes the pages stored before before that are not served: it
// deletes those whose request was never stored, and takes down (see Delete)
// those whose request is no longer pending. It returns how many it removed.
// Pages put after before are left alone, since their request may still be
// being stored.
func (p *Pages) Prune(ctx context.Context, before time.Time) (int64, error) {
	n, err := p.store.exec(ctx, `DELETE FROM pages WHERE created_at < ? AND NOT EXISTS (
		SELECT 1 FROM requests r WHERE r.id = pages.request_id)`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune pages: %w", err)
	}
	m, err := p.store.exec(ctx, `UPDATE pages SET html = x'' WHERE created_at < ? AND length(html) > 0 AND EXISTS (
		SELECT 1 FROM requests r WHERE r.id = pages.request_id AND r.status <> 'pending')`, before.UnixMilli())
	if err != nil {
		return n, fmt.Errorf("prune pages: %w", err)
	}
	return n + m, nil
}
