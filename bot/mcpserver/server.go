// Package mcpserver serves approvalbot to AI agents over the Model Context
// Protocol: tools to ask people for a decision (request_approval), read or
// wait for it (get_approval), list requests (list_approvals) and withdraw one
// (cancel_approval). It is built on the official SDK
// (github.com/modelcontextprotocol/go-sdk) and calls the bot through its API
// client, so that the same tools run over stdio ("bot mcp", a client of a
// running bot) and over streamable HTTP (/mcp on the embedded server).
//
// Every request made through MCP records the configured requester (by
// default "mcp-agent"): an agent cannot name itself as someone else, and the
// rule that a requester may not approve their own request holds.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"approvalbot/bot/client"
)

// Defaults and limits of the tools.
const (
	// DefaultRequester is who asks, for requests made over MCP, unless
	// configured otherwise (APPROVALBOT_MCP_REQUESTER).
	DefaultRequester = "mcp-agent"
	// MaxWaitSeconds is the longest waitSeconds a tool accepts.
	MaxWaitSeconds = 600
	// DefaultListLimit is the page size of list_approvals without a limit.
	DefaultListLimit = 20
	// maxListLimit is the API's largest page.
	maxListLimit = 200
	// pollEvery is how long one long poll of a waiting tool lasts: after each
	// the tool reports progress to a client that asked for it.
	pollEvery = 20 * time.Second
)

// Config is what the tools call and how they name their caller.
type Config struct {
	// API is the bot's API. Required.
	API *client.Client
	// Requester is recorded as the requester of every request made through
	// the tools, and as who canceled one; empty means DefaultRequester.
	Requester string
	// Version is the server's version, as shown to MCP clients.
	Version string
	// ProgressEvery is how often a waiting tool reports progress to a client
	// that asked for it (and asks the bot again); zero means 20 seconds.
	ProgressEvery time.Duration
	// Log receives the SDK's warnings and errors (its info lines, one per
	// session, would double the web package's line per call); nil discards.
	Log *slog.Logger
}

// tools holds what the tool handlers share.
type tools struct {
	api       *client.Client
	requester string
	pollEvery time.Duration
}

// New returns an MCP server with approvalbot's tools, to run over any
// transport (Server.Run with mcp.StdioTransport for stdio).
func New(cfg Config) *mcp.Server {
	t := &tools{api: cfg.API, requester: strings.TrimSpace(cfg.Requester), pollEvery: cfg.ProgressEvery}
	if t.pollEvery <= 0 {
		t.pollEvery = pollEvery
	}
	if t.requester == "" {
		t.requester = DefaultRequester
	}
	log := sdkLog(cfg.Log)
	version := cfg.Version
	if version == "" {
		version = "dev"
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "approvalbot", Title: "approvalbot: human approval by email and Slack", Version: version}, &mcp.ServerOptions{
		Instructions: instructions(t.requester),
		Logger:       log,
	})
	s.AddReceivingMiddleware(plainArgumentErrors)
	t.register(s)
	return s
}

// NewHandler returns the streamable HTTP handler of the MCP server for cfg.
// It is stateless: every call stands alone, so that any number of agents, and
// a restart between two calls, need nothing kept in memory. It leaves
// authentication and the check of the Host header to the caller (the web
// package guards /mcp as it guards /api).
func NewHandler(cfg Config) http.Handler {
	s := New(cfg)
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, &mcp.StreamableHTTPOptions{
		Stateless:                    true,
		DisableLocalhostProtection:   true, // done by the web package, which also knows the bot's own host name
		PropagateRequestCancellation: true,
		Logger:                       sdkLog(cfg.Log),
	})
}

// sdkLog is l for the SDK: warnings and errors only.
func sdkLog(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(warnings{l.Handler()})
}

// warnings passes on the records of level warn and above.
type warnings struct{ slog.Handler }

func (w warnings) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && w.Handler.Enabled(ctx, l)
}

func (w warnings) WithAttrs(as []slog.Attr) slog.Handler { return warnings{w.Handler.WithAttrs(as)} }
func (w warnings) WithGroup(name string) slog.Handler    { return warnings{w.Handler.WithGroup(name)} }

func instructions(requester string) string {
	return fmt.Sprintf(`approvalbot asks people for a decision (approve or reject) by email and Slack, and tells you the outcome.
Call request_approval before an action that needs a human's consent (a production deploy, a migration, a payment, deleting data), then act only if the status is "approved".
A request starts "pending"; wait for it with get_approval and waitSeconds (up to %d) until it is approved, rejected, expired or canceled.
Requests you make are recorded as asked by %q; you cannot approve them yourself.`, MaxWaitSeconds, requester)
}

// register adds the tools to s.
func (t *tools) register(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:  "request_approval",
		Title: "Ask people to approve an action",
		Description: `Ask one or more people to approve or reject an action before you take it. Each approver gets an email with a personal one-time link (Slack users, a direct message with buttons); the rule decides: policy "any" (one approval, the default), "all", or "quorum:N" over approvers, or groups that each need their own minimum.
Returns the request's id and status at once ("pending"), or, with waitSeconds, the outcome if it is decided within that time, with every vote and comment.
Go ahead only when status is "approved". While it is "pending", call get_approval with the id and waitSeconds; "rejected", "expired" or "canceled" mean do not proceed.
Write the title as the question a person answers ("Run migration 042 on the prod database?") and put what they need to judge it in details and links.`,
		InputSchema:  requestSchema(),
		OutputSchema: approvalSchema(),
		Annotations:  &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
	}, t.requestApproval)
	mcp.AddTool(s, &mcp.Tool{
		Name:  "get_approval",
		Title: "Read or wait for an approval",
		Description: `Read an approval request by id: its status, progress toward the rule, every vote with its comment and, once closed, the outcome.
With waitSeconds (1 to 600), waits until the request is no longer pending or the time passes, whichever comes first; call it again while the status is "pending".
Status "approved" means go ahead; "rejected", "expired" or "canceled" mean do not.`,
		InputSchema:  getSchema(),
		OutputSchema: approvalSchema(),
		Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)},
	}, t.getApproval)
	mcp.AddTool(s, &mcp.Tool{
		Name:  "list_approvals",
		Title: "List approval requests",
		Description: `List approval requests, newest first, one page at a time: the pending ones by default.
Pass the answer's nextCursor as cursor to read the next page; there is no nextCursor after the last page.`,
		InputSchema:  listSchema(),
		OutputSchema: listOutputSchema(),
		Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: true, OpenWorldHint: ptr(false)},
	}, t.listApprovals)
	mcp.AddTool(s, &mcp.Tool{
		Name:  "cancel_approval",
		Title: "Withdraw an approval request",
		Description: `Withdraw a pending approval request that is no longer needed (the plan changed, the action was dropped or done another way). Its links stop working and the approvers are told who canceled it and why.
Fails with an explanation if the request is already approved, rejected, expired or canceled.`,
		InputSchema:  cancelSchema(),
		OutputSchema: approvalSchema(),
		Annotations:  &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true, OpenWorldHint: ptr(true)},
	}, t.cancelApproval)
}

func ptr[T any](v T) *T { return &v }

// RequestInput is the input of request_approval.
type RequestInput struct {
	Title          string       `json:"title"`
	Details        string       `json:"details,omitempty"`
	Approvers      []string     `json:"approvers,omitempty"`
	Policy         string       `json:"policy,omitempty"`
	Groups         []GroupInput `json:"groups,omitempty"`
	RejectPolicy   string       `json:"rejectPolicy,omitempty"`
	TimeoutSeconds int64        `json:"timeoutSeconds,omitempty"`
	Links          []LinkInput  `json:"links,omitempty"`
	SlackChannel   string       `json:"slackChannel,omitempty"`
	WaitSeconds    int          `json:"waitSeconds,omitempty"`
}

// GroupInput is one group of approvers of whom at least Min must approve.
type GroupInput struct {
	Name      string   `json:"name"`
	Approvers []string `json:"approvers"`
	Min       int      `json:"min,omitempty"`
}

// LinkInput is a labelled link shown to the approvers.
type LinkInput struct {
	Label string `json:"label,omitempty"`
	URL   string `json:"url"`
}

// GetInput is the input of get_approval.
type GetInput struct {
	ID          string `json:"id"`
	WaitSeconds int    `json:"waitSeconds,omitempty"`
}

// ListInput is the input of list_approvals.
type ListInput struct {
	Status string `json:"status,omitempty"`
	Limit  int    `json:"limit,omitempty"`
	Cursor string `json:"cursor,omitempty"`
}

// CancelInput is the input of cancel_approval.
type CancelInput struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

func (t *tools) requestApproval(ctx context.Context, req *mcp.CallToolRequest, in RequestInput) (*mcp.CallToolResult, *Approval, error) {
	if err := checkWait(in.WaitSeconds); err != nil {
		return nil, nil, err
	}
	nr := client.NewRequest{
		Title: in.Title, Details: in.Details, Requester: t.requester,
		Approvers: in.Approvers, Policy: in.Policy, RejectPolicy: in.RejectPolicy,
		Timeout: time.Duration(in.TimeoutSeconds) * time.Second, SlackChannel: in.SlackChannel,
	}
	for _, g := range in.Groups {
		if g.Min == 0 {
			g.Min = 1
		}
		nr.Groups = append(nr.Groups, client.Group{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
	}
	for _, l := range in.Links {
		nr.Links = append(nr.Links, client.Link{Label: l.Label, URL: l.URL})
	}
	r, err := t.api.Create(ctx, nr)
	if err != nil {
		return nil, nil, t.explain(ctx, err)
	}
	if in.WaitSeconds > 0 {
		if r, err = t.wait(ctx, req, r, time.Duration(in.WaitSeconds)*time.Second); err != nil {
			return nil, nil, fmt.Errorf("request %s was created (status pending), but waiting for it failed: %w; call get_approval with this id", r.ID, t.explain(ctx, err))
		}
	}
	return nil, approvalOf(r), nil
}

func (t *tools) getApproval(ctx context.Context, req *mcp.CallToolRequest, in GetInput) (*mcp.CallToolResult, *Approval, error) {
	if err := checkWait(in.WaitSeconds); err != nil {
		return nil, nil, err
	}
	if strings.TrimSpace(in.ID) == "" {
		return nil, nil, errors.New(`invalid argument "id": give the id that request_approval returned (list_approvals shows the pending ones)`)
	}
	r, err := t.api.Get(ctx, strings.TrimSpace(in.ID))
	if err != nil {
		return nil, nil, t.explain(ctx, err)
	}
	if in.WaitSeconds > 0 {
		if r, err = t.wait(ctx, req, r, time.Duration(in.WaitSeconds)*time.Second); err != nil {
			return nil, nil, t.explain(ctx, err)
		}
	}
	return nil, approvalOf(r), nil
}

func (t *tools) listApprovals(ctx context.Context, _ *mcp.CallToolRequest, in ListInput) (*mcp.CallToolResult, *ListOutput, error) {
	if in.Limit < 0 || in.Limit > maxListLimit {
		return nil, nil, fmt.Errorf(`invalid argument "limit": want 1 to %d, got %d`, maxListLimit, in.Limit)
	}
	if in.Limit == 0 {
		in.Limit = DefaultListLimit
	}
	p, err := t.api.List(ctx, client.ListOptions{Status: in.Status, Limit: in.Limit, Cursor: in.Cursor})
	if err != nil {
		return nil, nil, t.explain(ctx, err)
	}
	out := &ListOutput{Approvals: make([]Approval, 0, len(p.Requests)), NextCursor: p.NextCursor}
	for i := range p.Requests {
		out.Approvals = append(out.Approvals, *approvalOf(&p.Requests[i]))
	}
	return nil, out, nil
}

func (t *tools) cancelApproval(ctx context.Context, _ *mcp.CallToolRequest, in CancelInput) (*mcp.CallToolResult, *Approval, error) {
	id := strings.TrimSpace(in.ID)
	if id == "" {
		return nil, nil, errors.New(`invalid argument "id": give the id of the request to withdraw`)
	}
	r, err := t.api.Cancel(ctx, id, client.CancelInput{Reason: in.Reason, By: t.requester})
	if errors.Is(err, client.ErrClosed) {
		if now, gerr := t.api.Get(ctx, id); gerr == nil {
			return nil, nil, fmt.Errorf("request %s is already %s, so it cannot be canceled. %s", id, now.Status, approvalOf(now).Summary)
		}
	}
	if err != nil {
		return nil, nil, t.explain(ctx, err)
	}
	return nil, approvalOf(r), nil
}

func checkWait(s int) error {
	if s < 0 || s > MaxWaitSeconds {
		return fmt.Errorf(`invalid argument "waitSeconds": want 0 to %d, got %d`, MaxWaitSeconds, s)
	}
	return nil
}

// wait long-polls request r until it is no longer pending or d has passed,
// and reports the progress to a client that asked for it.
func (t *tools) wait(ctx context.Context, req *mcp.CallToolRequest, r *client.Request, d time.Duration) (*client.Request, error) {
	deadline := time.Now().Add(d)
	token := req.Params.GetProgressToken()
	for r.Status == client.StatusPending {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		next, err := t.api.Poll(ctx, r.ID, min(left, t.pollEvery))
		if err != nil {
			return r, err
		}
		r = next
		if token != nil && req.Session != nil && r.Status == client.StatusPending {
			p := r.Progress
			// Best effort: a client that stopped listening still gets the answer.
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token, Progress: float64(max(0, p.Required-p.Needed)), Total: float64(p.Required),
				Message: approvalOf(r).Summary,
			})
		}
	}
	return r, nil
}

// explain turns the client's errors into a sentence an agent can act on.
func (t *tools) explain(ctx context.Context, err error) error {
	var e *client.Error
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("stopped: %w", ctx.Err())
	case errors.Is(err, client.ErrInvalid) && errors.As(err, &e) && e.Field == "requester":
		return fmt.Errorf("approvalbot refused this MCP server's requester name %q (APPROVALBOT_MCP_REQUESTER): %s; the person who configured this server must fix it", t.requester, e.Message)
	case errors.Is(err, client.ErrInvalid) && errors.As(err, &e) && e.Field != "":
		return fmt.Errorf("invalid argument %q: %s", e.Field, e.Message)
	case errors.Is(err, client.ErrInvalid) && errors.As(err, &e):
		return fmt.Errorf("invalid arguments: %s", e.Message)
	case errors.Is(err, client.ErrNotFound):
		return errors.New("no approval request has this id: use the id that request_approval returned, or find it with list_approvals")
	case errors.Is(err, client.ErrClosed) && errors.As(err, &e):
		return errors.New(e.Message)
	case errors.Is(err, client.ErrUnauthorized):
		return fmt.Errorf("approvalbot at %s refused this MCP server's API token: set APPROVALBOT_API_TOKEN to the bot's token (a setup problem; retrying will not help)", t.api.BaseURL())
	case errors.Is(err, client.ErrUnreachable):
		return fmt.Errorf("cannot reach approvalbot at %s (is it running, and is APPROVALBOT_SERVER right?); try again later (after a failed request_approval, look for the request with list_approvals before asking again)", t.api.BaseURL())
	case errors.As(err, &e):
		return fmt.Errorf("approvalbot failed (%s); try again later", e.Message)
	}
	return fmt.Errorf("approvalbot failed: %v", err)
}
