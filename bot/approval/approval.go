// Package approval is the core of approvalbot: requests, the people who may vote
// on them and their votes, the rule that turns votes into an outcome, the effects
// that every change of a request causes (notify, deliver, delete pages, update the
// chat message), and the small interfaces it consumes from the outside world
// (store, pages, mail, chat and workflow). It imports only the standard library;
// adapters depend on it.
package approval

import (
	"slices"
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

// String returns the status's name.
func (s Status) String() string { return string(s) }

// Decided reports whether s is the result of people's votes.
func (s Status) Decided() bool { return s == StatusApproved || s == StatusRejected }

// Channel is how a vote reached the bot.
type Channel string

// The channels a vote can come through.
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

// Status is the request status that this choice leads to when it decides.
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

// Decision records the vote that closed a request: who cast it, how and when.
type Decision struct {
	Choice  Choice
	By      string
	Channel Channel
	Comment string
	At      time.Time
}

// Vote is one person's approve or reject on a request.
type Vote struct {
	// By is the voter's identity: the email address a personal link was sent
	// to, or a Slack user ID.
	By string
	// Email is the Slack profile's email address of a Slack voter, when Slack
	// has one; it makes the email and Slack identities of one person one voter.
	Email   string
	Channel Channel
	Choice  Choice
	Comment string
	At      time.Time
	// Groups are the names of the request's groups this vote counts in.
	Groups []string
}

// Recipient is one holder of a personal one-time token: an approver reached by
// email, or one who asked for a personal link in Slack. Only the token's hash is
// kept. Requests of the first version may also hold one recipient for a whole
// Slack channel (Channel ChannelSlack, Address the channel ID).
type Recipient struct {
	Address string // the approver (email address or Slack user ID)
	// PrevHash is the hash of the recipient's token before its page was
	// made again (an extension); it is accepted too, for a page still open.
	PrevHash string
	// Email is the Slack profile's email address of an approver who asked
	// for a personal link in Slack, when Slack has one: their vote through it
	// is theirs under every identity they have.
	Email     string
	Channel   Channel // how the link reached them
	TokenHash string  // hex SHA-256 of the whole token
	PageKey   string  // random name of the recipient's one-time page
}

// ChatMessage locates a chat message posted for a request.
type ChatMessage struct {
	Channel string
	TS      string
}

// Request is one question put to people: approve or reject.
type Request struct {
	ID string
	// Version counts the stored writes of the request; the store writes a
	// request only over the version it was read at (see Store.UpdateRequest).
	Version int64
	// TaskToken is the workflow's handle (a Step Functions task token). It is kept
	// only here: never in a page, a URL, a chat message, an API answer or a log.
	TaskToken  string
	WebhookURL string

	Title     string
	Details   string
	Links     []Link
	Requester string
	// Approvers are everyone who may vote: email addresses (lower case) and
	// Slack user IDs. With groups, the members of all groups.
	Approvers []string
	Rule      Rule

	SlackChannel string
	// ChatMessage is the request's message in SlackChannel, once posted.
	ChatMessage ChatMessage
	// DirectMessages are the direct messages sent to Slack approvers.
	DirectMessages []ChatMessage

	Status    Status
	CreatedAt time.Time
	ExpiresAt time.Time
	// Decision is the vote that closed the request, if votes closed it.
	Decision *Decision
	// Reason says why a request closed without a decision
	// (ReasonNotificationFailed, ReasonWorkflowGone, ReasonCanceled), or is
	// empty.
	Reason string
	// Canceled says who withdrew the request, when and why.
	Canceled *Cancellation
	Votes    []Vote

	Recipients []Recipient
	// Effects are what the request's changes still require, or have done.
	Effects []Effect

	// Timing and hand-offs (see lifecycle.go and timers.go).

	// OnTimeout is what the request's expiry does while it is pending
	// (empty: TimeoutExpire).
	OnTimeout TimeoutAction
	// Reminders say when approvers who have not voted are reminded;
	// RemindedAt is when the last round went out (zero: none yet).
	Reminders  Reminders
	RemindedAt time.Time
	// Escalation, when set, adds approvers if the request is still pending
	// after a while.
	Escalation *Escalation
	// NoDelegation forbids approvers to hand their vote to someone else.
	NoDelegation bool
	// Delegations are the votes handed on, in order.
	Delegations []Delegation
	// Extensions are the changes of the expiry, in order.
	Extensions []Extension
	// TaskDeadline is when the workflow's task stops waiting, when known:
	// the request cannot be extended past it.
	TaskDeadline time.Time
	// Audit is the request's audit trail, oldest first, each entry chained
	// to the one before (see AuditEntry). The core appends to it before
	// every write; stores keep it as it is.
	Audit []AuditEntry
}

// Reasons a request closes without a decision, or stops waiting.
const (
	// ReasonNotificationFailed: no approver could be reached.
	ReasonNotificationFailed = "notification_failed"
	// ReasonWorkflowGone: the workflow stopped waiting before the outcome
	// reached it.
	ReasonWorkflowGone = "workflow_gone"
	// ReasonCanceled: someone withdrew the request (see Request.Canceled).
	ReasonCanceled = "canceled"
)

// Cancellation records who withdrew a request, when and why.
type Cancellation struct {
	By     string
	Reason string
	At     time.Time
}

// Clone returns a deep copy of r.
func (r *Request) Clone() *Request {
	c := *r
	c.Links = slices.Clone(r.Links)
	c.Approvers = slices.Clone(r.Approvers)
	c.Rule = r.Rule.clone()
	c.DirectMessages = slices.Clone(r.DirectMessages)
	if r.Decision != nil {
		d := *r.Decision
		c.Decision = &d
	}
	if r.Canceled != nil {
		x := *r.Canceled
		c.Canceled = &x
	}
	c.Votes = make([]Vote, len(r.Votes))
	for i, v := range r.Votes {
		v.Groups = slices.Clone(v.Groups)
		c.Votes[i] = v
	}
	if r.Votes == nil {
		c.Votes = nil
	}
	c.Recipients = slices.Clone(r.Recipients)
	c.Effects = slices.Clone(r.Effects)
	r.cloneLifecycle(&c)
	c.Audit = slices.Clone(r.Audit) // entries are never changed once sealed
	return &c
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

// deadPageKeys are the pages that must no longer be published: every page of a
// closed request, and the pages of those who have voted on a pending one.
func (r *Request) deadPageKeys() []string {
	if r.Status != StatusPending {
		return r.PageKeys()
	}
	var keys []string
	for _, rc := range r.Recipients {
		if id := rc.Identity(); rc.PageKey != "" && (r.voteOf(id) != nil || r.delegatedAway(id)) {
			keys = append(keys, rc.PageKey)
		}
	}
	return keys
}

// RecipientByHash returns the recipient holding the token with hash h.
func (r *Request) RecipientByHash(h string) (Recipient, bool) {
	for _, rc := range r.Recipients {
		if rc.TokenHash == h || (rc.PrevHash != "" && rc.PrevHash == h) {
			return rc, true
		}
	}
	return Recipient{}, false
}

// IsApprover reports whether who (an email address or Slack user ID) is one of
// the request's approvers, ignoring case.
func (r *Request) IsApprover(who string) bool {
	return r.approverOf(Identity{ID: who}) != ""
}

// ExpiredAt reports whether the request is past its expiry at now.
func (r *Request) ExpiredAt(now time.Time) bool { return !now.Before(r.ExpiresAt) }

// ClosedAt is when the request left pending: its decision, its
// cancellation, or its expiry.
func (r *Request) ClosedAt() time.Time {
	if r.Canceled != nil {
		return r.Canceled.At
	}
	if r.Decision != nil {
		return r.Decision.At
	}
	return r.ExpiresAt
}

// Delivered reports whether the outcome has reached the workflow, or there is
// nothing to deliver.
func (r *Request) Delivered() bool {
	if r.Status == StatusPending {
		return false
	}
	e := r.effect(EffectDeliver, "")
	return e == nil || e.State == EffectDone
}

// Token is the stored form of a one-time token of the first version, whose
// tokens did not name their request. Stores keep such tokens only to find the
// request of a link sent before an upgrade.
type Token struct {
	Hash      string // hex SHA-256 of the raw token
	RequestID string
	Recipient string
	Channel   Channel
	PageKey   string
	ExpiresAt time.Time
	UsedAt    time.Time // zero while unused
}

// VoteResult is one vote as the workflow and webhooks receive it.
type VoteResult struct {
	By      string   `json:"by"`
	Channel string   `json:"channel"`
	Choice  string   `json:"choice"`
	Comment string   `json:"comment"`
	At      string   `json:"at"`
	Groups  []string `json:"groups,omitempty"`
}

// Result is the outcome handed to the workflow: the output on approve, the cause of
// the failure on reject or expiry.
type Result struct {
	RequestID string `json:"requestId"`
	Decision  string `json:"decision"` // approved, rejected, expired or canceled
	DecidedBy string `json:"decidedBy,omitempty"`
	Channel   string `json:"channel,omitempty"`
	Comment   string `json:"comment,omitempty"`
	DecidedAt string `json:"decidedAt,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// CanceledBy and CancelReason say who withdrew the request and why.
	CanceledBy   string       `json:"canceledBy,omitempty"`
	CancelReason string       `json:"cancelReason,omitempty"`
	Votes        []VoteResult `json:"votes"`
	// EscalatedAt is when the request was escalated, if it was.
	EscalatedAt string `json:"escalatedAt,omitempty"`
	// Delegations are the votes handed on: "bob delegated to carol".
	Delegations []DelegationResult `json:"delegations,omitempty"`
}

// Result is the request's outcome as the workflow receives it.
func (r *Request) Result() Result {
	res := Result{RequestID: r.ID, Decision: string(r.Status), Reason: r.Reason, Votes: VoteResults(r.Votes)}
	if d := r.Decision; d != nil && r.Status.Decided() {
		res.DecidedBy = d.By
		res.Channel = string(d.Channel)
		res.Comment = d.Comment
		res.DecidedAt = d.At.UTC().Format(time.RFC3339)
	}
	if c := r.Canceled; c != nil {
		res.CanceledBy, res.CancelReason = c.By, c.Reason
	}
	r.lifecycleResult(&res)
	return res
}

// VoteResults turns votes into their JSON form (never nil).
func VoteResults(votes []Vote) []VoteResult {
	out := make([]VoteResult, 0, len(votes))
	for _, v := range votes {
		out = append(out, VoteResult{
			By: v.By, Channel: string(v.Channel), Choice: string(v.Choice), Comment: v.Comment,
			At: v.At.UTC().Format(time.RFC3339), Groups: v.Groups,
		})
	}
	return out
}
