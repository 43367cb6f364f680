package pages

import (
	"fmt"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// progressView is what every page shows of a request's rule and votes: the
// rule in words, how many approvals count so far out of how many, each group's
// state, and each vote.
type progressView struct {
	Rule string // the rule in words: "2 of 3 approvers must approve"
	// SelfExcluded is set when the requester is one of the approvers but may
	// not approve their own request.
	SelfExcluded bool
	Requester    string
	// Counted is how many approvals count toward the rule (at most Required);
	// Required is how many it needs in all and Needed how many more.
	Counted, Required, Needed int
	Rejections                int
	Summary                   string // "1 of 2 approvals · waiting for security (0 of 1)"
	Groups                    []approval.GroupProgress
	Votes                     []voteView
	Pending                   bool
	// Snapshot is set on the one-time page, which is made once: it shows
	// the votes cast before then.
	Snapshot bool
}

// voteView is one vote as the pages list it.
type voteView struct {
	By      string
	Email   string // a Slack voter's profile email, when known
	Choice  approval.Choice
	Channel approval.Channel
	Comment string
	At      time.Time
	Groups  []string
}

// progressOf describes r's rule and votes for a page.
func progressOf(r *approval.Request) *progressView {
	if r == nil {
		return nil
	}
	p := r.Tally()
	v := &progressView{
		Rule:         r.Rule.Describe(len(r.Approvers)),
		SelfExcluded: selfExcluded(r),
		Requester:    r.Requester,
		Counted:      max(0, p.Required-p.Needed),
		Required:     p.Required,
		Needed:       p.Needed,
		Rejections:   p.Rejections,
		Groups:       p.Groups,
		Pending:      r.Status == approval.StatusPending,
	}
	for _, vt := range r.Votes {
		v.Votes = append(v.Votes, voteView{By: vt.By, Email: vt.Email, Choice: vt.Choice, Channel: vt.Channel, Comment: vt.Comment, At: vt.At, Groups: vt.Groups})
	}
	v.Summary = progressSummary(v)
	return v
}

// progressSummary says the progress in one line: "1 of 2 approvals · 1
// rejection · waiting for security (0 of 1)".
func progressSummary(v *progressView) string {
	parts := []string{fmt.Sprintf("%d of %s", v.Counted, plural(v.Required, "approval", "approvals"))}
	if v.Rejections > 0 {
		parts = append(parts, plural(v.Rejections, "rejection", "rejections"))
	}
	if v.Pending {
		var waiting []string
		for _, g := range v.Groups {
			if !g.Satisfied {
				waiting = append(waiting, fmt.Sprintf("%s (%d of %d)", g.Name, g.Approvals, g.Needed))
			}
		}
		if len(waiting) > 0 {
			parts = append(parts, "waiting for "+strings.Join(waiting, ", "))
		}
	}
	return strings.Join(parts, " · ")
}

// plural writes n with the singular or plural noun: "1 approval", "2 approvals".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// moreNeeded says how many more approvals the request needs, as a sentence:
// "1 more approval is needed." or "2 more approvals are needed.", with the
// groups still waiting.
func moreNeeded(r *approval.Request) string {
	v := progressOf(r)
	if v == nil || v.Needed <= 0 {
		return ""
	}
	s := plural(v.Needed, "more approval is", "more approvals are") + " needed"
	var waiting []string
	for _, g := range v.Groups {
		if !g.Satisfied {
			waiting = append(waiting, fmt.Sprintf("%s (%d of %d)", g.Name, g.Approvals, g.Needed))
		}
	}
	if len(waiting) > 0 {
		s += ": waiting for " + strings.Join(waiting, ", ")
	}
	return s + "."
}

// selfExcluded reports whether r's requester is one of its approvers but may
// not approve their own request.
func selfExcluded(r *approval.Request) bool {
	if r.Rule.AllowSelfApproval {
		return false
	}
	for _, a := range r.Approvers {
		if r.IsRequester(approval.Identity{ID: a}) {
			return true
		}
	}
	return false
}

// isSelf reports whether the holder of rc is r's requester and may not
// approve: their page offers only Reject.
func isSelf(r *approval.Request, rc approval.Recipient) bool {
	return !r.Rule.AllowSelfApproval && r.IsRequester(approval.Identity{ID: rc.Address})
}

// decidesAlone reports whether one vote decides r either way: one approval
// approves and one rejection rejects.
func decidesAlone(r *approval.Request) bool {
	return r.Tally().Required == 1 && len(r.Rule.Groups) == 0 && r.Rule.RejectPolicy != approval.RejectImpossible
}

// consequence says, in the confirmation dialog and step, what confirming does.
func consequence(r *approval.Request, rc approval.Recipient) string {
	if (rc.Channel == approval.ChannelSlack && !approval.IsSlackUserID(rc.Address)) || decidesAlone(r) {
		return "This decides the request for everyone and cannot be undone."
	}
	return "Your vote counts toward the rule (" + r.Rule.Describe(len(r.Approvers)) + ") and cannot be changed afterwards."
}

// voteVia says through which channel a vote came, and for which groups it
// counts: "Slack, for eng".
func voteVia(v voteView) string {
	s := channelName(v.Channel)
	if len(v.Groups) > 0 {
		s += ", for " + join(v.Groups)
	}
	return s
}

// emailSuffix is a Slack voter's profile email in parentheses, after their
// name: " (carol@example.com)", or "" when unknown.
func emailSuffix(email string) string {
	if email == "" {
		return ""
	}
	return " (" + email + ")"
}
