package slackapp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// callTimeout bounds each Web API call, so that a slow Slack never holds up
// an effect for long; the core retries a failed effect.
const callTimeout = 3 * time.Second

// Rate limits: Slack answers a call over its rate limit with 429 and a
// Retry-After in seconds. A call is tried again after that pause, up to
// rateLimitTries calls in all, when the pause is at most maxRetryAfter and
// ends at least minCallTime before the caller's deadline; otherwise the 429 is
// returned (and the core retries the effect later).
const (
	rateLimitTries = 3
	maxRetryAfter  = 20 * time.Second
	minCallTime    = time.Second
)

// rateLimited is a 429 answer to wait out: it is the Slack error and, for the
// backoff package, the pause to take.
type rateLimited struct {
	err   *slack.RateLimitedError
	pause backoff.RetryAfterError
}

func (e *rateLimited) Error() string   { return e.err.Error() }
func (e *rateLimited) Unwrap() []error { return []error{e.err, &e.pause} }

// call runs op, one Web API call, each attempt bounded by callTimeout, and
// tries it again after a 429 as the rate limit constants say. Any other error
// is returned at once.
func call[T any](ctx context.Context, op func(context.Context) (T, error)) (T, error) {
	attempt := func() (T, error) {
		actx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		v, err := op(actx)
		if err == nil {
			return v, nil
		}
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) {
			return v, backoff.Permanent(err)
		}
		pause := max(rl.RetryAfter, 0)
		if pause == 0 {
			pause = time.Second // Slack always names a pause; never spin
		}
		if dl, ok := ctx.Deadline(); pause > maxRetryAfter || ok && time.Until(dl) < pause+minCallTime {
			return v, backoff.Permanent(err)
		}
		return v, &rateLimited{err: rl, pause: backoff.RetryAfterError{Duration: pause}}
	}
	v, err := backoff.Retry(ctx, attempt, backoff.WithMaxTries(rateLimitTries), backoff.WithMaxElapsedTime(0))
	var rl *rateLimited
	if errors.As(err, &rl) {
		err = rl.err // out of tries
	}
	return v, err
}

// chatAPI is the part of the Slack Web API that Chat calls.
type chatAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	OpenConversationContext(ctx context.Context, params *slack.OpenConversationParameters) (*slack.Channel, bool, bool, error)
}

var _ chatAPI = (*slack.Client)(nil)

// Chat posts a request's message to its Slack channel, sends Slack approvers
// a direct message, and rewrites both as votes come in and when the request
// closes. It implements approval.Chat. No message it writes carries a link to
// a page: the "Open approval page" button asks the app for a personal link.
type Chat struct {
	api chatAPI
}

var _ approval.Chat = (*Chat)(nil)

// NewChat returns a Chat that talks to Slack through client.
func NewChat(client *slack.Client) *Chat { return &Chat{api: client} }

// Post announces r in r.SlackChannel: the request, its rule, progress and
// votes, and the Approve, Reject and "Open approval page" buttons. Link and
// media unfurling are off so that Slack fetches nothing the message names.
func (c *Chat) Post(ctx context.Context, r *approval.Request) (approval.ChatMessage, error) {
	if r.SlackChannel == "" {
		return approval.ChatMessage{}, fmt.Errorf("post request %s to Slack: no channel", r.ID)
	}
	m, err := c.post(ctx, r.SlackChannel, r, false)
	if err != nil {
		return approval.ChatMessage{}, fmt.Errorf("post request %s to Slack channel %s: %w", r.ID, r.SlackChannel, err)
	}
	return m, nil
}

// DirectMessage sends Slack user (an approver given by user ID) a direct
// message with the request and its buttons: conversations.open (scope
// im:write), then chat.postMessage in that conversation.
func (c *Chat) DirectMessage(ctx context.Context, r *approval.Request, user string) (approval.ChatMessage, error) {
	if !approval.IsSlackUserID(user) {
		return approval.ChatMessage{}, fmt.Errorf("direct message on request %s: %q is not a Slack user ID", r.ID, user)
	}
	ch, err := call(ctx, func(ctx context.Context) (*slack.Channel, error) {
		ch, _, _, err := c.api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}, ReturnIM: true})
		return ch, err
	})
	if err != nil {
		return approval.ChatMessage{}, fmt.Errorf("direct message on request %s to %s: open conversation: %w", r.ID, user, err)
	}
	if ch == nil || ch.ID == "" {
		return approval.ChatMessage{}, fmt.Errorf("direct message on request %s to %s: open conversation: no channel", r.ID, user)
	}
	m, err := c.post(ctx, ch.ID, r, true)
	if err != nil {
		return approval.ChatMessage{}, fmt.Errorf("direct message on request %s to %s: %w", r.ID, user, err)
	}
	return m, nil
}

func (c *Chat) post(ctx context.Context, channel string, r *approval.Request, dm bool) (approval.ChatMessage, error) {
	return call(ctx, func(ctx context.Context) (approval.ChatMessage, error) {
		ch, ts, err := c.api.PostMessageContext(ctx, channel,
			slack.MsgOptionText(fallbackText(r, dm), true),
			slack.MsgOptionBlocks(requestBlocks(r, dm)...),
			slack.MsgOptionDisableLinkUnfurl(),
			slack.MsgOptionDisableMediaUnfurl(),
		)
		return approval.ChatMessage{Channel: ch, TS: ts}, err
	})
}

// Update rewrites r's channel message, every direct message and the
// escalation post, in parallel,
// to show r as it stands: the votes and progress while pending, the outcome
// and no button once closed. A message that no longer exists (deleted by
// someone in Slack) cannot be rewritten, ever, and is skipped.
func (c *Chat) Update(ctx context.Context, r *approval.Request) error {
	type target struct {
		m  approval.ChatMessage
		dm bool
	}
	var targets []target
	if r.ChatMessage.Channel != "" && r.ChatMessage.TS != "" {
		targets = append(targets, target{r.ChatMessage, false})
	}
	for _, m := range r.DirectMessages {
		if m.Channel != "" && m.TS != "" {
			targets = append(targets, target{m, true})
		}
	}
	if e := r.Escalation; e != nil && e.Message.Channel != "" && e.Message.TS != "" {
		targets = append(targets, target{e.Message, false})
	}
	if len(targets) == 0 {
		return fmt.Errorf("update Slack messages of request %s: no message recorded", r.ID)
	}
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			if err := c.update(ctx, t.m, r, t.dm); err != nil {
				errs[i] = fmt.Errorf("update Slack message %s/%s of request %s: %w", t.m.Channel, t.m.TS, r.ID, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Chat) update(ctx context.Context, m approval.ChatMessage, r *approval.Request, dm bool) error {
	_, err := call(ctx, func(ctx context.Context) (struct{}, error) {
		_, _, _, err := c.api.UpdateMessageContext(ctx, m.Channel, m.TS,
			slack.MsgOptionText(fallbackText(r, dm), true),
			slack.MsgOptionBlocks(requestBlocks(r, dm)...),
		)
		return struct{}{}, err
	})
	var se slack.SlackErrorResponse
	if errors.As(err, &se) && se.Err == "message_not_found" {
		return nil
	}
	return err
}
