package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/web"
)

// The data folder in testdata/v1data was written by the first version of the
// bot (commit 3d7ab73): "Pending from v1" (approvers alice and bob, 30 days),
// "Decided in v1" (carol approved, comment "fine"), "Expiring in v1" (dave,
// one minute, past its expiry but never closed), each with its email in the
// outbox and its page files in pages/. Then, as a crash would have left them:
// a temporary file, and a page file of the decided request.
const (
	v1Time     = "2026-11-30T10:27:51Z" // when it was written
	v1Pending  = "cb6hpzewdy7i3vm4"
	v1Decided  = "p5lf5bcuwcsgebfg"
	v1Expiring = "aj7wk4brtvmid4vr"
)

// copyDir copies the folder src to dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDataOfTheFirstVersion: a data folder written by the first version keeps
// working. Its pending request is listed, its emailed pages are served from
// their files while it is pending, and its links (tokens that name no
// request) vote; no page of a closed or expired request is served, and the
// files a crash left behind are removed.
func TestDataOfTheFirstVersion(t *testing.T) {
	data := t.TempDir()
	copyDir(t, "testdata/v1data", data)
	start, _ := time.Parse(time.RFC3339, v1Time)
	clock := &fakeClock{now: start.Add(5 * time.Minute)}
	s := startServer(t, data, func(m *Main) { m.Now = clock.Now })

	links := outboxLinks(t, data)
	key := func(who string) string { return pageKey(links[who]) }
	pagesDir := filepath.Join(data, "pages")
	if _, err := os.Stat(filepath.Join(pagesDir, ".tmp-3141592653")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file a crash left is still there (%v)", err)
	}
	for who, want := range map[string]int{
		"alice@example.com": http.StatusOK,       // pending
		"bob@example.com":   http.StatusOK,       // pending
		"carol@example.com": http.StatusNotFound, // decided: its file was left by a crash
		"dave@example.com":  http.StatusNotFound, // expired
	} {
		if got := statusOf(t, s.url+"/p/"+key(who)); got != want {
			t.Errorf("page of %s: status %d, want %d", who, got, want)
		}
		_, err := os.Stat(filepath.Join(pagesDir, key(who)+".html"))
		if kept := err == nil; kept != (want == http.StatusOK) {
			t.Errorf("page file of %s kept: %v, want %v", who, kept, want == http.StatusOK)
		}
	}

	_, list := s.do("GET", "/api/requests?status=pending", "", "")
	var l web.ListJSON
	if err := json.Unmarshal([]byte(list), &l); err != nil || len(l.Requests) != 1 || l.Requests[0].ID != v1Pending {
		t.Errorf("the pending list is %s (%v), want only the pending request of the first version", list, err)
	}
	pending := v1Pending
	r := s.get(pending)
	if r.Status != "pending" || r.Policy != "any" || len(r.Votes) != 0 || r.Progress.Needed != 1 {
		t.Errorf("the first version's request: %s, policy %q, %d votes, %d needed; want pending, any, none, 1", r.Status, r.Policy, len(r.Votes), r.Progress.Needed)
	}
	if got := s.get(v1Expiring); got.Status != "expired" {
		t.Errorf("the first version's request past its expiry is %s, want expired", got.Status)
	}

	// Alice votes with her old link: it decides under "any".
	token := getPage(t, s.url+"/p/"+key("alice@example.com"))
	if status, body := s.vote(token, "approve", "still fine", true); status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Fatalf("approve through the first version's page: status %d\n%s", status, pageText(body))
	}
	r = s.get(pending)
	if r.Status != "approved" || r.Decision == nil || r.Decision.By != "alice@example.com" || len(r.Votes) != 1 || r.Votes[0].Comment != "still fine" {
		t.Errorf("after alice's vote: %s by %+v with votes %+v; want approved by alice with her vote", r.Status, r.Decision, r.Votes)
	}
	for _, who := range []string{"alice@example.com", "bob@example.com"} {
		if got := statusOf(t, s.url+"/p/"+key(who)); got != http.StatusNotFound {
			t.Errorf("page of %s after the decision: status %d, want 404", who, got)
		}
	}
	if status, body := s.vote(getPageToken(t, filepath.Join("testdata/v1data/pages", key("bob@example.com")+".html")), "reject", "", false); status != http.StatusConflict || !strings.Contains(body, "alice@example.com") {
		t.Errorf("bob's old link after the decision: status %d, want 409 naming alice\n%s", status, pageText(body))
	}

	if err := s.m.Close(); err != nil {
		t.Fatal(err)
	}
	// After a restart nothing of the old pages is left.
	s2 := startServer(t, data, func(m *Main) { m.Now = clock.Now })
	if _, err := os.Stat(pagesDir); !errors.Is(err, fs.ErrNotExist) {
		entries, _ := os.ReadDir(pagesDir)
		t.Errorf("the pages folder is still there after a restart with no pending page in it: %v", entries)
	}
	// The request the first version decided reads as decided, with its vote.
	decided := v1Decided
	var out bytes.Buffer
	if err := run(context.Background(), []string{"bot", "get", decided, "--server", s2.url}, env(nil), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"status:     approved", "by:         carol@example.com", "comment:    fine", "votes:      carol@example.com approved by email"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("bot get of the request the first version decided lacks %q:\n%s", want, out.String())
		}
	}
}

// getPageToken reads the token out of a page file.
func getPageToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := tokenField.FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s has no token field", path)
	}
	return string(m[1])
}
