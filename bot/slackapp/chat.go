package slackapp

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// callTimeout bounds each Web API call, so that a slow Slack never holds up a
// decision for long: the core tries an update three times, which stays well
// inside a 15-second Lambda even when Slack does not answer at all.
const callTimeout = 3 * time.Second

// slackAPI is the part of the Slack Web API this package calls.
type slackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	GetUserInfoContext(ctx context.Context, user string, options ...slack.GetUserInfoOption) (*slack.User, error)
}

var _ slackAPI = (*slack.Client)(nil)

// Chat posts a request's message to Slack and rewrites it when the request is
// closed. It implements approval.Chat.
type Chat struct {
	api slackAPI
}

var _ approval.Chat = (*Chat)(nil)

// NewChat returns a Chat that talks to Slack through client.
func NewChat(client *slack.Client) *Chat { return &Chat{api: client} }

// Post announces r in r.SlackChannel: the request, a button to the channel's
// one-time page at pageURL and the Approve/Reject buttons. Link and media
// unfurling are off so that Slack never fetches the page.
func (c *Chat) Post(ctx context.Context, r *approval.Request, pageURL string) (approval.ChatMessage, error) {
	if r.SlackChannel == "" {
		return approval.ChatMessage{}, fmt.Errorf("post request %s to Slack: no channel", r.ID)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	channel, ts, err := c.api.PostMessageContext(ctx, r.SlackChannel,
		slack.MsgOptionText(fallbackText(r), true),
		slack.MsgOptionBlocks(requestBlocks(r, pageURL)...),
		slack.MsgOptionDisableLinkUnfurl(),
		slack.MsgOptionDisableMediaUnfurl(),
	)
	if err != nil {
		return approval.ChatMessage{}, fmt.Errorf("post request %s to Slack channel %s: %w", r.ID, r.SlackChannel, err)
	}
	return approval.ChatMessage{Channel: channel, TS: ts}, nil
}

// Update rewrites r's message to show its outcome (who, when, how, comment),
// removing the buttons and the link to the page.
func (c *Chat) Update(ctx context.Context, r *approval.Request) error {
	m := r.ChatMessage
	if m.Channel == "" || m.TS == "" {
		return fmt.Errorf("update Slack message of request %s: %w", r.ID, errors.New("no message recorded"))
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	_, _, _, err := c.api.UpdateMessageContext(ctx, m.Channel, m.TS,
		slack.MsgOptionText(fmt.Sprintf("%s: %s", r.Title, r.Status), true),
		slack.MsgOptionBlocks(outcomeBlocks(r)...),
	)
	if err != nil {
		return fmt.Errorf("update Slack message of request %s: %w", r.ID, err)
	}
	return nil
}
