package web

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

// latePages is a PageSource that, like the embedded store's, answers a page
// that was taken down with the request it belonged to.
type latePages struct {
	memPages
	store approval.Store
}

func (p latePages) Page(ctx context.Context, key string) ([]byte, error) {
	if b, err := p.memPages.Page(ctx, key); err == nil {
		return b, nil
	}
	for _, st := range []approval.ListStatus{"pending", approval.StatusClosed} {
		rs, _, err := p.store.List(ctx, approval.Query{Status: st})
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			for _, rc := range r.Recipients {
				if rc.PageKey == key {
					return nil, &approval.PageGoneError{RequestID: r.ID}
				}
			}
		}
	}
	return nil, approval.ErrNotFound
}

// outcomes makes one request of each outcome, a minute apart, and returns
// them by outcome, with the page key of alice (an approver of each).
func outcomes(t *testing.T, f *fixture) (map[string]*approval.Request, map[string]string) {
	t.Helper()
	ctx := context.Background()
	reqs, keys := map[string]*approval.Request{}, map[string]string{}
	add := func(name string, opts ...func(*approval.NewRequest)) map[string]string {
		f.clock.Add(time.Minute)
		r, toks := f.create(append(opts, func(in *approval.NewRequest) { in.Title = "Deploy " + name })...)
		reqs[name] = r
		for _, rc := range r.Recipients {
			if rc.Address == "alice@example.com" {
				keys[name] = rc.PageKey
			}
		}
		return toks
	}
	toks := add("approved", withWebhook)
	if code, _ := f.vote(toks["alice@example.com"], approval.Approve, "Looks good, ship it"); code != http.StatusOK {
		t.Fatalf("approve: %d", code)
	}
	toks = add("rejected", func(in *approval.NewRequest) { in.Requester = "deployer@example.com" })
	if code, _ := f.vote(toks["bob@example.com"], approval.Reject, "not during the freeze"); code != http.StatusOK {
		t.Fatalf("reject: %d", code)
	}
	add("canceled")
	if _, err := f.svc.Cancel(ctx, reqs["canceled"].ID, "ci@example.com", "superseded by v1.3"); err != nil {
		t.Fatal(err)
	}
	add("expired", func(in *approval.NewRequest) { in.Timeout = time.Minute })
	add("waiting")
	toks = add("voted", func(in *approval.NewRequest) { in.Policy = "all" })
	if code, _ := f.vote(toks["alice@example.com"], approval.Approve, ""); code != http.StatusOK {
		t.Fatalf("vote: %d", code)
	}
	f.clock.Add(2 * time.Minute)
	if _, err := f.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	f.idle()
	return reqs, keys
}

// TestLateVisitor: opening the link of a request after it closed (or after
// voting) answers 410 with what happened, and nothing that decides.
func TestLateVisitor(t *testing.T) {
	f := newFixture(t, func(c *Config, svc *approval.Service) {
		c.Pages = latePages{memPages: c.Pages.(memPages), store: svc.Store}
	})
	_, keys := outcomes(t, f)
	want := map[string][]string{
		"approved": {"This request was approved", "was approved by alice@example.com", "Looks good, ship it"},
		"rejected": {"This request was rejected", "was rejected by bob@example.com", "not during the freeze"},
		"canceled": {"This request was withdrawn", "withdrawn by ci@example.com", "superseded by v1.3"},
		"expired":  {"This request has expired", "without a decision"},
		"voted":    {"You have voted on this request", "you approved it at"},
	}
	for name, says := range want {
		resp := f.do("GET", "/p/"+keys[name], nil)
		body := readBody(t, resp)
		if resp.StatusCode != http.StatusGone {
			t.Errorf("%s: status %d, want 410", name, resp.StatusCode)
		}
		for _, s := range says {
			if !strings.Contains(body, s) {
				t.Errorf("%s: the page does not say %q", name, s)
			}
		}
		for _, never := range []string{"<form", `name="token"`, "<script"} {
			if strings.Contains(body, never) {
				t.Errorf("%s: the page holds %s", name, never)
			}
		}
	}
	if resp := f.do("GET", "/p/"+keys["waiting"], nil); resp.StatusCode != http.StatusOK {
		t.Errorf("the page of a pending request: status %d, want 200", resp.StatusCode)
	}
	if resp := f.do("GET", "/p/"+approval.NewPageKey(), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown page: status %d, want 404", resp.StatusCode)
	}
}

// GET /api/requests lists closed requests by status, newest first, with who
// decided, and filters by approver, requester and time.
func TestAPIListHistory(t *testing.T) {
	f := newFixture(t)
	reqs, _ := outcomes(t, f)
	list := func(query string) []string {
		t.Helper()
		resp := f.do("GET", "/api/requests?"+query, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("?%s: status %d: %s", query, resp.StatusCode, readBody(t, resp))
		}
		var titles []string
		for _, r := range decode[ListJSON](t, resp).Requests {
			titles = append(titles, strings.TrimPrefix(r.Title, "Deploy "))
		}
		return titles
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"status=closed", []string{"expired", "canceled", "rejected", "approved"}},
		{"status=approved", []string{"approved"}},
		{"status=rejected", []string{"rejected"}},
		{"status=expired", []string{"expired"}},
		{"status=canceled", []string{"canceled"}},
		{"status=pending", []string{"voted", "waiting"}},
		{"", []string{"voted", "waiting"}},
		{"status=closed&requester=DEPLOYER@example.com", []string{"rejected"}},
		{"status=closed&approver=bob@example.com&limit=2", []string{"expired", "canceled"}},
		{"status=closed&approver=nobody@example.com", nil},
		{"status=closed&since=" + url.QueryEscape(reqs["rejected"].CreatedAt.Format(time.RFC3339)) +
			"&until=" + url.QueryEscape(reqs["expired"].CreatedAt.Format(time.RFC3339)), []string{"canceled", "rejected"}},
	} {
		if diff := cmp.Diff(tc.want, list(tc.query)); diff != "" {
			t.Errorf("?%s (-want +got):\n%s", tc.query, diff)
		}
	}
	all := decode[ListJSON](t, f.do("GET", "/api/requests?status=closed", nil))
	byTitle := map[string]RequestJSON{}
	for _, r := range all.Requests {
		byTitle[r.Title] = r
	}
	if d := byTitle["Deploy approved"].Decision; d == nil || d.By != "alice@example.com" || d.Comment != "Looks good, ship it" {
		t.Errorf("approved: decision %+v, want alice's with her comment", d)
	}
	if c := byTitle["Deploy canceled"].Canceled; c == nil || c.By != "ci@example.com" || c.Reason != "superseded by v1.3" || c.At.IsZero() {
		t.Errorf("canceled: %+v, want who, why and when", c)
	}
	for _, tc := range []struct{ query, field string }{
		{"since=yesterday", "since"}, {"until=2026-13-01", "until"},
		{"since=2026-11-25&until=2026-11-24", "until"}, {"status=finished", "status"},
	} {
		resp := f.do("GET", "/api/requests?"+tc.query, nil)
		if e := decode[ErrorJSON](t, resp); resp.StatusCode != http.StatusBadRequest || e.Field != tc.field {
			t.Errorf("?%s: status %d, field %q; want 400 naming %q", tc.query, resp.StatusCode, e.Field, tc.field)
		}
	}
}

// GET /api/audit answers the audit log as JSON Lines, a page at a time, and
// the log verifies.
func TestAPIAudit(t *testing.T) {
	f := newFixture(t)
	outcomes(t, f)
	var lines []approval.AuditLine
	cursor, pages := "", 0
	for {
		target := "/api/audit?limit=7"
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		resp := f.do("GET", target, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != AuditContentType {
			t.Fatalf("GET %s: status %d, type %q", target, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for sc.Scan() {
			e, err := approval.ParseAuditEntry(sc.Bytes())
			lines = append(lines, approval.AuditLine{Line: len(lines) + 1, Entry: e, Err: err})
			n++
		}
		if n > 7 {
			t.Errorf("page %d: %d entries, limit 7", pages, n)
		}
		pages++
		cursor = resp.Header.Get(NextCursorHeader)
		if cursor == "" {
			break
		}
	}
	rep := approval.VerifyAudit(lines, f.clock.Now())
	if !rep.OK() || rep.Requests != 6 || pages < 3 {
		t.Errorf("verify %d entries over %d pages: %+v; want OK, 6 requests", len(lines), pages, rep)
	}
	kinds := map[approval.AuditKind]int{}
	for _, l := range lines {
		kinds[l.Entry.Kind]++
	}
	for _, k := range []approval.AuditKind{approval.AuditCreated, approval.AuditNotified, approval.AuditVote, approval.AuditClosed, approval.AuditCanceled, approval.AuditDelivered} {
		if kinds[k] == 0 {
			t.Errorf("no %s entry in the log; kinds %v", k, kinds)
		}
	}
	since := f.clock.Now().Add(-time.Minute)
	resp := f.do("GET", "/api/audit?since="+url.QueryEscape(since.Format(time.RFC3339)), nil)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if e, _ := approval.ParseAuditEntry(sc.Bytes()); e.At.Before(since) {
			t.Errorf("since %s: entry at %s", since, e.At)
		}
	}
	for _, q := range []string{"limit=0", "limit=5001", "since=soon", "cursor=x"} {
		if resp := f.do("GET", "/api/audit?"+q, nil); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("?%s: status %d, want 400", q, resp.StatusCode)
		}
	}
}
