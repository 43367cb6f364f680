package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

func (f *fixture) postJSON(body string, header ...string) *http.Response {
	f.t.Helper()
	return f.do("POST", "/api/requests", strings.NewReader(body), append([]string{"Content-Type", "application/json"}, header...)...)
}

func decode[T any](t *testing.T, resp *http.Response) T {
	t.Helper()
	var v T
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
	return v
}

func TestAPICreateGetList(t *testing.T) {
	f := newFixture(t)
	resp := f.postJSON(`{"title":"Deploy v1.2","details":"to prod","approvers":["Alice@example.com","bob@example.com"],
		"requester":"ci","timeoutSeconds":3600,"links":[{"label":"diff","url":"https://example.com/diff"}],
		"webhookURL":"https://hooks.example.com/x?key=s3cret","policy":"any"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: status %d, want 201: %s", resp.StatusCode, readBody(t, resp))
	}
	created := decode[RequestJSON](t, resp)
	now := f.clock.Now()
	want := RequestJSON{
		ID: created.ID, Status: "pending", Title: "Deploy v1.2", Details: "to prod", Requester: "ci",
		Approvers: []string{"alice@example.com", "bob@example.com"},
		Links:     []LinkJSON{{"diff", "https://example.com/diff"}}, Policy: "any", RejectPolicy: "any",
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
		Votes:    []VoteJSON{},
		Progress: ProgressJSON{Needed: 1, Required: 1},
		// Answered once stored with its notifications recorded; they are
		// sent right after.
		Notifications: []NotificationJSON{
			{To: "alice@example.com", Channel: "email", State: "pending"},
			{To: "bob@example.com", Channel: "email", State: "pending"},
		},
		OnTimeout: "expire", AllowDelegation: true,
	}
	if diff := cmp.Diff(want, created); diff != "" {
		t.Errorf("created (-want +got):\n%s", diff)
	}
	if got := resp.Header.Get("Location"); got != "/api/requests/"+created.ID {
		t.Errorf("Location = %q", got)
	}

	f.idle()
	want.Notifications = []NotificationJSON{
		{To: "alice@example.com", Channel: "email", State: "sent"},
		{To: "bob@example.com", Channel: "email", State: "sent"},
	}
	got := decode[RequestJSON](t, f.do("GET", "/api/requests/"+created.ID, nil))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("get (-want +got):\n%s", diff)
	}

	f.clock.Add(time.Second)
	second := decode[RequestJSON](t, f.postJSON(`{"title":"Second","approvers":["carol@example.com"],"timeoutSeconds":60}`))
	list := decode[ListJSON](t, f.do("GET", "/api/requests?status=pending", nil))
	var ids []string
	for _, r := range list.Requests {
		ids = append(ids, r.ID)
	}
	if diff := cmp.Diff([]string{second.ID, created.ID}, ids); diff != "" {
		t.Errorf("pending list, newest first (-want +got):\n%s", diff)
	}

	// Decide through a page, then the API shows the decision.
	r, _ := f.store.GetRequest(context.Background(), created.ID)
	html, _ := f.pages.Get(r.Recipients[0].PageKey)
	if _, err := f.svc.Decide(context.Background(), approval.DecideInput{Token: tokenIn(t, html), Choice: approval.Approve, Comment: "ok"}); err != nil {
		t.Fatal(err)
	}
	f.idle()
	got = decode[RequestJSON](t, f.do("GET", "/api/requests/"+created.ID, nil))
	wantDecision := &DecisionJSON{Decision: "approved", By: "alice@example.com", Channel: "email", Comment: "ok", At: f.clock.Now()}
	if got.Status != "approved" || !cmp.Equal(got.Decision, wantDecision) || !got.Delivered {
		t.Errorf("after approval: status %q, decision %+v, delivered %v; want approved, %+v, delivered", got.Status, got.Decision, got.Delivered, wantDecision)
	}
	wantVotes := []VoteJSON{{By: "alice@example.com", Channel: "email", Choice: "approve", Comment: "ok", At: f.clock.Now(), Groups: []string{}}}
	if diff := cmp.Diff(wantVotes, got.Votes); diff != "" {
		t.Errorf("votes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ProgressJSON{Approvals: 1, Needed: 0, Required: 1}, got.Progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	list = decode[ListJSON](t, f.do("GET", "/api/requests", nil))
	if len(list.Requests) != 1 || list.Requests[0].ID != second.ID {
		t.Errorf("pending after approval = %+v, want only the second request", list.Requests)
	}
}

func TestAPIAnswersHoldNoSecrets(t *testing.T) {
	f := newFixture(t)
	resp := f.postJSON(`{"title":"T","approvers":["alice@example.com"],"timeoutSeconds":600,"webhookURL":"https://hooks.example.com/x?key=s3cret"}`)
	body := readBody(t, resp)
	var created RequestJSON
	json.Unmarshal([]byte(body), &created)
	r, err := f.store.GetRequest(context.Background(), created.ID)
	if err != nil {
		t.Fatal(err)
	}
	html, _ := f.pages.Get(r.Recipients[0].PageKey)
	secrets := []string{tokenIn(t, html), r.Recipients[0].TokenHash, r.Recipients[0].PageKey, "s3cret"}
	for _, target := range []string{"/api/requests/" + r.ID, "/api/requests/" + r.ID + "?wait=0", "/api/requests?status=pending"} {
		body += readBody(t, f.do("GET", target, nil))
	}
	for _, s := range secrets {
		if strings.Contains(body, s) {
			t.Errorf("an API answer holds a secret %q:\n%s", s[:4], body)
		}
		if strings.Contains(f.logs.String(), s) {
			t.Errorf("a log line holds a secret %q", s[:4])
		}
	}
}

func TestAPIValidation(t *testing.T) {
	f := newFixture(t)
	valid := `"approvers":["alice@example.com"],"timeoutSeconds":600`
	for _, tc := range []struct {
		name, body, ctype string
		status            int
		field, text       string
	}{
		{"missing title", `{` + valid + `}`, "", 400, "title", "title is required"},
		{"no approvers", `{"title":"T","approvers":[],"timeoutSeconds":600}`, "", 400, "approvers", "at least one approver"},
		{"malformed email", `{"title":"T","approvers":["alice@"],"timeoutSeconds":600}`, "", 400, "approvers", "not a valid email"},
		{"timeout too short", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":59}`, "", 400, "timeoutSeconds", "between 60"},
		{"timeout too long", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":2592001}`, "", 400, "timeoutSeconds", "between 60"},
		{"timeout huge", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":9223372036854775807}`, "", 400, "timeoutSeconds", "between 60"},
		{"timeout not a number", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":"1h"}`, "", 400, "timeoutSeconds", "timeoutSeconds must be a whole number, not a string"},
		{"timeout not whole", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":60.5}`, "", 400, "timeoutSeconds", "timeoutSeconds must be a whole number, not 60.5"},
		{"title not a string", `{"title":true,` + valid + `}`, "", 400, "title", "title must be a string, not a boolean"},
		{"field name in capitals", `{"TITLE":"T",` + valid + `}`, "", 400, "TITLE", `unknown field "TITLE": field names are case-sensitive (did you mean "title"?)`},
		{"field name twice in two cases", `{"title":"T","Title":"U",` + valid + `}`, "", 400, "Title", `did you mean "title"?`},
		{"link field in another case", `{"title":"T",` + valid + `,"links":[{"label":"x","URL":"https://x"}]}`, "", 400, "links[0].URL", `did you mean "url"?`},
		{"group field in another case", `{"title":"T","timeoutSeconds":600,"groups":[{"Name":"eng","approvers":["bob@example.com"]}]}`, "", 400, "groups[0].Name", `did you mean "name"?`},
		{"control character in the title", `{"title":"Deploy \u001b[31mnow",` + valid + `}`, "", 400, "title", "title must not contain control characters (U+001B at character 8)"},
		{"override in the title", `{"title":"Approve \u202egnp.exe",` + valid + `}`, "", 400, "title", "bidirectional control characters"},
		{"override in the details", `{"title":"T","details":"a\u2067b",` + valid + `}`, "", 400, "details", "bidirectional"},
		{"override in the requester", `{"title":"T","requester":"ci\u202d",` + valid + `}`, "", 400, "requester", "bidirectional"},
		{"override in a link label", `{"title":"T",` + valid + `,"links":[{"label":"\u202ex","url":"https://x"}]}`, "", 400, "links", "link label must not contain bidirectional"},
		{"address too long", `{"title":"T","timeoutSeconds":600,"approvers":["` + strings.Repeat("a", 5000) + `@example.com"]}`, "", 400, "approvers", "longer than 254 characters"},
		{"Slack channel without Slack", `{"title":"T",` + valid + `,"slackChannel":"C0123456789"}`, "", 400, "slackChannel", "Slack is not configured"},
		{"unknown field", `{"title":"T",` + valid + `,"tiemout":5}`, "", 400, "tiemout", `unknown field "tiemout"`},
		{"unknown link field", `{"title":"T",` + valid + `,"links":[{"href":"https://x"}]}`, "", 400, "href", "unknown field"},
		{"bad link", `{"title":"T",` + valid + `,"links":[{"url":"javascript:alert(1)"}]}`, "", 400, "links", "not an absolute http(s) URL"},
		{"bad webhook", `{"title":"T",` + valid + `,"webhookURL":"ftp://x"}`, "", 400, "webhookURL", "not an absolute http(s) URL"},
		{"bad policy", `{"title":"T",` + valid + `,"policy":"most"}`, "", 400, "policy", "unknown"},
		{"quorum above approvers", `{"title":"T",` + valid + `,"policy":"quorum:2"}`, "", 400, "policy", "more approvals than there are approvers"},
		{"bad reject policy", `{"title":"T",` + valid + `,"rejectPolicy":"never"}`, "", 400, "rejectPolicy", "unknown"},
		{"groups with approvers", `{"title":"T",` + valid + `,"groups":[{"name":"eng","approvers":["bob@example.com"]}]}`, "", 400, "groups", "not both"},
		{"groups with policy", `{"title":"T","timeoutSeconds":600,"policy":"all","groups":[{"name":"eng","approvers":["bob@example.com"]}]}`, "", 400, "groups", "not both"},
		{"bad group name", `{"title":"T","timeoutSeconds":600,"groups":[{"name":"Eng Team","approvers":["bob@example.com"]}]}`, "", 400, "groups", "group name"},
		{"group min too high", `{"title":"T","timeoutSeconds":600,"groups":[{"name":"eng","approvers":["bob@example.com"],"min":2}]}`, "", 400, "groups", "min must be"},
		{"group not an array", `{"title":"T","timeoutSeconds":600,"groups":{"name":"eng"}}`, "", 400, "groups", "groups must be an array, not an object"},
		{"unknown group field", `{"title":"T","timeoutSeconds":600,"groups":[{"name":"eng","members":["bob@example.com"]}]}`, "", 400, "members", "unknown field"},
		{"requester may not approve all", `{"title":"T",` + valid + `,"requester":"alice@example.com","policy":"all"}`, "", 400, "approvers", "only approver"},
		{"requester the only group member", `{"title":"T","timeoutSeconds":600,"requester":"bob@example.com","groups":[{"name":"eng","approvers":["bob@example.com"]}]}`, "", 400, "groups", "could never be satisfied"},
		{"not JSON", `title=T`, "", 400, "", "not valid JSON"},
		{"trailing data", `{"title":"T",` + valid + `} {}`, "", 400, "", "one JSON object"},
		{"empty", ``, "", 400, "", "empty"},
		{"array", `[]`, "", 400, "", "the body must be a JSON object, not an array"},
		{"string", `"x"`, "", 400, "", "the body must be a JSON object, not a string"},
		{"too big", `{"title":"T",` + valid + `,"details":"` + strings.Repeat("x", MaxBody) + `"}`, "", 413, "", "64 KiB"},
		{"form content type", `{"title":"T",` + valid + `}`, "application/x-www-form-urlencoded", 415, "", "application/json"},
	} {
		ct := tc.ctype
		if ct == "" {
			ct = "application/json; charset=utf-8"
		}
		resp := f.do("POST", "/api/requests", strings.NewReader(tc.body), "Content-Type", ct)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, resp.StatusCode, tc.status)
		}
		got := decode[ErrorJSON](t, resp)
		if got.Field != tc.field || !strings.Contains(got.Error, tc.text) {
			t.Errorf("%s: answer %+v, want field %q and a message with %q", tc.name, got, tc.field, tc.text)
		}
	}
	if all, _, _ := f.store.List(context.Background(), approval.Query{}); len(all) != 0 {
		t.Errorf("the store holds %d requests after refused input, want 0", len(all))
	}
	if keys := f.pages.Keys(); len(keys) != 0 {
		t.Errorf("%d pages published after refused input, want 0", len(keys))
	}
}

func TestAPIErrors(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		method, target string
		status         int
		allow          string
	}{
		{"GET", "/api/requests/abcdefghijklmnop", 404, ""},
		{"GET", "/api/requests/bad", 404, ""},
		{"GET", "/api/requests?status=done", 400, ""},
		{"GET", "/api/requests/abcdefghijklmnop?wait=soon", 400, ""},
		{"DELETE", "/api/requests", 405, "GET, POST"},
		{"POST", "/api/requests/abcdefghijklmnop", 405, "GET"},
		{"GET", "/api/nothing", 404, ""},
	} {
		resp := f.do(tc.method, tc.target, nil)
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.target, resp.StatusCode, tc.status)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.target, got, tc.allow)
		}
		if e := decode[ErrorJSON](t, resp); e.Error == "" {
			t.Errorf("%s %s: no error message", tc.method, tc.target)
		}
	}
}

func TestAPIWait(t *testing.T) {
	f := newFixture(t)
	_, tokens := f.create()
	r, _, _ := f.store.List(context.Background(), approval.Query{})
	id := r[0].ID

	done := make(chan RequestJSON)
	go func() {
		done <- decode[RequestJSON](t, f.do("GET", "/api/requests/"+id+"?wait=30s", nil))
	}()
	// Decide once the waiter is (very likely) waiting; either order must work.
	if _, err := f.svc.Decide(context.Background(), approval.DecideInput{Token: tokens["bob@example.com"], Choice: approval.Reject}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got.Status != "rejected" || got.Decision == nil || got.Decision.By != "bob@example.com" {
			t.Errorf("waiter got %+v, want rejected by bob", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting caller did not get the decision")
	}
}

func TestAPIWaitTimesOutWithCurrentState(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *approval.Service) { c.MaxWait = 50 * time.Millisecond })
	f.create()
	r, _, _ := f.store.List(context.Background(), approval.Query{})
	resp := f.do("GET", "/api/requests/"+r[0].ID+"?wait=1h", nil)
	if got := decode[RequestJSON](t, resp); resp.StatusCode != 200 || got.Status != "pending" {
		t.Errorf("status %d, request %q; want 200 pending after the capped wait", resp.StatusCode, got.Status)
	}
}

func TestAPIToken(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *approval.Service) { c.APIToken = "t0ken" })
	body := `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":600}`
	for _, auth := range []string{"", "Bearer wrong", "t0ken", "Bearer t0ken2", "Bearert0ken", "Basic t0ken"} {
		resp := f.postJSON(body, "Authorization", auth)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("Authorization %q: status %d, want 401 with WWW-Authenticate", auth, resp.StatusCode)
		}
	}
	if resp := f.do("GET", "/api/requests", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("list without token: status %d, want 401", resp.StatusCode)
	}
	for _, auth := range []string{"Bearer t0ken", "bearer t0ken", "BEARER  t0ken"} {
		if resp := f.postJSON(body, "Authorization", auth); resp.StatusCode != http.StatusCreated {
			t.Errorf("Authorization %q: status %d, want 201 (the scheme is case-insensitive)", auth, resp.StatusCode)
		}
	}
	if resp := f.do("GET", "/healthz", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("healthz needs no token: status %d", resp.StatusCode)
	}
}

func TestAPIDisabled(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *approval.Service) { c.DisableAPI = true; c.Pages = nil })
	_, tokens := f.create()
	for _, target := range []string{"/api/requests", "/api/requests/abcdefghijklmnop"} {
		if resp := f.do("GET", target, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s with the API disabled: status %d, want 404", target, resp.StatusCode)
		}
	}
	if resp := f.postJSON(`{}`); resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /api/requests with the API disabled: status %d, want 404", resp.StatusCode)
	}
	r, _, _ := f.store.List(context.Background(), approval.Query{})
	if resp := f.do("GET", "/p/"+r[0].Recipients[0].PageKey, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("page without a page source: status %d, want 404", resp.StatusCode)
	}
	resp := f.postForm(map[string][]string{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/decide with the API disabled: status %d, want 200", resp.StatusCode)
	}
}

// TestAPIWaitEndsWithServer: a long poll whose server shuts down (its request
// context canceled) answers with the request as it stands, not an empty body.
func TestAPIWaitEndsWithServer(t *testing.T) {
	f := newFixture(t)
	f.create()
	r, _, _ := f.store.List(context.Background(), approval.Query{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "GET", "/api/requests/"+r[0].ID+"?wait=60s", nil)
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	resp := rec.Result()
	if got := decode[RequestJSON](t, resp); resp.StatusCode != http.StatusOK || got.Status != "pending" {
		t.Errorf("status %d, request %q; want 200 and the pending request", resp.StatusCode, got.Status)
	}
}

// ctxMailer is a mailer that, like SMTP, fails when its context is done.
type ctxMailer struct{ *memory.Mailer }

func (m ctxMailer) Send(ctx context.Context, e approval.Email) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.Mailer.Send(ctx, e)
}

// A request being created when its caller goes away, or when the server starts
// shutting down, is created whole: stored and every approver notified.
func TestCreateOutlivesTheConnection(t *testing.T) {
	f := newFixture(t)
	mail := memory.NewMailer()
	f.svc.Mailer = ctxMailer{mail}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := httptest.NewRequestWithContext(ctx, "POST", "/api/requests",
		strings.NewReader(`{"title":"Deploy","approvers":["alice@example.com"],"timeoutSeconds":600}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		t.Errorf("status %d, want 201", rec.Code)
	}
	f.idle()
	if n := len(mail.Sent()); n != 1 {
		t.Errorf("emails sent: %d, want 1", n)
	}
}

// Without an API token the API answers only under the bot's own name (the base
// URL's host), an IP address or localhost: a web page whose domain an attacker
// re-points at 127.0.0.1 (DNS rebinding) cannot create or list requests
// through a visitor's browser.
func TestAPIRefusesForeignHostsWithoutToken(t *testing.T) {
	body := `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":600}`
	tests := []struct {
		host  string
		token string
		want  int
	}{
		{"evil.example", "", http.StatusForbidden},
		{"evil.example:8080", "", http.StatusForbidden},
		{"example.com.evil.example", "", http.StatusForbidden},
		{"example.com", "", http.StatusCreated},
		{"EXAMPLE.com:80", "", http.StatusCreated},
		{"127.0.0.1:8080", "", http.StatusCreated},
		{"[::1]:8080", "", http.StatusCreated},
		{"localhost:8080", "", http.StatusCreated},
		{"evil.example", "t0ken", http.StatusCreated},
	}
	for _, tt := range tests {
		f := newFixture(t, func(c *Config, _ *approval.Service) { c.APIToken = tt.token })
		for _, method := range []string{"POST", "GET"} {
			req := httptest.NewRequest(method, "/api/requests", strings.NewReader(body))
			req.Host = tt.host
			req.Header.Set("Content-Type", "application/json")
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			f.h.ServeHTTP(rec, req)
			want := tt.want
			if method == "GET" && want == http.StatusCreated {
				want = http.StatusOK
			}
			if rec.Code != want {
				t.Errorf("%s with Host %q, token %q: status %d, want %d", method, tt.host, tt.token, rec.Code, want)
			}
		}
	}
}

// slowReadStore is a store whose reads under a deadline last until it passes,
// as a read caught by the deadline of a long poll does.
type slowReadStore struct{ *memory.Store }

func (s slowReadStore) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	if _, ok := ctx.Deadline(); ok {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.GetRequest(ctx, id)
}

// A long poll whose time runs out in the middle of a read still answers with
// the request as it stands, not a 500 (which the client takes as a failure).
func TestAPIWaitEndingInARead(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *approval.Service) { c.MaxWait = 50 * time.Millisecond })
	f.create()
	f.idle() // the store is swapped below
	r, _, _ := f.store.List(context.Background(), approval.Query{})
	f.svc.Store = slowReadStore{f.store.(*memory.Store)}
	resp := f.do("GET", "/api/requests/"+r[0].ID+"?wait=1h", nil)
	if got := decode[RequestJSON](t, resp); resp.StatusCode != 200 || got.Status != "pending" {
		t.Errorf("status %d, request %q; want 200 pending", resp.StatusCode, got.Status)
	}
}

// rawJSON decodes an answer into a map, to see the field names as sent.
func rawJSON(t *testing.T, resp *http.Response) map[string]any {
	t.Helper()
	return decode[map[string]any](t, resp)
}

// The rule, the votes, the progress and the notifications in the answers,
// under their JSON names: policies, groups, the reject policy and
// self-approval as given, and a decision whose comment is present when empty.
func TestAPIRulesAndVotes(t *testing.T) {
	t.Run("quorum", func(t *testing.T) {
		f := newFixture(t)
		resp := f.postJSON(`{"title":"T","approvers":["alice@example.com","bob@example.com","carol@example.com"],"timeoutSeconds":600,
			"policy":"quorum:2","rejectPolicy":"impossible","requester":"carol@example.com","allowSelfApproval":true}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: status %d: %s", resp.StatusCode, readBody(t, resp))
		}
		m := rawJSON(t, resp)
		for k, want := range map[string]any{"policy": "quorum:2", "rejectPolicy": "impossible", "allowSelfApproval": true} {
			if m[k] != want {
				t.Errorf("%s = %v, want %v", k, m[k], want)
			}
		}
		for _, k := range []string{"votes", "progress", "notifications"} {
			if _, ok := m[k]; !ok {
				t.Errorf("the answer has no %q: %v", k, m)
			}
		}
		if _, ok := m["groups"]; ok {
			t.Errorf("a request without groups shows groups: %v", m["groups"])
		}
		id := m["id"].(string)
		f.idle()
		r := f.get(id)
		tokens := map[string]string{}
		for _, rc := range r.Recipients {
			html, _ := f.pages.Get(rc.PageKey)
			tokens[rc.Address] = tokenIn(t, html)
		}
		f.clock.Add(time.Minute)
		if status, body := f.vote(tokens["alice@example.com"], approval.Approve, ""); status != http.StatusOK {
			t.Fatalf("vote: %d\n%s", status, body)
		}
		f.idle()
		got := decode[RequestJSON](t, f.do("GET", "/api/requests/"+id, nil))
		if got.Status != "pending" || len(got.Votes) != 1 || got.Votes[0].By != "alice@example.com" || got.Votes[0].Choice != "approve" {
			t.Errorf("after one approval: %s with votes %+v, want pending with alice's approval", got.Status, got.Votes)
		}
		if diff := cmp.Diff(ProgressJSON{Approvals: 1, Needed: 1, Required: 2}, got.Progress); diff != "" {
			t.Errorf("progress (-want +got):\n%s", diff)
		}
		if status, body := f.vote(tokens["bob@example.com"], approval.Approve, ""); status != http.StatusOK {
			t.Fatalf("vote: %d\n%s", status, body)
		}
		f.idle()
		m = rawJSON(t, f.do("GET", "/api/requests/"+id, nil))
		d, _ := m["decision"].(map[string]any)
		if c, ok := d["comment"]; !ok || c != "" {
			t.Errorf("decision %v: want a comment field, empty", d)
		}
		if d["by"] != "bob@example.com" || d["decision"] != "approved" || m["status"] != "approved" {
			t.Errorf("decision %v, status %v; want approved by bob", d, m["status"])
		}
		if votes, _ := m["votes"].([]any); len(votes) != 2 {
			t.Errorf("votes %v, want 2", m["votes"])
		}
	})
	t.Run("groups", func(t *testing.T) {
		f := newFixture(t)
		resp := f.postJSON(`{"title":"T","timeoutSeconds":600,"groups":[
			{"name":"eng","approvers":["alice@example.com","bob@example.com"],"min":1},
			{"name":"security","approvers":["sec@example.com","alice@example.com"]}]}`)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("create: status %d: %s", resp.StatusCode, readBody(t, resp))
		}
		created := decode[RequestJSON](t, resp)
		wantGroups := []GroupJSON{
			{Name: "eng", Approvers: []string{"alice@example.com", "bob@example.com"}, Min: 1},
			{Name: "security", Approvers: []string{"sec@example.com", "alice@example.com"}, Min: 1},
		}
		if diff := cmp.Diff(wantGroups, created.Groups); diff != "" || created.Policy != "" {
			t.Errorf("groups (-want +got):\n%s\npolicy %q, want none", diff, created.Policy)
		}
		if diff := cmp.Diff([]string{"alice@example.com", "bob@example.com", "sec@example.com"}, created.Approvers); diff != "" {
			t.Errorf("approvers (-want +got):\n%s", diff)
		}
		f.idle()
		r := f.get(created.ID)
		var alice string
		for _, rc := range r.Recipients {
			if rc.Address == "alice@example.com" {
				html, _ := f.pages.Get(rc.PageKey)
				alice = tokenIn(t, html)
			}
		}
		// A person in two groups counts in both.
		if status, body := f.vote(alice, approval.Approve, "for both"); status != http.StatusOK || !strings.Contains(body, "Approved") {
			t.Fatalf("alice's vote: %d\n%s", status, body)
		}
		f.idle()
		got := decode[RequestJSON](t, f.do("GET", "/api/requests/"+created.ID, nil))
		wantProgress := ProgressJSON{Approvals: 1, Needed: 0, Required: 2, Groups: []GroupProgressJSON{
			{Name: "eng", Approvals: 1, Needed: 1, Satisfied: true},
			{Name: "security", Approvals: 1, Needed: 1, Satisfied: true},
		}}
		if diff := cmp.Diff(wantProgress, got.Progress); diff != "" || got.Status != "approved" {
			t.Errorf("status %s, progress (-want +got):\n%s", got.Status, diff)
		}
		if len(got.Votes) != 1 || !cmp.Equal(got.Votes[0].Groups, []string{"eng", "security"}) {
			t.Errorf("votes %+v, want alice's counting in eng and security", got.Votes)
		}
	})
}

// A request no approver can be reached for closes with a reason, and every
// notification shows its state and error.
func TestAPINotificationFailed(t *testing.T) {
	f := newFixture(t)
	f.mail.SetErr(errors.New("mailbox unavailable"))
	created := decode[RequestJSON](t, f.postJSON(`{"title":"T","approvers":["alice@example.com"],"timeoutSeconds":86400}`))
	f.idle()
	for range approval.MaxAttempts + 1 {
		f.clock.Add(10 * time.Minute)
		if _, err := f.svc.Sweep(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got := decode[RequestJSON](t, f.do("GET", "/api/requests/"+created.ID, nil))
	if got.Status != "canceled" || got.Reason != approval.ReasonNotificationFailed || got.Decision != nil {
		t.Errorf("status %q, reason %q, decision %+v; want canceled, %s, none", got.Status, got.Reason, got.Decision, approval.ReasonNotificationFailed)
	}
	if len(got.Notifications) != 1 || got.Notifications[0].State != "failed" || got.Notifications[0].To != "alice@example.com" ||
		!strings.Contains(got.Notifications[0].Error, "mailbox unavailable") {
		t.Errorf("notifications %+v, want alice's failed with its error", got.Notifications)
	}
}

// GET /api/requests pages through the pending requests with limit and cursor.
func TestAPIListPages(t *testing.T) {
	f := newFixture(t)
	var ids []string
	for i := range 5 {
		f.clock.Add(time.Second)
		r := decode[RequestJSON](t, f.postJSON(fmt.Sprintf(`{"title":"T%d","approvers":["alice@example.com"],"timeoutSeconds":600}`, i)))
		ids = append([]string{r.ID}, ids...) // newest first
	}
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		target := "/api/requests?status=pending&limit=2"
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		resp := f.do("GET", target, nil)
		m := rawJSON(t, resp)
		list := m["requests"].([]any)
		if len(list) > 2 {
			t.Fatalf("page %d: %d requests, want at most 2", page, len(list))
		}
		for _, r := range list {
			seen = append(seen, r.(map[string]any)["id"].(string))
		}
		next, ok := m["nextCursor"].(string)
		if !ok || next == "" {
			if page != 2 {
				t.Errorf("page %d is the last, want page 2", page)
			}
			break
		}
		cursor = next
		if page > 5 {
			t.Fatal("no end to the pages")
		}
	}
	if diff := cmp.Diff(ids, seen); diff != "" {
		t.Errorf("requests over all pages (-want +got):\n%s", diff)
	}
	all := decode[ListJSON](t, f.do("GET", "/api/requests", nil))
	if len(all.Requests) != 5 || all.NextCursor != "" {
		t.Errorf("without a limit: %d requests, next cursor %q; want all 5 and none", len(all.Requests), all.NextCursor)
	}
	for _, tc := range []struct{ query, field string }{
		{"limit=0", "limit"}, {"limit=201", "limit"}, {"limit=-1", "limit"}, {"limit=ten", "limit"},
		{"cursor=nosuchrequest", "cursor"}, {"status=done", "status"},
	} {
		resp := f.do("GET", "/api/requests?"+tc.query, nil)
		if e := decode[ErrorJSON](t, resp); resp.StatusCode != http.StatusBadRequest || e.Field != tc.field {
			t.Errorf("?%s: status %d, field %q; want 400 naming %q", tc.query, resp.StatusCode, e.Field, tc.field)
		}
	}
	if resp := f.do("GET", "/api/requests?limit=200", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("limit=200: status %d, want 200", resp.StatusCode)
	}
}
