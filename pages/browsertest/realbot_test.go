package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"approvalbot/internal/testing/mailtest"
)

// realBot is the approval bot built from ./bot and run as its own process on
// 127.0.0.1 with a temporary data folder, exactly as `go run ./bot` runs it.
type realBot struct {
	origin string
	data   string
}

// startRealBot builds ./bot, starts it and waits until /healthz answers.
func startRealBot(t *testing.T) *realBot {
	t.Helper()
	root := moduleRoot(t)
	bin := filepath.Join(t.TempDir(), "approvalbot")
	build := exec.Command("go", "build", "-o", bin, "./bot")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./bot: %v\n%s", err, out)
	}

	// A free port, chosen here so that the base URL is known before start.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	b := &realBot{origin: "http://" + addr, data: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-addr", addr, "-data", b.data, "-base-url", b.origin)
	cmd.Env = botEnv() // outbox mail, open API, no Slack, whatever the caller's environment
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start bot: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
		if t.Failed() {
			t.Logf("bot output:\n%s", logs.String())
		}
	})

	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(b.origin + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return b
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("bot exited before answering /healthz: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("bot did not answer %s/healthz within 60 s:\n%s", b.origin, logs.String())
		}
	}
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

// moduleRoot is the folder of the approvalbot go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// botEnv is the environment without any approvalbot or Slack setting, so that
// the bot runs in its default embedded form.
func botEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "APPROVALBOT_") && !strings.HasPrefix(kv, "SLACK_") {
			env = append(env, kv)
		}
	}
	return env
}
