package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"regexp"

	"approvalbot/bot/approval"
	"approvalbot/bot/web"
	"approvalbot/internal/testing/memory"
	"approvalbot/pages"
)

// bot is a real approvalbot handler (the API, the pages, the votes) over the
// in-memory store, served on loopback: what the client talks to in these
// tests and examples.
type bot struct {
	*httptest.Server
	svc   *approval.Service
	store *memory.Store
	pages *memory.Pages
}

// newBot serves a bot; token, when set, is its API's bearer token. tweak
// adjusts the handler's configuration.
func newBot(token string, tweak ...func(*web.Config)) *bot {
	b := &bot{store: memory.NewStore()}
	b.Server = httptest.NewUnstartedServer(nil)
	b.pages = memory.NewPages("http://" + b.Listener.Addr().String())
	b.svc = &approval.Service{
		Store: b.store, Pages: b.pages, Renderer: pages.Renderer{}, Mailer: memory.NewMailer(),
		Workflow: memory.NewWorkflow(), DecideURL: "http://" + b.Listener.Addr().String() + "/decide",
	}
	cfg := web.Config{Service: b.svc, APIToken: token, Log: slog.New(slog.DiscardHandler)}
	for _, f := range tweak {
		f(&cfg)
	}
	b.Config.Handler = web.New(cfg)
	b.Start()
	return b
}

var tokenField = regexp.MustCompile(`name="token" value="([A-Za-z0-9_.-]+)"`)

// vote casts approver's vote on request id through the token of their
// personal page, as a person who opened the emailed link would.
func (b *bot) vote(id, approver string, c approval.Choice, comment string) error {
	r, err := b.store.GetRequest(context.Background(), id)
	if err != nil {
		return err
	}
	for _, rc := range r.Recipients {
		if rc.Address != approver {
			continue
		}
		html, ok := b.pages.Get(rc.PageKey)
		if !ok {
			return fmt.Errorf("no page for %s", approver)
		}
		m := tokenField.FindSubmatch(html)
		if m == nil {
			return fmt.Errorf("no token on the page of %s", approver)
		}
		_, err := b.svc.Decide(context.Background(), approval.DecideInput{Token: string(m[1]), Choice: c, Comment: comment})
		return err
	}
	return fmt.Errorf("%s has no personal link on %s", approver, id)
}
