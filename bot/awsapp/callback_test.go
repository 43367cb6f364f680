package awsapp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"approvalbot/bot/approval"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdaurl"
)

// invokeURL sends the function URL event of testdata/function-url-post.json,
// with method and the base64-encoded form, to the callback as lambdaurl does.
func invokeURL(t *testing.T, a *App, method string, form url.Values) (int, http.Header, string) {
	t.Helper()
	return invokeURLPath(t, a, method, "/decide", form)
}

// invokeURLPath is invokeURL on another path of the function URL.
func invokeURLPath(t *testing.T, a *App, method, path string, form url.Values) (int, http.Header, string) {
	t.Helper()
	raw, err := os.ReadFile("testdata/function-url-post.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev events.LambdaFunctionURLRequest
	if err := json.Unmarshal(raw, &ev); err != nil {
		t.Fatal(err)
	}
	ev.RequestContext.HTTP.Method = method
	ev.RawPath, ev.RequestContext.HTTP.Path = path, path
	ev.Body = base64.StdEncoding.EncodeToString([]byte(form.Encode()))
	if method == http.MethodGet {
		ev.Body, ev.IsBase64Encoded = "", false
	}
	resp, err := lambdaurl.Wrap(a.CallbackHandler())(context.Background(), &ev)
	if err != nil {
		t.Fatalf("invoke: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	h := http.Header{}
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	return resp.StatusCode, h, string(body)
}

func TestCallbackThroughFunctionURL(t *testing.T) {
	// As deployed, the callback has no CALLBACK_URL: its confirmation step posts
	// to the relative /decide, on the function URL the request came to.
	a, _, mail := memoryApp(t)
	if _, err := a.Notify(context.Background(), json.RawMessage(goodEvent)); err != nil {
		t.Fatal(err)
	}
	sent := mail.Sent()[0]
	token := tokenFromEmail(t, a, sent)
	// The callback's service is asynchronous (NewCallback), on the same store
	// and pages as the notifier's.
	a = &App{Log: a.Log, Service: &approval.Service{
		Store: a.Service.Store, Pages: a.Service.Pages, Renderer: a.Service.Renderer, Mailer: a.Service.Mailer, Workflow: a.Service.Workflow,
	}}

	if status, _, _ := invokeURL(t, a, http.MethodGet, nil); status != http.StatusMethodNotAllowed {
		t.Errorf("GET /decide = %d, want 405", status)
	}
	// Without confirmed=1 (no JavaScript) the callback asks first.
	status, h, body := invokeURL(t, a, http.MethodPost, url.Values{"token": {token}, "decision": {"approve"}, "comment": {"fine & dandy"}})
	if status != http.StatusOK || !strings.Contains(body, `name="confirmed"`) || !strings.Contains(body, `action="/decide"`) {
		t.Fatalf("unconfirmed POST = %d, want the confirmation step posting to /decide:\n%s", status, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("confirmation step's CSP %q does not allow posting back to itself", csp)
	}
	status, h, body = invokeURL(t, a, http.MethodPost, url.Values{"token": {token}, "decision": {"approve"}, "comment": {"fine & dandy"}, "confirmed": {"1"}})
	if status != http.StatusOK || !strings.Contains(body, "Deploy v2") {
		t.Errorf("confirmed POST = %d:\n%s", status, body)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	r, err := a.Service.Get(context.Background(), approval.IDFromTaskToken("tt-1"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != approval.StatusApproved || r.Decision.Comment != "fine & dandy" || r.Decision.By != sent.To {
		t.Errorf("request %s decided %+v; want approved by %s with the comment", r.Status, r.Decision, sent.To)
	}
}

// A delegate's page, minted by the callback (the page's "Delegate to…"
// form), is served from the pages' address: its form posts to the function
// URL the delegation came to, not to a relative /decide there.
func TestCallbackDelegatePagePostsToItsFunctionURL(t *testing.T) {
	a, _, mail := memoryApp(t)
	if _, err := a.Notify(context.Background(), json.RawMessage(goodEvent)); err != nil {
		t.Fatal(err)
	}
	token := tokenFromEmail(t, a, mail.Sent()[0])
	a = &App{Log: a.Log, Service: &approval.Service{
		Store: a.Service.Store, Pages: a.Service.Pages, Renderer: a.Service.Renderer, Mailer: a.Service.Mailer, Workflow: a.Service.Workflow,
		Sync: true,
	}}
	status, _, body := invokeURLPath(t, a, http.MethodPost, "/delegate", url.Values{"token": {token}, "to": {"dave@example.com"}})
	if status != http.StatusOK {
		t.Fatalf("POST /delegate = %d:\n%s", status, body)
	}
	sent := mail.Sent()
	last := sent[len(sent)-1]
	if last.To != "dave@example.com" {
		t.Fatalf("last email to %s, want the delegate", last.To)
	}
	const want = `action="https://abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws/decide"`
	if page := pageFromEmail(t, a, last); !strings.Contains(page, want) {
		t.Errorf("the delegate's page does not post to the function URL (%s):\n%s", want, page)
	}
	// Anywhere but a function URL (no X-Forwarded-Proto: https), the
	// service's decide address holds.
	r := httptest.NewRequest(http.MethodPost, "http://127.0.0.1:8080/delegate", nil)
	if got := ownDecideURL(r); got != "" {
		t.Errorf("ownDecideURL without X-Forwarded-Proto = %q, want empty", got)
	}
}

// pageFromEmail follows the email's page link to the page (on the in-memory
// pages).
func pageFromEmail(t *testing.T, a *App, e approval.Email) string {
	t.Helper()
	const marker = "https://pages.example.net/p/"
	i := strings.Index(e.Text, marker)
	if i < 0 {
		t.Fatalf("no page link in the email:\n%s", e.Text)
	}
	key := e.Text[i+len(marker):]
	if j := strings.IndexFunc(key, func(r rune) bool {
		return !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", r)
	}); j >= 0 {
		key = key[:j]
	}
	page, ok := a.Service.Pages.(interface{ Get(string) ([]byte, bool) }).Get(key)
	if !ok {
		t.Fatalf("no page %s", key)
	}
	return string(page)
}

// tokenFromEmail follows the email's page link (on the in-memory pages) to the
// token in the page's form.
func tokenFromEmail(t *testing.T, a *App, e approval.Email) string {
	t.Helper()
	const field = `name="token" value="`
	s := pageFromEmail(t, a, e)
	k := strings.Index(s, field)
	if k < 0 {
		t.Fatalf("no token in the page:\n%s", s)
	}
	s = s[k+len(field):]
	return s[:strings.IndexByte(s, '"')]
}
