package slackapp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// A 429 answer is tried again after the Retry-After Slack names, never
// sooner, and only while the pause fits the caller's time.
func TestCallHonoursRetryAfter(t *testing.T) {
	const pause = 40 * time.Millisecond
	var calls []time.Time
	op := func(context.Context) (string, error) {
		calls = append(calls, time.Now())
		if len(calls) < 3 {
			return "", &slack.RateLimitedError{RetryAfter: pause}
		}
		return "ok", nil
	}
	got, err := call(t.Context(), op)
	if err != nil || got != "ok" {
		t.Fatalf("call: %q, %v; want ok after two 429s", got, err)
	}
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if d := calls[i].Sub(calls[i-1]); d < pause {
			t.Errorf("call %d came %s after the 429, want at least the Retry-After %s", i+1, d, pause)
		}
	}

	// Out of tries: the 429 itself comes back.
	calls = nil
	_, err = call(t.Context(), func(context.Context) (string, error) {
		calls = append(calls, time.Now())
		return "", &slack.RateLimitedError{RetryAfter: time.Millisecond}
	})
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || len(calls) != rateLimitTries {
		t.Errorf("always 429: %v after %d calls, want the RateLimitedError after %d", err, len(calls), rateLimitTries)
	}

	// A pause past the deadline, or too long, is not waited out.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	for _, ra := range []time.Duration{5 * time.Second, maxRetryAfter + time.Second} {
		calls = nil
		start := time.Now()
		_, err = call(ctx, func(context.Context) (string, error) {
			calls = append(calls, time.Now())
			return "", &slack.RateLimitedError{RetryAfter: ra}
		})
		if !errors.As(err, &rl) || len(calls) != 1 || time.Since(start) > time.Second {
			t.Errorf("Retry-After %s: %v after %d calls in %s, want the 429 at once", ra, err, len(calls), time.Since(start))
		}
	}

	// Other errors are not tried again.
	calls = nil
	_, err = call(t.Context(), func(context.Context) (string, error) {
		calls = append(calls, time.Now())
		return "", slack.SlackErrorResponse{Err: "channel_not_found"}
	})
	if err == nil || len(calls) != 1 {
		t.Errorf("channel_not_found: %v after %d calls, want it at once", err, len(calls))
	}
}

// Chat posts again after Slack's 429 with Retry-After, through the real
// client (slack-go turns the answer into a RateLimitedError).
func TestChatPostRetriesAfter429(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"ok":false,"error":"ratelimited"}`))
			return
		}
		w.Write([]byte(`{"ok":true,"channel":"C0123456","ts":"1700000000.000100"}`))
	}))
	defer srv.Close()
	c := NewChat(slack.New("xoxb-test", slack.OptionAPIURL(srv.URL+"/")))
	r := &approval.Request{ID: "abcdefghijklmnop", Title: "T", Requester: "ci", Approvers: []string{"a@example.com"},
		SlackChannel: "C0123456", Status: approval.StatusPending, ExpiresAt: time.Now().Add(time.Hour)}
	start := time.Now()
	m, err := c.Post(t.Context(), r)
	if err != nil || m.TS != "1700000000.000100" {
		t.Fatalf("Post: %+v, %v; want posted after the 429", m, err)
	}
	if d := time.Since(start); d < time.Second || n.Load() != 2 {
		t.Errorf("posted after %s in %d calls, want 2 calls at least the Retry-After (1s) apart", d, n.Load())
	}
}
