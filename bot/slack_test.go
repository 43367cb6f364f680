package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeSlack is the part of the Slack Web API the bot calls, recording each call.
type fakeSlack struct {
	mu    sync.Mutex
	calls map[string][]string // method -> form bodies
}

func newFakeSlack(t *testing.T) (*fakeSlack, string) {
	f := &fakeSlack{calls: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		method := strings.TrimPrefix(r.URL.Path, "/")
		f.mu.Lock()
		f.calls[method] = append(f.calls[method], string(b))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true,"channel":"C0123456789","ts":"1700000000.000100"}`)
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL + "/"
}

func (f *fakeSlack) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[method])
}

// TestSlackWiring: with the Slack variables set, requests are posted to the
// channel, the message is updated once decided, and Slack's routes are mounted
// (and check signatures).
func TestSlackWiring(t *testing.T) {
	slack, apiURL := newFakeSlack(t)
	logs := &syncBuffer{}
	m, err := newMain([]string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, env(map[string]string{
		"SLACK_BOT_TOKEN":       "xoxb-test",
		"SLACK_SIGNING_SECRET":  "secret",
		"SLACK_DEFAULT_CHANNEL": "C0123456789",
		"SLACK_API_URL":         apiURL,
	}), io.Discard, logs)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s := &server{t: t, m: m, url: m.URL(), data: m.DataDir, logs: logs}

	r := s.create(`{"title":"Slack too","approvers":["a@example.com"],"timeoutSeconds":600}`)
	if r.SlackChannel != "C0123456789" {
		t.Errorf("slackChannel = %q, want the default channel", r.SlackChannel)
	}
	if n := slack.count("chat.postMessage"); n != 1 {
		t.Fatalf("chat.postMessage called %d times, want 1", n)
	}
	var link string
	eventually(t, "the email", func() bool { link = outboxLinks(t, s.data)["a@example.com"]; return link != "" })
	if status, _ := s.decide(getPage(t, link), "approve", "1"); status != http.StatusOK {
		t.Fatalf("approve: status %d", status)
	}
	eventually(t, "the Slack message update", func() bool { return slack.count("chat.update") == 1 })

	resp, err := http.Post(s.url+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("command=/approvals"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned /slack/commands: status %d, want 401", resp.StatusCode)
	}
}

// TestSlackConfigErrors: a partial Slack configuration stops the bot with a
// message naming the variable.
func TestSlackConfigErrors(t *testing.T) {
	for _, e := range []map[string]string{
		{"SLACK_SIGNING_SECRET": "x"},
		{"SLACK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
	} {
		_, err := newMain(nil, env(e), io.Discard, io.Discard)
		if got := exitCode(err, io.Discard); got != exitUsage || !strings.Contains(err.Error(), "SLACK_") {
			t.Errorf("%v: exit %d, err %v; want 2 naming the variable", e, got, err)
		}
	}
}
