package slackapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// maxListed is how many requests one /approvals answer shows.
const maxListed = 10

// lookupTimeout bounds a users.info call, so that /approvals answers within
// Slack's three seconds even when Slack is slow; the command then matches
// approvers by user ID only.
var lookupTimeout = 1500 * time.Millisecond

// Sentences the people in Slack see.
const (
	msgNotApprover  = "You are not an approver of this request."
	msgNotFound     = "This request no longer exists."
	msgExpired      = "This request has expired; nothing was decided."
	msgWorkflowGone = "Your decision was recorded, but the workflow had stopped waiting for it, so the request is closed."
	msgClosed       = "This request is closed: the workflow had stopped waiting before its decision reached it. Nothing changed."
	msgFailed       = "Something went wrong while recording your decision. Please try again, or use the approval page."
	msgListFailed   = "I could not list the pending requests right now. Please try again in a minute."
)

// service is what the Slack routes need from approval.Service.
type service interface {
	ListPending(ctx context.Context) ([]*approval.Request, error)
	Get(ctx context.Context, id string) (*approval.Request, error)
	DecideInChat(ctx context.Context, id string, c approval.Choice, comment, by string) (*approval.Request, error)
}

var _ service = (*approval.Service)(nil)

// App answers Slack's /approvals command and the Approve/Reject buttons of a
// request's message. Handler serves it over HTTP and RunSocketMode over a
// Socket Mode connection; both run the same logic.
type App struct {
	svc     service
	api     slackAPI
	pageURL func(key string) string
	now     func() time.Time
	log     *slog.Logger
}

// NewApp returns an App deciding through svc and calling Slack through client.
// pageURL turns a one-time page key into its address (approval.Pages.URL); the
// listing links each request to its Slack channel page. log may be nil.
func NewApp(svc *approval.Service, client *slack.Client, pageURL func(key string) string, log *slog.Logger) *App {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := func() time.Time {
		if svc.Now != nil {
			return svc.Now() // read at each call: the service's clock may be set later
		}
		return time.Now()
	}
	return &App{svc: svc, api: client, pageURL: pageURL, now: now, log: log}
}

// reply is the body of an answer to a slash command.
type reply struct {
	ResponseType string        `json:"response_type"`
	Text         string        `json:"text"`
	Blocks       []slack.Block `json:"blocks,omitempty"`
}

func ephemeral(text string, blocks ...slack.Block) reply {
	return reply{ResponseType: slack.ResponseTypeEphemeral, Text: text, Blocks: blocks}
}

// command answers /approvals [mine|help]. It calls Slack at most once
// (users.info, bounded by lookupTimeout) so that it answers well within
// Slack's three seconds.
func (a *App) command(ctx context.Context, cmd slack.SlashCommand) reply {
	name := cmd.Command
	if name == "" {
		name = "/approvals"
	}
	arg := strings.ToLower(strings.TrimSpace(cmd.Text))
	switch arg {
	case "", "list", "all":
		return a.list(ctx, cmd.UserID, false)
	case "mine":
		return a.list(ctx, cmd.UserID, true)
	case "help":
		return ephemeral(helpText(name))
	}
	return ephemeral(fmt.Sprintf("I don't know “%s”.\n%s", escapeMax(arg, 50), helpText(name)))
}

func helpText(name string) string {
	return fmt.Sprintf("*%[1]s* lists the requests waiting for a decision, newest first.\n"+
		"*%[1]s mine* lists only those you can decide.\n"+
		"*%[1]s help* shows this help.\n"+
		"Open a request's link to approve or reject it on its one-time page, or use the buttons on its message.", name)
}

func (a *App) list(ctx context.Context, userID string, mine bool) reply {
	all, err := a.svc.ListPending(ctx)
	if err != nil {
		a.log.Error("slack: list pending requests", "err", err)
		return ephemeral(msgListFailed)
	}
	email := a.email(ctx, userID)
	reqs := all
	if mine {
		reqs = nil
		for _, r := range all {
			if isApprover(r, userID, email) {
				reqs = append(reqs, r)
			}
		}
	}
	sort.SliceStable(reqs, func(i, j int) bool { return reqs[i].CreatedAt.After(reqs[j].CreatedAt) })
	whose := "a decision"
	if mine {
		whose = "your decision"
	}
	if len(reqs) == 0 {
		return ephemeral("No requests are waiting for " + whose + ".")
	}
	head := fmt.Sprintf("%d requests are waiting for %s.", len(reqs), whose)
	if len(reqs) == 1 {
		head = fmt.Sprintf("1 request is waiting for %s.", whose)
	}
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn("*"+head+"*"), nil, nil)}
	now := a.now()
	for _, r := range reqs[:min(len(reqs), maxListed)] {
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(a.listItem(r, now, isApprover(r, userID, email))), nil, nil))
	}
	if rest := len(reqs) - maxListed; rest > 0 {
		blocks = append(blocks, slack.NewContextBlock("more", mrkdwn(fmt.Sprintf("…and %d more.", rest))))
	}
	return ephemeral(head, blocks...)
}

// listItem is one line of the listing. The title links to the request's Slack
// channel page only for its approvers: the page decides for whoever opens it,
// and /approvals answers anyone in the workspace, including people outside the
// request's channel. Everyone gets a reference to the channel of the message,
// which Slack shows only as far as they may see it.
func (a *App) listItem(r *approval.Request, now time.Time, approver bool) string {
	title := escapeMax(r.Title, maxHeader)
	if rc, ok := r.Recipient(approval.ChannelSlack); ok && rc.PageKey != "" && a.pageURL != nil && approver {
		title = fmt.Sprintf("<%s|%s>", escape(a.pageURL(rc.PageKey)), strings.ReplaceAll(title, "|", "¦"))
	}
	line := fmt.Sprintf("*%s*\nRequested by %s · %s ago · %s left",
		title, escapeMax(r.Requester, maxHeader), span(now.Sub(r.CreatedAt)), span(r.ExpiresAt.Sub(now)))
	if ch := r.ChatMessage.Channel; channelID.MatchString(ch) {
		line += " · in <#" + ch + ">"
	}
	return line
}

var channelID = regexp.MustCompile(`^[CG][A-Z0-9]{5,20}$`)

// span renders a duration the way people say it: 45s, 12m, 3h 20m, 2d 4h.
func span(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d/time.Second), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%dd", days)
	}
	return fmt.Sprintf("%dd %dh", days, h)
}

// email is the Slack user's email address, or "" when Slack does not share it.
func (a *App) email(ctx context.Context, userID string) string {
	if userID == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	u, err := a.api.GetUserInfoContext(ctx, userID)
	if err != nil {
		a.log.Warn("slack: users.info failed; matching approvers by user ID only", "user", userID, "err", err)
		return ""
	}
	return strings.ToLower(strings.TrimSpace(u.Profile.Email))
}

func isApprover(r *approval.Request, userID, email string) bool {
	return (userID != "" && r.IsApprover(userID)) || (email != "" && r.IsApprover(email))
}

// interaction handles a block_actions callback: a press of Approve or Reject in a
// request's message. retried is true for Slack's retries of a delivery it
// thinks failed; a retry of something already done does nothing.
func (a *App) interaction(ctx context.Context, cb slack.InteractionCallback, retried bool) {
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, act := range cb.ActionCallback.BlockActions {
		var choice approval.Choice
		switch act.ActionID {
		case ActionApprove:
			choice = approval.Approve
		case ActionReject:
			choice = approval.Reject
		default:
			continue // the link button also reports its clicks; nothing to do
		}
		a.click(ctx, cb, act.Value, choice, retried)
	}
}

func (a *App) click(ctx context.Context, cb slack.InteractionCallback, id string, choice approval.Choice, retried bool) {
	userID := cb.User.ID
	log := a.log.With("request_id", id, "user", userID, "decision", choice)
	if !approval.ValidID(id) {
		log.Warn("slack: button with an invalid request ID")
		a.tell(ctx, cb, msgNotFound)
		return
	}
	r, err := a.svc.Get(ctx, id)
	if err != nil {
		if errors.Is(err, approval.ErrNotFound) {
			a.tell(ctx, cb, msgNotFound)
			return
		}
		log.Error("slack: get request", "err", err)
		a.tell(ctx, cb, msgFailed)
		return
	}
	if retried && r.Status != approval.StatusPending {
		log.Info("slack: retried click ignored; request already closed", "status", r.Status)
		return
	}
	email := a.email(ctx, userID)
	if !isApprover(r, userID, email) {
		log.Warn("slack: click refused; user is not an approver")
		a.tell(ctx, cb, msgNotApprover)
		return
	}
	by := email
	if by == "" {
		by = "<@" + userID + ">"
	}
	r, err = a.svc.DecideInChat(ctx, id, choice, "", by)
	switch {
	case err == nil:
		log.Info("slack: request decided from a button")
	case errors.Is(err, approval.ErrAlreadyDecided):
		if retried || (r != nil && r.Decision != nil && r.Decision.By == by && r.Decision.Choice == choice) {
			log.Info("slack: repeated click ignored; already decided the same way")
			return
		}
		a.tell(ctx, cb, alreadyText(r))
	case errors.Is(err, approval.ErrExpired) && r != nil && r.Status == approval.StatusExpired && r.Decision != nil:
		a.tell(ctx, cb, msgClosed) // decided, but the workflow no longer waited
	case errors.Is(err, approval.ErrExpired):
		a.tell(ctx, cb, msgExpired)
	case errors.Is(err, approval.ErrWorkflowGone):
		a.tell(ctx, cb, msgWorkflowGone)
	case errors.Is(err, approval.ErrNotFound):
		a.tell(ctx, cb, msgNotFound)
	default:
		log.Error("slack: decide from a button", "err", err)
		a.tell(ctx, cb, msgFailed)
	}
}

func alreadyText(r *approval.Request) string {
	if r == nil || r.Decision == nil {
		return "This request was already decided."
	}
	return fmt.Sprintf("This request was already %s by %s %s.", r.Status, who(r.Decision.By), slackDate(r.Decision.At))
}

// tell shows text to the clicking user only, in the channel of the message.
func (a *App) tell(ctx context.Context, cb slack.InteractionCallback, text string) {
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	if channel == "" || cb.User.ID == "" {
		a.log.Warn("slack: nowhere to show an ephemeral message", "user", cb.User.ID)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := a.api.PostEphemeralContext(ctx, channel, cb.User.ID, slack.MsgOptionText(text, false)); err != nil {
		a.log.Error("slack: ephemeral message not posted", "user", cb.User.ID, "err", err)
	}
}
