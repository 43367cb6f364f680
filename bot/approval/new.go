package approval

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Deps are what NewService builds a Service from: the ports it calls and its
// settings. Store, Pages and Renderer are required; Mailer, Chat and Workflow
// are optional, since a request may have only Slack or only email approvers
// and nothing may wait for its outcome.
type Deps struct {
	Store    Store
	Pages    Pages
	Renderer Renderer
	Mailer   Mailer   // nil: no email is sent
	Chat     Chat     // nil: Slack is not configured
	Workflow Workflow // nil: nothing waits for outcomes

	// DecideURL is where the one-time pages post votes.
	DecideURL string
	// DefaultSlackChannel is used for requests that name no Slack channel
	// when Chat is set.
	DefaultSlackChannel string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives one line per event worth knowing; nil discards.
	Log *slog.Logger
	// Sync makes every call wait until the effects it caused are done and
	// recorded (see Service.Sync).
	Sync bool
}

// NewService returns a Service on d, or an error naming every required
// dependency that is missing.
func NewService(d Deps) (*Service, error) {
	var errs []error
	if d.Store == nil {
		errs = append(errs, errors.New("no Store"))
	}
	if d.Pages == nil {
		errs = append(errs, errors.New("no Pages"))
	}
	if d.Renderer == nil {
		errs = append(errs, errors.New("no Renderer"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("new service: %w", err)
	}
	return &Service{
		Store:               d.Store,
		Pages:               d.Pages,
		Renderer:            d.Renderer,
		Mailer:              d.Mailer,
		Chat:                d.Chat,
		Workflow:            d.Workflow,
		DecideURL:           d.DecideURL,
		DefaultSlackChannel: d.DefaultSlackChannel,
		Now:                 d.Now,
		Log:                 d.Log,
		Sync:                d.Sync,
	}, nil
}
