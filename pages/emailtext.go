package pages

import "strings"

// emailText is the plain-text body of an approver's email, the same message
// as emailHTML. It is plain text: nothing in it is escaped.
func emailText(v emailView) string {
	var b strings.Builder
	line := func(parts ...string) {
		for _, p := range parts {
			b.WriteString(p)
		}
		b.WriteByte('\n')
	}
	r := v.Request
	if v.Reminder {
		line("Reminder: your vote is still needed.")
	}
	if v.HandedBy != nil {
		line(v.HandedBy.From, " handed their vote to you: you decide in their place.")
	}
	if v.Escalated {
		line("This request was escalated to you: nobody decided it within ", v.EscalatedAfter, ".")
	}
	if v.Asker != "" {
		line(v.Asker, " asks for your approval:")
	} else {
		line("Your approval is needed:")
	}
	line()
	line("    ", r.Title)
	if r.Details != "" {
		line()
		line(r.Details)
	}
	if len(r.Links) > 0 {
		line()
		line("Links:")
		for _, l := range r.Links {
			if l.Label != "" {
				line("- ", l.Label, ": ", l.URL)
			} else {
				line("- ", l.URL)
			}
		}
	}
	line()
	line("Open your approval page to approve or reject:")
	line(v.PageURL)
	line()
	line("Decide by ", formatTime(r.ExpiresAt), " (within ", v.Within, " of this email).")
	if t := onTimeoutText(r); t != "" {
		line("If nobody decides by then, the request is ", t, ".")
	}
	if len(r.Rule.Groups) > 0 {
		line("Approvers:")
		for _, g := range r.Rule.Groups {
			line("- ", g.Name, ": ", join(g.Approvers))
		}
	} else {
		line("Approvers: ", join(r.Approvers), ".")
	}
	line("Rule: ", v.Rule, ".")
	if v.Self {
		line("You asked for this approval, so you cannot approve it; you may still reject it.")
	}
	line()
	line("This link is personal and works once: please don't forward it.")
	line("Opening it decides nothing: on the page you choose Approve or Reject,")
	line("then confirm.")
	line()
	line("-- ")
	line("approvalbot")
	return b.String()
}
