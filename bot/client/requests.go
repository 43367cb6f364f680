package client

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"approvalbot/bot/web"
)

// NewRequest is what Create asks for. Give Approvers (with Policy), or
// Groups; the server checks the rest and names the field it refuses.
type NewRequest struct {
	// Title is what is to be decided (required).
	Title   string
	Details string
	// Requester is who asks; compared with the voters to refuse
	// self-approval.
	Requester string
	// Approvers are email addresses and Slack user IDs.
	Approvers []string
	// Policy is how many approvers must approve: "any" (the default),
	// "all" or "quorum:N".
	Policy string
	// Groups replace Approvers and Policy: every group needs Min approvals
	// of its members.
	Groups []Group
	// RejectPolicy is when rejections reject: "any" (the default) or
	// "impossible".
	RejectPolicy      string
	AllowSelfApproval bool
	// Timeout is how long the request stays open, in whole seconds from 1
	// minute to 30 days; zero means the server's default (24 hours).
	Timeout      time.Duration
	Links        []Link
	WebhookURL   string
	SlackChannel string
	// OnTimeout is what happens when the time runs out: "expire" (the
	// default), "reject" or "approve" (approved unless someone rejected).
	OnTimeout string
	// Reminders, when set, remind the approvers who have not voted.
	Reminders *Reminders
	// Escalation, when set, asks more people if the request is still pending
	// after a while.
	Escalation *Escalation
	// AllowDelegation, when set to false, stops approvers handing their vote
	// to someone else; nil means the server's default (allowed).
	AllowDelegation *bool
}

// Reminders says when approvers who have not voted are reminded: every Every
// (at least 5 minutes), and/or BeforeExpiry before the expiry. Durations are
// whole seconds.
type Reminders struct {
	Every        time.Duration
	BeforeExpiry []time.Duration
}

// Escalation adds Approvers (or Groups of their own) to a request still
// pending After its creation, and posts it to SlackChannel.
type Escalation struct {
	After        time.Duration
	Approvers    []string
	Groups       []EscalationGroup
	SlackChannel string
}

// EscalationGroup is a group of escalation approvers, of whom one must
// approve.
type EscalationGroup struct {
	Name      string   `json:"name"`
	Approvers []string `json:"approvers"`
}

type remindersBody struct {
	EverySeconds        int64   `json:"everySeconds,omitempty"`
	BeforeExpirySeconds []int64 `json:"beforeExpirySeconds,omitempty"`
}

type escalationBody struct {
	AfterSeconds int64             `json:"afterSeconds"`
	Approvers    []string          `json:"approvers,omitempty"`
	Groups       []EscalationGroup `json:"groups,omitempty"`
	SlackChannel string            `json:"slackChannel,omitempty"`
}

// seconds turns d into whole seconds for field, refusing fractions.
func seconds(field string, d time.Duration) (int64, error) {
	if d < 0 || d%time.Second != 0 {
		return 0, &Error{Field: field, Message: fmt.Sprintf("%s must be a positive whole number of seconds, got %s", field, d)}
	}
	return int64(d / time.Second), nil
}

// lifecycle sets the timers and hand-offs of in on b.
func (b *createBody) lifecycle(in NewRequest) error {
	b.OnTimeout, b.AllowDelegation = in.OnTimeout, in.AllowDelegation
	if m := in.Reminders; m != nil {
		var err error
		b.Reminders = &remindersBody{}
		if b.Reminders.EverySeconds, err = seconds("reminders.everySeconds", m.Every); err != nil {
			return err
		}
		for _, d := range m.BeforeExpiry {
			n, err := seconds("reminders.beforeExpirySeconds", d)
			if err != nil {
				return err
			}
			b.Reminders.BeforeExpirySeconds = append(b.Reminders.BeforeExpirySeconds, n)
		}
	}
	if e := in.Escalation; e != nil {
		n, err := seconds("escalation.afterSeconds", e.After)
		if err != nil {
			return err
		}
		b.Escalation = &escalationBody{AfterSeconds: n, Approvers: e.Approvers, Groups: e.Groups, SlackChannel: e.SlackChannel}
	}
	return nil
}

// createBody is NewRequest as POST /api/requests reads it.
type createBody struct {
	Title             string          `json:"title"`
	Details           string          `json:"details"`
	Requester         string          `json:"requester"`
	Approvers         []string        `json:"approvers,omitempty"`
	Policy            string          `json:"policy,omitempty"`
	Groups            []Group         `json:"groups,omitempty"`
	RejectPolicy      string          `json:"rejectPolicy,omitempty"`
	AllowSelfApproval bool            `json:"allowSelfApproval,omitempty"`
	TimeoutSeconds    *int64          `json:"timeoutSeconds,omitempty"`
	Links             []Link          `json:"links,omitempty"`
	WebhookURL        string          `json:"webhookURL,omitempty"`
	SlackChannel      string          `json:"slackChannel,omitempty"`
	OnTimeout         string          `json:"onTimeout,omitempty"`
	Reminders         *remindersBody  `json:"reminders,omitempty"`
	Escalation        *escalationBody `json:"escalation,omitempty"`
	AllowDelegation   *bool           `json:"allowDelegation,omitempty"`
}

// Create asks for a decision: the server stores the request and notifies its
// approvers. The answer is the pending request, with its id.
func (c *Client) Create(ctx context.Context, in NewRequest) (*Request, error) {
	body := createBody{
		Title: in.Title, Details: in.Details, Requester: in.Requester, Approvers: in.Approvers,
		Policy: in.Policy, Groups: in.Groups, RejectPolicy: in.RejectPolicy, AllowSelfApproval: in.AllowSelfApproval,
		Links: in.Links, WebhookURL: in.WebhookURL, SlackChannel: in.SlackChannel,
	}
	if err := body.lifecycle(in); err != nil {
		return nil, err
	}
	switch {
	case in.Timeout < 0 || in.Timeout%time.Second != 0:
		return nil, &Error{Field: "timeoutSeconds", Message: fmt.Sprintf("the timeout must be a positive whole number of seconds, got %s", in.Timeout)}
	case in.Timeout > 0:
		s := int64(in.Timeout / time.Second)
		body.TimeoutSeconds = &s
	}
	var r Request
	if err := c.Do(ctx, "POST", "/api/requests", body, &r); err != nil {
		return nil, fmt.Errorf("create request: %w", err)
	}
	return &r, nil
}

// Get reads request id as it stands.
func (c *Client) Get(ctx context.Context, id string) (*Request, error) {
	return c.Poll(ctx, id, 0)
}

// Poll reads request id once it is no longer pending, or after wait at most,
// whichever comes first: one long poll (the server caps wait, at 60 s for the
// embedded server). A wait of zero reads it at once.
func (c *Client) Poll(ctx context.Context, id string, wait time.Duration) (*Request, error) {
	if id == "" {
		return nil, &Error{Field: "id", Message: "the request id is empty"}
	}
	path := "/api/requests/" + url.PathEscape(id)
	if wait > 0 {
		path += "?wait=" + strconv.FormatFloat(wait.Seconds(), 'f', -1, 64)
	}
	var r Request
	if err := c.Do(ctx, "GET", path, nil, &r); err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return &r, nil
}

// Wait returns request id once it is no longer pending: approved, rejected,
// expired or canceled. It asks with long polls, and rides out a server that
// cannot be reached or fails (a restart) for up to RetryFor. It returns ctx's
// error, wrapped, when ctx ends first; the request stays open.
func (c *Client) Wait(ctx context.Context, id string) (*Request, error) {
	poll, retryFor, delay := orDefault(c.PollWait, DefaultPollWait), orDefault(c.RetryFor, DefaultRetryFor), orDefault(c.RetryDelay, DefaultRetryDelay)
	var failingSince time.Time
	for {
		r, err := c.Poll(ctx, id, poll)
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("wait for request %s: %w", id, ctx.Err())
		case err != nil && temporary(err):
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) > retryFor {
				return nil, err
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		case err != nil:
			return nil, err
		}
		failingSince = time.Time{}
		if r.Status != StatusPending {
			return r, nil
		}
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ListOptions choose a page of a listing.
type ListOptions struct {
	// Status filters by status; empty means pending (the one status every
	// server lists).
	Status string
	// Limit is the most requests in the page; zero means the server's
	// default (50; at most 200).
	Limit int
	// Cursor is a previous page's NextCursor; empty means the first page.
	Cursor string
	// Approver and Requester, when set, keep the requests with this approver
	// or this requester (an email address or a Slack user ID).
	Approver, Requester string
	// Since and Until, when set, keep the requests created at or after Since
	// and before Until.
	Since, Until time.Time
}

// List returns one page of requests, newest first. Page.NextCursor is empty
// after the last page.
func (c *Client) List(ctx context.Context, opts ListOptions) (*Page, error) {
	q := url.Values{"status": {StatusPending}}
	if opts.Status != "" {
		q.Set("status", opts.Status)
	}
	if opts.Limit < 0 {
		return nil, &Error{Field: "limit", Message: fmt.Sprintf("limit must not be negative, got %d", opts.Limit)}
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	for name, v := range map[string]string{"cursor": opts.Cursor, "approver": opts.Approver, "requester": opts.Requester} {
		if v != "" {
			q.Set(name, v)
		}
	}
	for name, t := range map[string]time.Time{"since": opts.Since, "until": opts.Until} {
		if !t.IsZero() {
			q.Set(name, t.UTC().Format(time.RFC3339Nano))
		}
	}
	var p Page
	if err := c.Do(ctx, "GET", "/api/requests?"+q.Encode(), nil, &p); err != nil {
		return nil, fmt.Errorf("list requests: %w", err)
	}
	if p.Requests == nil {
		p.Requests = []Request{}
	}
	return &p, nil
}

// CancelInput says why a request is withdrawn, and by whom (both optional;
// the server records "api" when By is empty).
type CancelInput = web.CancelJSON

// Cancel withdraws pending request id: its links stop working, its approvers'
// messages say so, and whoever waits for it learns it was canceled. A request
// already closed gives an error matching ErrClosed.
func (c *Client) Cancel(ctx context.Context, id string, in CancelInput) (*Request, error) {
	if id == "" {
		return nil, &Error{Field: "id", Message: "the request id is empty"}
	}
	var r Request
	if err := c.Do(ctx, "POST", "/api/requests/"+url.PathEscape(id)+"/cancel", in, &r); err != nil {
		return nil, fmt.Errorf("cancel request %s: %w", id, err)
	}
	return &r, nil
}

// Extend gives pending request id more time: it then expires timeout from now.
func (c *Client) Extend(ctx context.Context, id string, timeout time.Duration) (*Request, error) {
	if id == "" {
		return nil, &Error{Field: "id", Message: "the request id is empty"}
	}
	n, err := seconds("timeoutSeconds", timeout)
	if err != nil {
		return nil, err
	}
	var r Request
	if err := c.Do(ctx, "POST", "/api/requests/"+url.PathEscape(id)+"/extend", map[string]int64{"timeoutSeconds": n}, &r); err != nil {
		return nil, fmt.Errorf("extend request %s: %w", id, err)
	}
	return &r, nil
}

// Closed reports whether r is no longer pending.
func Closed(r *Request) bool { return r != nil && r.Status != StatusPending }

// Approved reports whether r was approved.
func Approved(r *Request) bool { return r != nil && r.Status == StatusApproved }
