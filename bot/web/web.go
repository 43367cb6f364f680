// Package web is the HTTP surface of approvalbot: the one-time pages (/p/{page}),
// the endpoint their forms post votes to (/decide), the local JSON API
// (/api/requests...), the Model Context Protocol endpoint (/mcp) when one is
// given, and /healthz. How the core's errors become HTTP statuses
// and pages is decided in one place, outcome in decide.go. The same handler serves the embedded mode and,
// with the API disabled and pages on S3, the callback Lambda's function URL.
package web

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/pages"
)

// MaxBody is the largest request body accepted, for forms and JSON alike.
const MaxBody = 64 << 10

// DefaultMaxWait caps how long GET /api/requests/{id}?wait= blocks.
const DefaultMaxWait = 60 * time.Second

// DefaultMCPMaxWait is how long one /mcp call may last by default: the
// longest wait of an MCP tool (600 s) and some time to answer.
const DefaultMCPMaxWait = 630 * time.Second

// PageSource returns stored one-time pages by key, or an error matching
// approval.ErrNotFound.
type PageSource interface {
	Page(ctx context.Context, key string) ([]byte, error)
}

// Config is what the handler serves and how.
type Config struct {
	// Service runs the decisions and requests. Required.
	Service *approval.Service
	// Pages serves GET /p/{page}; nil leaves the route out (pages live
	// elsewhere, as on S3).
	Pages PageSource
	// PageURL gives the address of a page key, for the confirmation step's
	// Cancel link; nil means no such link.
	PageURL func(key string) string
	// DecideURL is where the confirmation form posts; empty means
	// Service.DecideURL.
	DecideURL string
	// DisableAPI leaves out every /api route (the callback Lambda serves only
	// /decide).
	DisableAPI bool
	// APIToken, when set, is the bearer token every /api request must carry
	// ("Authorization: Bearer <token>"). Without it /api answers only under
	// the decide URL's host name, an IP address or localhost.
	APIToken string
	// MCP, when set, serves the Model Context Protocol (streamable HTTP) at
	// /mcp, behind the same bearer token as /api. It is left out with the API.
	MCP http.Handler
	// MCPMaxWait is how long one /mcp call may take (a tool that waits for a
	// decision); zero means DefaultMCPMaxWait.
	MCPMaxWait time.Duration
	// APIName is who the API's caller is, as the cancellations and
	// extensions made through it record: the name configured with the
	// bearer token; empty means "api".
	APIName string
	// Slack, when set, is mounted at /slack/ (it checks Slack's signatures itself).
	Slack http.Handler
	// MaxWait caps the ?wait= long poll; zero means DefaultMaxWait.
	MaxWait time.Duration
	// Log receives one line per request; nil discards.
	Log *slog.Logger
}

// server holds the configuration the handlers share.
type server struct {
	cfg       Config
	log       *slog.Logger
	decideURL string
	resultCSP string
	pageCSP   string
}

// New returns the handler for cfg, with every route, the security headers and
// one log line per request.
func New(cfg Config) http.Handler {
	s := &server{cfg: cfg, log: cfg.Log, decideURL: cfg.DecideURL}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.decideURL == "" && cfg.Service != nil {
		s.decideURL = cfg.Service.DecideURL
	}
	if s.cfg.MaxWait <= 0 {
		s.cfg.MaxWait = DefaultMaxWait
	}
	if s.cfg.MCPMaxWait <= 0 {
		s.cfg.MCPMaxWait = DefaultMCPMaxWait
	}
	s.cfg.APIToken = strings.TrimSpace(s.cfg.APIToken)
	s.resultCSP = pages.ResultCSP(s.decideURL)
	s.pageCSP = pages.PageCSP(s.decideURL)
	return s.edge(s.routes())
}
