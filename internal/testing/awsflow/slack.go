package awsflow

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// SlackAPI is a fake Slack Web API on 127.0.0.1: it answers the calls the bot
// makes (chat.postMessage, chat.update, conversations.open) after a fixed
// delay, and adds each to a timeline as "slack.<method>".
type SlackAPI struct {
	// URL is the API's base URL, without the trailing slash.
	URL   string
	srv   *http.Server
	delay time.Duration
	tl    *Timeline
	n     atomic.Int64
}

// StartSlackAPI starts a fake Slack Web API answering after delay; Close stops it.
func StartSlackAPI(delay time.Duration, tl *Timeline) (*SlackAPI, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fake Slack: %w", err)
	}
	s := &SlackAPI{URL: "http://" + ln.Addr().String(), delay: delay, tl: tl}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *SlackAPI) Close() { s.srv.Close() }

// ServeHTTP answers one Web API call.
func (s *SlackAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	method := strings.TrimPrefix(r.URL.Path, "/")
	defer func() { s.tl.Add("slack."+method, start, time.Now()) }()
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	time.Sleep(s.delay)
	channel := r.Form.Get("channel")
	var out map[string]any
	switch method {
	case "chat.postMessage":
		out = map[string]any{"ok": true, "channel": channel, "ts": fmt.Sprintf("1700000000.%06d", s.n.Add(1))}
	case "chat.update":
		out = map[string]any{"ok": true, "channel": channel, "ts": r.Form.Get("ts"), "text": ""}
	case "conversations.open":
		out = map[string]any{"ok": true, "channel": map[string]any{"id": "D0BENCH" + fmt.Sprint(s.n.Add(1))}}
	default:
		out = map[string]any{"ok": true}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}
