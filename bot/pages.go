package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/local"
	"approvalbot/bot/sqlite"
)

// pageSource serves GET /p/{page}: the pages in the database, and then the
// page files of a data folder written by the first version, while their
// request is pending.
type pageSource struct {
	db     *sqlite.Pages
	legacy *legacyPages // nil when there are none
	now    func() time.Time
}

// Page returns the page stored under key, or an error matching
// approval.ErrNotFound.
func (p pageSource) Page(ctx context.Context, key string) ([]byte, error) {
	html, err := p.db.Get(ctx, key)
	if err == nil || !errors.Is(err, approval.ErrNotFound) || p.legacy == nil {
		return html, err
	}
	return p.legacy.Page(ctx, key, p.now())
}

// legacyPages are the one-time pages that the first version kept as files in
// <data>/pages, which the database does not hold. They are served read-only,
// each only while its request is pending and unexpired (the version before
// this one deleted a request's page files when it closed, but a crash could
// leave them behind, with working buttons). A file whose request has closed is
// removed when it is asked for, and by Prune; once none is left the folder
// goes.
type legacyPages struct {
	dir   string
	files *local.Pages
	store approval.Store
	log   *slog.Logger

	mu    sync.Mutex
	owner map[string]string // page key → request ID
}

// openLegacyPages looks for the page files of the first version in dir. It
// removes the temporary files a crash left there, keeps the pages of the
// requests pending at now, and removes every other file. It returns nil when
// no page is left to serve (and then removes the folder).
func openLegacyPages(ctx context.Context, dir, baseURL string, store approval.Store, now time.Time, log *slog.Logger) (*legacyPages, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	files, err := local.NewPages(dir, baseURL) // removes the temporary files
	if err != nil {
		return nil, err
	}
	keys, err := files.Keys(ctx)
	if err != nil {
		return nil, err
	}
	p := &legacyPages{dir: dir, files: files, store: store, log: log, owner: map[string]string{}}
	if len(keys) > 0 {
		owner := map[string]string{}
		for cursor := ""; ; {
			rs, next, err := store.List(ctx, approval.Query{Cursor: cursor, Limit: 100})
			if err != nil {
				return nil, fmt.Errorf("pages of the first version: %w", err)
			}
			for _, r := range rs {
				if !r.ExpiredAt(now) {
					for _, k := range r.PageKeys() {
						owner[k] = r.ID
					}
				}
			}
			if next == "" || len(rs) == 0 {
				break
			}
			cursor = next
		}
		var dead []string
		for _, k := range keys {
			if id, ok := owner[k]; ok {
				p.owner[k] = id
			} else {
				dead = append(dead, k)
			}
		}
		if err := files.Delete(ctx, dead); err != nil {
			return nil, fmt.Errorf("pages of the first version: %w", err)
		}
		log.Info("pages of the first version", "serving", len(p.owner), "removed", len(dead))
	}
	if len(p.owner) == 0 {
		p.removeDir()
		return nil, nil
	}
	return p, nil
}

// Page returns the page file under key while its request is pending at now,
// or an error matching approval.ErrNotFound.
func (p *legacyPages) Page(ctx context.Context, key string, now time.Time) ([]byte, error) {
	p.mu.Lock()
	id, ok := p.owner[key]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("page of the first version: %w", approval.ErrNotFound)
	}
	live, err := p.live(ctx, id, now)
	if err != nil {
		return nil, fmt.Errorf("page of the first version: %w", err)
	}
	if !live {
		p.remove(ctx, []string{key})
		return nil, fmt.Errorf("page of the first version: %w", approval.ErrNotFound)
	}
	return p.files.Page(ctx, key)
}

// live reports whether request id is pending at now.
func (p *legacyPages) live(ctx context.Context, id string, now time.Time) (bool, error) {
	r, err := p.store.GetRequest(ctx, id)
	switch {
	case errors.Is(err, approval.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	}
	return r.Status == approval.StatusPending && !r.ExpiredAt(now), nil
}

// Prune removes the files of the requests no longer pending at now, and
// reports whether any file is left to serve.
func (p *legacyPages) Prune(ctx context.Context, now time.Time) (left bool, err error) {
	p.mu.Lock()
	owner := make(map[string]string, len(p.owner))
	for k, id := range p.owner {
		owner[k] = id
	}
	p.mu.Unlock()
	var dead []string
	for k, id := range owner {
		live, err := p.live(ctx, id, now)
		if err != nil {
			return true, fmt.Errorf("prune pages of the first version: %w", err)
		}
		if !live {
			dead = append(dead, k)
		}
	}
	if p.remove(ctx, dead) == 0 {
		p.removeDir()
		return false, nil
	}
	return true, nil
}

// remove deletes the files under keys and forgets them; it returns how many
// pages are left.
func (p *legacyPages) remove(ctx context.Context, keys []string) int {
	if err := p.files.Delete(ctx, keys); err != nil {
		p.log.Warn("pages of the first version not removed", "err", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		delete(p.owner, k)
	}
	return len(p.owner)
}

// removeDir removes the pages folder once it is empty.
func (p *legacyPages) removeDir() {
	if err := os.Remove(p.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.log.Warn("the pages folder of the first version is not empty; nothing uses it any more", "dir", p.dir, "err", err)
	}
}
