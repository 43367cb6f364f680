package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"approvalbot/bot/approval"
)

// Pages keeps the one-time pages as files named <key>.html in a folder and serves
// them at <BaseURL>/p/<key>. It is how the first version of the embedded bot
// kept its pages; the bot now keeps them in its database and reads this folder
// only to move the pages of a data folder written before into the database.
type Pages struct {
	dir     string
	baseURL string
}

var _ approval.Pages = (*Pages)(nil)

// pageKey is the shape of a page key: URL-safe base64, as approval.NewPageKey
// makes them. Anything else is refused before it comes near the file system.
var pageKey = regexp.MustCompile(`^[A-Za-z0-9_-]{16,64}$`)

// ValidPageKey reports whether key has the shape of a page key.
func ValidPageKey(key string) bool { return pageKey.MatchString(key) }

// NewPages returns the pages kept in dir, creating it if needed, and removes
// the temporary files a crash left there. baseURL is the address at which the
// bot is reached, such as "http://127.0.0.1:8080".
func NewPages(dir, baseURL string) (*Pages, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pages folder: %w", err)
	}
	if _, err := RemoveTemp(dir); err != nil {
		return nil, fmt.Errorf("pages folder: %w", err)
	}
	return &Pages{dir: dir, baseURL: strings.TrimRight(baseURL, "/")}, nil
}

// Keys returns the keys of the pages in the folder, in directory order.
func (p *Pages) Keys(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, fmt.Errorf("list pages: %w", err)
	}
	var keys []string
	for _, e := range entries {
		if key, ok := strings.CutSuffix(e.Name(), ".html"); ok && e.Type().IsRegular() && ValidPageKey(key) {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// Dir is the folder that holds the pages.
func (p *Pages) Dir() string { return p.dir }

func (p *Pages) path(key string) (string, error) {
	if !ValidPageKey(key) {
		return "", fmt.Errorf("page key of %d characters: %w", len(key), approval.ErrNotFound)
	}
	return filepath.Join(p.dir, key+".html"), nil
}

// Put writes the page atomically: readers see the old page or the new one, never
// part of it.
func (p *Pages) Put(ctx context.Context, key string, html []byte) error {
	path, err := p.path(key)
	if err != nil {
		return fmt.Errorf("put page: %w", err)
	}
	if err := writeFileAtomic(path, html); err != nil {
		return fmt.Errorf("put page: %w", err)
	}
	return nil
}

// Delete removes the pages; missing pages are not an error.
func (p *Pages) Delete(ctx context.Context, keys []string) error {
	var errs []error
	for _, key := range keys {
		path, err := p.path(key)
		if err != nil {
			continue // no such page can exist
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete pages: %w", err)
	}
	return nil
}

// URL is the address of the page stored under key.
func (p *Pages) URL(key string) string { return p.baseURL + "/p/" + key }

// Page returns the page stored under key, or approval.ErrNotFound.
func (p *Pages) Page(ctx context.Context, key string) ([]byte, error) {
	path, err := p.path(key)
	if err != nil {
		return nil, fmt.Errorf("read page: %w", err)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read page: %w", approval.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read page: %w", err)
	}
	return b, nil
}

// tempPrefix starts the name of every temporary file writeFileAtomic makes.
const tempPrefix = ".tmp-"

// RemoveTemp removes the temporary files that a process stopped in the middle
// of writeFileAtomic left in dir, and returns how many it removed. Call it at
// start, before anything writes to dir.
func RemoveTemp(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("remove temporary files: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) || !e.Type().IsRegular() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("remove temporary files: %w", err)
	}
	return n, nil
}
