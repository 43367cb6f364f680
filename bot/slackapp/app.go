package slackapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// Listing: /approvals shows up to maxListed requests per answer, reading at
// most maxReads pages of pending requests within listTimeout, so that it
// answers within Slack's three seconds; a "More" button continues.
const (
	maxListed   = 10
	maxReads    = 5
	listTimeout = 2 * time.Second
)

// lookupTimeout bounds a users.info call made while Slack waits for the
// answer (/approvals): without an answer in time the command matches
// approvers by user ID only.
var lookupTimeout = 1500 * time.Millisecond

// clickLookupTimeout bounds the users.info call of a click, made after Slack
// has its answer.
var clickLookupTimeout = callTimeout

// Sentences the people in Slack see.
const (
	msgNotApprover   = "You are not an approver of this request."
	msgUnknownUser   = "I could not check your Slack profile just now, so I cannot tell whether you are an approver of this request. Please try again in a minute."
	msgNotFound      = "This request no longer exists."
	msgExpired       = "This request has expired; nothing was decided."
	msgWorkflowGone  = "Your decision was recorded, but the workflow had stopped waiting for it, so the request is closed."
	msgClosed        = "This request is closed: the workflow had stopped waiting before its decision reached it. Nothing changed."
	msgSelfApproval  = "You asked for this request, so you may not approve it; you may still reject it."
	msgFailed        = "Something went wrong while recording your vote. Please try again."
	msgLinkFailed    = "Something went wrong while making your approval page. Please try again."
	msgListFailed    = "I could not list the pending requests right now. Please try again in a minute."
	msgLinkIntroText = "Here is your personal approval page for"
)

// service is what the Slack routes need from approval.Service.
type service interface {
	ListPending(ctx context.Context, cursor string, limit int) ([]*approval.Request, string, error)
	List(ctx context.Context, q approval.Query) ([]*approval.Request, string, error)
	Get(ctx context.Context, id string) (*approval.Request, error)
	DecideInChat(ctx context.Context, id string, c approval.Choice, comment string, voter approval.Identity) (*approval.Request, error)
	PersonalLink(ctx context.Context, id string, voter approval.Identity) (*approval.Request, string, error)
	DelegateInChat(ctx context.Context, id string, from approval.Identity, to string) (*approval.Request, error)
}

var _ service = (*approval.Service)(nil)

// appAPI is the part of the Slack Web API that App calls.
type appAPI interface {
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	GetUserInfoContext(ctx context.Context, user string, options ...slack.GetUserInfoOption) (*slack.User, error)
}

var _ appAPI = (*slack.Client)(nil)

// App answers Slack's /approvals command and the buttons of the app's
// messages: Approve and Reject vote as the clicking Slack user (their user ID
// and profile email, as Slack vouches), "Open approval page" answers an
// approver with a personal one-time link that only they see. Handler serves
// it over HTTP and RunSocketMode over a Socket Mode connection; both run the
// same logic.
type App struct {
	svc service
	api appAPI
	// respond posts a message to an interaction's response_url.
	respond  func(ctx context.Context, url string, msg *slack.WebhookMessage) error
	now      func() time.Time
	log      *slog.Logger
	profiles profiles
}

// NewApp returns an App voting through svc and calling Slack through client.
// log may be nil.
func NewApp(svc *approval.Service, client *slack.Client, log *slog.Logger) *App {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := func() time.Time {
		if svc.Now != nil {
			return svc.Now() // read at each call: the service's clock may be set later
		}
		return time.Now()
	}
	return &App{svc: svc, api: client, respond: slack.PostWebhookContext, now: now, log: log}
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

// command answers /approvals [mine|help]. It reads pending requests and asks
// Slack for the caller's profile (bounded by lookupTimeout) at the same time,
// so that it answers well within Slack's three seconds.
func (a *App) command(ctx context.Context, cmd slack.SlashCommand) reply {
	name := cmd.Command
	if name == "" {
		name = "/approvals"
	}
	arg := strings.ToLower(strings.TrimSpace(cmd.Text))
	switch arg {
	case "", "list", "all":
		return a.list(ctx, cmd.UserID, false, "")
	case "mine":
		return a.list(ctx, cmd.UserID, true, "")
	case "history":
		return a.history(ctx, cmd.UserID, "")
	case "help":
		return ephemeral(helpText(name))
	}
	return ephemeral(fmt.Sprintf("I don't know “%s”.\n%s", escapeMax(arg, 50), helpText(name)))
}

func helpText(name string) string {
	return fmt.Sprintf("*%[1]s* lists the requests waiting for a decision, newest first, with their progress.\n"+
		"*%[1]s mine* lists only those you can decide.\n"+
		"*%[1]s history* lists the last closed requests you could vote on: who decided, when and why.\n"+
		"*%[1]s help* shows this help.\n"+
		"Vote with the buttons on a request's message, or press *Open approval page* there for a personal page (to add a comment).", name)
}

// list answers one page of the listing from cursor on ("" for the first).
// mine keeps only the requests where the caller can still vote.
func (a *App) list(ctx context.Context, user string, mine bool, cursor string) reply {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel() // also ends a profile lookup that is not needed
	who := make(chan approval.Identity, 1)
	go func() {
		id, _ := a.identity(ctx, user, lookupTimeout)
		who <- id
	}()
	var voter *approval.Identity
	identity := func() approval.Identity {
		if voter == nil {
			id := <-who
			voter = &id
		}
		return *voter
	}

	first := cursor == ""
	var reqs []*approval.Request
	for reads := 0; reads < maxReads && len(reqs) < maxListed; reads++ {
		rs, next, err := a.svc.ListPending(ctx, cursor, maxListed-len(reqs))
		if err != nil {
			if len(reqs) == 0 {
				a.log.Error("slack: list pending requests", "err", err)
				return ephemeral(msgListFailed)
			}
			a.log.Warn("slack: list pending requests: answering with what was read", "err", err)
			break // cursor still names the page that failed
		}
		for _, r := range rs {
			if !mine || canStillVote(r, identity()) {
				reqs = append(reqs, r)
			}
		}
		cursor = next
		if next == "" {
			break
		}
	}

	whose := "a decision"
	if mine {
		whose = "your decision"
	}
	var head string
	switch {
	case len(reqs) == 0 && first && cursor == "":
		head = "No requests are waiting for " + whose + "."
	case len(reqs) == 0 && cursor == "":
		head = "No more requests are waiting for " + whose + "."
	case len(reqs) == 0:
		head = "No requests waiting for " + whose + " among the ones read so far."
	case first && cursor == "":
		head = fmt.Sprintf("%d %s waiting for %s.", len(reqs), plural(len(reqs), "request is", "requests are"), whose)
	case first:
		head = fmt.Sprintf("The %d newest requests waiting for %s:", len(reqs), whose)
	default:
		head = fmt.Sprintf("%d more %s waiting for %s:", len(reqs), plural(len(reqs), "request", "requests"), whose)
	}
	if len(reqs) == 0 && cursor == "" {
		return ephemeral(head)
	}
	blocks := []slack.Block{slack.NewSectionBlock(mrkdwn("*"+head+"*"), nil, nil)}
	now := a.now()
	for _, r := range reqs {
		var button *slack.Accessory
		if canStillVote(r, identity()) {
			button = slack.NewAccessory(slack.NewButtonBlockElement(ActionOpenPage, r.ID, plain("Open approval page")))
		}
		blocks = append(blocks, slack.NewSectionBlock(mrkdwn(listItem(r, now)), nil, button))
	}
	if cursor != "" {
		if v := moreValue(mine, cursor); len(v) <= maxButtonValue {
			blocks = append(blocks, slack.NewActionBlock("more", slack.NewButtonBlockElement(ActionMore, v, plain("More"))))
		} else {
			blocks = append(blocks, slack.NewContextBlock("more", mrkdwn("There are more; the oldest cannot be listed here.")))
		}
	}
	return ephemeral(head, blocks...)
}

// moreValue and parseMore encode the listing a "More" button continues:
// "all", "mine" or "history", and the cursor.
func moreValue(mine bool, cursor string) string {
	if mine {
		return "mine:" + cursor
	}
	return "all:" + cursor
}

func parseMore(v string) (kind string, cursor string, ok bool) {
	kind, cursor, ok = strings.Cut(v, ":")
	if !ok || cursor == "" || (kind != "mine" && kind != "all" && kind != "history") {
		return "", "", false
	}
	return kind, cursor, true
}

// listItem is one request of the listing: title, requester, age, time left,
// channel and progress. It links to no page: an approver asks for their own
// with the item's button.
func listItem(r *approval.Request, now time.Time) string {
	line := fmt.Sprintf("*%s*\nRequested by %s · %s ago · %s left",
		escapeMax(r.Title, maxHeader), escapeMax(r.Requester, maxHeader), span(now.Sub(r.CreatedAt)), span(r.ExpiresAt.Sub(now)))
	if ch := r.ChatMessage.Channel; channelID.MatchString(ch) {
		line += " · in <#" + ch + ">"
	}
	return line + "\n" + progressText(r.Tally())
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

// interaction handles a block_actions callback: a press of one of the app's
// buttons. retried is true for Slack's retries of a delivery it thinks
// failed; a retry of something already done does nothing.
func (a *App) interaction(ctx context.Context, cb slack.InteractionCallback, retried bool) {
	if cb.Type != slack.InteractionTypeBlockActions {
		return
	}
	for _, act := range cb.ActionCallback.BlockActions {
		switch act.ActionID {
		case ActionApprove:
			a.click(ctx, cb, act.Value, approval.Approve, retried)
		case ActionReject:
			a.click(ctx, cb, act.Value, approval.Reject, retried)
		case ActionOpenPage:
			if !retried {
				a.openPage(ctx, cb, act.Value)
			}
		case ActionMore:
			if !retried {
				a.more(ctx, cb, act.Value)
			}
		case ActionDelegate:
			if id, ok := strings.CutPrefix(act.BlockID, DelegateBlockPrefix); ok {
				a.delegate(ctx, cb, id, act.SelectedUser, retried)
			}
		default:
			// ActionPersonalPage is a link; Slack reports its clicks too.
		}
	}
}

// click votes as the clicking user and tells them what came of it.
func (a *App) click(ctx context.Context, cb slack.InteractionCallback, id string, choice approval.Choice, retried bool) {
	log := a.log.With("request_id", id, "user", cb.User.ID, "decision", choice)
	if !approval.ValidID(id) {
		log.Warn("slack: button with an invalid request ID")
		a.tell(ctx, cb, msgNotFound)
		return
	}
	if retried {
		if r, err := a.svc.Get(ctx, id); err == nil && r.Status != approval.StatusPending {
			log.Info("slack: retried click ignored; request already closed", "status", r.Status)
			return
		}
	}
	voter, known := a.identity(ctx, cb.User.ID, clickLookupTimeout)
	r, err := a.svc.DecideInChat(ctx, id, choice, "", voter)
	switch {
	case err == nil:
		log.Info("slack: vote recorded from a button", "status", r.Status)
		a.tell(ctx, cb, recordedText(r, choice))
	case errors.Is(err, approval.ErrWorkflowGone):
		a.tell(ctx, cb, msgWorkflowGone)
	case errors.Is(err, approval.ErrDelegated):
		a.tell(ctx, cb, delegatedAwayText(r, voter))
	case errors.Is(err, approval.ErrSelfApproval):
		log.Info("slack: vote refused; the requester may not approve")
		a.tell(ctx, cb, msgSelfApproval)
	case (errors.Is(err, approval.ErrAlreadyVoted) || errors.Is(err, approval.ErrAlreadyDecided)) && retried:
		log.Info("slack: retried click ignored; already done")
	default:
		a.tell(ctx, cb, refusal(log, "vote from a button", err, r, voter, known, msgFailed))
	}
}

// refusal is the answer to err, the refusal of what a Slack user asked for:
// not an approver (or a profile that could not be read just now), already
// voted or decided, closed, unknown request. Any other error is logged and
// answered with failed.
func refusal(log *slog.Logger, what string, err error, r *approval.Request, voter approval.Identity, known bool, failed string) string {
	switch {
	case errors.Is(err, approval.ErrNotApprover):
		log.Warn("slack: "+what+" refused; not an approver", "profile_known", known)
		if known {
			return msgNotApprover
		}
		return msgUnknownUser
	case errors.Is(err, approval.ErrAlreadyVoted), errors.Is(err, approval.ErrAlreadyDecided):
		return refusedText(r, voter)
	case errors.Is(err, approval.ErrExpired):
		return closedText(r)
	case errors.Is(err, approval.ErrNotFound):
		return msgNotFound
	}
	log.Error("slack: "+what, "err", err)
	return failed
}

// openPage answers an approver with a personal one-time link to the request,
// in a message only they see.
func (a *App) openPage(ctx context.Context, cb slack.InteractionCallback, id string) {
	log := a.log.With("request_id", id, "user", cb.User.ID)
	if !approval.ValidID(id) {
		log.Warn("slack: button with an invalid request ID")
		a.tell(ctx, cb, msgNotFound)
		return
	}
	voter, known := a.identity(ctx, cb.User.ID, clickLookupTimeout)
	r, err := a.svc.Get(ctx, id)
	if err == nil {
		var link string
		r, link, err = a.svc.PersonalLink(ctx, id, approverIdentity(r, voter))
		if err == nil {
			log.Info("slack: personal link sent")
			a.show(ctx, cb, linkMessage(r, link))
			return
		}
	}
	switch {
	case errors.Is(err, approval.ErrNotApprover) && r != nil && r.DelegationOf(voter) != nil:
		a.tell(ctx, cb, delegatedAwayText(r, voter))
	default:
		a.tell(ctx, cb, refusal(log, "personal link", err, r, voter, known, msgLinkFailed))
	}
}

// more answers the next page of a listing.
func (a *App) more(ctx context.Context, cb slack.InteractionCallback, value string) {
	kind, cursor, ok := parseMore(value)
	if !ok {
		a.log.Warn("slack: More button with an invalid value", "user", cb.User.ID)
		return
	}
	var out reply
	if kind == "history" {
		out = a.history(ctx, cb.User.ID, cursor)
	} else {
		out = a.list(ctx, cb.User.ID, kind == "mine", cursor)
	}
	a.show(ctx, cb, message{text: out.Text, blocks: out.Blocks})
}

// recordedText tells a voter their vote counted, and what the request needs
// now.
func recordedText(r *approval.Request, c approval.Choice) string {
	what := "approval"
	if c == approval.Reject {
		what = "rejection"
	}
	switch r.Status {
	case approval.StatusPending:
		p := r.Tally()
		if c == approval.Approve {
			return fmt.Sprintf("Your approval is recorded. %s.", capitalize(neededText(p)))
		}
		return fmt.Sprintf("Your rejection is recorded. The request stays open: %s.", progressText(p))
	case approval.StatusApproved, approval.StatusRejected:
		return fmt.Sprintf("Your %s is recorded: the request is %s.", what, r.Status)
	}
	return fmt.Sprintf("Your %s is recorded; the request is closed (%s).", what, r.Status)
}

// refusedText tells a person why they cannot vote on r any more: their own
// earlier vote, or the decision.
func refusedText(r *approval.Request, voter approval.Identity) string {
	if r == nil {
		return "This request was already decided."
	}
	if v := r.VoteOf(voter); v != nil {
		verb := "approved"
		if v.Choice == approval.Reject {
			verb = "rejected"
		}
		s := fmt.Sprintf("You already %s this request %s.", verb, slackDate(v.At))
		if r.Status != approval.StatusPending {
			s += " It is " + string(r.Status) + "."
		}
		return s
	}
	if r.Decision == nil || !r.Status.Decided() || r.Decision.ByTimeout() {
		return closedText(r)
	}
	return fmt.Sprintf("This request was already %s by %s %s.", r.Status, who(r.Decision.By), slackDate(r.Decision.At))
}

// closedText says why a request closed without a decision takes no vote.
func closedText(r *approval.Request) string {
	switch {
	case r == nil:
		return msgExpired
	case r.Status == approval.StatusExpired && r.Decision != nil:
		return msgClosed
	case r.Status == approval.StatusCanceled && r.Canceled != nil && r.Canceled.By != approval.WorkflowGoneBy:
		return "This request was canceled " + canceledBy(r.Canceled) + "."
	case r.Status == approval.StatusCanceled:
		if why := reasonText(r.Reason); why != "" {
			return "This request was canceled: " + why + "."
		}
		return "This request was canceled."
	case r.Status.Decided() && r.Decision.ByTimeout():
		return fmt.Sprintf("This request was %s by its timeout rule %s.", r.Status, slackDate(r.Decision.At))
	case r.Status.Decided() && r.Decision != nil:
		return fmt.Sprintf("This request was already %s by %s %s.", r.Status, who(r.Decision.By), slackDate(r.Decision.At))
	}
	return msgExpired
}

// message is an answer shown to one person only.
type message struct {
	text   string
	blocks []slack.Block
}

// linkMessage holds a personal link: text for notifications and a button.
func linkMessage(r *approval.Request, link string) message {
	title := escapeMax(r.Title, maxHeader)
	return message{
		text: fmt.Sprintf("%s “%s”: %s", msgLinkIntroText, r.Title, link),
		blocks: []slack.Block{
			slack.NewSectionBlock(mrkdwn(fmt.Sprintf("%s *%s*. It votes in your name: do not share it.", msgLinkIntroText, title)), nil, nil),
			slack.NewActionBlock("personal",
				slack.NewButtonBlockElement(ActionPersonalPage, r.ID, plain("Open my approval page")).WithURL(link).WithStyle(slack.StylePrimary)),
		},
	}
}

// tell shows text to the clicking user only (see show).
func (a *App) tell(ctx context.Context, cb slack.InteractionCallback, text string) {
	a.show(ctx, cb, message{text: text})
}

// show shows m to the clicking user only. A click on a message the app posted
// (a channel message, a direct message) is answered with chat.postEphemeral
// there; a click on an ephemeral message (a listing), or when that fails,
// through the interaction's response_url. Unfurling is off: an answer may
// hold a personal link.
func (a *App) show(ctx context.Context, cb slack.InteractionCallback, m message) {
	if m.text == "" {
		return
	}
	// The answer goes out even when the work used up its own time.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	channel := cb.Channel.ID
	if channel == "" {
		channel = cb.Container.ChannelID
	}
	if !cb.Container.IsEphemeral && channel != "" && cb.User.ID != "" {
		opts := []slack.MsgOption{slack.MsgOptionText(m.text, false), slack.MsgOptionDisableLinkUnfurl(), slack.MsgOptionDisableMediaUnfurl()}
		if len(m.blocks) > 0 {
			opts = append(opts, slack.MsgOptionBlocks(m.blocks...))
		}
		_, err := call(ctx, func(ctx context.Context) (string, error) {
			return a.api.PostEphemeralContext(ctx, channel, cb.User.ID, opts...)
		})
		if err == nil {
			return
		}
		a.log.Warn("slack: ephemeral message not posted; trying the response URL", "user", cb.User.ID, "err", err)
	}
	if cb.ResponseURL == "" {
		a.log.Error("slack: nowhere to answer", "user", cb.User.ID)
		return
	}
	off := false
	msg := &slack.WebhookMessage{
		Text: m.text, ResponseType: slack.ResponseTypeEphemeral, ReplaceOriginal: false,
		UnfurlLinks: &off, UnfurlMedia: &off,
	}
	if len(m.blocks) > 0 {
		msg.Blocks = &slack.Blocks{BlockSet: m.blocks}
	}
	if err := a.respond(ctx, cb.ResponseURL, msg); err != nil {
		a.log.Error("slack: answer not posted to the response URL", "user", cb.User.ID, "err", err)
	}
}
