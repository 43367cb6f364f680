package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/local"
	"approvalbot/bot/sqlite"
	"approvalbot/bot/web"
	"approvalbot/pages"
)

// The benchmarks serve the handler wired as the embedded bot wires it (SQLite
// on disk with the pages in it, the outbox) on 127.0.0.1 through httptest, and
// call it over loopback HTTP. scripts/bench measures the whole bot process.

// benchBot is the handler over SQLite and the local adapters, served on
// 127.0.0.1.
type benchBot struct {
	svc    *approval.Service
	pages  *sqlite.Pages
	url    string
	client *http.Client
}

func newBenchBot(b *testing.B) *benchBot {
	b.Helper()
	dir := b.TempDir()
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	b.Cleanup(srv.Close)

	store, err := sqlite.Open(b.Context(), filepath.Join(dir, "approvalbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	pg := sqlite.NewPages(store, srv.URL)
	outbox, err := local.NewOutbox(filepath.Join(dir, "outbox"), "", nil)
	if err != nil {
		b.Fatal(err)
	}
	svc := &approval.Service{
		Store: store, Pages: pg, Renderer: pages.Renderer{}, Mailer: outbox,
		Workflow: local.NewWebhook(nil, ""), DecideURL: srv.URL + "/decide",
	}
	h = web.New(web.Config{Service: svc, Pages: pg, PageURL: pg.URL})
	// Cleanups run last first: the effects still running in the background
	// finish before the store closes.
	b.Cleanup(func() { svc.Idle(context.Background()) })
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	b.Cleanup(tr.CloseIdleConnections)
	return &benchBot{svc: svc, pages: pg, url: srv.URL, client: &http.Client{Transport: tr, Timeout: 30 * time.Second}}
}

// call sends one request and returns its status.
func (bb *benchBot) call(b *testing.B, method, path, ctype, body string) int {
	status, _ := bb.callBody(b, method, path, ctype, body)
	return status
}

// callBody sends one request and returns its status and body.
func (bb *benchBot) callBody(b *testing.B, method, path, ctype, body string) (int, []byte) {
	req, err := http.NewRequest(method, bb.url+path, strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := bb.client.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return resp.StatusCode, got
}

var benchTokenField = regexp.MustCompile(`name="token" value="([A-Za-z0-9_.-]+)"`)

// create makes n requests with the given approvers through the service and
// returns, per request, the raw token of each recipient (read from its page).
func (bb *benchBot) create(b *testing.B, n int, approvers ...string) [][]string {
	b.Helper()
	ctx := context.Background()
	out := make([][]string, n)
	for i := range n {
		r, _, err := bb.svc.Create(ctx, approval.NewRequest{
			Title: "Deploy v1.2 to prod", Details: "Release notes", Requester: "ci",
			Approvers: approvers, Timeout: time.Hour,
		})
		if err != nil {
			b.Fatal(err)
		}
		for _, rc := range r.Recipients {
			html, err := bb.pages.Page(ctx, rc.PageKey)
			if err != nil {
				b.Fatal(err)
			}
			m := benchTokenField.FindSubmatch(html)
			if m == nil {
				b.Fatal("the page has no token field")
			}
			out[i] = append(out[i], string(m[1]))
		}
	}
	return out
}

func decideForm(token, choice string) string {
	return url.Values{"token": {token}, "decision": {choice}, "comment": {"ship it"}, "confirmed": {"1"}}.Encode()
}

const formType = "application/x-www-form-urlencoded"

// BenchmarkCreate is POST /api/requests with two approvers: validation, two
// pages rendered and stored with the request in one SQLite write; the two
// emails are rendered, written to the outbox and recorded in the background.
func BenchmarkCreate(b *testing.B) {
	bb := newBenchBot(b)
	body := `{"title": "Deploy v1.2 to prod", "details": "Release notes", "requester": "ci",
		"approvers": ["alice@example.com", "bob@example.com"], "timeoutSeconds": 3600}`
	for b.Loop() {
		if got := bb.call(b, "POST", "/api/requests", "application/json", body); got != http.StatusCreated {
			b.Fatalf("create: status %d, want %d", got, http.StatusCreated)
		}
	}
}

// BenchmarkPage is GET /p/{page}: one page read from the database.
func BenchmarkPage(b *testing.B) {
	bb := newBenchBot(b)
	r, _, err := bb.svc.Create(context.Background(), approval.NewRequest{
		Title: "Deploy", Approvers: []string{"alice@example.com"}, Timeout: time.Hour,
	})
	if err != nil {
		b.Fatal(err)
	}
	path := "/p/" + r.Recipients[0].PageKey
	for b.Loop() {
		if got := bb.call(b, "GET", path, "", ""); got != http.StatusOK {
			b.Fatalf("page: status %d, want %d", got, http.StatusOK)
		}
	}
}

// BenchmarkDecide is a confirmed POST /decide that decides (policy any): the
// vote written (which also retires the pages), the result page.
func BenchmarkDecide(b *testing.B) {
	bb := newBenchBot(b)
	bb.svc.Mailer = nil // setup speed; deciding sends no mail
	tokens := bb.create(b, b.N, "alice@example.com")
	b.ResetTimer()
	for i := range b.N {
		if got := bb.call(b, "POST", "/decide", formType, decideForm(tokens[i][0], "approve")); got != http.StatusOK {
			b.Fatalf("decide: status %d, want %d", got, http.StatusOK)
		}
	}
}

// BenchmarkDecideContended has parallel clients decide the same few requests
// (policy any) through all their tokens: one wins each request, every other
// attempt is told who decided (409), and none gets a 5xx.
func BenchmarkDecideContended(b *testing.B) {
	bb := newBenchBot(b)
	tokens := bb.create(b, 4, "alice@example.com", "bob@example.com", "carol@example.com")
	var n, wins atomic.Int64
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			toks := tokens[i%int64(len(tokens))]
			switch got := bb.call(b, "POST", "/decide", formType, decideForm(toks[(i/4)%int64(len(toks))], "reject")); got {
			case http.StatusOK:
				wins.Add(1)
			case http.StatusConflict:
			default:
				b.Errorf("decide: status %d, want 200 or 409", got)
				return
			}
		}
	})
	if w := wins.Load(); w != int64(min(len(tokens), int(n.Load()))) {
		b.Errorf("%d attempts won, want one per request (%d)", w, len(tokens))
	}
}

// BenchmarkListPending is GET /api/requests?status=pending&limit=200 with 200
// requests pending: the largest page.
func BenchmarkListPending(b *testing.B) {
	bb := newBenchBot(b)
	bb.svc.Mailer = nil // setup speed; the list does not read the outbox
	bb.create(b, 200, "alice@example.com")
	const target = "/api/requests?status=pending&limit=200"
	status, body := bb.callBody(b, "GET", target, "", "")
	var list struct{ Requests []web.RequestJSON }
	if err := json.Unmarshal(body, &list); status != http.StatusOK || err != nil || len(list.Requests) != 200 {
		b.Fatalf("list: status %d, %d requests (%v), want 200 and 200", status, len(list.Requests), err)
	}
	for b.Loop() {
		if got := bb.call(b, "GET", target, "", ""); got != http.StatusOK {
			b.Fatalf("list: status %d, want %d", got, http.StatusOK)
		}
	}
}
