package slackapp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// What Slack shows around a decision: reminders and the cancel notice
// (Chat.Notice), the escalation post (Chat.PostIn), the timers and hand-offs
// on the request's message (handoffText), and the "Delegate to…" user picker.

// Notice posts a reminder or a cancel notice: to Slack user n.To in a direct
// message, or without n.To as a reply in the thread of r's channel message
// (nothing when the request has none).
func (c *Chat) Notice(ctx context.Context, r *approval.Request, n approval.Notice) error {
	text := noticeText(r, n)
	if n.To != "" {
		if !approval.IsSlackUserID(n.To) {
			return fmt.Errorf("notice on request %s: %q is not a Slack user ID", r.ID, n.To)
		}
		octx, cancel := context.WithTimeout(ctx, callTimeout)
		ch, _, _, err := c.api.OpenConversationContext(octx, &slack.OpenConversationParameters{Users: []string{n.To}, ReturnIM: true})
		cancel()
		if err != nil || ch == nil || ch.ID == "" {
			return fmt.Errorf("notice on request %s to %s: open conversation: %w", r.ID, n.To, errors.Join(err, errors.New("no channel")))
		}
		if err := c.text(ctx, ch.ID, "", text); err != nil {
			return fmt.Errorf("notice on request %s to %s: %w", r.ID, n.To, err)
		}
		return nil
	}
	if r.ChatMessage.Channel == "" || r.ChatMessage.TS == "" {
		return nil
	}
	if err := c.text(ctx, r.ChatMessage.Channel, r.ChatMessage.TS, text); err != nil {
		return fmt.Errorf("notice on request %s in its thread: %w", r.ID, err)
	}
	return nil
}

// text posts a plain message, in the thread of ts when set.
func (c *Chat) text(ctx context.Context, channel, ts, text string) error {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	opts := []slack.MsgOption{
		slack.MsgOptionText(text, false), slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl(),
	}
	if ts != "" {
		opts = append(opts, slack.MsgOptionTS(ts))
	}
	_, _, err := c.api.PostMessageContext(ctx, channel, opts...)
	return err
}

// noticeText is the text of a notice.
func noticeText(r *approval.Request, n approval.Notice) string {
	title := escapeMax(r.Title, maxHeader)
	switch {
	case n.Kind == approval.NoticeCanceled && r.Canceled != nil:
		return ":no_entry_sign: " + canceledLine(r.Canceled) + ". Nothing more to do here."
	case n.Kind == approval.NoticeCanceled:
		return ":no_entry_sign: This request was canceled. Nothing more to do here."
	case n.To != "":
		return fmt.Sprintf(":alarm_clock: Reminder: *%s* still waits for your vote; it expires %s. Vote with the buttons in my message about it, or press *Open approval page* there.",
			title, slackDate(r.ExpiresAt))
	}
	return fmt.Sprintf(":alarm_clock: Reminder: still waiting for %s; this request expires %s.", approverList(n.Waiting), slackDate(r.ExpiresAt))
}

// canceledLine says who canceled and why: "*Canceled* by <@U1> <date>: “why”".
func canceledLine(c *approval.Cancellation) string { return "*Canceled* " + canceledBy(c) }

// canceledBy is "by <@U1> <date>: “why”".
func canceledBy(c *approval.Cancellation) string {
	s := fmt.Sprintf("by %s %s", who(c.By), slackDate(c.At))
	if reason := strings.Join(strings.Fields(c.Reason), " "); reason != "" {
		s += ": “" + escapeMax(reason, maxVoteComment) + "”"
	}
	return s
}

// PostIn posts r, with its buttons, in channel: where the request goes when it
// escalates. The post is updated with the request's other messages.
func (c *Chat) PostIn(ctx context.Context, r *approval.Request, channel string) (approval.ChatMessage, error) {
	m, err := c.post(ctx, channel, r, false)
	if err != nil {
		return approval.ChatMessage{}, fmt.Errorf("post escalated request %s to Slack channel %s: %w", r.ID, channel, err)
	}
	return m, nil
}

// handoffText says, under the votes, what the expiry does, the escalation,
// the delegations and the extensions; "" when there is nothing to say.
func handoffText(r *approval.Request) string {
	var lines []string
	if r.Status == approval.StatusPending {
		switch r.OnTimeout {
		case approval.TimeoutApprove:
			lines = append(lines, ":hourglass_flowing_sand: Approved automatically at the expiry unless someone rejects it")
		case approval.TimeoutReject:
			lines = append(lines, ":hourglass_flowing_sand: Rejected automatically at the expiry")
		}
	}
	if e := r.Escalation; e != nil {
		people := approverList(e.People())
		switch {
		case !e.At.IsZero():
			lines = append(lines, fmt.Sprintf(":arrow_up: Escalated %s to %s", slackDate(e.At), people))
		case !r.EscalatesAt().IsZero():
			lines = append(lines, fmt.Sprintf(":arrow_up: Escalates %s to %s if still undecided", slackDate(r.EscalatesAt()), people))
		}
	}
	for _, d := range r.Delegations {
		lines = append(lines, fmt.Sprintf(":handshake: %s delegated to %s %s", who(d.From), who(d.To), slackDate(d.At)))
	}
	if n := len(r.Extensions); n > 0 {
		x := r.Extensions[n-1]
		lines = append(lines, fmt.Sprintf(":calendar: Extended by %s %s", who(x.By), slackDate(x.At)))
	}
	return truncate(strings.Join(lines, "\n"), maxSectionText)
}

// delegateBlock is the "Delegate to…" user picker of a pending request, with a
// confirmation.
func delegateBlock(r *approval.Request) slack.Block {
	pick := slack.NewOptionsSelectBlockElement(slack.OptTypeUser, plain("Delegate to…"), ActionDelegate)
	pick.Confirm = slack.NewConfirmationBlockObject(
		plain("Hand on your vote?"),
		plain("The person you picked votes in your place, and you can no longer vote on this request."),
		plain("Delegate"),
		plain("Cancel"),
	)
	return slack.NewActionBlock(DelegateBlockPrefix+r.ID, pick)
}

// delegate hands the clicking approver's vote on request id to the picked
// Slack user, and tells them what came of it.
func (a *App) delegate(ctx context.Context, cb slack.InteractionCallback, id, to string, retried bool) {
	log := a.log.With("request_id", id, "user", cb.User.ID)
	if !approval.ValidID(id) {
		log.Warn("slack: delegate picker with an invalid request ID")
		a.tell(ctx, cb, msgNotFound)
		return
	}
	if to == "" {
		return // the picker was cleared
	}
	voter, known := a.identity(ctx, cb.User.ID, clickLookupTimeout)
	r, err := a.svc.Get(ctx, id)
	if err == nil {
		r, err = a.svc.DelegateInChat(ctx, id, approverIdentity(r, voter), to)
	}
	var verr *approval.ValidationError
	switch {
	case err == nil:
		log.Info("slack: vote delegated")
		a.tell(ctx, cb, fmt.Sprintf("Your vote on *%s* is handed to %s: they get a direct message and vote in your place. You can no longer vote on this request.",
			escapeMax(r.Title, maxHeader), who(to)))
	case errors.Is(err, approval.ErrDelegated) && retried:
		log.Info("slack: retried delegation ignored; already done")
	case errors.Is(err, approval.ErrDelegated):
		a.tell(ctx, cb, delegatedAwayText(r, voter))
	case errors.As(err, &verr):
		a.tell(ctx, cb, "I could not hand on your vote: "+escape(verr.Message)+".")
	case errors.Is(err, approval.ErrNoDelegation):
		a.tell(ctx, cb, "This request does not allow handing on a vote.")
	default:
		a.tell(ctx, cb, refusal(log, "delegation", err, r, voter, known, "Something went wrong while handing on your vote. Please try again."))
	}
}

// delegatedAwayText tells a delegator they can no longer vote.
func delegatedAwayText(r *approval.Request, voter approval.Identity) string {
	if r != nil {
		if d := r.DelegationOf(voter); d != nil {
			return fmt.Sprintf("You handed your vote on this request to %s %s, so you can no longer vote on it.", who(d.To), slackDate(d.At))
		}
	}
	return "You handed your vote on this request to someone else, so you can no longer vote on it."
}
