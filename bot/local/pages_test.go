package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"approvalbot/bot/approval"
)

func TestPages(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "pages")
	p, err := NewPages(dir, "http://127.0.0.1:8080/")
	if err != nil {
		t.Fatal(err)
	}
	key := approval.NewPageKey()
	if got, want := p.URL(key), "http://127.0.0.1:8080/p/"+key; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if _, err := p.Page(ctx, key); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Page before Put: err = %v, want ErrNotFound", err)
	}
	if err := p.Put(ctx, key, []byte("<p>one</p>")); err != nil {
		t.Fatal(err)
	}
	if err := p.Put(ctx, key, []byte("<p>two</p>")); err != nil {
		t.Fatal(err)
	}
	got, err := p.Page(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "<p>two</p>" {
		t.Errorf("Page = %q, want the second Put", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != key+".html" {
		t.Errorf("folder holds %v, want only %s.html", entries, key)
	}
	if err := p.Delete(ctx, []string{key, approval.NewPageKey(), "../../etc/passwd"}); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if _, err := p.Page(ctx, key); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Page after Delete: err = %v, want ErrNotFound", err)
	}
}

func TestPagesRejectBadKeys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p, err := NewPages(filepath.Join(dir, "pages"), "http://x")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "secret.html"), []byte("secret"), 0o600)
	for _, key := range []string{"", "short", "../secret", "..%2fsecret", "a/b/cdefghijklmnopq", "abcdefghijklmnop.html", "abcdefghijklmnop qr"} {
		if _, err := p.Page(ctx, key); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("Page(%q): err = %v, want ErrNotFound", key, err)
		}
		if err := p.Put(ctx, key, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", key)
		}
	}
}

// A crash in the middle of an atomic write leaves a temporary file; the next
// start removes it, and only it.
func TestRemoveTemp(t *testing.T) {
	dir := t.TempDir()
	key := approval.NewPageKey()
	for name, body := range map[string]string{".tmp-123": "half a page", ".tmp-456": "", key + ".html": "<p>page</p>", "x.eml": "mail"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := NewPages(dir, "http://x")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		names = append(names, e.Name())
	}
	want := []string{key + ".html", "x.eml"}
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Errorf("after NewPages the folder holds %v, want %v", names, want)
	}
	keys, err := p.Keys(context.Background())
	if err != nil || !slices.Equal(keys, []string{key}) {
		t.Errorf("Keys = %v, %v; want [%s]", keys, err, key)
	}
	os.WriteFile(filepath.Join(dir, ".tmp-789"), nil, 0o600)
	if _, err := NewOutbox(dir, "", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tmp-789")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("NewOutbox left a temporary file: %v", err)
	}
}
