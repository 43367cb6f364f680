package local

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
	mac := hmac.New(sha256.New, []byte("shh"))
	mac.Write(gotBody)
	if got, want := gotHeader.Get(SignatureHeader), "sha256="+hex.EncodeToString(mac.Sum(nil)); got != want {
		t.Errorf("%s = %q, want %q", SignatureHeader, got, want)
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
