package mcpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"approvalbot/bot/approval"
	"approvalbot/bot/client"
	"approvalbot/bot/mcpserver"
	"approvalbot/bot/web"
	"approvalbot/internal/testing/memory"
	"approvalbot/pages"
)

// bot is a real approvalbot handler over the in-memory store, on loopback.
type bot struct {
	*httptest.Server
	svc   *approval.Service
	store *memory.Store
	pages *memory.Pages
}

func newBot(t *testing.T) *bot {
	t.Helper()
	b := &bot{store: memory.NewStore()}
	b.Server = httptest.NewUnstartedServer(nil)
	base := "http://" + b.Listener.Addr().String()
	b.pages = memory.NewPages(base)
	b.svc = &approval.Service{
		Store: b.store, Pages: b.pages, Renderer: pages.Renderer{}, Mailer: memory.NewMailer(),
		Workflow: memory.NewWorkflow(), DecideURL: base + "/decide",
	}
	b.Config.Handler = web.New(web.Config{Service: b.svc, Log: slog.New(slog.DiscardHandler)})
	b.Start()
	t.Cleanup(b.Close)
	return b
}

var tokenField = regexp.MustCompile(`name="token" value="([A-Za-z0-9_.-]+)"`)

// vote casts approver's vote through their personal page's token.
func (b *bot) vote(id, approver string, c approval.Choice, comment string) error {
	r, err := b.store.GetRequest(context.Background(), id)
	if err != nil {
		return err
	}
	for _, rc := range r.Recipients {
		if rc.Address != approver {
			continue
		}
		html, _ := b.pages.Get(rc.PageKey)
		m := tokenField.FindSubmatch(html)
		if m == nil {
			return fmt.Errorf("no token on the page of %s", approver)
		}
		_, err := b.svc.Decide(context.Background(), approval.DecideInput{Token: string(m[1]), Choice: c, Comment: comment})
		return err
	}
	return fmt.Errorf("%s has no personal link on %s", approver, id)
}

// connect runs the MCP server for b in memory and returns a connected SDK
// client session.
func connect(t *testing.T, b *bot, cfg mcpserver.Config, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	cfg.API = client.New(b.URL, "")
	ct, st := mcp.NewInMemoryTransports()
	ctx := context.Background()
	ss, err := mcpserver.New(cfg).Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, opts).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// call calls a tool that must succeed and decodes its structured output.
func call[T any](t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) T {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %s", name, text(res))
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: structured output: %v", name, err)
	}
	return out
}

func text(res *mcp.CallToolResult) string {
	var s []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			s = append(s, tc.Text)
		}
	}
	return strings.Join(s, "\n")
}

func TestTools(t *testing.T) {
	cs := connect(t, newBot(t), mcpserver.Config{}, nil)
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
		if len(tool.Description) < 80 || tool.InputSchema == nil || tool.OutputSchema == nil {
			t.Errorf("%s: description %q, input schema %v, output schema %v; want all three", tool.Name, tool.Description, tool.InputSchema != nil, tool.OutputSchema != nil)
		}
	}
	want := "cancel_approval get_approval list_approvals request_approval"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("tools %q, want %q", got, want)
	}
}

// An agent asks, a person approves through the emailed page, and the agent's
// get_approval with a wait gets the outcome with the votes; requests made over
// MCP are the configured requester's.
func TestRequestThenWait(t *testing.T) {
	b := newBot(t)
	cs := connect(t, b, mcpserver.Config{}, nil)
	a := call[mcpserver.Approval](t, cs, "request_approval", map[string]any{
		"title": "Run migration 042 on prod?", "details": "adds an index", "approvers": []string{"alice@example.com", "bob@example.com"},
		"policy": "all", "timeoutSeconds": 3600, "links": []map[string]string{{"label": "diff", "url": "https://example.com/diff"}},
	})
	if a.ID == "" || a.Status != "pending" || a.Requester != mcpserver.DefaultRequester || a.Progress.Required != 2 || a.Outcome != nil ||
		!strings.Contains(a.Summary, "Do not go ahead yet") || a.Rule != "every approver must approve; one rejection rejects" {
		t.Errorf("created %+v, want pending, asked by %s, 2 approvals required", a, mcpserver.DefaultRequester)
	}

	done := make(chan mcpserver.Approval, 1)
	go func() {
		done <- call[mcpserver.Approval](t, cs, "get_approval", map[string]any{"id": a.ID, "waitSeconds": 30})
	}()
	for _, who := range []string{"alice@example.com", "bob@example.com"} {
		if err := b.vote(a.ID, who, approval.Approve, "ok by "+who); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-done:
		if got.Status != "approved" || got.Outcome == nil || got.Outcome.DecidedBy != "bob@example.com" || len(got.Votes) != 2 ||
			got.Votes[0].Comment != "ok by alice@example.com" || !strings.Contains(got.Summary, "You may go ahead") {
			t.Errorf("waited: %+v, want approved by bob with both votes", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("get_approval with a wait did not return after the decision")
	}

	// request_approval with a wait: decided within it.
	go func() {
		for {
			p, _, err := b.store.ListPending(context.Background(), "", 10)
			if err == nil && len(p) == 1 {
				b.vote(p[0].ID, "carol@example.com", approval.Reject, "not today")
				return
			}
			time.Sleep(5 * time.Millisecond) // polling for the request the tool creates
		}
	}()
	got := call[mcpserver.Approval](t, cs, "request_approval", map[string]any{"title": "Drop table users?", "approvers": []string{"carol@example.com"}, "waitSeconds": 30})
	if got.Status != "rejected" || got.Outcome == nil || got.Outcome.DecidedBy != "carol@example.com" || got.Outcome.Comment != "not today" || !strings.Contains(got.Summary, "Do not go ahead") {
		t.Errorf("request_approval with a wait: %+v, want rejected by carol", got)
	}
}

// The requester is the server's, never the agent's: an approver who is the
// configured requester cannot approve the agent's request.
func TestSelfApprovalHolds(t *testing.T) {
	b := newBot(t)
	cs := connect(t, b, mcpserver.Config{Requester: "alice@example.com"}, nil)
	a := call[mcpserver.Approval](t, cs, "request_approval", map[string]any{"title": "T", "approvers": []string{"alice@example.com", "bob@example.com"}})
	if a.Requester != "alice@example.com" {
		t.Errorf("requester %q, want the configured alice@example.com", a.Requester)
	}
	if err := b.vote(a.ID, "alice@example.com", approval.Approve, ""); err == nil {
		t.Errorf("the requester approved their own request")
	}
}

func TestListAndCancel(t *testing.T) {
	b := newBot(t)
	cs := connect(t, b, mcpserver.Config{Requester: "agent-7"}, nil)
	var ids []string
	for _, title := range []string{"one", "two", "three"} {
		ids = append(ids, call[mcpserver.Approval](t, cs, "request_approval", map[string]any{"title": title, "approvers": []string{"a@example.com"}}).ID)
	}
	seen := map[string]bool{}
	args := map[string]any{"limit": 2}
	for range 3 {
		page := call[mcpserver.ListOutput](t, cs, "list_approvals", args)
		if len(page.Approvals) > 2 {
			t.Errorf("a page of %d with limit 2", len(page.Approvals))
		}
		for _, a := range page.Approvals {
			seen[a.ID] = true
		}
		if page.NextCursor == "" {
			break
		}
		args["cursor"] = page.NextCursor
	}
	if len(seen) != 3 {
		t.Errorf("listed %d distinct requests over the pages, want 3", len(seen))
	}

	got := call[mcpserver.Approval](t, cs, "cancel_approval", map[string]any{"id": ids[0], "reason": "plan changed"})
	if got.Status != "canceled" || got.Outcome == nil || got.Outcome.CanceledBy != "agent-7" || got.Outcome.CancelReason != "plan changed" {
		t.Errorf("canceled: %+v, want canceled by agent-7 with the reason", got)
	}
	if page := call[mcpserver.ListOutput](t, cs, "list_approvals", nil); len(page.Approvals) != 2 {
		t.Errorf("%d pending after a cancel, want 2", len(page.Approvals))
	}
}

// Bad arguments give a tool error the agent can read and act on; the server
// goes on serving.
func TestBadArguments(t *testing.T) {
	b := newBot(t)
	cs := connect(t, b, mcpserver.Config{}, nil)
	closed := call[mcpserver.Approval](t, cs, "request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com"}})
	call[mcpserver.Approval](t, cs, "cancel_approval", map[string]any{"id": closed.ID})
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"request_approval", map[string]any{"approvers": []string{"a@example.com"}}, "title"},
		{"request_approval", map[string]any{"title": "", "approvers": []string{"a@example.com"}}, "title"},
		{"request_approval", map[string]any{"title": "T"}, "approvers"},
		{"request_approval", map[string]any{"title": "T", "approvers": []string{"not an address"}}, "approvers"},
		{"request_approval", map[string]any{"title": "T", "approvers": "a@example.com"}, "approvers"},
		{"request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com"}, "policy": "most"}, "policy"},
		{"request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com"}, "waitSeconds": 601}, "waitSeconds"},
		{"request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com"}, "timeoutSeconds": 5}, "timeoutSeconds"},
		{"request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com"}, "requester": "the-ceo"}, "requester"},
		{"request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com"}, "groups": []map[string]any{{"name": "eng", "approvers": []string{"b@example.com"}}}}, "groups"},
		{"request_approval", map[string]any{"title": "T", "groups": []map[string]any{{"name": "eng", "approvers": []string{"b@example.com"}, "min": 0}}}, "groups"},
		{"get_approval", map[string]any{}, "id"},
		{"get_approval", map[string]any{"id": "abcdefghijklmnop"}, "no approval request has this id"},
		{"get_approval", map[string]any{"id": "abcdefghijklmnop", "waitSeconds": -1}, "waitSeconds"},
		{"list_approvals", map[string]any{"limit": 1000}, "limit"},
		{"list_approvals", map[string]any{"status": "weird"}, "status"},
		{"cancel_approval", map[string]any{"id": closed.ID}, "already canceled"},
		{"cancel_approval", map[string]any{"id": "abcdefghijklmnop"}, "no approval request has this id"},
		{"no_such_tool", map[string]any{}, "no_such_tool"},
	} {
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tc.tool, Arguments: tc.args})
		if tc.tool == "no_such_tool" {
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s: %v, want an error naming the tool", tc.tool, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %v: protocol error %v, want a tool error", tc.tool, tc.args, err)
			continue
		}
		t.Logf("%s %v: %s", tc.tool, tc.args, text(res))
		if !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s %v: IsError %v, %q; want a tool error mentioning %q", tc.tool, tc.args, res.IsError, text(res), tc.want)
		}
	}
	// Still serving.
	call[mcpserver.ListOutput](t, cs, "list_approvals", nil)
}

// A waiting tool reports the votes' progress to a client that asked for it.
func TestWaitReportsProgress(t *testing.T) {
	b := newBot(t)
	var (
		mu       sync.Mutex
		messages []string
	)
	cs := connect(t, b, mcpserver.Config{ProgressEvery: 20 * time.Millisecond}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			defer mu.Unlock()
			messages = append(messages, fmt.Sprintf("%v/%v %s", req.Params.Progress, req.Params.Total, req.Params.Message))
		},
	})
	a := call[mcpserver.Approval](t, cs, "request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com", "b@example.com"}, "policy": "all"})
	if err := b.vote(a.ID, "a@example.com", approval.Approve, ""); err != nil {
		t.Fatal(err)
	}
	params := &mcp.CallToolParams{Name: "get_approval", Arguments: map[string]any{"id": a.ID, "waitSeconds": 1}}
	params.SetProgressToken("p1")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil || res.IsError {
		t.Fatalf("get_approval: %v %s", err, text(res))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(messages) == 0 || !strings.HasPrefix(messages[0], "1/2 Pending: 1 of 2 approvals") {
		t.Errorf("progress %q, want 1/2 with the summary", messages)
	}
}
