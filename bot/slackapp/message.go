package slackapp

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// Action IDs of the buttons the app shows.
const (
	// ActionApprove and ActionReject vote on the request named by the
	// button's value, as the clicking Slack user.
	ActionApprove = "approve"
	ActionReject  = "reject"
	// ActionOpenPage asks for a personal one-time link to the request named
	// by the button's value; the answer is an ephemeral message. The button
	// itself carries no URL.
	ActionOpenPage = "open_page"
	// ActionPersonalPage is the link button of that ephemeral answer; Slack
	// reports its clicks, which need nothing.
	ActionPersonalPage = "personal_page"
	// ActionMore shows the next page of /approvals; its value is the
	// listing ("all" or "mine") and the cursor.
	ActionMore = "more"
	// ActionDelegate is the user picker "Delegate to…": the clicking
	// approver hands their vote to the picked user. Its block's ID is
	// DelegateBlockPrefix and the request ID.
	ActionDelegate      = "delegate"
	DelegateBlockPrefix = "delegate:"
)

// Slack's limits on Block Kit text.
const (
	maxHeader       = 150
	maxSectionText  = 3000
	maxFieldText    = 2000
	maxConfirmTitle = 100
	maxConfirmText  = 300
	maxButtonValue  = 2000
	maxVoteComment  = 200
	decisionBlockID = "decision"
)

// requestBlocks is a request's message as it stands: what is asked, by whom,
// of whom, the rule and the votes so far; while pending, the progress and the
// Approve, Reject and "Open approval page" buttons (none of which carries a
// link); once closed, the outcome and no button. dm marks the copy sent to an
// approver directly.
func requestBlocks(r *approval.Request, dm bool) []slack.Block {
	blocks := []slack.Block{slack.NewHeaderBlock(plain(truncate(r.Title, maxHeader)))}
	if dm && r.Status == approval.StatusPending {
		blocks = append(blocks, slack.NewContextBlock("invite", mrkdwn("You are an approver of this request.")))
	}
	blocks = append(blocks, summaryBlocks(r)...)
	blocks = append(blocks, slack.NewSectionBlock(mrkdwn(statusText(r)), nil, nil, slack.SectionBlockOptionBlockID("status")))
	if len(r.Votes) > 0 {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(votesText(r.Votes)), nil, nil, slack.SectionBlockOptionBlockID("votes")))
	}
	if text := handoffText(r); text != "" {
		blocks = append(blocks, slack.NewContextBlock("handoffs", mrkdwn(text)))
	}
	if r.Status != approval.StatusPending {
		return append(blocks, slack.NewContextBlock("request", mrkdwn("Request "+r.ID)))
	}
	blocks = append(blocks,
		slack.NewContextBlock("expiry", mrkdwn("Expires "+slackDate(r.ExpiresAt)+" · request "+r.ID)),
		slack.NewActionBlock(decisionBlockID,
			slack.NewButtonBlockElement(ActionApprove, r.ID, plain("Approve")).
				WithStyle(slack.StylePrimary).
				WithConfirm(confirmDialog(approval.Approve, r.Title)),
			slack.NewButtonBlockElement(ActionReject, r.ID, plain("Reject")).
				WithStyle(slack.StyleDanger).
				WithConfirm(confirmDialog(approval.Reject, r.Title)),
			slack.NewButtonBlockElement(ActionOpenPage, r.ID, plain("Open approval page")),
		),
	)
	if !r.NoDelegation {
		blocks = append(blocks, delegateBlock(r))
	}
	return blocks
}

// summaryBlocks are the details, links, requester and approvers.
func summaryBlocks(r *approval.Request) []slack.Block {
	var blocks []slack.Block
	if r.Details != "" {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(escapeMax(r.Details, maxSectionText)), nil, nil))
	}
	if len(r.Links) > 0 {
		var b strings.Builder
		for i, l := range r.Links {
			if i > 0 {
				b.WriteString(" · ")
			}
			label := l.Label
			if label == "" {
				label = l.URL
			}
			fmt.Fprintf(&b, "<%s|%s>", escape(l.URL), strings.ReplaceAll(escape(label), "|", "¦"))
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(truncate(b.String(), maxSectionText)), nil, nil))
	}
	return append(blocks, slack.NewSectionBlock(nil, []*slack.TextBlockObject{
		mrkdwn(truncate("*Requested by*\n"+escape(r.Requester), maxFieldText)),
		mrkdwn(truncate("*Approvers*\n"+approversText(r), maxFieldText)),
	}, nil))
}

// approversText lists the approvers, by group when the request has groups.
func approversText(r *approval.Request) string {
	if len(r.Rule.Groups) == 0 {
		return approverList(r.Approvers)
	}
	lines := make([]string, len(r.Rule.Groups))
	for i, g := range r.Rule.Groups {
		lines[i] = fmt.Sprintf("%s (%d of %d): %s", g.Name, g.Min, len(g.Approvers), approverList(g.Approvers))
	}
	return strings.Join(lines, "\n")
}

// ruleText says the request's rule in words.
func ruleText(r *approval.Request) string {
	s := r.Rule.Describe(len(r.Approvers))
	if !r.Rule.AllowSelfApproval {
		for _, a := range r.Approvers {
			if r.IsRequester(approval.Identity{ID: a}) {
				return s + " (the requester may not approve)"
			}
		}
	}
	return s
}

// statusText is the rule with, while pending, the progress, and once closed
// the outcome.
func statusText(r *approval.Request) string {
	rule := "*Rule:* " + ruleText(r)
	if r.Status == approval.StatusPending {
		return rule + "\n*Progress:* " + progressText(r.Tally())
	}
	return outcomeText(r) + "\n" + rule
}

// progressText is how far the votes are: "1 of 2 approvals · waiting for
// security (0 of 1)". Approvals count up to what each group needs, so that
// many approvals in one group do not hide another group that has none.
func progressText(p approval.Progress) string {
	s := fmt.Sprintf("%d of %d %s", p.Required-p.Needed, p.Required, plural(p.Required, "approval", "approvals"))
	if w := waitingFor(p); w != "" {
		s += " · waiting for " + w
	}
	if p.Rejections > 0 {
		s += fmt.Sprintf(" · %d %s", p.Rejections, plural(p.Rejections, "rejection", "rejections"))
	}
	return s
}

// waitingFor names the groups not yet satisfied with their counts, or "".
func waitingFor(p approval.Progress) string {
	var waiting []string
	for _, g := range p.Groups {
		if !g.Satisfied {
			waiting = append(waiting, fmt.Sprintf("%s (%d of %d)", g.Name, g.Approvals, g.Needed))
		}
	}
	return strings.Join(waiting, ", ")
}

// neededText says what the request still needs: "1 more approval is needed".
func neededText(p approval.Progress) string {
	s := fmt.Sprintf("%d more approvals are needed", p.Needed)
	if p.Needed == 1 {
		s = "1 more approval is needed"
	}
	if w := waitingFor(p); w != "" {
		s += ": waiting for " + w
	}
	return s
}

// votesText lists the votes, oldest first, within Slack's section limit.
func votesText(votes []approval.Vote) string {
	var b strings.Builder
	b.WriteString("*Votes*")
	for i, v := range votes {
		line := "\n" + voteLine(v)
		if utf8.RuneCountInString(b.String())+utf8.RuneCountInString(line) > maxSectionText-40 {
			fmt.Fprintf(&b, "\n…and %d more %s.", len(votes)-i, plural(len(votes)-i, "vote", "votes"))
			break
		}
		b.WriteString(line)
	}
	return b.String()
}

// voteLine is one vote: who, what, when, through which channel, and why.
func voteLine(v approval.Vote) string {
	icon, verb := ":white_check_mark:", "approved"
	if v.Choice == approval.Reject {
		icon, verb = ":x:", "rejected"
	}
	line := fmt.Sprintf("%s %s %s %s via %s", icon, who(v.By), verb, slackDate(v.At), channelName(v.Channel))
	if c := strings.Join(strings.Fields(v.Comment), " "); c != "" {
		line += ": “" + escapeMax(c, maxVoteComment) + "”"
	}
	return line
}

// confirmDialog asks before a vote is cast.
func confirmDialog(c approval.Choice, title string) *slack.ConfirmationBlockObject {
	verb, style := "Approve", slack.StylePrimary
	if c == approval.Reject {
		verb, style = "Reject", slack.StyleDanger
	}
	const format = "%s “%s”? Your vote is recorded in your name and cannot be changed."
	text := fmt.Sprintf(format, verb, title)
	if utf8.RuneCountInString(text) > maxConfirmText {
		keep := maxConfirmText - utf8.RuneCountInString(text) + utf8.RuneCountInString(title) - 1
		text = fmt.Sprintf(format, verb, truncate(title, keep))
	}
	return slack.NewConfirmationBlockObject(
		plain(truncate(verb+" this request?", maxConfirmTitle)),
		plain(text),
		plain(verb),
		plain("Cancel"),
	).WithStyle(style)
}

// outcomeText says how the request ended, by whom, when and through which
// channel, or why it closed without a decision.
func outcomeText(r *approval.Request) string {
	d := r.Decision
	switch {
	case r.Status.Decided() && d.ByTimeout():
		if r.Status == approval.StatusApproved {
			return fmt.Sprintf(":white_check_mark: *Approved by timeout*: nobody objected before the expiry %s", slackDate(d.At))
		}
		return fmt.Sprintf(":x: *Rejected by timeout*: not approved before the expiry %s", slackDate(d.At))
	case r.Status.Decided() && d != nil:
		icon, word := ":white_check_mark:", "Approved"
		if r.Status == approval.StatusRejected {
			icon, word = ":x:", "Rejected"
		}
		return fmt.Sprintf("%s *%s* by %s %s via %s", icon, word, who(d.By), slackDate(d.At), channelName(d.Channel))
	case r.Status.Decided():
		return fmt.Sprintf("*%s*", capitalize(string(r.Status)))
	case r.Status == approval.StatusExpired && d != nil:
		return fmt.Sprintf(":hourglass: *Closed*: the workflow stopped waiting before the decision (%s by %s %s) reached it", d.Choice, who(d.By), slackDate(d.At))
	case r.Status == approval.StatusExpired && r.Reason == approval.ReasonWorkflowGone:
		return ":hourglass: *Closed*: the workflow stopped waiting"
	case r.Status == approval.StatusExpired:
		return fmt.Sprintf(":hourglass: *Expired* %s without a decision", slackDate(r.ExpiresAt))
	case r.Status == approval.StatusCanceled && r.Canceled != nil && r.Canceled.By != approval.WorkflowGoneBy:
		return ":no_entry_sign: " + canceledLine(r.Canceled)
	case r.Status == approval.StatusCanceled:
		if why := reasonText(r.Reason); why != "" {
			return ":no_entry_sign: *Canceled*: " + why
		}
		return ":no_entry_sign: *Canceled*"
	}
	return "*Pending*"
}

// reasonText says in words why a request closed without a decision.
func reasonText(reason string) string {
	switch reason {
	case approval.ReasonNotificationFailed:
		return "no approver could be reached"
	case approval.ReasonWorkflowGone:
		return "the workflow stopped waiting"
	case "":
		return ""
	}
	return escape(reason)
}

func channelName(c approval.Channel) string {
	switch c {
	case approval.ChannelEmail:
		return "the emailed page"
	case approval.ChannelSlack:
		return "Slack"
	}
	return escape(string(c))
}

var mention = regexp.MustCompile(`^<@[UW][A-Z0-9]{5,20}>$`)

// who renders a voter: a Slack user ID becomes a mention (Slack shows each
// reader the name), a mention of the first version stays one, anything else
// is text.
func who(by string) string {
	switch {
	case approval.IsSlackUserID(by):
		return "<@" + by + ">"
	case mention.MatchString(by):
		return by
	}
	return escape(by)
}

func approverList(approvers []string) string {
	parts := make([]string, len(approvers))
	for i, a := range approvers {
		parts[i] = who(a)
	}
	return strings.Join(parts, ", ")
}

// slackDate renders t in each reader's own time zone, with a UTC fallback.
func slackDate(t time.Time) string {
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

func plain(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, s, false, false)
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// escape makes s safe inside mrkdwn: no links, mentions or broadcasts.
func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// escapeMax escapes s and shortens the result to at most n runes without
// cutting an entity, marking the cut with an ellipsis.
func escapeMax(s string, n int) string {
	if e := escape(s); utf8.RuneCountInString(e) <= n {
		return e
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		e := escape(string(r))
		if used+utf8.RuneCountInString(e) > n-1 {
			break
		}
		b.WriteString(e)
		used += utf8.RuneCountInString(e)
	}
	return b.String() + "…"
}

// truncate shortens s to at most n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	rs := []rune(s)
	return string(rs[:n-1]) + "…"
}

// fallbackText is the plain text of a request's message, shown in
// notifications and by clients that do not render blocks.
func fallbackText(r *approval.Request, dm bool) string {
	switch {
	case r.Status != approval.StatusPending:
		return fmt.Sprintf("%s: %s", r.Title, r.Status)
	case dm:
		return "Your approval is requested: " + r.Title
	}
	return "Approval requested: " + r.Title
}
