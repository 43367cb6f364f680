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
// its own.
//
// A page is linked to its request by the write that stores the request with
// the page's key among its recipients (a trigger of the schema), and Get
// serves it only while that request exists and is pending. So a page whose
// request was never stored (a creation that failed or crashed) and a page of
// a closed request are never served, even before they are deleted.
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
	// getPage serves a page only while its request is stored, pending and
	// unexpired: the write that closes a request retires its pages.
	getPage = `SELECT p.html FROM pages p JOIN requests r ON r.id = p.request_id
		WHERE p.key = ?1 AND r.status = 'pending' AND r.expires_at > ?2`
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
	if !pageKey.MatchString(key) {
		return fmt.Errorf("put page: key of %d characters is not a page key", len(key))
	}
	if html == nil {
		html = []byte{}
	}
	_, err := p.store.exec(ctx, putPage, key, html, p.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("put page: %w", err)
	}
	return nil
}

// Import stores the page under key as a page of request requestID, served
// while that request is pending. It is for pages of requests stored before
// their pages lived here (the page files of the first version), which no
// later write of their request would link.
func (p *Pages) Import(ctx context.Context, requestID, key string, html []byte) error {
	if !pageKey.MatchString(key) {
		return fmt.Errorf("import page: key of %d characters is not a page key", len(key))
	}
	if html == nil {
		html = []byte{}
	}
	_, err := p.store.exec(ctx, `INSERT INTO pages (key, request_id, html, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET request_id = excluded.request_id, html = excluded.html`,
		key, requestID, html, p.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("import page: %w", err)
	}
	return nil
}

// Delete removes the pages, in one write; keys that do not exist are not an
// error.
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
	q := "DELETE FROM pages WHERE key IN (?" + strings.Repeat(", ?", len(args)-1) + ")"
	if _, err := p.store.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("delete pages: %w", err)
	}
	return nil
}

// Get returns the page stored under key while its request is stored and
// pending, or ErrNotFound.
func (p *Pages) Get(ctx context.Context, key string) ([]byte, error) {
	if !pageKey.MatchString(key) {
		return nil, fmt.Errorf("get page: %w", approval.ErrNotFound)
	}
	var html []byte
	err := p.store.queryRow(ctx, getPage, key, p.now().UnixMilli()).Scan(&html)
	if errors.Is(err, sql.ErrNoRows) {
		err = approval.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get page: %w", err)
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

// Prune deletes the pages stored before before that are not served: those
// whose request was never stored, or is no longer pending. It returns how many
// it deleted. Pages put after before are left alone, since their request may
// still be being stored.
func (p *Pages) Prune(ctx context.Context, before time.Time) (int64, error) {
	n, err := p.store.exec(ctx, `DELETE FROM pages WHERE created_at < ? AND NOT EXISTS (
		SELECT 1 FROM requests r WHERE r.id = pages.request_id AND r.status = 'pending')`, before.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("prune pages: %w", err)
	}
	return n, nil
}
