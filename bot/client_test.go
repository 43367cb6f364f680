package main

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/web"
)

// The client prints text that other people wrote (titles, requesters, comments)
// without the control characters that would let it drive the terminal (colour,
// cursor moves, a rewritten line).
func TestClientPrintsNoControlCharacters(t *testing.T) {
	const req = `{"id":"abcdefghijklmnop","status":"approved","title":"Deploy\u001b[2K\rall good\nstatus:     rejected","requester":"ci\u001b]0;x\u0007",
		"approvers":["a@example.com"],"createdAt":"2026-11-25T13:00:00Z","expiresAt":"2026-11-25T14:00:00Z",
		"groups":[{"name":"eng\u001b[31m","approvers":["a@example.com"],"min":1}],
		"votes":[{"by":"a@example.com\u001b]8;;http://evil\u0007","channel":"email\u001b[2J","choice":"approve","comment":"ok\nstatus:     rejected\u001b[1A","at":"2026-11-25T13:10:00Z","groups":["eng\u001b[31m"]}],
		"progress":{"approvals":1,"rejections":0,"needed":0,"required":1,"groups":[{"name":"eng\u001b[31m","approvals":1,"needed":1,"satisfied":true}]},
		"notifications":[{"to":"b@example.com\u001b[2K","channel":"email","state":"failed","error":"smtp\r\nstatus:     rejected"}],
		"reason":"odd\u001b[5m",
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

func TestParseGroup(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    web.GroupJSON
		wantErr bool
	}{
		{in: "security:1=sec@example.com,U0SEC00001", want: web.GroupJSON{Name: "security", Min: 1, Approvers: []string{"sec@example.com", "U0SEC00001"}}},
		{in: "eng=a@example.com", want: web.GroupJSON{Name: "eng", Min: 1, Approvers: []string{"a@example.com"}}},
		{in: " eng : 2 = a@example.com , b@example.com ,", want: web.GroupJSON{Name: "eng", Min: 2, Approvers: []string{"a@example.com", "b@example.com"}}},
		{in: "eng", wantErr: true},
		{in: "=a@example.com", wantErr: true},
		{in: "eng:=a@example.com", wantErr: true},
		{in: "eng:0=a@example.com", wantErr: true},
		{in: "eng:two=a@example.com", wantErr: true},
		{in: "eng:1=", wantErr: true},
		{in: "eng:1= , ", wantErr: true},
	} {
		got, err := parseGroup(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseGroup(%q): error %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" && !tc.wantErr {
			t.Errorf("parseGroup(%q) (-want +got):\n%s", tc.in, diff)
		}
	}
}

// A request created with --group, --reject-policy and --allow-self-approval
// sends them as the API's fields.
func TestRequestSendsTheRule(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = nil
		json.NewDecoder(r.Body).Decode(&got)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"abcdefghijklmnop","status":"pending","title":"T"}`)
	}))
	defer srv.Close()
	args := []string{"bot", "request", "--server", srv.URL, "--title", "T", "--requester", "me@example.com",
		"--group", "eng:2=a@example.com,b@example.com,U0CAROL001", "--group", "security=sec@example.com",
		"--reject-policy", "impossible", "--allow-self-approval"}
	if err := run(context.Background(), args, env(nil), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"title": "T", "details": "", "requester": "me@example.com", "timeoutSeconds": float64(3600),
		"groups": []any{
			map[string]any{"name": "eng", "min": float64(2), "approvers": []any{"a@example.com", "b@example.com", "U0CAROL001"}},
			map[string]any{"name": "security", "min": float64(1), "approvers": []any{"sec@example.com"}},
		},
		"rejectPolicy": "impossible", "allowSelfApproval": true,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	args = []string{"bot", "request", "--server", srv.URL, "--title", "T", "--requester", "me@example.com",
		"--approver", "a@example.com,b@example.com", "--policy", "quorum:2"}
	if err := run(context.Background(), args, env(nil), io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if got["policy"] != "quorum:2" || got["groups"] != nil || len(got["approvers"].([]any)) != 2 {
		t.Errorf("body %v, want policy quorum:2 with two approvers and no groups", got)
	}
}

// Extra arguments are refused, never ignored: "get ID extra --server X" must
// not quietly ask the default server.
func TestClientRefusesExtraArguments(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/requests" {
			io.WriteString(w, `{"requests":[]}`)
			return
		}
		io.WriteString(w, `{"id":"abcdefghijklmnop","status":"pending","title":"T"}`)
	}))
	defer srv.Close()
	getenv := env(map[string]string{"APPROVALBOT_SERVER": "http://127.0.0.1:1"})
	for _, tc := range []struct {
		args    []string
		wantErr string // empty: succeeds
	}{
		{[]string{"list", "extra"}, `list: unexpected argument "extra"`},
		{[]string{"list", "--server", srv.URL, "extra"}, `list: unexpected argument "extra"`},
		{[]string{"get", "abcdefghijklmnop", "extra"}, `get: unexpected argument "extra" after the request ID`},
		{[]string{"get", "abcdefghijklmnop", "extra", "--server", srv.URL}, `get: unexpected argument "extra" after the request ID`},
		{[]string{"get", "--json", "abcdefghijklmnop", "extra"}, `get: unexpected argument "extra" after the request ID`},
		{[]string{"get"}, "want exactly one request ID"},
		{[]string{"get", "abcdefghijklmnop", "--server", srv.URL}, ""},
		{[]string{"get", "--server", srv.URL, "abcdefghijklmnop"}, ""},
		{[]string{"get", "--json", "abcdefghijklmnop", "--server", srv.URL}, ""},
		{[]string{"list", "--server", srv.URL}, ""},
	} {
		err := run(context.Background(), append([]string{"bot"}, tc.args...), getenv, io.Discard, io.Discard)
		code := exitCode(err, io.Discard)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%v: %v, want success", tc.args, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || code != exitUsage):
			t.Errorf("%v: %v (exit %d), want exit %d with %q", tc.args, err, code, exitUsage, tc.wantErr)
		}
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("the server was called %d times, want 4 (only by the commands that succeed)", n)
	}
}

func TestClientServerFromListenAddress(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":8080", "http://127.0.0.1:8080"},
		{"0.0.0.0:9000", "http://127.0.0.1:9000"},
		{"[::]:9000", "http://127.0.0.1:9000"},
		{"127.0.0.1:8081", "http://127.0.0.1:8081"},
		{"bot.internal:8080", "http://bot.internal:8080"},
		{"[::1]:8080", "http://[::1]:8080"},
	} {
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		c := clientFlags(fs, env(map[string]string{"APPROVALBOT_ADDR": tc.addr}))
		if c.server != tc.want {
			t.Errorf("APPROVALBOT_ADDR=%s: server %s, want %s", tc.addr, c.server, tc.want)
		}
	}
}
