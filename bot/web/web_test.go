package web

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
	"approvalbot/bot/memory"
	"approvalbot/pages"
)

const base = "http://example.com" // httptest.NewRequest's host: the bot's own name

// clock is an injectable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// memPages serves memory.Pages as a PageSource.
type memPages struct{ *memory.Pages }

func (p memPages) Page(_ context.Context, key string) ([]byte, error) {
	if b, ok := p.Get(key); ok {
		return b, nil
	}
	return nil, approval.ErrNotFound
}

// failingStore fails every write of a request with an internal error.
type failingStore struct{ *memory.Store }

func (failingStore) UpdateRequest(context.Context, *approval.Request) error {
	return errors.New("disk on fire at /var/secret/db")
}

func (failingStore) QuickVote(context.Context, string, string, approval.Vote, []approval.Effect) (*approval.Request, error) {
	return nil, errors.New("disk on fire at /var/secret/db")
}

type fixture struct {
	t        *testing.T
	h        http.Handler
	svc      *approval.Service
	store    approval.Store
	pages    *memory.Pages
	mail     *memory.Mailer
	workflow *memory.Workflow
	clock    *clock
	logs     *bytes.Buffer
}

func newFixture(t *testing.T, opts ...func(*Config, *approval.Service)) *fixture {
	t.Helper()
	f := &fixture{
		t:        t,
		store:    memory.NewStore(),
		pages:    memory.NewPages(base),
		mail:     memory.NewMailer(),
		workflow: memory.NewWorkflow(),
		clock:    &clock{now: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)},
		logs:     &bytes.Buffer{},
	}
	f.svc = &approval.Service{
		Store: f.store, Pages: f.pages, Renderer: pages.Renderer{}, Mailer: f.mail,
		Workflow: f.workflow, DecideURL: base + "/decide", Now: f.clock.Now,
	}
	cfg := Config{
		Service: f.svc,
		Pages:   memPages{f.pages},
		PageURL: f.pages.URL,
		Log:     slog.New(slog.NewTextHandler(&lockedWriter{w: f.logs}, nil)),
	}
	for _, o := range opts {
		o(&cfg, f.svc)
	}
	f.h = New(cfg)
	t.Cleanup(f.idle)
	return f
}

// idle waits until the effects the service runs in the background (emails,
// deliveries, page deletions) are done and recorded.
func (f *fixture) idle() {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := f.svc.Idle(ctx); err != nil {
		f.t.Fatalf("effects still running after 30 s: %v", err)
	}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// do serves one request and returns the response.
func (f *fixture) do(method, target string, body io.Reader, header ...string) *http.Response {
	f.t.Helper()
	req := httptest.NewRequest(method, target, body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec.Result()
}

func (f *fixture) postForm(v url.Values) *http.Response {
	f.t.Helper()
	return f.do("POST", "/decide", strings.NewReader(v.Encode()), "Content-Type", "application/x-www-form-urlencoded")
}

// create makes a request with two email approvers (or as the options change
// it) and returns it with the raw token of each page, read from the page
// itself.
func (f *fixture) create(opts ...func(*approval.NewRequest)) (*approval.Request, map[string]string) {
	f.t.Helper()
	in := approval.NewRequest{
		Title: "Deploy v1.2", Details: "to prod", Approvers: []string{"alice@example.com", "bob@example.com"},
		Timeout: time.Hour,
	}
	for _, o := range opts {
		o(&in)
	}
	r, _, err := f.svc.Create(context.Background(), in)
	if err != nil {
		f.t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, rc := range r.Recipients {
		html, ok := f.pages.Get(rc.PageKey)
		if !ok {
			f.t.Fatalf("no page for %s", rc.Address)
		}
		tokens[rc.Address] = tokenIn(f.t, html)
	}
	return r, tokens
}

// withWebhook makes a request whose outcome goes to a webhook (delivered in
// the background).
func withWebhook(in *approval.NewRequest) { in.WebhookURL = "https://hooks.example.com/x" }

// withTaskToken makes a request of the AWS form, whose outcome is delivered to
// its workflow before a deciding vote is answered.
func withTaskToken(in *approval.NewRequest) { in.TaskToken = "task-token-" + in.Title }

var tokenField = regexp.MustCompile(`name="token" value="([A-Za-z0-9_.-]+)"`)

func tokenIn(t *testing.T, html []byte) string {
	t.Helper()
	m := tokenField.FindSubmatch(html)
	if m == nil {
		t.Fatalf("no token field in page:\n%s", html)
	}
	return string(m[1])
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func (f *fixture) status(id string) approval.Status {
	f.t.Helper()
	r, err := f.store.GetRequest(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return r.Status
}

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create()
	key := r.Recipients[0].PageKey
	for _, tc := range []struct {
		method, target, body string
		csp                  string
	}{
		{"GET", "/healthz", "", pages.ResultCSP(base + "/decide")},
		{"GET", "/p/" + key, "", pages.PageCSP(base + "/decide")},
		{"HEAD", "/p/" + key, "", pages.PageCSP(base + "/decide")},
		{"GET", "/p/nosuchpagekeyatall", "", pages.ResultCSP(base + "/decide")},
		{"GET", "/decide", "", pages.ResultCSP(base + "/decide")},
		{"POST", "/decide", url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}}.Encode(), pages.ResultCSP(base + "/decide")},
		{"GET", "/api/requests", "", pages.ResultCSP(base + "/decide")},
		{"GET", "/nowhere", "", pages.ResultCSP(base + "/decide")},
	} {
		resp := f.do(tc.method, tc.target, strings.NewReader(tc.body), "Content-Type", "application/x-www-form-urlencoded")
		want := map[string]string{
			"Cache-Control":           "no-store",
			"Referrer-Policy":         "no-referrer",
			"X-Content-Type-Options":  "nosniff",
			"X-Frame-Options":         "DENY",
			"Content-Security-Policy": tc.csp,
		}
		got := map[string]string{}
		for k := range want {
			got[k] = resp.Header.Get(k)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s %s headers (-want +got):\n%s", tc.method, tc.target, diff)
		}
		if !strings.Contains(got["Content-Security-Policy"], "frame-ancestors 'none'") {
			t.Errorf("%s %s: CSP %q lacks frame-ancestors 'none'", tc.method, tc.target, got["Content-Security-Policy"])
		}
	}
	if got := f.status(r.ID); got != approval.StatusPending {
		t.Errorf("after GET, HEAD and an unconfirmed POST the request is %s, want pending", got)
	}
}

func TestGetDecideExplains(t *testing.T) {
	f := newFixture(t)
	for _, m := range []string{"GET", "HEAD", "PUT"} {
		resp := f.do(m, "/decide?token=x&decision=approve", nil)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /decide: status %d, want 405", m, resp.StatusCode)
		}
		if got := resp.Header.Get("Allow"); got != "POST" {
			t.Errorf("%s /decide: Allow = %q, want POST", m, got)
		}
		if body := readBody(t, resp); m == "GET" && !strings.Contains(body, "decided nothing") {
			t.Errorf("GET /decide body %q does not explain itself", body)
		}
	}
}

func TestPageServedAndGoneAfterDecision(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create()
	for _, rc := range r.Recipients {
		for _, m := range []string{"GET", "HEAD"} {
			resp := f.do(m, "/p/"+rc.PageKey, nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s page: status %d, want 200", m, resp.StatusCode)
			}
		}
	}
	if got := f.status(r.ID); got != approval.StatusPending {
		t.Fatalf("after GET and HEAD the request is %s, want pending", got)
	}
	resp := f.postForm(url.Values{"token": {tokens["bob@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}, "comment": {"ship it"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("confirmed approve: status %d, want 200", resp.StatusCode)
	}
	f.idle() // the pages are deleted right after the answer
	for _, rc := range r.Recipients {
		if resp := f.do("GET", "/p/"+rc.PageKey, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("page of %s after the decision: status %d, want 404", rc.Address, resp.StatusCode)
		}
	}
}

func TestDecideOutcomes(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create()
	alice, bob := tokens["alice@example.com"], tokens["bob@example.com"]
	steps := []struct {
		name   string
		form   url.Values
		status int
		text   string
		after  approval.Status
	}{
		{"no token", url.Values{"decision": {"approve"}, "confirmed": {"1"}}, 400, "no token", approval.StatusPending},
		{"unknown decision", url.Values{"token": {alice}, "decision": {"maybe"}, "confirmed": {"1"}}, 400, "Approve or Reject", approval.StatusPending},
		{"comment too long", url.Values{"token": {alice}, "decision": {"approve"}, "confirmed": {"1"}, "comment": {strings.Repeat("x", approval.MaxComment+1)}}, 400, "longer than", approval.StatusPending},
		{"comment with ESC", url.Values{"token": {alice}, "decision": {"approve"}, "confirmed": {"1"}, "comment": {"ok\x1b[2J"}}, 400, "comment must not contain control characters (U&#43;001B at character 3)", approval.StatusPending},
		{"comment with an override, unconfirmed", url.Values{"token": {alice}, "decision": {"approve"}, "comment": {"ok \u202e"}}, 400, "bidirectional control characters", approval.StatusPending},
		{"unknown token", url.Values{"token": {"nosuchtoken"}, "decision": {"approve"}, "confirmed": {"1"}}, 404, "", approval.StatusPending},
		{"unconfirmed asks", url.Values{"token": {alice}, "decision": {"reject"}, "comment": {"not <now>"}}, 200, "Yes, reject", approval.StatusPending},
		{"confirmed decides", url.Values{"token": {alice}, "decision": {"reject"}, "confirmed": {"1"}, "comment": {"not now"}}, 200, "Rejected", approval.StatusRejected},
		{"same token again", url.Values{"token": {alice}, "decision": {"approve"}, "confirmed": {"1"}}, 409, "alice@example.com", approval.StatusRejected},
		{"other token", url.Values{"token": {bob}, "decision": {"approve"}, "confirmed": {"1"}}, 409, "alice@example.com", approval.StatusRejected},
		{"other token unconfirmed", url.Values{"token": {bob}, "decision": {"approve"}}, 409, "alice@example.com", approval.StatusRejected},
	}
	for _, s := range steps {
		resp := f.postForm(s.form)
		body := readBody(t, resp)
		if resp.StatusCode != s.status {
			t.Errorf("%s: status %d, want %d\n%s", s.name, resp.StatusCode, s.status, body)
		}
		if !strings.Contains(body, s.text) {
			t.Errorf("%s: body lacks %q:\n%s", s.name, s.text, body)
		}
		if got := f.status(r.ID); got != s.after {
			t.Errorf("%s: request is %s, want %s", s.name, got, s.after)
		}
	}
}

func TestConfirmStepKeepsTheForm(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create()
	resp := f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "comment": {"looks good"}})
	body := readBody(t, resp)
	for _, want := range []string{
		`name="confirmed" value="1"`,
		`name="decision" value="approve"`,
		`value="` + tokens["alice@example.com"] + `"`,
		`looks good`,
		`action="` + base + `/decide"`,
		`href="` + f.pages.URL(r.Recipients[0].PageKey) + `"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("confirmation page lacks %q", want)
		}
	}
}

func TestDecideExpired(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create()
	f.clock.Add(time.Hour)
	for _, confirmed := range []string{"", "1"} {
		resp := f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {confirmed}})
		if body := readBody(t, resp); resp.StatusCode != http.StatusGone || !strings.Contains(body, "expired") {
			t.Errorf("confirmed=%q after expiry: status %d, want 410 with an expired page\n%s", confirmed, resp.StatusCode, body)
		}
	}
	if got := f.status(r.ID); got != approval.StatusExpired {
		t.Errorf("request is %s, want expired", got)
	}
}

func TestDecideWorkflowGone(t *testing.T) {
	f := newFixture(t)
	_, tokens := f.create(withTaskToken)
	f.workflow.SetErr(approval.ErrWorkflowGone)
	resp := f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}})
	if body := readBody(t, resp); resp.StatusCode != http.StatusGone || !strings.Contains(body, "no longer waiting") {
		t.Errorf("status %d, want 410 with the gone page\n%s", resp.StatusCode, body)
	}
}

func TestDecideInternalErrorShowsNoInternals(t *testing.T) {
	f := newFixture(t, func(c *Config, s *approval.Service) {})
	f.svc.Store = failingStore{f.store.(*memory.Store)}
	_, tokens := f.create()
	resp := f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}})
	body := readBody(t, resp)
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", resp.StatusCode)
	}
	if strings.Contains(body, "disk on fire") || strings.Contains(body, "/var/secret") {
		t.Errorf("the error page shows internals:\n%s", body)
	}
	if n := strings.Count(f.logs.String(), "disk on fire"); n != 1 {
		t.Errorf("the internal error is logged %d times, want once:\n%s", n, f.logs)
	}
}

func TestDecideBodyLimit(t *testing.T) {
	f := newFixture(t)
	_, tokens := f.create()
	big := url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}, "comment": {strings.Repeat("x", MaxBody)}}
	if resp := f.postForm(big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413", resp.StatusCode)
	}
}

func TestLogsNameRoutesNotSecrets(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create()
	key := r.Recipients[0].PageKey
	f.do("GET", "/p/"+key, nil)
	f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}})
	f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}})
	f.idle()
	f.do("GET", "/p/"+key, nil)
	f.do("GET", "/api/requests/"+r.ID, nil)
	logs := f.logs.String()
	for _, want := range []string{`route="GET /p/{page}"`, `route="POST /decide"`, `route="GET /api/requests/{id}"`, "status=200", "status=404", "duration_ms="} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
	for _, secret := range append([]string{tokens["alice@example.com"], tokens["bob@example.com"]}, r.PageKeys()...) {
		if strings.Contains(logs, secret) {
			t.Errorf("logs hold a token or page key:\n%s", logs)
		}
	}
}

// A browser submits a textarea's line breaks as CRLF, and its maxlength counts
// each as one character: a comment at the limit with line breaks is accepted,
// and the decision keeps "\n" only, in the confirmation step too.
func TestDecideCommentWithCRLF(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create()
	tok := tokens["alice@example.com"]
	comment := strings.Repeat("ok\r\n", approval.MaxComment/4) + "end" // MaxComment-1 characters in the browser
	want := strings.ReplaceAll(comment, "\r\n", "\n")

	resp := f.postForm(url.Values{"token": {tok}, "decision": {"approve"}, "comment": {comment}})
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || strings.Contains(body, "\r") {
		t.Errorf("confirmation step: status %d with CR left in the page; want 200 with \\n only\n%.300s", resp.StatusCode, body)
	}
	resp = f.postForm(url.Values{"token": {tok}, "decision": {"approve"}, "confirmed": {"1"}, "comment": {comment}})
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("decision: status %d, want 200\n%.500s", resp.StatusCode, body)
	}
	got, err := f.store.GetRequest(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Decision == nil || got.Decision.Comment != want {
		t.Errorf("stored decision %+v, want comment %q", got.Decision, want)
	}
}

// ctxWorkflow is a workflow that, like a real webhook or Step Functions call,
// fails when its context is done.
type ctxWorkflow struct{ *memory.Workflow }

func (w ctxWorkflow) Deliver(ctx context.Context, r *approval.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.Workflow.Deliver(ctx, r)
}

// ctxStore is a store whose reads and writes fail, like SQLite's, once their
// context is done.
type ctxStore struct{ *memory.Store }

func (s ctxStore) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Store.GetRequest(ctx, id)
}

func (s ctxStore) UpdateRequest(ctx context.Context, r *approval.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.UpdateRequest(ctx, r)
}

// A decision, once it reaches the handler, runs to its end even if the browser
// goes away or the server starts shutting down (both cancel the request's
// context): it is taken, and its outcome delivered now, not left to a retry
// loop.
func TestDecisionOutlivesTheConnection(t *testing.T) {
	f := newFixture(t)
	f.svc.Workflow = ctxWorkflow{f.workflow}
	f.svc.Store = ctxStore{f.store.(*memory.Store)}
	r, tokens := f.create(withWebhook)
	form := url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/decide", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("status %d, want 200", rec.Code)
	}
	f.idle()
	got, err := f.store.GetRequest(context.Background(), r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != approval.StatusApproved || !got.Delivered() {
		t.Errorf("request %s, delivered %v; want approved and delivered", got.Status, got.Delivered())
	}
	if n := len(f.workflow.Delivered()); n != 1 {
		t.Errorf("workflow deliveries: %d, want 1", n)
	}
}

// Once a decision was taken but the workflow had stopped waiting, the request is
// closed as expired with the decision kept: a later attempt is told that the
// request no longer waits, not that it "expired at <a time to come> without a
// decision".
func TestLaterAttemptAfterWorkflowGone(t *testing.T) {
	f := newFixture(t)
	_, tokens := f.create(withTaskToken)
	f.workflow.SetErr(approval.ErrWorkflowGone)
	f.postForm(url.Values{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}})
	f.idle()
	for _, confirmed := range []string{"", "1"} {
		resp := f.postForm(url.Values{"token": {tokens["bob@example.com"]}, "decision": {"reject"}, "confirmed": {confirmed}})
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusGone || !strings.Contains(body, "no longer waiting") || strings.Contains(body, "without a decision") {
			t.Errorf("confirmed=%q: status %d, want 410 with the no-longer-waiting page\n%s", confirmed, resp.StatusCode, body)
		}
	}
}
