package slackapp

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// msgHistoryFailed is said when the closed requests cannot be listed.
const msgHistoryFailed = "I could not list the closed requests right now. Please try again in a minute."

// history answers /approvals history: the last closed requests the caller
// could vote on (by Slack user ID or profile email), newest first, with their
// outcome, who decided or withdrew them, when, and the comment or reason. It
// reads one page of the history (the filter is the caller), from cursor on,
// and offers "More" when there is more.
func (a *App) history(ctx context.Context, user, cursor string) reply {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	// The filter is who they are: wait for their profile (bounded).
	voter, _ := a.identity(ctx, user, lookupTimeout)
	reqs, next, err := a.svc.List(ctx, approval.Query{Status: approval.StatusClosed, Approver: voter, Cursor: cursor, Limit: maxListed})
	if err != nil {
		a.log.Error("slack: list closed requests", "err", err)
		return ephemeral(msgHistoryFailed)
	}
	first := cursor == ""
	var head string
	switch {
	case len(reqs) == 0 && first && next == "":
		return ephemeral("No closed request you could vote on.")
	case len(reqs) == 0 && next == "":
		return ephemeral("No more closed requests you could vote on.")
	case len(reqs) == 0:
		head = "No closed requests you could vote on among the ones read so far."
	case first:
		head = fmt.Sprintf("The last %d closed %s you could vote on:", len(reqs), plural(len(reqs), "request", "requests"))
	default:
		head = fmt.Sprintf("%d more closed %s you could vote on:", len(reqs), plural(len(reqs), "request", "requests"))
	}
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn("*"+head+"*"), nil, nil)}
	now := a.now()
	for _, r := range reqs {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(historyItem(r, voter, now)), nil, nil))
	}
	if next != "" {
		if v := "history:" + next; len(v) <= maxButtonValue {
			blocks = append(blocks, slack.NewActionBlock("more", slack.NewButtonBlockElement(ActionMore, v, plain("More"))))
		}
	}
	return ephemeral(head, blocks...)
}

// historyItem is one closed request of the history: title, outcome, who
// decided (or withdrew) it and when, the comment or reason, and the caller's
// own vote.
func historyItem(r *approval.Request, voter approval.Identity, now time.Time) string {
	line := "*" + escapeMax(r.Title, maxHeader) + "*\n"
	comment := ""
	switch d := r.Decision; {
	case r.Status.Decided() && d != nil:
		line += fmt.Sprintf("%s by %s %s", capitalize(string(r.Status)), who(d.By), slackDate(d.At))
		comment = d.Comment
	case r.Status == approval.StatusCanceled && r.Canceled != nil:
		line += fmt.Sprintf("Withdrawn by %s %s", who(r.Canceled.By), slackDate(r.Canceled.At))
		comment = r.Canceled.Reason
	case r.Status == approval.StatusCanceled:
		line += "Closed without a decision: " + reasonText(r.Reason)
	case r.Status == approval.StatusExpired && d != nil:
		line += fmt.Sprintf("%s by %s %s, but the workflow had stopped waiting", capitalize(decidedWord(d.Choice)), who(d.By), slackDate(d.At))
	default:
		line += "Expired " + slackDate(r.ExpiresAt) + " without a decision"
	}
	line += " · requested by " + escapeMax(r.Requester, maxHeader) + " · " + span(now.Sub(r.CreatedAt)) + " ago"
	if comment != "" {
		line += "\n> " + escapeMax(oneLineText(comment), 300)
	}
	if v := r.VoteOf(voter); v != nil {
		line += fmt.Sprintf("\nYou %s %s.", decidedWord(v.Choice), slackDate(v.At))
	}
	return line
}

// decidedWord is the past tense of a choice.
func decidedWord(c approval.Choice) string {
	if c == approval.Reject {
		return "rejected"
	}
	return "approved"
}

// oneLineText is s on one line: every run of white space one space.
func oneLineText(s string) string { return strings.Join(strings.Fields(s), " ") }
