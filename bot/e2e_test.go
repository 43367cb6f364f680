package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/web"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeClock is the injected clock of the expiry and retry tests.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a getenv over a map.
func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling a real server, not waiting for time to pass
	}
}

// server is a running bot under test.
type server struct {
	t    *testing.T
	m    *Main
	url  string
	data string
	logs *syncBuffer
}

// startServer starts the bot on 127.0.0.1:0 over the data folder, through the
// same flag and environment parsing as main. tweak adjusts it before start.
func startServer(t *testing.T, data string, tweak func(*Main)) *server {
	t.Helper()
	logs := &syncBuffer{}
	m, err := newMain([]string{"-addr", "127.0.0.1:0", "-data", data}, env(nil), io.Discard, logs)
	if err != nil {
		t.Fatal(err)
	}
	m.SweepEvery = time.Hour // tests sweep themselves (see sweep)
	if tweak != nil {
		tweak(m)
	}
	if err := m.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, m: m, url: m.URL(), data: data, logs: logs}
	t.Cleanup(func() { m.Close() })
	return s
}

// sweep moves the clock on by d (when the server has a fake one) and runs one
// sweep, as the sweep loop would, returning once its effects are recorded.
func (s *server) sweep(clock *fakeClock, d time.Duration) approval.SweepStats {
	s.t.Helper()
	if clock != nil {
		clock.Add(d)
	}
	st, err := s.m.Service().Sweep(context.Background())
	if err != nil {
		s.t.Fatalf("sweep: %v", err)
	}
	return st
}

// idle waits until the effects the server runs in the background (emails,
// webhooks, page deletions) are done and recorded.
func (s *server) idle() {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.m.Service().Idle(ctx); err != nil {
		s.t.Fatalf("background effects still running after 20s: %v", err)
	}
}

var httpClient = &http.Client{Timeout: 70 * time.Second}

func (s *server) do(method, path, ctype, body string) (int, string) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *server) create(body string) web.RequestJSON {
	s.t.Helper()
	status, b := s.do("POST", "/api/requests", "application/json", body)
	if status != http.StatusCreated {
		s.t.Fatalf("create: status %d: %s", status, b)
	}
	var r web.RequestJSON
	if err := json.Unmarshal([]byte(b), &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *server) get(id string) web.RequestJSON {
	s.t.Helper()
	status, b := s.do("GET", "/api/requests/"+id, "", "")
	if status != http.StatusOK {
		s.t.Fatalf("get: status %d: %s", status, b)
	}
	var r web.RequestJSON
	if err := json.Unmarshal([]byte(b), &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

func (s *server) decide(token, decision, confirmed string) (int, string) {
	s.t.Helper()
	form := url.Values{"token": {token}, "decision": {decision}, "confirmed": {confirmed}, "comment": {"ship it"}}
	return s.do("POST", "/decide", "application/x-www-form-urlencoded", form.Encode())
}

var (
	pageLink   = regexp.MustCompile(`https?://[^\s"<>]+/p/([A-Za-z0-9_-]+)`)
	tokenField = regexp.MustCompile(`name="token" value="([A-Za-z0-9_.-]+)"`)
)

// outboxLinks reads every .eml in the outbox as a mail client would and returns
// the page link in each, by recipient.
func outboxLinks(t *testing.T, data string) map[string]string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	links := map[string]string{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s is not an RFC 5322 message: %v", f, err)
		}
		for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id"} {
			if msg.Header.Get(h) == "" {
				t.Errorf("%s has no %s header", f, h)
			}
		}
		to, err := mail.ParseAddress(msg.Header.Get("To"))
		if err != nil {
			t.Fatal(err)
		}
		mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
		if mt != "multipart/alternative" {
			t.Fatalf("%s: Content-Type %q, want multipart/alternative", f, mt)
		}
		parts := map[string]string{}
		mr := multipart.NewReader(msg.Body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(quotedprintable.NewReader(p))
			ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			parts[ct] = string(b)
		}
		if parts["text/plain"] == "" || parts["text/html"] == "" {
			t.Fatalf("%s lacks a text or an HTML part", f)
		}
		m := pageLink.FindString(parts["text/plain"])
		if m == "" || !strings.Contains(parts["text/html"], m) {
			t.Fatalf("%s: no page link in both parts", f)
		}
		links[to.Address] = m
	}
	return links
}

// getPage fetches a one-time page and returns its token.
func getPage(t *testing.T, link string) string {
	t.Helper()
	resp, err := httpClient.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET page: status %d", resp.StatusCode)
	}
	m := tokenField.FindSubmatch(b)
	if m == nil {
		t.Fatal("the page has no token field")
	}
	return string(m[1])
}

func statusOf(t *testing.T, link string) int {
	t.Helper()
	resp, err := httpClient.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// webhook is a receiver that can be down.
type webhook struct {
	srv  *httptest.Server
	down atomic.Bool
	mu   sync.Mutex
	got  []approval.Result
	hits atomic.Int32
}

func newWebhook(t *testing.T) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.hits.Add(1)
		if w.down.Load() {
			http.Error(rw, "down", http.StatusServiceUnavailable)
			return
		}
		var res approval.Result
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			http.Error(rw, "bad", http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.got = append(w.got, res)
		w.mu.Unlock()
		rw.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) results() []approval.Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]approval.Result(nil), w.got...)
}

// TestEndToEnd runs the program as main does: the server through run, a client
// through run with --wait, and a person through the emailed link.
func TestEndToEnd(t *testing.T) {
	data := t.TempDir()
	hook := newWebhook(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"bot", "-addr", "127.0.0.1:0", "-data", data}, env(nil), stdout, stderr)
	}()
	listen := regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)
	eventually(t, "the server to listen", func() bool { return listen.MatchString(stdout.String()) })
	base := "http://" + listen.FindStringSubmatch(stdout.String())[1]
	if !strings.Contains(stdout.String(), filepath.Join(data, "outbox")) {
		t.Errorf("the server does not say where its outbox is:\n%s", stdout)
	}
	s := &server{t: t, url: base, data: data, logs: stderr}
	if status, _ := s.do("GET", "/healthz", "", ""); status != http.StatusOK {
		t.Fatalf("healthz: status %d", status)
	}

	// A client asks and waits, as `go run ./bot request --wait` does.
	cliOut := &syncBuffer{}
	cliDone := make(chan error, 1)
	go func() {
		cliDone <- run(ctx, []string{"bot", "request", "--server", base,
			"--title", "Deploy v1.2 to prod", "--details", "Release notes", "--requester", "ci@example.com",
			"--approver", "alice@example.com", "--approver", "bob@example.com", "--link", "diff=https://example.com/diff",
			"--timeout", "1h", "--webhook", hook.srv.URL + "/hook", "--wait"}, env(nil), cliOut, io.Discard)
	}()
	idLine := regexp.MustCompile(`id:\s+([a-z2-7]{16})`)
	eventually(t, "the client to print the id", func() bool { return idLine.MatchString(cliOut.String()) })
	id := idLine.FindStringSubmatch(cliOut.String())[1]

	// An API caller waits too.
	apiWait := make(chan web.RequestJSON, 1)
	go func() {
		_, b := s.do("GET", "/api/requests/"+id+"?wait=30s", "", "")
		var r web.RequestJSON
		json.Unmarshal([]byte(b), &r)
		apiWait <- r
	}()

	var links map[string]string
	eventually(t, "two emails in the outbox", func() bool { links = outboxLinks(t, data); return len(links) == 2 })
	alice := getPage(t, links["alice@example.com"])
	bob := getPage(t, links["bob@example.com"])
	if req, err := http.NewRequest("HEAD", links["bob@example.com"], nil); err == nil {
		if resp, err := httpClient.Do(req); err != nil || resp.StatusCode != 200 {
			t.Errorf("HEAD page: %v %v", resp, err)
		}
	}
	if got := s.get(id).Status; got != "pending" {
		t.Fatalf("after opening the pages the request is %s, want pending", got)
	}

	// Without JavaScript: a confirmation step, nothing decided.
	status, body := s.decide(alice, "approve", "")
	if status != http.StatusOK || !strings.Contains(body, `name="confirmed" value="1"`) {
		t.Errorf("unconfirmed POST: status %d, want 200 with a confirmation form", status)
	}
	if got := s.get(id).Status; got != "pending" {
		t.Fatalf("after the unconfirmed POST the request is %s, want pending", got)
	}

	status, body = s.decide(alice, "approve", "1")
	if status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Fatalf("confirmed approve: status %d\n%s", status, body)
	}

	select {
	case err := <-cliDone:
		if err != nil {
			t.Errorf("request --wait returned %v, want success (exit 0) on approve", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting client did not get the decision")
	}
	for _, want := range []string{"status:     approved", "by:         alice@example.com", "channel:    email", "comment:    ship it",
		"votes:      alice@example.com approved by email at ", "progress:   1 of 1 approval"} {
		if !strings.Contains(cliOut.String(), want) {
			t.Errorf("client output lacks %q:\n%s", want, cliOut)
		}
	}
	select {
	case r := <-apiWait:
		if r.Status != "approved" || r.Decision == nil || r.Decision.By != "alice@example.com" || r.Decision.Comment != "ship it" {
			t.Errorf("API waiter got %+v, want approved by alice", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the API waiter did not get the decision")
	}

	status, body = s.decide(bob, "reject", "1")
	if status != http.StatusConflict || !strings.Contains(body, "already decided") || !strings.Contains(body, "alice@example.com") {
		t.Errorf("second POST: status %d, want 409 saying already decided by alice\n%s", status, body)
	}
	for who, link := range links {
		if got := statusOf(t, link); got != http.StatusGone {
			t.Errorf("page of %s after the decision: status %d, want 410 (what happened)", who, got)
		}
	}
	eventually(t, "the webhook to get the outcome", func() bool { return len(hook.results()) == 1 })
	if got := hook.results()[0]; got.RequestID != id || got.Decision != "approved" || got.DecidedBy != "alice@example.com" ||
		len(got.Votes) != 1 || got.Votes[0].By != "alice@example.com" || got.Votes[0].Comment != "ship it" {
		t.Errorf("webhook got %+v, want alice's approval with her vote", got)
	}
	eventually(t, "the API to say the outcome is delivered", func() bool { return s.get(id).Delivered })

	// Nothing secret in any API answer or log line.
	_, list := s.do("GET", "/api/requests?status=pending", "", "")
	_, one := s.do("GET", "/api/requests/"+id, "", "")
	answers := list + one + cliOut.String()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("run after cancel: %v, want a clean shutdown", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not shut down")
	}
	for _, secret := range []string{alice, bob, pageKey(links["alice@example.com"]), pageKey(links["bob@example.com"])} {
		if strings.Contains(answers, secret) {
			t.Errorf("an API answer holds a token or page key")
		}
		if strings.Contains(stderr.String()+stdout.String(), secret) {
			t.Errorf("the logs hold a token or page key:\n%s", stderr)
		}
	}
	if !strings.Contains(stderr.String(), `route="POST /decide"`) {
		t.Errorf("the logs do not name the route of each request:\n%s", stderr)
	}
}

func pageKey(link string) string { return link[strings.LastIndex(link, "/")+1:] }

// TestRejectExitsOne: request --wait exits 1 when the request is rejected.
func TestRejectExitsOne(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"bot", "request", "--title", "T", "--approver", "carol@example.com", "--wait"},
			env(map[string]string{"APPROVALBOT_SERVER": s.url}), out, io.Discard)
	}()
	var links map[string]string
	eventually(t, "the email", func() bool { links = outboxLinks(t, s.data); return len(links) == 1 })
	if status, _ := s.decide(getPage(t, links["carol@example.com"]), "reject", "1"); status != http.StatusOK {
		t.Fatalf("reject: status %d", status)
	}
	select {
	case err := <-done:
		if got := exitCode(err, io.Discard); got != exitNotOK {
			t.Errorf("exit code %d (%v), want 1 on reject", got, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the client did not return")
	}
	if !strings.Contains(out.String(), "decision:   rejected") {
		t.Errorf("client output lacks the rejection:\n%s", out)
	}

	// get --wait on a decided request answers at once, with the same exit code.
	id := regexp.MustCompile(`id:\s+(\S+)`).FindStringSubmatch(out.String())[1]
	var got bytes.Buffer
	err := run(context.Background(), []string{"bot", "get", id, "--wait", "--server", s.url}, env(nil), &got, io.Discard)
	if code := exitCode(err, io.Discard); code != exitNotOK || !strings.Contains(got.String(), "by:         carol@example.com") {
		t.Errorf("get --wait: exit %d, output:\n%s\nwant 1 and who rejected", code, got.String())
	}
	got.Reset()
	if err := run(context.Background(), []string{"bot", "list", "--server", s.url}, env(nil), &got, io.Discard); err != nil || got.String() != "no pending requests\n" {
		t.Errorf("list: %v, output %q; want no pending requests", err, got.String())
	}
}

// TestConcurrentDecisions: 200 concurrent POSTs over the request's tokens, one
// decision, zero 5xx, one webhook delivery.
func TestConcurrentDecisions(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	hook := newWebhook(t)
	r := s.create(`{"title":"Race","approvers":["a@example.com","b@example.com","c@example.com"],"timeoutSeconds":600,"webhookURL":"` + hook.srv.URL + `"}`)
	var tokens []string
	eventually(t, "three emails", func() bool { return len(outboxLinks(t, s.data)) == 3 })
	for _, link := range outboxLinks(t, s.data) {
		tokens = append(tokens, getPage(t, link))
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	codes := map[int]int{}
	for i := range 200 {
		wg.Go(func() {
			choice := []string{"approve", "reject"}[i%2]
			form := url.Values{"token": {tokens[i%len(tokens)]}, "decision": {choice}, "confirmed": {"1"}}
			resp, err := httpClient.PostForm(s.url+"/decide", form)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			codes[resp.StatusCode]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if codes[http.StatusOK] != 1 || codes[http.StatusConflict] != 199 {
		t.Errorf("status codes %v, want exactly one 200 and 199 409s", codes)
	}
	for code := range codes {
		if code >= 500 {
			t.Errorf("%d answers were %d", codes[code], code)
		}
	}
	got := s.get(r.ID)
	if got.Status != "approved" && got.Status != "rejected" {
		t.Errorf("request is %s, want decided", got.Status)
	}
	eventually(t, "the webhook", func() bool { return len(hook.results()) >= 1 })
	if n := len(hook.results()); n != 1 {
		t.Errorf("webhook got %d deliveries, want 1", n)
	}
}

// TestExpiredTokenRefused: with the clock past the expiry, the page is no
// longer served and its token is refused, although nothing has closed the
// request yet.
func TestExpiredTokenRefused(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)}
	s := startServer(t, t.TempDir(), func(m *Main) { m.Now = clock.Now })
	r := s.create(`{"title":"Soon","approvers":["a@example.com"],"timeoutSeconds":60}`)
	var link string
	eventually(t, "the email", func() bool { link = outboxLinks(t, s.data)["a@example.com"]; return link != "" })
	token := getPage(t, link)

	clock.Add(61 * time.Second)
	if got := statusOf(t, link); got != http.StatusGone {
		t.Errorf("page past its expiry: status %d, want 410 (what happened)", got)
	}
	status, body := s.decide(token, "approve", "1")
	if status != http.StatusGone || !strings.Contains(body, "expired") {
		t.Errorf("expired token: status %d, want 410 with the expired page\n%s", status, body)
	}
	got := s.get(r.ID)
	if got.Status != "expired" || got.Decision != nil {
		t.Errorf("request is %s with decision %+v, want expired without one", got.Status, got.Decision)
	}
	if got := statusOf(t, link); got != http.StatusGone {
		t.Errorf("page after expiry: status %d, want 410 (what happened)", got)
	}
}

// TestSweepLoopClosesDueRequests: the background sweep closes due requests,
// removes their pages and tells their webhook.
func TestSweepLoopClosesDueRequests(t *testing.T) {
	clock := &fakeClock{now: time.Now()}
	hook := newWebhook(t)
	s := startServer(t, t.TempDir(), func(m *Main) { m.Now = clock.Now; m.SweepEvery = 10 * time.Millisecond })
	r := s.create(`{"title":"Soon","approvers":["a@example.com"],"timeoutSeconds":60,"webhookURL":"` + hook.srv.URL + `"}`)
	var link string
	eventually(t, "the email", func() bool { link = outboxLinks(t, s.data)["a@example.com"]; return link != "" })
	clock.Add(time.Minute)
	eventually(t, "the webhook to hear of the expiry", func() bool { return len(hook.results()) == 1 })
	if got := hook.results()[0]; got.RequestID != r.ID || got.Decision != "expired" {
		t.Errorf("webhook got %+v, want expired", got)
	}
	if got := statusOf(t, link); got != http.StatusGone {
		t.Errorf("page after expiry: status %d, want 410 (what happened)", got)
	}
}

// TestRestartKeepsRequests: a request created before a restart is listed and
// decidable after it.
func TestRestartKeepsRequests(t *testing.T) {
	data := t.TempDir()
	first := startServer(t, data, nil)
	r := first.create(`{"title":"Survive","approvers":["a@example.com"],"timeoutSeconds":3600}`)
	var link string
	eventually(t, "the email", func() bool { link = outboxLinks(t, data)["a@example.com"]; return link != "" })
	token := getPage(t, link)
	if err := first.m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	second := startServer(t, data, nil)
	_, list := second.do("GET", "/api/requests?status=pending", "", "")
	if !strings.Contains(list, r.ID) {
		t.Errorf("after restart the pending list lacks the request: %s", list)
	}
	if got := statusOf(t, second.url+"/p/"+pageKey(link)); got != http.StatusOK {
		t.Errorf("page after restart: status %d, want 200", got)
	}
	if status, body := second.decide(token, "approve", "1"); status != http.StatusOK {
		t.Fatalf("decide after restart: status %d\n%s", status, body)
	}
	if got := second.get(r.ID).Status; got != "approved" {
		t.Errorf("request is %s, want approved", got)
	}
}

// TestWebhookRedelivered: an outcome whose webhook is down is kept, retried
// with backoff by the sweep, and delivered once the webhook is back, even
// across a restart. The approver's answer never waits for it.
func TestWebhookRedelivered(t *testing.T) {
	data := t.TempDir()
	hook := newWebhook(t)
	hook.down.Store(true)
	clock := &fakeClock{now: time.Now()}
	s := startServer(t, data, func(m *Main) { m.Now = clock.Now })

	r1 := s.create(`{"title":"One","approvers":["a@example.com"],"timeoutSeconds":3600,"webhookURL":"` + hook.srv.URL + `"}`)
	r2 := s.create(`{"title":"Two","approvers":["b@example.com"],"timeoutSeconds":3600,"webhookURL":"` + hook.srv.URL + `"}`)
	var links map[string]string
	eventually(t, "two emails", func() bool { links = outboxLinks(t, data); return len(links) == 2 })
	for _, link := range links {
		if status, _ := s.decide(getPage(t, link), "approve", "1"); status != http.StatusOK {
			t.Fatalf("approve while the webhook is down: status %d, want 200", status)
		}
	}
	s.idle() // the first attempts, failed and recorded
	if got := s.get(r1.ID); got.Status != "approved" || got.Delivered {
		t.Fatalf("request is %s, delivered %v; want approved and undelivered", got.Status, got.Delivered)
	}
	first := hook.hits.Load()
	if first != 2 {
		t.Errorf("the webhook was called %d times after the two decisions, want 2 (one each)", first)
	}
	if st := s.sweep(clock, 0); st.Advanced != 0 {
		t.Errorf("a sweep before the retry time advanced %d requests, want 0", st.Advanced)
	}
	for range 2 {
		s.sweep(clock, 5*time.Minute) // past the backoff of any attempt so far
	}
	if got := hook.hits.Load(); got != first+4 {
		t.Errorf("after two sweeps the webhook was called %d times, want %d (two retries each)", got, first+4)
	}

	// Webhook back up, while the bot runs.
	hook.down.Store(false)
	s.sweep(clock, 5*time.Minute)
	if n := len(hook.results()); n != 2 {
		t.Fatalf("after the webhook came back it got %d outcomes, want 2", n)
	}
	for _, id := range []string{r1.ID, r2.ID} {
		if !s.get(id).Delivered {
			t.Errorf("request %s is not marked delivered", id)
		}
	}
	if st := s.sweep(clock, 5*time.Minute); st.Advanced != 0 || len(hook.results()) != 2 {
		t.Errorf("a sweep after delivery advanced %d requests and the webhook has %d outcomes; want 0 and 2", st.Advanced, len(hook.results()))
	}

	// Down again over a restart: the next outcome waits in the database.
	hook.down.Store(true)
	r3 := s.create(`{"title":"Three","approvers":["c@example.com"],"timeoutSeconds":3600,"webhookURL":"` + hook.srv.URL + `"}`)
	eventually(t, "third email", func() bool { links = outboxLinks(t, data); return links["c@example.com"] != "" })
	if status, _ := s.decide(getPage(t, links["c@example.com"]), "reject", "1"); status != http.StatusOK {
		t.Fatalf("reject: status %d", status)
	}
	if err := s.m.Close(); err != nil { // waits for the first attempt
		t.Fatal(err)
	}
	hook.down.Store(false)
	s2 := startServer(t, data, func(m *Main) { m.Now = clock.Now })
	s2.sweep(clock, 5*time.Minute)
	if n := len(hook.results()); n != 3 {
		t.Fatalf("after the restart the webhook has %d outcomes, want 3", n)
	}
	if got := hook.results()[2]; got.RequestID != r3.ID || got.Decision != "rejected" {
		t.Errorf("webhook got %+v, want r3 rejected", got)
	}
	if !s2.get(r3.ID).Delivered {
		t.Errorf("r3 is not marked delivered after the restart")
	}
}

// TestSlowWebhookDoesNotHoldTheAnswer: the person who decides gets their
// answer while the webhook has not answered yet; the webhook is delivered
// later all the same, and a webhook that failed after a long wait is tried
// again.
func TestSlowWebhookDoesNotHoldTheAnswer(t *testing.T) {
	arrived := make(chan struct{}, 4)
	release := make(chan int) // the status the held call answers with
	var (
		mu  sync.Mutex
		got []approval.Result
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		status := http.StatusNoContent
		select {
		case status = <-release:
		case <-r.Context().Done():
			return
		}
		if status/100 == 2 {
			var res approval.Result
			json.NewDecoder(r.Body).Decode(&res)
			mu.Lock()
			got = append(got, res)
			mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	defer hook.Close()
	defer close(release)
	clock := &fakeClock{now: time.Now()}
	s := startServer(t, t.TempDir(), func(m *Main) { m.Now = clock.Now })
	r := s.create(`{"title":"Deploy","approvers":["a@example.com"],"timeoutSeconds":3600,"webhookURL":"` + hook.URL + `"}`)
	var link string
	eventually(t, "the email", func() bool { link = outboxLinks(t, s.data)["a@example.com"]; return link != "" })

	start := time.Now()
	status, body := s.decide(getPage(t, link), "approve", "1")
	answered := time.Since(start)
	if status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Fatalf("approve: status %d, want 200 Approved\n%s", status, body)
	}
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook was never called")
	}
	// The answer came back while the webhook still holds its call.
	if got := s.get(r.ID); got.Status != "approved" || got.Delivered {
		t.Errorf("while the webhook holds its call: %s, delivered %v; want approved, undelivered", got.Status, got.Delivered)
	}
	t.Logf("answered in %s while the webhook had not answered", answered)

	release <- http.StatusBadGateway // fails after its long wait
	s.idle()
	if got := s.get(r.ID); got.Delivered {
		t.Fatal("a failed webhook call is recorded as delivered")
	}
	clock.Add(time.Minute)
	swept := make(chan error, 1)
	go func() { _, err := s.m.Service().Sweep(context.Background()); swept <- err }() // the retry, held too
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook was not called again")
	}
	release <- http.StatusNoContent
	if err := <-swept; err != nil {
		t.Fatal(err)
	}
	if !s.get(r.ID).Delivered {
		t.Error("the outcome is not recorded as delivered after the retry went through")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0].RequestID != r.ID || got[0].Decision != "approved" || len(got[0].Votes) != 1 {
		t.Errorf("webhook got %+v, want one approval with its vote", got)
	}
}

// TestBadInputStoresNothing: refused input gets a readable 4xx and leaves no
// request, page or email behind.
func TestBadInputStoresNothing(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	ok := `"approvers":["a@example.com"],"timeoutSeconds":600`
	for _, tc := range []struct {
		name, body string
		status     int
		field      string
	}{
		{"missing title", `{` + ok + `}`, 400, "title"},
		{"no approvers", `{"title":"T","timeoutSeconds":600}`, 400, "approvers"},
		{"malformed email", `{"title":"T","approvers":["a@b@c"],"timeoutSeconds":600}`, 400, "approvers"},
		{"timeout too short", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":30}`, 400, "timeoutSeconds"},
		{"timeout too long", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":2678400}`, 400, "timeoutSeconds"},
		{"unknown field", `{"title":"T",` + ok + `,"approver":"x"}`, 400, "approver"},
		{"body over 64 KiB", `{"title":"T",` + ok + `,"details":"` + strings.Repeat("d", 70<<10) + `"}`, 413, ""},
		{"unknown policy", `{"title":"T",` + ok + `,"policy":"most"}`, 400, "policy"},
		{"quorum above the approvers", `{"title":"T","approvers":["a@example.com","b@example.com"],"policy":"quorum:3","timeoutSeconds":600}`, 400, "policy"},
		{"groups and approvers", `{"title":"T",` + ok + `,"groups":[{"name":"eng","approvers":["b@example.com"]}]}`, 400, "groups"},
		{"bad group name", `{"title":"T","groups":[{"name":"Eng Team","approvers":["b@example.com"]}],"timeoutSeconds":600}`, 400, "groups"},
		{"unknown reject policy", `{"title":"T",` + ok + `,"rejectPolicy":"never"}`, 400, "rejectPolicy"},
		{"the requester is the only approver", `{"title":"T","requester":"a@example.com",` + ok + `}`, 400, "approvers"},
		{"all with the requester among the approvers", `{"title":"T","requester":"a@example.com","approvers":["a@example.com","b@example.com"],"policy":"all","timeoutSeconds":600}`, 400, "policy"},
	} {
		status, body := s.do("POST", "/api/requests", "application/json", tc.body)
		var e web.ErrorJSON
		json.Unmarshal([]byte(body), &e)
		if status != tc.status || e.Field != tc.field || e.Error == "" {
			t.Errorf("%s: status %d, answer %s; want %d with field %q and a message", tc.name, status, body, tc.status, tc.field)
		}
	}
	status, body := s.decide("sometoken", "maybe", "1")
	if status != http.StatusBadRequest || !strings.Contains(body, "Approve or Reject") {
		t.Errorf("unknown decision value: status %d, want 400 asking for Approve or Reject", status)
	}
	if status, _ := s.do("GET", "/decide", "", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /decide: status %d, want 405", status)
	}
	_, list := s.do("GET", "/api/requests", "", "")
	if strings.TrimSpace(list) != `{"requests":[]}` {
		t.Errorf("after refused input the list is %s, want empty", list)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.data, "outbox")); len(entries) != 0 {
		t.Errorf("the outbox holds %d files after refused input, want none", len(entries))
	}
	if n := countRows(t, s.data, "pages"); n != 0 {
		t.Errorf("the database holds %d pages after refused input, want none", n)
	}
	if _, err := os.Stat(filepath.Join(s.data, "pages")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data folder has a pages folder (%v); pages live in the database", err)
	}
}

// countRows counts the rows of a table of the bot's database (with a WHERE
// clause when given), read through a connection of its own.
func countRows(t *testing.T, data, table string) int {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(data, "approvalbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// TestAPITokenRequired: with APPROVALBOT_API_TOKEN set, the API needs it and
// the client sends it.
func TestAPITokenRequired(t *testing.T) {
	s := startServer(t, t.TempDir(), func(m *Main) { m.APIToken = "let-me-in" })
	if status, _ := s.do("GET", "/api/requests", "", ""); status != http.StatusUnauthorized {
		t.Errorf("without token: status %d, want 401", status)
	}
	e := env(map[string]string{"APPROVALBOT_SERVER": s.url, "APPROVALBOT_API_TOKEN": "let-me-in"})
	out := &syncBuffer{}
	if err := run(context.Background(), []string{"bot", "list"}, e, out, io.Discard); err != nil {
		t.Errorf("list with the token: %v", err)
	}
	err := run(context.Background(), []string{"bot", "list"}, env(map[string]string{"APPROVALBOT_SERVER": s.url}), io.Discard, io.Discard)
	if got := exitCode(err, io.Discard); got != exitUsage {
		t.Errorf("list without the token: exit %d, want 2", got)
	}
}

// TestUsage: help names every flag and variable; bad usage and an unreachable
// server exit 2.
func TestUsage(t *testing.T) {
	var help bytes.Buffer
	if err := run(context.Background(), []string{"bot", "-h"}, env(nil), &help, io.Discard); exitCode(err, io.Discard) != 0 {
		t.Errorf("-h: %v", err)
	}
	for _, want := range []string{"-addr", "-data", "-base-url", "APPROVALBOT_ADDR", "APPROVALBOT_DATA", "APPROVALBOT_BASE_URL",
		"APPROVALBOT_API_TOKEN", "APPROVALBOT_SMTP_ADDR", "APPROVALBOT_SMTP_USER", "APPROVALBOT_SMTP_PASSWORD",
		"APPROVALBOT_MAIL_FROM", "APPROVALBOT_WEBHOOK_SECRET", "APPROVALBOT_LOG_LEVEL", "APPROVALBOT_SERVER", "SLACK_BOT_TOKEN",
		"request", "get", "list"} {
		if !strings.Contains(help.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	var reqHelp bytes.Buffer
	run(context.Background(), []string{"bot", "request", "-h"}, env(nil), &reqHelp, io.Discard)
	for _, want := range []string{"--title", "--details", "--approver", "--requester", "--link", "--timeout", "--webhook", "--slack-channel", "--wait", "--server",
		"--policy", "quorum:N", "--group", "--reject-policy", "--allow-self-approval"} {
		if !strings.Contains(reqHelp.String(), want) {
			t.Errorf("request help lacks %q", want)
		}
	}
	for _, args := range [][]string{
		{"bot", "-nosuchflag"},
		{"bot", "frobnicate"},
		{"bot", "request", "--nosuchflag"},
		{"bot", "get"},
		{"bot", "request", "--title", "T", "--approver", "a@example.com", "--server", "http://127.0.0.1:1"},
		{"bot", "request", "--title", "T", "--approver", "a@example.com", "--policy", "most"},
		{"bot", "request", "--title", "T", "--approver", "a@example.com", "--policy", "quorum:0"},
		{"bot", "request", "--title", "T", "--approver", "a@example.com", "--reject-policy", "never"},
		{"bot", "request", "--title", "T", "--group", "security"},
		{"bot", "request", "--title", "T", "--group", "security:x=a@example.com"},
		{"bot", "request", "--title", "T", "--group", "security:0=a@example.com"},
		{"bot", "request", "--title", "T", "--group", "security:1="},
		{"bot", "request", "--title", "T", "--group", "eng=a@example.com", "--approver", "b@example.com"},
		{"bot", "request", "--title", "T", "--group", "eng=a@example.com", "--policy", "all"},
		{"bot", "list", "--limit", "-1"},
		{"bot", "list", "extra"},
	} {
		err := run(context.Background(), args, env(nil), io.Discard, io.Discard)
		if got := exitCode(err, io.Discard); got != exitUsage {
			t.Errorf("%q: exit %d (%v), want 2", args, got, err)
		}
	}
}
