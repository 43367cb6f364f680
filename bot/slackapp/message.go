package slackapp

import (
	"fmt"
	"regexp"
	"strings"
	"time"

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
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(linksText(r.Links, maxSectionText)), nil, nil))
	}
	const requested, approvers = "*Requested by*\n", "*Approvers*\n"
	return append(blocks, slack.NewSectionBlock(nil, []*slack.TextBlockObject{
		mrkdwn(requested + escapeMax(r.Requester, maxFieldText-utf16Len(requested))),
		mrkdwn(approvers + approversText(r, maxFieldText-utf16Len(approvers))),
	}, nil))
}

// linksText is the links as Slack links, " · " between them, within max
// UTF-16 units: whole links only, then "…and N more".
func linksText(links []approval.Link, max int) string {
	items := make([]string, len(links))
	for i, l := range links {
		label := l.Label
		if label == "" {
			label = l.URL
		}
		items[i] = "<" + slackURL(l.URL) + "|" + strings.ReplaceAll(escape(label), "|", "¦") + ">"
		if utf16Len(items[i]) > max-20 {
			items[i] = escapeMax(label, max/2) // too long to link: its label only
		}
	}
	return joinWithin(items, " · ", max)
}

// slackURL is a URL as it goes between < and | in Slack markup: "|", "<" and
// ">" (which would end the URL or the link early) percent-encoded, "&"
// escaped as Slack asks.
func slackURL(u string) string {
	return escape(strings.NewReplacer("|", "%7C", "<", "%3C", ">", "%3E").Replace(u))
}

// approversText lists the approvers, by group when the request has groups,
// within max UTF-16 units, cutting only between whole approvers.
func approversText(r *approval.Request, max int) string {
	if len(r.Rule.Groups) == 0 {
		return joinWithin(approverItems(r.Approvers), ", ", max)
	}
	n := len(r.Rule.Groups)
	share := (max - (n - 1)) / n // each group's line gets an equal part
	full := make([]string, n)
	cut := make([]string, n)
	for i, g := range r.Rule.Groups {
		head := fmt.Sprintf("%s (%d of %d): ", g.Name, g.Min, len(g.Approvers))
		full[i] = head + strings.Join(approverItems(g.Approvers), ", ")
		cut[i] = head + joinWithin(approverItems(g.Approvers), ", ", share-utf16Len(head))
	}
	if text := strings.Join(full, "\n"); utf16Len(text) <= max {
		return text
	}
	return strings.Join(cut, "\n")
}

// joinWithin joins items with sep within max UTF-16 units. When they do not
// all fit, it keeps as many whole items as fit with a note of how many more
// there are ("…and 3 more"), never a part of one.
func joinWithin(items []string, sep string, max int) string {
	if text := strings.Join(items, sep); utf16Len(text) <= max {
		return text
	}
	var b strings.Builder
	used := 0
	for i, it := range items {
		add := it
		if i > 0 {
			add = sep + it
		}
		more := fmt.Sprintf("%s…and %d more", sep, len(items)-i-1)
		if i == 0 {
			more = fmt.Sprintf("…and %d more", len(items)-1)
		}
		if used+utf16Len(add)+utf16Len(more) > max {
			rest := fmt.Sprintf("…and %d more", len(items)-i)
			if i > 0 {
				rest = sep + rest
			}
			if used+utf16Len(rest) > max {
				return b.String()
			}
			return b.String() + rest
		}
		b.WriteString(add)
		used += utf16Len(add)
	}
	return b.String()
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
		if utf16Len(b.String())+utf16Len(line) > maxSectionText-40 {
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
	if utf16Len(text) > maxConfirmText {
		keep := maxConfirmText - utf16Len(text) + utf16Len(title)
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

// approverItems are the approvers as the message names them.
func approverItems(approvers []string) []string {
	parts := make([]string, len(approvers))
	for i, a := range approvers {
		parts[i] = who(a)
	}
	return parts
}

// approverList names approvers in one line: "<@U1>, alice@example.com".
func approverList(approvers []string) string { return strings.Join(approverItems(approvers), ", ") }

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

// utf16Len is the length of s in UTF-16 code units, the unit of Slack's
// length limits: a character outside the Basic Multilingual Plane (most
// emoji) counts twice.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += runeUnits(r)
	}
	return n
}

func runeUnits(r rune) int {
	if r >= 0x10000 {
		return 2
	}
	return 1
}

// escapeMax escapes s and shortens the result to at most n UTF-16 units
// without cutting an entity or a character, marking the cut with an ellipsis.
func escapeMax(s string, n int) string {
	if e := escape(s); utf16Len(e) <= n {
		return e
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		e := escape(string(r))
		if used+utf16Len(e) > n-1 {
			break
		}
		b.WriteString(e)
		used += utf16Len(e)
	}
	return b.String() + "…"
}

// truncate shortens s to at most n UTF-16 units, marking the cut with an
// ellipsis.
func truncate(s string, n int) string {
	if utf16Len(s) <= n {
		return s
	}
	if n <= 1 {
		return "…"
	}
	var b strings.Builder
	used := 0
	for _, r := range s {
		if used+runeUnits(r) > n-1 {
			break
		}
		b.WriteRune(r)
		used += runeUnits(r)
	}
	return b.String() + "…"
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
