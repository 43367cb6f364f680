package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"approvalbot/internal/testing/botproc"
	"approvalbot/internal/testing/mailtest"
)

// realBot is the approval bot built from ./bot and run as its own process on
// 127.0.0.1 with a temporary data folder, exactly as `go run ./bot` runs it.
type realBot struct {
	origin string
	data   string
}

// startRealBot builds ./bot, starts it and checks that /healthz answers. Its
// output is logged if the test fails.
func startRealBot(t *testing.T) *realBot {
	t.Helper()
	ctx := context.Background()
	bin, err := botproc.Build(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &realBot{data: t.TempDir()}
	var logs bytes.Buffer // botproc serializes the two streams into it
	p, err := botproc.Start(ctx, bin, botproc.Options{Data: b.data, Stdout: &logs, Stderr: &logs})
	if err != nil {
		t.Fatalf("start bot: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("stop bot: %v", err)
		}
		if t.Failed() {
			t.Logf("bot output:\n%s", logs.String())
		}
	})
	b.origin = p.URL()
	res, err := http.Get(b.origin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/healthz: status %d, want 200", b.origin, res.StatusCode)
	}
	return b
}

func (b *realBot) Origin() string { return b.origin }

// Links reads the page links from the .eml files in the bot's outbox.
func (b *realBot) Links(t *testing.T, approvers []string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(b.data, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".eml") {
			files = append(files, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		to, link, err := emlLink(raw, b.origin)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		found[to] = link
	}
	var links []string
	for _, a := range approvers {
		link, ok := found[a]
		if !ok {
			t.Fatalf("no email to %s with a page link in the outbox under %s (%d files)", a, b.data, len(files))
		}
		links = append(links, link)
	}
	return links
}

// emlLink returns the recipient of an .eml message and the page link in its
// text part.
func emlLink(raw []byte, origin string) (to, link string, err error) {
	m, err := mailtest.Parse(raw)
	if err != nil {
		return "", "", err
	}
	re := regexp.MustCompile(regexp.QuoteMeta(origin) + `/p/[A-Za-z0-9_-]+`)
	if link = re.FindString(m.Text); link == "" {
		return "", "", fmt.Errorf("no link to %s/p/... in the text part", origin)
	}
	return m.To, link, nil
}
