package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"approvalbot/bot/mcpserver"
	"approvalbot/internal/testing/botproc"
)

// mcpFlow is what an agent does through any transport: list the tools, ask
// for an approval, wait while a person decides through the emailed page, and
// get the outcome; and a bad call gives a tool error it can read.
func mcpFlow(t *testing.T, s *server, cs *mcp.ClientSession, requester string) {
	t.Helper()
	ctx := context.Background()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.InputSchema == nil || tool.OutputSchema == nil || tool.Description == "" {
			t.Errorf("tool %s lacks a schema or a description", tool.Name)
		}
	}
	if got := strings.Join(names, ","); got != "cancel_approval,get_approval,list_approvals,request_approval" {
		t.Errorf("tools %s", got)
	}

	before := len(outboxLinks(t, s.data))
	created := callTool[mcpserver.Approval](t, cs, "request_approval", map[string]any{
		"title": "Run migration 042 on prod?", "details": "Adds an index to orders.",
		"approvers": []string{"dana@example.com"}, "timeoutSeconds": 3600, "waitSeconds": 0,
	})
	if created.Status != "pending" || created.Requester != requester {
		t.Fatalf("created %+v, want pending, asked by %s", created, requester)
	}

	waited := make(chan mcpserver.Approval, 1)
	go func() {
		waited <- callTool[mcpserver.Approval](t, cs, "get_approval", map[string]any{"id": created.ID, "waitSeconds": 60})
	}()
	var links map[string]string
	eventually(t, "the email to dana", func() bool { links = outboxLinks(t, s.data); return len(links) > before })
	if status, body := s.decide(getPage(t, links["dana@example.com"]), "approve", "1"); status != http.StatusOK {
		t.Fatalf("approve through the page: status %d\n%s", status, body)
	}
	select {
	case got := <-waited:
		if got.Status != "approved" || got.Outcome == nil || got.Outcome.DecidedBy != "dana@example.com" || got.Outcome.Comment != "ship it" ||
			len(got.Votes) != 1 || got.Votes[0].Channel != "email" {
			t.Errorf("get_approval with a wait: %+v, want approved by dana with her vote", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("get_approval with a wait did not return after the decision")
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "request_approval", Arguments: map[string]any{"approvers": []string{"dana@example.com"}, "waitSeconds": 9000}})
	if err != nil {
		t.Fatalf("bad arguments: protocol error %v, want a tool error", err)
	}
	if msg := toolText(res); !res.IsError || !strings.Contains(msg, "waitSeconds") {
		t.Errorf("bad arguments: IsError %v %q, want a tool error naming the argument", res.IsError, msg)
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "cancel_approval", Arguments: map[string]any{"id": created.ID}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "already approved") {
		t.Errorf("cancel of an approved request: %v %q, want a tool error saying it is already approved", err, toolText(res))
	}
	// Still serving after the errors.
	callTool[mcpserver.ListOutput](t, cs, "list_approvals", map[string]any{"limit": 5})
}

func callTool[T any](t *testing.T, cs *mcp.ClientSession, name string, args map[string]any) T {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if res.IsError {
		t.Fatalf("%s: tool error: %s", name, toolText(res))
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func toolText(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var s []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			s = append(s, tc.Text)
		}
	}
	return strings.Join(s, "\n")
}

// bearer adds the API token to every request.
type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// TestMCPOverHTTP: the SDK's client against /mcp on the embedded server, with
// the API's bearer token.
func TestMCPOverHTTP(t *testing.T) {
	s := startServer(t, t.TempDir(), func(m *Main) { m.APIToken = "let-me-in"; m.MCPRequester = "deploy-agent" })
	ctx := context.Background()
	newClient := func() *mcp.Client { return mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil) }

	if _, err := newClient().Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.url + "/mcp", MaxRetries: -1}, nil); err == nil {
		t.Errorf("connected to /mcp without the token")
	}
	cs, err := newClient().Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: s.url + "/mcp", HTTPClient: &http.Client{Transport: bearer{"let-me-in"}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	mcpFlow(t, s, cs, "deploy-agent")
	if !strings.Contains(s.logs.String(), `route=/mcp`) {
		t.Errorf("the log does not show the /mcp calls:\n%s", s.logs)
	}
}

// TestMCPOverStdio: the SDK's client starts "bot mcp" (the built binary) and
// talks to it over stdin and stdout; it asks the running bot through its API.
func TestMCPOverStdio(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bot; skipped under -short (TestMCPStdioInProcess covers the same code)")
	}
	bin, err := botproc.Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, t.TempDir(), func(m *Main) { m.APIToken = "let-me-in" })
	cmd := exec.Command(bin, "mcp")
	cmd.Env = append(os.Environ(), "APPROVALBOT_SERVER="+s.url, "APPROVALBOT_API_TOKEN=let-me-in", "APPROVALBOT_MCP_REQUESTER=stdio-agent")
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil).Connect(context.Background(), &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mcpFlow(t, s, cs, "stdio-agent")
	if err := cs.Close(); err != nil {
		t.Errorf("close: %v (stderr: %s)", err, stderr)
	}
	if stderr.String() != "" {
		t.Errorf("bot mcp logged with a reachable bot and a good token:\n%s", stderr)
	}
}

// TestMCPStdioInProcess runs "bot mcp" through run, over pipes, as main would
// over stdin and stdout.
func TestMCPStdioInProcess(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- runMCP(ctx, []string{"--server", s.url}, env(nil), inR, outW, stderr)
		outW.Close()
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil).Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mcpFlow(t, s, cs, mcpserver.DefaultRequester)
	cs.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("bot mcp after its client left: %v, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bot mcp did not end when its client closed stdin")
	}
}

// Without a bot to ask, "bot mcp" still starts, says so on stderr, and its
// tools answer with an error the agent can act on.
func TestMCPStdioWithoutBot(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stderr := &syncBuffer{}
	go func() {
		runMCP(ctx, []string{"--server", "http://127.0.0.1:1"}, env(nil), inR, outW, stderr)
		outW.Close()
	}()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil).Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_approval", Arguments: map[string]any{"id": "abcdefghijklmnop"}})
	if err != nil || !res.IsError || !strings.Contains(toolText(res), "cannot reach approvalbot at http://127.0.0.1:1") {
		t.Errorf("get_approval without a bot: %v %q, want a tool error saying the bot cannot be reached", err, toolText(res))
	}
	if !strings.Contains(stderr.String(), "cannot be reached") {
		t.Errorf("stderr does not say the bot cannot be reached:\n%s", stderr)
	}
}

// A tool waiting over /mcp ends when the bot shuts down; the shutdown does
// not wait for the tool's 600 seconds.
func TestMCPWaitEndsWithServer(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	ctx := context.Background()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: s.url + "/mcp", MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	a := callTool[mcpserver.Approval](t, cs, "request_approval", map[string]any{"title": "T", "approvers": []string{"a@example.com"}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_approval", Arguments: map[string]any{"id": a.ID, "waitSeconds": 600}})
	}()
	eventually(t, "the tool to wait", func() bool { return strings.Contains(s.logs.String(), `route="GET /api/requests/{id}"`) })
	// Close fails if a connection is still busy after the grace period; it
	// may take up to 5 s for a connection the client opened but never used
	// (net/http's rule for those), never the tool's 600 s.
	if err := s.m.Close(); err != nil {
		t.Errorf("close with a tool waiting: %v, want the tool's call ended within the grace period", err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting tool call did not end with the server")
	}
}
