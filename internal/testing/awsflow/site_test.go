package awsflow

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/google/go-cmp/cmp"
)

// A form post reaches the handler through the function-URL event intact, though
// the event carries it base64-encoded.
func TestFunctionURLFormPost(t *testing.T) {
	var gotForm url.Values
	var base64Body bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ev, ok := lambdaurl.RequestFromContext(r.Context()); ok {
			base64Body = ev.IsBase64Encoded
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		gotForm = r.PostForm
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusTeapot)
		io.WriteString(w, "path="+r.URL.Path+" host="+r.Host)
	})
	srv := httptest.NewServer(FunctionURL(h))
	defer srv.Close()
	want := url.Values{"token": {"abc+/="}, "decision": {"approve"}, "comment": {"ça va & 100%"}}
	resp, err := http.PostForm(srv.URL+"/decide", want)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if diff := cmp.Diff(want, gotForm); diff != "" {
		t.Errorf("form (-want +got):\n%s", diff)
	}
	if !base64Body {
		t.Error("the event's body was not base64-encoded, as a function URL encodes form posts")
	}
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(string(body), "path=/decide host=127.0.0.1:") {
		t.Errorf("response: %d, Cache-Control %q, body %q", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
	}
}

func TestForms(t *testing.T) {
	const doc = `<html><body>
<form id="decide" method="post" action="/decide">
<input type="hidden" name="token" value="t1">
<textarea name="comment">hi</textarea>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="reject">Reject</button>
<button type="button" name="cancel">Cancel</button>
</form>
<form method="post" action="https://cb.example.net/decide"><input type="hidden" name="confirmed" value="1"></form>
</body></html>`
	forms, err := Forms("http://127.0.0.1:1/p/key", doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []Form{
		{Action: "http://127.0.0.1:1/decide", Method: "POST", Fields: url.Values{"token": {"t1"}, "comment": {"hi"}}, Buttons: map[string][]string{"decision": {"approve", "reject"}}},
		{Action: "https://cb.example.net/decide", Method: "POST", Fields: url.Values{"confirmed": {"1"}}, Buttons: map[string][]string{}},
	}
	if diff := cmp.Diff(want, forms); diff != "" {
		t.Errorf("forms (-want +got):\n%s", diff)
	}
}

type Rejected struct{}

func (*Rejected) Error() string { return "rejected" }

func TestProxyInvocation(t *testing.T) {
	p, err := NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "moto "+r.URL.Path) }))
	defer backend.Close()
	if err := p.SetBackend(backend.URL); err != nil {
		t.Fatal(err)
	}
	p.Handle("ok", func(_ context.Context, in []byte) ([]byte, error) { return append([]byte("got "), in...), nil })
	p.Handle("fails", func(context.Context, []byte) ([]byte, error) { return nil, &Rejected{} })

	tests := []struct {
		path, wantBody, wantFuncErr string
	}{
		{"/2015-03-31/functions/ok/invocations", "got {}", ""},
		{"/2015-03-31/functions/" + url.PathEscape(FunctionARN("us-east-1", "ok")) + "/invocations", "got {}", ""},
		{"/2015-03-31/functions/fails/invocations", `{"errorMessage":"rejected","errorType":"Rejected"}`, "Unhandled"},
		{"/2015-03-31/functions/other/invocations", "moto /2015-03-31/functions/other/invocations", ""},
		{"/", "moto /", ""},
	}
	for _, tt := range tests {
		resp, err := http.Post(p.URL()+tt.path, "application/json", strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != tt.wantBody || resp.Header.Get("X-Amz-Function-Error") != tt.wantFuncErr {
			t.Errorf("POST %s = %q (function error %q), want %q (%q)", tt.path, body, resp.Header.Get("X-Amz-Function-Error"), tt.wantBody, tt.wantFuncErr)
		}
	}
	if got := p.Invocations("ok"); got != 2 {
		t.Errorf("Invocations(ok) = %d, want 2", got)
	}
	if got := ErrorType(errors.New("x")); got != "errorString" {
		t.Errorf("ErrorType(errors.New) = %q, want errorString", got)
	}
}
