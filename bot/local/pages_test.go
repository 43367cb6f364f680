package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
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
