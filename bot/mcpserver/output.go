package mcpserver

import (
	"fmt"
	"strings"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/client"
)

// Approval is a request as the tools answer it: its state in one sentence
// (Summary, with what to do next), its rule and progress, every vote, and
// once closed the outcome.
type Approval struct {
	ID        string   `json:"id"`
	Status    string   `json:"status"`
	Summary   string   `json:"summary"`
	Title     string   `json:"title"`
	Requester string   `json:"requester"`
	Approvers []string `json:"approvers"`
	Rule      string   `json:"rule"`
	Progress  Progress `json:"progress"`
	Votes     []Vote   `json:"votes"`
	// Outcome is set once the request is no longer pending.
	Outcome *Outcome `json:"outcome,omitempty"`
	// Unreached are the approvers whose notification failed.
	Unreached []string  `json:"unreached,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// Progress is how far the votes are from approving the request.
type Progress struct {
	Approvals  int                    `json:"approvals"`
	Rejections int                    `json:"rejections"`
	Needed     int                    `json:"needed"`
	Required   int                    `json:"required"`
	Groups     []client.GroupProgress `json:"groups,omitempty"`
}

// Vote is one person's vote.
type Vote struct {
	By      string    `json:"by"`
	Choice  string    `json:"choice"`
	Channel string    `json:"channel"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
	Groups  []string  `json:"groups,omitempty"`
}

// Outcome is how a request closed: decided by a vote, expired, or canceled.
type Outcome struct {
	Status       string    `json:"status"`
	DecidedBy    string    `json:"decidedBy,omitempty"`
	Channel      string    `json:"channel,omitempty"`
	Comment      string    `json:"comment,omitempty"`
	At           time.Time `json:"at"`
	Reason       string    `json:"reason,omitempty"`
	CanceledBy   string    `json:"canceledBy,omitempty"`
	CancelReason string    `json:"cancelReason,omitempty"`
}

// ListOutput is a page of list_approvals.
type ListOutput struct {
	Approvals  []Approval `json:"approvals"`
	NextCursor string     `json:"nextCursor,omitempty"`
}

// approvalOf is r as the tools answer it.
func approvalOf(r *client.Request) *Approval {
	a := &Approval{
		ID: r.ID, Status: r.Status, Title: r.Title, Requester: r.Requester,
		Approvers: nonNil(r.Approvers), Rule: ruleOf(r), Votes: []Vote{},
		Progress: Progress{
			Approvals: r.Progress.Approvals, Rejections: r.Progress.Rejections,
			Needed: r.Progress.Needed, Required: r.Progress.Required, Groups: r.Progress.Groups,
		},
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt,
	}
	for _, v := range r.Votes {
		a.Votes = append(a.Votes, Vote{By: v.By, Choice: v.Choice, Channel: v.Channel, Comment: v.Comment, At: v.At, Groups: v.Groups})
	}
	for _, n := range r.Notifications {
		if n.State == "failed" {
			a.Unreached = append(a.Unreached, n.To)
		}
	}
	if r.Status != client.StatusPending {
		o := &Outcome{Status: r.Status, Reason: r.Reason, At: r.ExpiresAt}
		if d := r.Decision; d != nil {
			o.DecidedBy, o.Channel, o.Comment, o.At = d.By, d.Channel, d.Comment, d.At
		}
		if c := r.Canceled; c != nil {
			o.CanceledBy, o.CancelReason, o.At = c.By, c.Reason, c.At
		}
		a.Outcome = o
	}
	a.Summary = summary(a)
	return a
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// summary says the request's state in a sentence, with what to do next.
func summary(a *Approval) string {
	p := a.Progress
	counted := max(0, p.Required-p.Needed)
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	said := func(comment string) string {
		if comment == "" {
			return ""
		}
		return fmt.Sprintf(", saying %q", comment)
	}
	o := a.Outcome
	var s string
	switch {
	case o == nil:
		s = fmt.Sprintf("Pending: %d of %d %s so far", counted, p.Required, plural(p.Required, "approval", "approvals"))
		if p.Rejections > 0 {
			s += fmt.Sprintf(", %d %s", p.Rejections, plural(p.Rejections, "rejection", "rejections"))
		}
		s += fmt.Sprintf("; expires %s. Do not go ahead yet: wait with get_approval (id %q, waitSeconds up to %d).", at(a.ExpiresAt), a.ID, MaxWaitSeconds)
		if len(a.Unreached) > 0 {
			s += fmt.Sprintf(" Could not notify: %s.", strings.Join(a.Unreached, ", "))
		}
	case o.Status == client.StatusApproved:
		s = fmt.Sprintf("Approved by %s (%s) at %s%s. You may go ahead.", o.DecidedBy, o.Channel, at(o.At), said(o.Comment))
	case o.Status == client.StatusRejected:
		s = fmt.Sprintf("Rejected by %s (%s) at %s%s. Do not go ahead.", o.DecidedBy, o.Channel, at(o.At), said(o.Comment))
	case o.Status == client.StatusExpired:
		s = fmt.Sprintf("Expired at %s without a decision (%d of %d %s). Do not go ahead; ask again with request_approval if it is still needed.",
			at(o.At), counted, p.Required, plural(p.Required, "approval", "approvals"))
	case o.Status == client.StatusCanceled && o.Reason == approval.ReasonNotificationFailed:
		s = "Canceled: no approver could be reached. Do not go ahead; check the approvers' addresses and ask again."
	case o.Status == client.StatusCanceled && o.CanceledBy != "":
		why := ""
		if o.CancelReason != "" {
			why = fmt.Sprintf(" (%q)", o.CancelReason)
		}
		s = fmt.Sprintf("Canceled by %s at %s%s. Do not go ahead.", o.CanceledBy, at(o.At), why)
	default:
		s = fmt.Sprintf("Closed as %s. Do not go ahead.", o.Status)
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// ruleOf is r's rule in words, as the pages say it.
func ruleOf(r *client.Request) string {
	rule, ok := r.Rule()
	if !ok {
		return r.Policy // a policy this client does not know: as the server says it
	}
	s := rule.Describe(len(r.Approvers))
	if rule.RejectPolicy == approval.RejectImpossible {
		s += "; rejected only once that can no longer happen"
	} else {
		s += "; one rejection rejects"
	}
	if rule.AllowSelfApproval {
		s += "; the requester may approve"
	}
	return s
}
