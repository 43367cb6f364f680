// Package client is the Go client of approvalbot's HTTP API: create a request
// for a human decision, read it, wait for its outcome, list requests a page at
// a time, and cancel one. The command-line client ("bot request", "bot get",
// "bot list"), the MCP server ("bot mcp" and /mcp) and any Go program use it
// alike.
//
// The types of the answers are the server's own (package web), under shorter
// names: a field the server adds is a field this client reads.
//
// Errors: a refusal of the server is an *Error, matched with errors.Is against
// ErrInvalid, ErrNotFound, ErrClosed and ErrUnauthorized; a server that cannot
// be reached matches ErrUnreachable.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"approvalbot/bot/web"
)

// The API's answers, as the server writes them.
type (
	// Request is a request as the API shows it: its rule, progress, votes
	// and, once closed, its outcome.
	Request = web.RequestJSON
	// Vote is one person's vote.
	Vote = web.VoteJSON
	// Decision is the vote that closed a request.
	Decision = web.DecisionJSON
	// Cancellation says who withdrew a request, when and why.
	Cancellation = web.CancellationJSON
	// Progress is how far a request's votes are from approving it.
	Progress = web.ProgressJSON
	// GroupProgress is the progress of one group of approvers.
	GroupProgress = web.GroupProgressJSON
	// Group is a group of approvers of whom at least Min must approve.
	Group = web.GroupJSON
	// Link is a labelled link shown with a request.
	Link = web.LinkJSON
	// Notification is the state of one approver's notification.
	Notification = web.NotificationJSON
	// Page is one page of a listing and the cursor of the next.
	Page = web.ListJSON
)

// The statuses of a request: it starts pending and ends in one of the others.
const (
	StatusPending  = "pending"
	StatusApproved = "approved"
	StatusRejected = "rejected"
	StatusExpired  = "expired"
	StatusCanceled = "canceled"
)

// Defaults of a Client.
const (
	// DefaultPollWait is how long one long poll of Wait asks the server to
	// hold (the embedded server caps it at 60 s).
	DefaultPollWait = 60 * time.Second
	// DefaultRetryFor is how long Wait keeps trying while the server cannot
	// be reached or fails (a restart, a passing failure).
	DefaultRetryFor = time.Minute
	// DefaultRetryDelay is how long Wait pauses before asking again after a
	// failure.
	DefaultRetryDelay = 2 * time.Second
)

// Client calls one approvalbot server. It is safe for concurrent use.
type Client struct {
	base  string // base URL, without a trailing slash
	token string
	http  *http.Client
	// PollWait is how long each long poll of Wait lasts; RetryFor and
	// RetryDelay how Wait rides out failures. Zero means the default.
	PollWait, RetryFor, RetryDelay time.Duration
}

// Option changes a Client made by New.
type Option func(*Client)

// WithHTTPClient makes the client send its calls through hc (a transport of
// your own, a proxy, a test server). Its Timeout, if any, must outlast
// PollWait.
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New returns a client of the server at baseURL ("http://127.0.0.1:8080")
// that sends token as the bearer token when it is not empty.
func New(baseURL, token string, opts ...Option) *Client {
	c := &Client{
		base:  strings.TrimRight(strings.TrimSpace(baseURL), "/"),
		token: strings.TrimSpace(token),
		http:  &http.Client{Timeout: DefaultPollWait + 30*time.Second},
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// BaseURL is the server's address, as given to New.
func (c *Client) BaseURL() string { return c.base }

// Do sends one call to the API and decodes a 2xx answer into out (unless out
// is nil). in, when not nil, is sent as JSON. path starts with "/api/". It is
// the way to a route this package has no method for yet.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	u, err := url.Parse(c.base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return &Error{Message: fmt.Sprintf("server %q is not an http(s) URL such as http://127.0.0.1:8080", c.base), Field: "server"}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return &Error{Message: fmt.Sprintf("server %q: %v", c.base, err), Field: "server"}
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		return &unreachableError{server: c.base, err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		return &unreachableError{server: c.base, err: fmt.Errorf("read the answer: %w", err)}
	}
	if resp.StatusCode/100 != 2 {
		return errorFrom(resp, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: the server's answer is not the expected JSON: %w", method, path, err)
	}
	return nil
}
