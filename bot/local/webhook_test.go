package local

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

func decidedRequest(webhook string) *approval.Request {
	at := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	return &approval.Request{
		ID: "abcdefghijklmnop", WebhookURL: webhook, Status: approval.StatusApproved,
		Rule:     approval.Rule{Policy: approval.PolicyQuorum(2)},
		Decision: &approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, Comment: "ok", At: at},
		Votes: []approval.Vote{
			{By: "U0BOB00001", Email: "bob@example.com", Channel: approval.ChannelSlack, Choice: approval.Approve, At: at.Add(-time.Minute)},
			{By: "alice@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, Comment: "ok", At: at},
		},
	}
}

func TestWebhookDelivers(t *testing.T) {
	var gotBody []byte
	var gotHeader http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotBody, _ = io.ReadAll(r.Body)
		gotHeader = r.Header
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	r := decidedRequest(srv.URL + "/hook?key=s3cret")
	if err := NewWebhook(nil, "shh").Deliver(context.Background(), r); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	var got approval.Result
	if err := json.Unmarshal(gotBody, &got); err != nil {
		t.Fatalf("body %q: %v", gotBody, err)
	}
	if diff := cmp.Diff(r.Result(), got); diff != "" {
		t.Errorf("posted result (-want +got):\n%s", diff)
	}
	var fields map[string]json.RawMessage
	json.Unmarshal(gotBody, &fields)
	var votes []map[string]any
	if err := json.Unmarshal(fields["votes"], &votes); err != nil || len(votes) != 2 || votes[0]["by"] != "U0BOB00001" || votes[1]["comment"] != "ok" {
		t.Errorf("votes in the body = %s, want both votes in order", fields["votes"])
	}
	if id := gotHeader.Get("X-Approvalbot-Request-Id"); id != r.ID {
		t.Errorf("X-Approvalbot-Request-Id = %q, want %q", id, r.ID)
	}
	if ct := gotHeader.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	sig := gotHeader.Get(SignatureHeader)
	ts, _, _ := strings.Cut(strings.TrimPrefix(sig, "t="), ",")
	mac := hmac.New(sha256.New, []byte("shh"))
	mac.Write([]byte(ts + "."))
	mac.Write(gotBody)
	if want := "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil)); sig != want || ts == "" {
		t.Errorf("%s = %q, want %q", SignatureHeader, sig, want)
	}
	if err := VerifySignature([]byte("shh"), sig, gotBody, time.Now()); err != nil {
		t.Errorf("VerifySignature: %v", err)
	}
}

func TestWebhookSignature(t *testing.T) {
	secret, body := []byte("shh"), []byte(`{"requestId":"abc","decision":"approved"}`)
	at := time.Unix(1764080525, 0)
	sig := Sign(secret, at, body)
	// HMAC-SHA256("shh", "1764080525." + body), computed independently.
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("1764080525." + string(body)))
	if want := "t=1764080525,v1=" + hex.EncodeToString(mac.Sum(nil)); sig != want {
		t.Fatalf("Sign = %q, want %q", sig, want)
	}
	for _, tc := range []struct {
		name   string
		secret string
		header string
		body   string
		now    time.Time
		want   error
	}{
		{"valid", "shh", sig, string(body), at, nil},
		{"4m59s later", "shh", sig, string(body), at.Add(299 * time.Second), nil},
		{"clock 4m behind", "shh", sig, string(body), at.Add(-4 * time.Minute), nil},
		{"replayed 5m01s later", "shh", sig, string(body), at.Add(301 * time.Second), ErrSignatureStale},
		{"from the future", "shh", sig, string(body), at.Add(-6 * time.Minute), ErrSignatureStale},
		{"other body", "shh", sig, `{"requestId":"abc","decision":"rejected"}`, at, ErrSignatureMismatch},
		{"other secret", "shhh", sig, string(body), at, ErrSignatureMismatch},
		{"time changed", "shh", strings.Replace(sig, "t=1764080525", "t=1764080600", 1), string(body), at, ErrSignatureMismatch},
		{"old format", "shh", "sha256=" + hex.EncodeToString(mac.Sum(nil)), string(body), at, ErrSignatureMalformed},
		{"empty", "shh", "", string(body), at, ErrSignatureMalformed},
		{"no time", "shh", "v1=00", string(body), at, ErrSignatureMalformed},
	} {
		if err := VerifySignature([]byte(tc.secret), tc.header, []byte(tc.body), tc.now); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifySignature = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// The webhook's signature is dated by its clock.
func TestWebhookSignatureUsesClock(t *testing.T) {
	var got string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Get(SignatureHeader)
	}))
	defer srv.Close()
	w := NewWebhook(nil, "shh")
	w.Now = func() time.Time { return time.Unix(1764080525, 0) }
	if err := w.Deliver(context.Background(), decidedRequest(srv.URL)); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "t=1764080525,v1=") {
		t.Errorf("%s = %q, want it dated 1764080525", SignatureHeader, got)
	}
}

func TestWebhookFailures(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/down":
			http.Error(w, "down", http.StatusServiceUnavailable)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/slow":
			<-release
		}
	}))
	defer srv.Close()
	defer close(release)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	wh := NewWebhook(&http.Client{Timeout: 200 * time.Millisecond}, "")
	for _, path := range []string{"/down", "/redirect", "/slow"} {
		err := wh.Deliver(context.Background(), decidedRequest(srv.URL+path+"?key=s3cret"))
		if err == nil {
			t.Errorf("%s: Deliver succeeded, want an error", path)
			continue
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: error %q reveals the webhook URL's query", path, err)
		}
	}
	if err := wh.Deliver(context.Background(), decidedRequest(closed.URL+"/x?key=s3cret")); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("closed server: err = %v, want an error without the URL's query", err)
	}
}

// A request closed because no approver could be reached tells its webhook why,
// with an empty list of votes (never null).
func TestWebhookSendsTheReason(t *testing.T) {
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
	}))
	defer srv.Close()
	r := &approval.Request{ID: "abcdefghijklmnop", WebhookURL: srv.URL, Status: approval.StatusCanceled, Reason: approval.ReasonNotificationFailed}
	if err := NewWebhook(nil, "").Deliver(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"requestId": "abcdefghijklmnop", "decision": "canceled", "reason": "notification_failed", "votes": []any{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
}

func TestWebhookWithoutURL(t *testing.T) {
	if err := NewWebhook(nil, "").Deliver(context.Background(), decidedRequest("")); err != nil {
		t.Errorf("Deliver without webhook: %v, want nil", err)
	}
}

// readmeVerify is the README's verification, word for word (TestREADMEVerify
// checks that the README still shows it).
func readmeVerify(secret, header string, body []byte) bool {
	f := map[string]string{}
	for _, kv := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(kv, "=")
		f[k] = v
	}
	sec, err := strconv.ParseInt(f["t"], 10, 64)
	if err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(f["t"] + "." + string(body)))
	sig, _ := hex.DecodeString(f["v1"])
	return hmac.Equal(sig, mac.Sum(nil))
}

// The README's verification accepts what Deliver signs, and refuses a stale
// or altered delivery; the README shows that code.
func TestREADMEVerify(t *testing.T) {
	body := []byte(`{"requestId":"abc"}`)
	now := time.Now()
	for _, tc := range []struct {
		name   string
		header string
		body   []byte
		want   bool
	}{
		{"fresh", Sign([]byte("shh"), now, body), body, true},
		{"4 minutes old", Sign([]byte("shh"), now.Add(-4*time.Minute), body), body, true},
		{"6 minutes old", Sign([]byte("shh"), now.Add(-6*time.Minute), body), body, false},
		{"other body", Sign([]byte("shh"), now, body), []byte(`{"requestId":"abd"}`), false},
		{"other secret", Sign([]byte("shhh"), now, body), body, false},
		{"garbage", "t=x,v1=zz", body, false},
	} {
		if got := readmeVerify("shh", tc.header, tc.body); got != tc.want {
			t.Errorf("%s: verify = %v, want %v", tc.name, got, tc.want)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("webhook_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, fn, _ := strings.Cut(string(src), "func readmeVerify(secret, header string, body []byte) bool {")
	fn, _, _ = strings.Cut(fn, "\n}\n")
	if !strings.Contains(string(readme), "func verify(secret, header string, body []byte) bool {"+fn+"\n}\n") {
		t.Error("the README's Go verification differs from readmeVerify: update one or the other")
	}
}
