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
// them at <BaseURL>/p/<key>.
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

// NewPages returns the pages kept in dir, creating it if needed. baseURL is the
// address at which the bot is reached, such as "http://127.0.0.1:8080".
func NewPages(dir, baseURL string) (*Pages, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pages folder: %w", err)
	}
	return &Pages{dir: dir, baseURL: strings.TrimRight(baseURL, "/")}, nil
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

// writeFileAtomic writes data to a temporary file next to path and renames it into
// place, so that nobody ever reads a partial file.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o600)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
