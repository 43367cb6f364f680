// Package approval is the core of approvalbot: the request and token model, the
// lifecycle of a human decision (create, claim, decide, expire, list) and the small
// interfaces it consumes from the outside world (store, pages, mail, chat and
// workflow). It imports only the standard library; adapters depend on it.
package approval

import (
	"strings"
	"time"
)

// Status is the lifecycle state of a request.
type Status string

// The states a request moves through. A request starts pending and ends in exactly
// one of the others.
const (
	StatusPending  Status = "pending"
	StatusApproved Status = "approved"
	StatusRejected Status = "rejected"
	StatusExpired  Status = "expired"
	StatusCanceled Status = "canceled"
)

// Decided reports whether s is the result of a person's decision.
func (s Status) Decided() bool { return s == StatusApproved || s == StatusRejected }

// Channel is how a decision reached the bot.
type Channel string

// The channels a token can be minted for.
const (
	ChannelEmail Channel = "email"
	ChannelSlack Channel = "slack"
)

// Choice is what a person pressed: approve or reject.
type Choice string

// The two choices a person can make.
const (
	Approve Choice = "approve"
	Reject  Choice = "reject"
)

// ParseChoice turns a form or button value into a Choice.
func ParseChoice(s string) (Choice, error) {
	switch Choice(strings.ToLower(strings.TrimSpace(s))) {
	case Approve:
		return Approve, nil
	case Reject:
		return Reject, nil
	}
	return "", Invalidf("decision", "decision must be %q or %q", Approve, Reject)
}

// Status is the request status that this choice leads to.
func (c Choice) Status() Status {
	if c == Approve {
		return StatusApproved
	}
	return StatusRejected
}

// Link is a labelled link shown with a request (a diff, a runbook, a dashboard).
type Link struct {
	Label string `json:"label,omitempty"`
	URL   string `json:"url"`
}

// Decision records who decided a request, how and when.
type Decision struct {
	Choice  Choice
	By      string
	Channel Channel
	Comment string
	At      time.Time
}

// Recipient is one holder of a one-time token: an email approver or a Slack channel.
// Only the token's hash is kept.
type Recipient struct {
	Address   string  // email address, or Slack channel ID for ChannelSlack
	Channel   Channel // how the link reaches the recipient
	TokenHash string  // hex SHA-256 of the token
	PageKey   string  // random name of the recipient's one-time page
}

// ChatMessage locates the chat message posted for a request.
type ChatMessage struct {
	Channel string
	TS      string
}

// Request is one question put to people: approve or reject.
type Request struct {
	ID string
	// TaskToken is the workflow's handle (a Step Functions task token). It is kept
	// only here: never in a page, a URL, a chat message, an API answer or a log.
	TaskToken  string
	WebhookURL string

	Title     string
	Details   string
	Links     []Link
	Requester string
	Approvers []string
	Policy    Policy

	SlackChannel string
	ChatMessage  ChatMessage

	Status    Status
	CreatedAt time.Time
	ExpiresAt time.Time
	Decision  *Decision
	// Delivered is true once the outcome has reached the workflow (or there is no
	// workflow to tell).
	Delivered bool

	Recipients []Recipient
}

// PageKeys are the names of every one-time page of the request.
func (r *Request) PageKeys() []string {
	keys := make([]string, 0, len(r.Recipients))
	for _, rc := range r.Recipients {
		if rc.PageKey != "" {
			keys = append(keys, rc.PageKey)
		}
	}
	return keys
}

// Recipient returns the recipient reached through channel c, if any.
func (r *Request) Recipient(c Channel) (Recipient, bool) {
	for _, rc := range r.Recipients {
		if rc.Channel == c {
			return rc, true
		}
	}
	return Recipient{}, false
}

// IsApprover reports whether who (an email address or Slack user ID) is one of the
// request's approvers, ignoring case.
func (r *Request) IsApprover(who string) bool {
	for _, a := range r.Approvers {
		if strings.EqualFold(a, strings.TrimSpace(who)) {
			return true
		}
	}
	return false
}

// ExpiredAt reports whether the request is past its expiry at now.
func (r *Request) ExpiredAt(now time.Time) bool { return !now.Before(r.ExpiresAt) }

// Token is the stored form of a one-time token: its hash and what it grants.
type Token struct {
	Hash      string // hex SHA-256 of the raw token
	RequestID string
	Recipient string
	Channel   Channel
	PageKey   string
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unused
}

// Result is the outcome handed to the workflow: the output on approve, the cause of
// the failure on reject or expiry.
type Result struct {
	RequestID string `json:"requestId"`
	Decision  string `json:"decision"` // approved, rejected or expired
	DecidedBy string `json:"decidedBy,omitempty"`
	Channel   string `json:"channel,omitempty"`
	Comment   string `json:"comment,omitempty"`
	DecidedAt string `json:"decidedAt,omitempty"`
}

// Result is the request's outcome as the workflow receives it.
func (r *Request) Result() Result {
	res := Result{RequestID: r.ID, Decision: string(r.Status)}
	if d := r.Decision; d != nil && r.Status.Decided() {
		res.DecidedBy = d.By
		res.Channel = string(d.Channel)
		res.Comment = d.Comment
		res.DecidedAt = d.At.UTC().Format(time.RFC3339)
	}
	return res
}
