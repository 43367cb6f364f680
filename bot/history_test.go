package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"approvalbot/bot/approval"
	"approvalbot/bot/dynamo"
	"approvalbot/bot/web"
	"approvalbot/internal/testing/dynamotest"
	"approvalbot/internal/testing/memory"
	"approvalbot/internal/testing/mototest"
	"approvalbot/pages"
)

// client runs a client command against s and returns its exit code, stdout
// and stderr.
func (s *server) client(args ...string) (int, string, string) {
	s.t.Helper()
	var out, errOut strings.Builder
	err := run(context.Background(), append([]string{"bot"}, args...), env(map[string]string{"APPROVALBOT_SERVER": s.url}), &out, &errOut)
	return exitCode(err, &errOut), out.String(), errOut.String()
}

// TestListTenThousandPending: bot list pages through 10,000 pending requests,
// a page at a time: the first page by default, every one with --all.
func TestListTenThousandPending(t *testing.T) {
	const n = 10_000
	s := startServer(t, t.TempDir(), nil)
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := &approval.Request{
				ID: approval.NewID(), Title: fmt.Sprintf("Deploy %d", i), Details: strings.Repeat("details ", 50),
				Requester: "ci@example.com", Approvers: []string{"alice@example.com"},
				Rule:   approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny},
				Status: approval.StatusPending, CreatedAt: now.Add(-time.Duration(i) * time.Millisecond), ExpiresAt: now.Add(time.Hour),
			}
			ids[i] = r.ID
			if err := s.m.store.CreateRequest(context.Background(), r); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	code, out, errOut := s.client("list")
	if lines := strings.Count(out, "\n"); code != 0 || lines != web.DefaultListLimit || !strings.Contains(errOut, "list --all") {
		t.Errorf("list: exit %d, %d lines, stderr %q; want 0, the first %d, a hint at the rest", code, lines, errOut, web.DefaultListLimit)
	}
	if !strings.HasPrefix(out, ids[0]+"  expires") {
		t.Errorf("list does not start with the newest request %s:\n%.200s", ids[0], out)
	}
	code, out, errOut = s.client("list", "--all", "--limit", "200")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != n || errOut != "" {
		t.Fatalf("list --all: exit %d, %d lines, stderr %q; want 0, %d lines", code, len(lines), errOut, n)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, ids[i]+" ") {
			t.Fatalf("line %d is %.40q, want request %s (newest first, each once)", i+1, l, ids[i])
		}
	}
	code, out, _ = s.client("list", "--all", "--json")
	var l web.ListJSON
	if err := json.Unmarshal([]byte(out), &l); code != 0 || err != nil || len(l.Requests) != n || l.NextCursor != "" {
		t.Errorf("list --all --json: exit %d, %v, %d requests, next %q; want all %d", code, err, len(l.Requests), l.NextCursor, n)
	}
}

// historyServer runs a server with three closed requests (approved by alice
// with a comment, rejected by bob, withdrawn by ci) and a pending one, and
// returns it with the request IDs by outcome.
func historyServer(t *testing.T) (*server, map[string]string) {
	t.Helper()
	s := startServer(t, t.TempDir(), nil)
	ids := map[string]string{}
	for _, name := range []string{"approved", "rejected", "canceled", "pending"} {
		r := s.create(`{"title":"Deploy ` + name + `","approvers":["alice-` + name + `@example.com","bob-` + name + `@example.com"],"requester":"ci@example.com","timeoutSeconds":600}`)
		ids[name] = r.ID
		time.Sleep(2 * time.Millisecond) // distinct creation times: the order of the listing is theirs
	}
	s.idle()
	links := outboxLinks(t, s.data)
	if code, _ := s.decide(getPage(t, links["alice-approved@example.com"]), "approve", "1"); code != 200 {
		t.Fatalf("approve: %d", code)
	}
	if code, _ := s.decide(getPage(t, links["bob-rejected@example.com"]), "reject", "1"); code != 200 {
		t.Fatalf("reject: %d", code)
	}
	if _, err := s.m.Service().Cancel(context.Background(), ids["canceled"], "ci@example.com", "superseded by v1.3"); err != nil {
		t.Fatal(err)
	}
	s.idle()
	return s, ids
}

// TestHistory: bot history lists the closed requests with who decided, when
// and with what comment; list takes a status and filters.
func TestHistory(t *testing.T) {
	s, ids := historyServer(t)
	code, out, errOut := s.client("history")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 6 || errOut != "" {
		t.Fatalf("history: exit %d, stderr %q, output:\n%s\nwant 0 and three requests, each with its comment", code, errOut, out)
	}
	for i, want := range [][]string{
		{ids["canceled"], "canceled", "by ci@example.com", "Deploy canceled (asked by ci@example.com)"},
		{"superseded by v1.3"},
		{ids["rejected"], "rejected", "by bob-rejected@example.com", "Deploy rejected"},
		{"ship it"},
		{ids["approved"], "approved", "by alice-approved@example.com", "Deploy approved"},
		{"ship it"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("history line %d %q does not say %q", i+1, lines[i], w)
			}
		}
	}
	for _, tc := range []struct {
		args []string
		want []string // IDs, in order
	}{
		{[]string{"history", "--status", "approved"}, []string{ids["approved"]}},
		{[]string{"list", "--status", "closed", "--approver", "BOB-rejected@example.com"}, []string{ids["rejected"]}},
		{[]string{"list", "--status", "closed", "--requester", "ci@example.com", "--limit", "1", "--all"}, []string{ids["canceled"], ids["rejected"], ids["approved"]}},
		{[]string{"list"}, []string{ids["pending"]}},
		{[]string{"history", "--since", time.Now().Add(time.Hour).Format(time.RFC3339)}, nil},
	} {
		code, out, _ := s.client(tc.args...)
		var got []string
		for _, l := range strings.Split(out, "\n") {
			if id, _, ok := strings.Cut(l, "  "); ok && approval.ValidID(id) {
				got = append(got, id)
			}
		}
		if code != 0 || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("%v: exit %d, requests %v; want %v\n%s", tc.args, code, got, tc.want, out)
		}
	}
	for _, args := range [][]string{
		{"history", "--status", "pending"}, {"list", "--status", "done"}, {"list", "--since", "yesterday"}, {"history", "extra"},
	} {
		if code, _, _ := s.client(args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// TestAuditExportVerify: bot audit export writes the trail as JSON Lines;
// verify passes it, and the live trail; an edited, deleted or moved line is
// named, with exit 1.
func TestAuditExportVerify(t *testing.T) {
	s, ids := historyServer(t)
	if _, err := s.m.Service().Checkpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if code, out, errOut := s.client("audit", "export", "--output", file); code != 0 || out != "" {
		t.Fatalf("audit export: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	if code, out, _ := s.client("audit", "verify", file); code != 0 || !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "of 4 requests and 1 checkpoints") {
		t.Errorf("audit verify of the export: exit %d:\n%s", code, out)
	}
	if code, out, _ := s.client("audit", "verify"); code != 0 || !strings.HasPrefix(out, "ok: the audit log of http://") {
		t.Errorf("audit verify of the live trail: exit %d:\n%s", code, out)
	}
	// The line of the approving vote, and the one after it.
	vote := -1
	for i, l := range lines {
		if strings.Contains(l, `"requestId":"`+ids["approved"]+`"`) && strings.Contains(l, `"kind":"vote"`) {
			vote = i
		}
	}
	if vote < 0 || vote+1 >= len(lines) || !strings.Contains(lines[vote+1], ids["approved"]) {
		t.Fatalf("no vote of request %s followed by another of its entries in the export:\n%s", ids["approved"], raw)
	}
	var voteEntry approval.AuditEntry
	if err := json.Unmarshal([]byte(lines[vote]), &voteEntry); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("request %s, entry %d (vote)", ids["approved"], voteEntry.Seq)
	next := fmt.Sprintf("request %s, entry %d", ids["approved"], voteEntry.Seq+1)
	tamper := map[string]struct {
		lines []string
		want  []string
	}{
		"edited": {edit(lines, vote, strings.Replace(lines[vote], "ship it", "ship it, and the next one too", 1)),
			[]string{fmt.Sprintf("line %d: %s", vote+1, name), "edited"}},
		"deleted": {edit(lines, vote, ""),
			[]string{fmt.Sprintf("line %d: %s", vote+1, next), fmt.Sprintf("entry %d is missing", voteEntry.Seq), "deleted"}},
		"reordered": {edit(edit(lines, vote, lines[vote+1]), vote+1, lines[vote]),
			[]string{fmt.Sprintf("line %d: %s", vote+1, next), fmt.Sprintf("comes before entry %d", voteEntry.Seq), "reordered"}},
	}
	for what, tc := range tamper {
		f := filepath.Join(t.TempDir(), what+".jsonl")
		if err := os.WriteFile(f, []byte(strings.Join(tc.lines, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := s.client("audit", "verify", f)
		if code != exitNotOK {
			t.Errorf("%s: exit %d, want %d\n%s", what, code, exitNotOK, out)
		}
		first, _, _ := strings.Cut(out, "\n")
		for _, w := range tc.want {
			if !strings.Contains(first, w) {
				t.Errorf("%s: first problem %q does not say %q", what, first, w)
			}
		}
		if !strings.Contains(errOut, "is broken: first at line") {
			t.Errorf("%s: stderr %q does not name the first broken entry", what, errOut)
		}
	}
}

// edit returns lines with line i replaced by s (removed when s is empty).
func edit(lines []string, i int, s string) []string {
	out := append([]string(nil), lines[:i]...)
	if s != "" {
		out = append(out, s)
	}
	return append(out, lines[i+1:]...)
}

// TestAuditExportFromAWSTable: bot audit export --aws-table reads the trail
// from a DynamoDB table with the SDK's usual configuration (here pointed at
// moto), and verify --aws-table checks it.
func TestAuditExportFromAWSTable(t *testing.T) {
	ctx := context.Background()
	srv := mototest.Start(t)
	client := dynamodb.NewFromConfig(srv.Config(t))
	table := mototest.UniqueName("approvals-")
	if err := dynamotest.CreateTable(ctx, client, table); err != nil {
		t.Fatal(err)
	}
	p := memory.NewPages("https://pages.example.com")
	svc := &approval.Service{
		Store: dynamo.New(client, table), Pages: p, Renderer: pages.Renderer{}, Mailer: memory.NewMailer(),
		DecideURL: "https://cb.example.com/decide", Sync: true,
		Now: func() time.Time { return time.Now().Add(time.Hour) }, // past the journal's settling time
	}
	r, _, err := svc.Create(ctx, approval.NewRequest{Title: "Deploy", Approvers: []string{"alice@example.com"}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	html, _ := p.Get(r.Recipients[0].PageKey)
	tok := tokenField.FindSubmatch(html)
	if tok == nil {
		t.Fatal("no token on the page")
	}
	if _, err := svc.Decide(ctx, approval.DecideInput{Token: string(tok[1]), Choice: approval.Approve, Comment: "fine"}); err != nil {
		t.Fatal(err)
	}
	if n, err := svc.Checkpoint(ctx); err != nil || n != 1 {
		t.Fatalf("Checkpoint: %d, %v", n, err)
	}
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	var out, errOut strings.Builder
	err = run(ctx, []string{"bot", "audit", "export", "--aws-table", table}, env(nil), &out, &errOut)
	if code := exitCode(err, &errOut); code != 0 {
		t.Fatalf("audit export --aws-table: exit %d: %s", code, errOut.String())
	}
	kinds := []string{}
	for _, l := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		e, err := approval.ParseAuditEntry([]byte(l))
		if err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		kinds = append(kinds, string(e.Kind))
	}
	if got := strings.Join(kinds, ","); !strings.Contains(got, "created,notification_sent,vote,closed") || !strings.Contains(got, "checkpoint") {
		t.Errorf("exported kinds %s; want the request's trail and the checkpoint", got)
	}
	out.Reset()
	err = run(ctx, []string{"bot", "audit", "verify", "--aws-table", table}, env(nil), &out, &errOut)
	if code := exitCode(err, &errOut); code != 0 || !strings.Contains(out.String(), "ok: the audit log of table "+table) {
		t.Errorf("audit verify --aws-table: exit %d: %s%s", code, out.String(), errOut.String())
	}
}
