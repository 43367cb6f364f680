package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The client prints text that other people wrote (titles, requesters, comments)
// without the control characters that would let it drive the terminal (colour,
// cursor moves, a rewritten line).
func TestClientPrintsNoControlCharacters(t *testing.T) {
	const req = `{"id":"abcdefghijklmnop","status":"approved","title":"Deploy\u001b[2K\rall good\nstatus:     rejected","requester":"ci\u001b]0;x\u0007",
		"approvers":["a@example.com"],"createdAt":"2026-11-25T13:00:00Z","expiresAt":"2026-11-25T14:00:00Z",
		"decision":{"decision":"approved","by":"a@example.com\u009b31m","channel":"email","comment":"line one\nline\u001b[1A two\ttab\r\nstatus:     rejected","at":"2026-11-25T13:10:00Z"}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/requests" {
			io.WriteString(w, `{"requests":[`+req+`]}`)
			return
		}
		io.WriteString(w, req)
	}))
	defer srv.Close()
	getenv := env(map[string]string{"APPROVALBOT_SERVER": srv.URL})
	for _, args := range [][]string{{"bot", "get", "abcdefghijklmnop"}, {"bot", "list"}} {
		var out strings.Builder
		if err := run(context.Background(), args, getenv, &out, io.Discard); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		got := out.String()
		if i := strings.IndexFunc(got, func(r rune) bool { return r != '\n' && r != '\t' && (r < 0x20 || (r >= 0x7f && r < 0xa0)) }); i >= 0 {
			t.Errorf("%v printed control character %q:\n%q", args, got[i:i+1], got)
		}
		if strings.Contains(got, "\nstatus:     rejected") {
			t.Errorf("%v let a title or comment forge a line of its own:\n%s", args, got)
		}
		if !strings.Contains(got, "Deploy") || !strings.Contains(got, "all good") {
			t.Errorf("%v lost the text around the control characters:\n%q", args, got)
		}
	}
}

// A waiting client rides out a server error (a restart, a passing failure) as it
// rides out a refused connection, instead of exiting as if the request had
// failed.
func TestWaitRetriesServerErrors(t *testing.T) {
	defer func(d time.Duration) { waitRetryDelay = d }(waitRetryDelay)
	waitRetryDelay = time.Millisecond
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":"internal error"}`)
			return
		}
		io.WriteString(w, `{"id":"abcdefghijklmnop","status":"approved","title":"T","decision":{"decision":"approved","by":"a@example.com","channel":"email","at":"2026-11-25T13:10:00Z"}}`)
	}))
	defer srv.Close()
	getenv := env(map[string]string{"APPROVALBOT_SERVER": srv.URL})
	err := run(context.Background(), []string{"bot", "get", "abcdefghijklmnop", "--wait"}, getenv, io.Discard, io.Discard)
	if code := exitCode(err, io.Discard); code != exitApproved {
		t.Errorf("exit code %d (%v), want %d after the server recovered", code, err, exitApproved)
	}
}
