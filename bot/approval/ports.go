package approval

import (
	"context"
	"time"
)

// Store keeps requests and tokens. Implementations must make Claim a single atomic
// conditional write: of any number of concurrent claims on a request's tokens, at
// most one succeeds. Expiry is checked in every condition, never left to a
// background deletion. Every implementation passes the contract suite in
// package approval/storetest.
type Store interface {
	// CreateRequest stores a pending request and its tokens atomically. It returns
	// ErrConflict if a request with the same ID exists.
	CreateRequest(ctx context.Context, r *Request, tokens []Token) error
	// GetRequest returns the request with the given ID, or ErrNotFound.
	GetRequest(ctx context.Context, id string) (*Request, error)
	// GetToken returns the token stored under hash, or ErrNotFound.
	GetToken(ctx context.Context, hash string) (*Token, error)
	// ListPending returns every request whose status is pending, newest first,
	// including those past their expiry that nothing has closed yet.
	ListPending(ctx context.Context) ([]*Request, error)
	// ListUndelivered returns every request that is no longer pending and whose
	// outcome has not been delivered to its workflow, oldest first.
	ListUndelivered(ctx context.Context) ([]*Request, error)
	// Claim uses the token stored under hash to record d on its request, in one
	// atomic write conditional on: the token unused and unexpired at d.At, the
	// request pending and unexpired at d.At. It returns the decided request, or
	// ErrNotFound (no such token), ErrAlreadyDecided (token used or request
	// decided) or ErrExpired (token or request expired, or request closed as
	// expired or canceled).
	Claim(ctx context.Context, hash string, d Decision) (*Request, error)
	// Expire marks a pending request whose expiry is at or before now as expired.
	// It returns ErrAlreadyDecided if the request is no longer pending and
	// ErrConflict if it is not yet due.
	Expire(ctx context.Context, id string, now time.Time) (*Request, error)
	// LeaseDelivery takes the delivery lease of a closed request whose outcome
	// is not delivered, so that only its holder sends the outcome until until:
	// two processes sending it at once would see the second send fail as if the
	// workflow were gone. It is one atomic conditional write that succeeds only
	// when the request is not pending, not delivered and has no lease running
	// at now (none, or one that ends at or before now), and records until as
	// the lease's end. Of any number of concurrent calls at the same now, at
	// most one succeeds. It returns ErrConflict if the request is pending,
	// delivered or leased past now, and ErrNotFound if there is no such
	// request. The lease ends with MarkDelivered or MarkWorkflowGone, or at
	// until. Its holder gives it up early by calling LeaseDelivery with now
	// set to the lease's end and until to the present: that is granted only
	// while no lease taken later runs, since such a lease ends later.
	LeaseDelivery(ctx context.Context, id string, now, until time.Time) error
	// MarkWorkflowGone marks a request whose workflow no longer waits as expired
	// and delivered, whatever its status, keeping any decision for the record.
	// It ends any delivery lease.
	MarkWorkflowGone(ctx context.Context, id string) (*Request, error)
	// MarkDelivered records that the request's outcome reached its workflow. It
	// ends any delivery lease.
	MarkDelivered(ctx context.Context, id string) error
	// SetChatMessage records where the request's chat message was posted.
	SetChatMessage(ctx context.Context, id string, m ChatMessage) error
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

// PageView is what the one-time page shows and needs to submit a decision.
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
}

// Renderer turns requests into the one-time page and the email body.
type Renderer interface {
	Page(v PageView) ([]byte, error)
	Email(v EmailView) (Email, error)
}

// Chat posts a request to a chat channel and keeps the message up to date.
type Chat interface {
	// Post announces the request in r.SlackChannel with a button to pageURL.
	Post(ctx context.Context, r *Request, pageURL string) (ChatMessage, error)
	// Update rewrites the request's message to show its outcome.
	Update(ctx context.Context, r *Request) error
}

// Workflow hands the outcome back to whatever is waiting for it.
type Workflow interface {
	// Deliver sends the outcome of a request that is no longer pending. It
	// returns ErrWorkflowGone when nothing waits for it any more.
	Deliver(ctx context.Context, r *Request) error
}
