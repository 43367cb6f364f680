package approval

import (
	"context"
	"time"
)

// Store keeps requests. Every change of a request is one conditional write of
// the whole request (UpdateRequest) over the version it was read at, so that of
// any number of concurrent changes computed from one version exactly one is
// written and the others are told to read again: votes are counted, and a
// request closed, exactly once. Expiry is checked by the core on every read,
// never left to a background deletion. Every implementation passes the contract
// suite in package approval/storetest.
type Store interface {
	// CreateRequest stores a new request and sets its Version to 1. It returns
	// ErrConflict if a request with the same ID exists.
	CreateRequest(ctx context.Context, r *Request) error
	// GetRequest returns the request with the given ID, with its Version, or
	// ErrNotFound.
	GetRequest(ctx context.Context, id string) (*Request, error)
	// UpdateRequest replaces the stored request with r if the stored version
	// is r.Version, and then increments r.Version. It returns ErrConflict if
	// the stored version differs and ErrNotFound if there is no such request.
	UpdateRequest(ctx context.Context, r *Request) error
	// LegacyToken returns the ID of the request that a token of the first
	// version (stored by its hash, not naming its request) belongs to, or
	// ErrNotFound.
	LegacyToken(ctx context.Context, hash string) (string, error)
	// List returns a page of the requests matching q (q.Status set; see
	// Query.Normalized), newest first (creation time, then ID, descending),
	// after q.Cursor, and the cursor of the next page ("" after the last). A
	// request keeps its place in the order for good, so a cursor stays valid
	// while requests are created and closed: no request that matches
	// throughout a listing is skipped or listed twice. A page may hold fewer
	// than q.Limit requests with a next page still to come (a store bounds
	// the reads of one call). Pending lists include requests past their
	// expiry that nothing has closed yet.
	List(ctx context.Context, q Query) ([]*Request, string, error)
	// ListDue returns up to limit requests whose DueAt is set and at or before
	// now, earliest first: the due index.
	ListDue(ctx context.Context, now time.Time, limit int) ([]*Request, error)
	// AuditLog keeps the audit trail beyond each request's own chain.
	AuditLog
}

// QuickVoter is implemented by stores that can record, in one conditional
// write and without reading the request first, a vote that closes it: under
// a rule that any one vote decides, the first vote; under any other rule,
// the vote that meets it. The service tries it for votes through a personal
// link and falls back to the general read-and-write path when it is refused.
type QuickVoter interface {
	// QuickVote records v, cast with the token whose hash is tokenHash, as
	// the vote that closes request id, in one atomic conditional write, if
	// the request is pending and unexpired at v.At and the token is one of
	// Request.QuickTokens for v.Choice as the request stands (written with
	// it by its last write). The write appends v to the votes, sets the
	// status to v.Choice's and the decision to v, appends effects, and fills
	// in v.By, v.Email, v.Channel and v.Groups from the token's recipient
	// (Request.NameVoter). It returns the request as written. Otherwise it
	// returns ErrConflict with the request as stored, or ErrNotFound.
	QuickVote(ctx context.Context, id, tokenHash string, v Vote, effects []Effect) (*Request, error)
}

// Pages publishes and removes the one-time HTML pages.
type Pages interface {
	// Put stores the page under key, replacing any page there.
	Put(ctx context.Context, key string, html []byte) error
	// Delete removes the pages; keys that do not exist are not an error.
	Delete(ctx context.Context, keys []string) error
	// URL is the address at which a person opens the page stored under key.
	URL(key string) string
}

// RetiringPages is implemented by page hosts that serve a page only while its
// request is pending and unexpired in the store: the write that closes a
// request retires its pages, so the service records no effect to delete them
// on close, and the host removes the pages it no longer serves on its own.
type RetiringPages interface {
	Pages
	// RetiresPages marks the host as one that serves pages only while their
	// request is pending.
	RetiresPages()
}

// PagesWithRequest is implemented by page hosts that keep the pages in the
// database of a Store (the embedded mode's SQLite): a new request and its
// pages are then stored in one atomic write, so that no page is ever stored
// without its request, and a creation takes one write instead of two.
type PagesWithRequest interface {
	Pages
	// InStore reports whether the pages live in st's database, where
	// CreateWithPages stores them together with a request of st.
	InStore(st Store) bool
	// CreateWithPages stores r at version 1, as Store.CreateRequest does,
	// and in the same write the pages (by key) as r's. It returns ErrConflict,
	// having stored nothing, if a request with the same ID exists.
	CreateWithPages(ctx context.Context, r *Request, pages map[string][]byte) error
}

// Email is one rendered message to one recipient.
type Email struct {
	To      string
	Subject string
	Text    string
	HTML    string
}

// Mailer sends email.
type Mailer interface {
	Send(ctx context.Context, m Email) error
}

// PageView is what the one-time page shows and needs to submit a vote.
type PageView struct {
	Request   *Request
	Recipient Recipient
	Token     string // the raw one-time token, posted back by the page's form
	DecideURL string // where the page's form posts
}

// EmailView is what an approver's email shows.
type EmailView struct {
	Request   *Request
	Recipient Recipient
	PageURL   string
	// Reminder marks a reminder: the approver was sent this link before and
	// has not voted yet.
	Reminder bool
}

// Renderer turns requests into the one-time page and the email body.
type Renderer interface {
	Page(v PageView) ([]byte, error)
	Email(v EmailView) (Email, error)
}

// Chat posts a request to chat and keeps its messages up to date. Each call
// is one effect, run again after a failure.
type Chat interface {
	// Post announces the request in r.SlackChannel, with Approve and Reject
	// buttons and a button that answers an approver with a personal link.
	Post(ctx context.Context, r *Request) (ChatMessage, error)
	// DirectMessage sends Slack approver user a direct message with the
	// request and the Approve and Reject buttons.
	DirectMessage(ctx context.Context, r *Request, user string) (ChatMessage, error)
	// Update rewrites the request's messages (r.Messages: the channel
	// message, the direct messages, the escalation post) to show it as it
	// stands: its votes, its progress and its outcome.
	Update(ctx context.Context, r *Request) error
	// Notice sends a short message about r that is not the request itself
	// (see Notice): to Slack user n.To in a direct message, or without n.To
	// as a reply in the thread of r.ChatMessage.
	Notice(ctx context.Context, r *Request, n Notice) error
	// PostIn posts r, with its buttons, in channel: the escalation channel.
	PostIn(ctx context.Context, r *Request, channel string) (ChatMessage, error)
}

// NoticeKind names what a Notice says.
type NoticeKind string

// The notices.
const (
	// NoticeReminder: the request still waits for the votes of n.Waiting
	// (in a thread), or of n.To (a direct message).
	NoticeReminder NoticeKind = "reminder"
	// NoticeCanceled: the request was canceled (r.Canceled says by whom and
	// why).
	NoticeCanceled NoticeKind = "canceled"
)

// Notice is a short chat message about a request.
type Notice struct {
	Kind NoticeKind
	// To is the Slack user of a direct message; empty for a thread reply.
	To string
	// Waiting are the approvers a reminder names.
	Waiting []string
}

// Workflow hands the outcome back to whatever is waiting for it.
type Workflow interface {
	// Deliver sends the outcome of a request that is no longer pending. It
	// returns ErrWorkflowGone when nothing waits for it any more (which, after
	// an earlier attempt, may be that attempt's success).
	Deliver(ctx context.Context, r *Request) error
}
