package pages

import (
	"fmt"
	"strings"

	"approvalbot/bot/approval"
)

// handoff is what a page or an email says about the hand-offs of its
// recipient: the "Delegate to…" form, the vote handed to them, the escalation
// that brought them in.
type handoff struct {
	// DelegateURL is where the "Delegate to…" form posts; empty when the
	// recipient cannot delegate (the request forbids it, or the link is not
	// a person's).
	DelegateURL string
	// HandedBy is the delegation that made the recipient an approver.
	HandedBy *approval.Delegation
	// Escalated is set when the recipient was asked because the request
	// escalated; EscalatedAfter says after how long.
	Escalated      bool
	EscalatedAfter string
}

func handoffOf(r *approval.Request, rc approval.Recipient, decideURL string) handoff {
	var h handoff
	person := approval.IsSlackUserID(rc.Address) || strings.Contains(rc.Address, "@")
	if decideURL != "" && person && !r.NoDelegation && r.Status == approval.StatusPending {
		h.DelegateURL = delegateURL(decideURL)
	}
	h.HandedBy = r.DelegatedTo(rc.Address)
	if e := r.Escalation; e != nil && !e.At.IsZero() {
		for _, p := range e.People() {
			if strings.EqualFold(p, rc.Address) {
				h.Escalated, h.EscalatedAfter = true, humanDuration(e.After)
			}
		}
	}
	return h
}

// delegateURL is the address of the delegation form's handler, beside the
// decision endpoint: ".../decide" becomes ".../delegate".
func delegateURL(decideURL string) string {
	if base, ok := strings.CutSuffix(decideURL, "/decide"); ok {
		return base + "/delegate"
	}
	return strings.TrimRight(decideURL, "/") + "/../delegate"
}

// onTimeoutText says what the expiry does to r while it is pending, or "" for
// "expire".
func onTimeoutText(r *approval.Request) string {
	switch r.OnTimeout {
	case approval.TimeoutApprove:
		return "approved automatically, unless someone has rejected it"
	case approval.TimeoutReject:
		return "rejected automatically"
	}
	return ""
}

// escalationText says when r escalates and to whom, or when it did; "" when
// it has no escalation.
func escalationText(r *approval.Request) string {
	e := r.Escalation
	if e == nil {
		return ""
	}
	who := strings.Join(e.People(), ", ")
	where := ""
	if e.SlackChannel != "" {
		where = " and posted in Slack"
	}
	if !e.At.IsZero() {
		return fmt.Sprintf("Escalated at %s to %s%s.", formatTime(e.At), who, where)
	}
	if at := r.EscalatesAt(); !at.IsZero() {
		return fmt.Sprintf("If still undecided at %s, it is also put to %s%s.", formatTime(at), who, where)
	}
	return ""
}

// decidedByText names who decided: a person, or the request's timeout rule.
func decidedByText(d *approval.Decision) string {
	if d.ByTimeout() {
		return "nobody before the expiry: the request's timeout rule"
	}
	return d.By
}

// canceledText says who withdrew r and why: "by ci@example.com: superseded".
func canceledText(r *approval.Request) string {
	c := r.Canceled
	if c == nil {
		return ""
	}
	if c.By == approval.WorkflowGoneBy {
		return "because the workflow that asked for it stopped waiting"
	}
	s := "by " + c.By
	if c.Reason != "" {
		s += ": “" + c.Reason + "”"
	}
	return s
}
