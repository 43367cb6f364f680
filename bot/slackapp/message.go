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

// Action IDs of the buttons in a request's message.
const (
	ActionApprove  = "approve"
	ActionReject   = "reject"
	ActionOpenPage = "open_page"
)

// Slack's limits on Block Kit text.
const (
	maxHeader       = 150
	maxSectionText  = 3000
	maxConfirmTitle = 100
	maxConfirmText  = 300
	maxButtonText   = 75
	decisionBlockID = "decision"
)

// requestBlocks is the message posted for a pending request: what is asked, by
// whom, of whom, until when, with a link to the channel's one-time page and the
// Approve/Reject buttons, each behind a confirmation dialog.
func requestBlocks(r *approval.Request, pageURL string) []slack.Block {
	blocks := append(summaryBlocks(r), expiryBlock(r))
	var buttons []slack.BlockElement
	if pageURL != "" {
		buttons = append(buttons, slack.NewButtonBlockElement(ActionOpenPage, r.ID, plain("Open approval page")).WithURL(pageURL))
	}
	buttons = append(buttons,
		slack.NewButtonBlockElement(ActionApprove, r.ID, plain("Approve")).
			WithStyle(slack.StylePrimary).
			WithConfirm(confirmDialog(approval.Approve, r.Title)),
		slack.NewButtonBlockElement(ActionReject, r.ID, plain("Reject")).
			WithStyle(slack.StyleDanger).
			WithConfirm(confirmDialog(approval.Reject, r.Title)),
	)
	return append(blocks, slack.NewActionBlock(decisionBlockID, buttons...))
}

// outcomeBlocks is the message once the request is closed: the same summary and
// the outcome, without any button or link to the (deleted) pages.
func outcomeBlocks(r *approval.Request) []slack.Block {
	blocks := append(summaryBlocks(r), slack.NewSectionBlock(mrkdwn(outcomeText(r)), nil, nil))
	if d := r.Decision; d != nil && d.Comment != "" && r.Status.Decided() {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn("*Comment:* "+escapeMax(d.Comment, maxSectionText-20)), nil, nil))
	}
	return blocks
}

func summaryBlocks(r *approval.Request) []slack.Block {
	blocks := []slack.Block{slack.NewHeaderBlock(plain(truncate(r.Title, maxHeader)))}
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
	blocks = append(blocks, slack.NewSectionBlock(nil, []*slack.TextBlockObject{
		mrkdwn(truncate("*Requested by*\n"+escape(r.Requester), 2000)),
		mrkdwn(truncate("*Approvers*\n"+approverList(r.Approvers), 2000)),
	}, nil))
	return blocks
}

func expiryBlock(r *approval.Request) slack.Block {
	return slack.NewContextBlock("expiry", mrkdwn("Expires "+slackDate(r.ExpiresAt)+" · request "+r.ID))
}

func confirmDialog(c approval.Choice, title string) *slack.ConfirmationBlockObject {
	verb, style := "Approve", slack.StylePrimary
	if c == approval.Reject {
		verb, style = "Reject", slack.StyleDanger
	}
	text := fmt.Sprintf("%s “%s”? This decides the request for everyone and cannot be undone.", verb, title)
	if utf8.RuneCountInString(text) > maxConfirmText {
		keep := maxConfirmText - utf8.RuneCountInString(text) + utf8.RuneCountInString(title) - 1
		text = fmt.Sprintf("%s “%s”? This decides the request for everyone and cannot be undone.", verb, truncate(title, keep))
	}
	return slack.NewConfirmationBlockObject(
		plain(truncate(verb+" this request?", maxConfirmTitle)),
		plain(text),
		plain(verb),
		plain("Cancel"),
	).WithStyle(style)
}

// outcomeText says how the request ended, by whom, when and through which channel.
func outcomeText(r *approval.Request) string {
	d := r.Decision
	switch {
	case r.Status.Decided() && d != nil:
		icon, word := ":white_check_mark:", "Approved"
		if r.Status == approval.StatusRejected {
			icon, word = ":x:", "Rejected"
		}
		return fmt.Sprintf("%s *%s* by %s %s via %s", icon, word, who(d.By), slackDate(d.At), channelName(d.Channel))
	case r.Status == approval.StatusExpired && d != nil:
		return fmt.Sprintf(":hourglass: *Closed*: the workflow stopped waiting before the decision (%s by %s %s) reached it", d.Choice, who(d.By), slackDate(d.At))
	case r.Status == approval.StatusExpired:
		return fmt.Sprintf(":hourglass: *Expired* %s without a decision", slackDate(r.ExpiresAt))
	case r.Status == approval.StatusCanceled:
		return ":no_entry_sign: *Canceled*"
	}
	return "*Pending*"
}

func channelName(c approval.Channel) string {
	switch c {
	case approval.ChannelEmail:
		return "the emailed page"
	case approval.ChannelSlack:
		return "Slack"
	}
	return string(c)
}

var mention = regexp.MustCompile(`^<@[UW][A-Z0-9]{5,20}>$`)

// who renders a decider: a Slack mention stays a mention, anything else is text.
func who(by string) string {
	if mention.MatchString(by) {
		return by
	}
	return escape(by)
}

func approverList(approvers []string) string {
	parts := make([]string, len(approvers))
	for i, a := range approvers {
		if approval.IsSlackUserID(a) {
			parts[i] = "<@" + a + ">"
		} else {
			parts[i] = escape(a)
		}
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

// fallbackText is the plain text of the notification for a pending request.
func fallbackText(r *approval.Request) string {
	return "Approval requested: " + r.Title
}
