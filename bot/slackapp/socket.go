package slackapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// RunSocketMode answers /approvals and button clicks over a Socket Mode
// connection until ctx is done, so that a bot without a public URL still
// serves Slack. client must carry the app-level token (see NewClient). The
// logic is the same as Handler's; acknowledgements travel over the socket.
func (a *App) RunSocketMode(ctx context.Context, client *slack.Client) error {
	sm := socketmode.New(client, socketmode.OptionLog(slog.NewLogLogger(a.log.Handler(), slog.LevelDebug)))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- sm.RunContext(ctx) }()

	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-runErr:
			if err == nil || errors.Is(err, context.Canceled) {
				return nil
			}
			return fmt.Errorf("slack socket mode: %w", err)
		case evt := <-sm.Events:
			if evt.Request == nil {
				a.socketStatus(evt)
				continue
			}
			req := *evt.Request
			ack := func(payload any) error { return sm.Ack(req, payload) }
			wg.Go(func() { a.socketEvent(ctx, evt, ack) })
		}
	}
}

// socketStatus logs what the Socket Mode client says about its connection.
func (a *App) socketStatus(evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnected:
		a.log.Info("slack: connected over Socket Mode")
	case socketmode.EventTypeConnectionError, socketmode.EventTypeInvalidAuth, socketmode.EventTypeIncomingError:
		a.log.Error("slack: Socket Mode connection problem", "event", evt.Type, "detail", fmt.Sprint(evt.Data))
	}
}

// socketEvent answers one request received over the socket; ack sends the
// acknowledgement (with a payload for slash commands).
func (a *App) socketEvent(ctx context.Context, evt socketmode.Event, ack func(payload any) error) {
	switch evt.Type {
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok {
			a.ack(ack, nil)
			return
		}
		a.ack(ack, a.command(ctx, cmd))
	case socketmode.EventTypeInteractive:
		a.ack(ack, nil) // acknowledge first; the work continues in this process
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok {
			return
		}
		retried := evt.Request != nil && evt.Request.RetryAttempt > 0
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), workTimeout)
		defer cancel()
		a.interaction(ctx, cb, retried)
	default:
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			a.ack(ack, nil)
		}
	}
}

func (a *App) ack(ack func(payload any) error, payload any) {
	if err := ack(payload); err != nil {
		a.log.Error("slack: Socket Mode acknowledgement failed", "err", err)
	}
}
