package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
	"approvalbot/bot/local"
	"approvalbot/internal/testing/botproc"
)

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{[]time.Duration{7}, 50, 7},
		{[]time.Duration{7}, 99, 7},
		{[]time.Duration{1, 2}, 50, 1},
		{[]time.Duration{1, 2}, 95, 2},
		{hundred, 50, 50 * time.Millisecond},
		{hundred, 95, 95 * time.Millisecond},
		{hundred, 99, 99 * time.Millisecond},
		{hundred, 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("percentile(%d values, %d) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	got := summarize("create", "POST /x", []time.Duration{3 * time.Millisecond, time.Millisecond, 2 * time.Millisecond}, 1, time.Second)
	want := Latency{Name: "create", Call: "POST /x", Ops: 3, Errors: 1, Seconds: 1, PerSec: 3, P50: 2, P95: 3, P99: 3, Max: 3, Mean: 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
	empty := summarize("list", "GET /y", nil, 2, 0)
	if empty.Ops != 0 || empty.Errors != 2 || empty.PerSec != 0 || empty.P50 != 0 {
		t.Errorf("summarize with no success = %+v, want zeros and 2 errors", empty)
	}
}

func TestMailLink(t *testing.T) {
	link := "http://127.0.0.1:4242/p/AbC-123_xyz"
	raw, _, err := local.Compose("bot@localhost", approval.Email{
		To: "Alice <alice@example.com>", Subject: "Approval needed",
		Text: "Please decide: " + link + "\n(a link long enough that quoted-printable must wrap it: " + strings.Repeat("x", 90) + ")",
		HTML: `<a href="` + link + `">open</a>`,
	}, time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	to, got, err := mailLink(raw)
	if err != nil {
		t.Fatal(err)
	}
	if to != "alice@example.com" || got != link {
		t.Errorf("mailLink = %q, %q, want %q, %q", to, got, "alice@example.com", link)
	}
	if _, _, err := mailLink([]byte("To: a@b.example\r\nContent-Type: text/plain\r\n\r\nno link here\r\n")); err == nil {
		t.Error("mailLink of a mail without a link: no error")
	}
}

func TestParseFlagsRefusesUnbounded(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "0"}, {"-n", "1000000"}, {"-c", "0"}, {"-m", "1"}, {"-timeout", "0s"}, {"-timeout", "2h"}, {"extra"},
	} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q): no error", args)
		}
	}
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 500 || c.C != 16 || c.Timeout != 2*time.Minute {
		t.Errorf("defaults: n=%d c=%d timeout=%s, want 500, 16, 2m", c.N, c.C, c.Timeout)
	}
}

// brokenBot is a stand-in for a bot that lets every concurrent decision win:
// the contention round must report it.
type brokenBot struct {
	outbox string
	n      atomic.Int64
}

func (b *brokenBot) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == "POST" && r.URL.Path == "/api/requests":
		var in createBody
		json.NewDecoder(r.Body).Decode(&in)
		id := fmt.Sprint(b.n.Add(1))
		for j, a := range in.Approvers {
			raw, _, _ := local.Compose("bot@localhost", approval.Email{To: a, Subject: "s",
				Text: fmt.Sprintf("http://%s/p/%s-%d", r.Host, id, j), HTML: "h"}, time.Now())
			os.WriteFile(filepath.Join(b.outbox, id+"-"+fmt.Sprint(j)+".eml"), raw, 0o600)
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"id": %q, "status": "pending"}`, id)
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/p/"):
		fmt.Fprintf(w, `<input type="hidden" name="token" value="%s">`, strings.TrimPrefix(r.URL.Path, "/p/"))
	case r.Method == "POST" && r.URL.Path == "/decide":
		w.WriteHeader(http.StatusOK) // every attempt "wins"
	case r.Method == "GET" && strings.HasPrefix(r.URL.Path, "/api/requests/"):
		fmt.Fprintf(w, `{"id": %q, "status": "approved"}`, strings.TrimPrefix(r.URL.Path, "/api/requests/"))
	default:
		http.NotFound(w, r)
	}
}

func TestContentionReportsSeveralWinners(t *testing.T) {
	data := t.TempDir()
	outbox := filepath.Join(data, "outbox")
	if err := os.MkdirAll(outbox, 0o700); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&brokenBot{outbox: outbox})
	defer srv.Close()
	cl, err := newClient(srv.URL, 8)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config{C: 8, K: 3, M: 4, KApprovers: 2}
	r := &runner{cfg: cfg, c: cl, data: data, rep: &Report{Problems: []string{}}}
	r.contention(context.Background(), outbox)

	got := r.rep.Contention
	if got.Violations != 3 || got.DecidedOnce != 0 || got.Statuses["200"] != 12 {
		t.Errorf("contention = %+v, want 3 violations, none decided once, 12 answers 200", got)
	}
	if len(r.rep.Problems) != 1 || !strings.Contains(r.rep.Problems[0], "0 of 3 requests decided exactly once") {
		t.Errorf("problems = %q, want one saying 0 of 3 requests decided exactly once", r.rep.Problems)
	}
}

func TestClientRefusesOtherHosts(t *testing.T) {
	cl, err := newClient("http://127.0.0.1:1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.do(context.Background(), "GET", "http://192.0.2.1/p/x", "", nil); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("GET of another host: err %v, want a refusal", err)
	}
}

// TestRunAgainstTheBot builds the bot and runs a small benchmark against it.
func TestRunAgainstTheBot(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the real bot; skipped under -short")
	}
	bin, err := botproc.Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"-bot", bin, "-n", "20", "-c", "4", "-k", "4", "-m", "6", "-p", "5", "-lists", "3", "-timeout", "60s", "-json"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	var rep Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("the -json output does not decode: %v\n%s", err, stdout.String())
	}
	if len(rep.Problems) != 0 {
		t.Errorf("problems: %q", rep.Problems)
	}
	var names []string
	for _, p := range rep.Phases {
		names = append(names, p.Name)
		want := map[string]int{"create": 20, "page": 20, "decide": 20, "contend": 24, "list": 3}[p.Name]
		if p.Ops != want || p.Errors != 0 || p.P50 <= 0 || p.P99 < p.P50 {
			t.Errorf("phase %s: %d ok, %d errors, p50 %s, p99 %s; want %d ok, no error, 0 < p50 <= p99", p.Name, p.Ops, p.Errors, p.P50, p.P99, want)
		}
	}
	if diff := cmp.Diff([]string{"create", "page", "decide", "contend", "list"}, names); diff != "" {
		t.Errorf("phases (-want +got):\n%s", diff)
	}
	k := rep.Contention
	if k.DecidedOnce != 4 || k.Statuses["200"] != 4 || k.Statuses["409"] != 20 || k.ServerErrors != 0 {
		t.Errorf("contention = %+v, want 4 decided once, 4 answers 200, 20 answers 409, no 5xx", k)
	}
	if rep.List.Pending != 5 {
		t.Errorf("list saw %d pending, want 5", rep.List.Pending)
	}
	m := rep.Memory
	if m.Requests != 29 || m.DBBytes == 0 || m.DBPerRequest <= 0 {
		t.Errorf("memory = %+v, want 29 requests and a database size", m)
	}
	if runtime.GOOS == "linux" && (m.PeakRSS == 0 || m.PeakRSS < m.EndRSS) {
		t.Errorf("peak RSS %d, RSS at end %d: want a peak at least the end", m.PeakRSS, m.EndRSS)
	}
}
