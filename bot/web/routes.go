package web

import "net/http"

// routes lists every route the handler serves.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", s.handleHealth())
	mux.Handle("/healthz", s.methodNotAllowed("GET, HEAD"))

	mux.Handle("POST /decide", s.handleDecide())
	mux.Handle("/decide", s.handleDecideNotPost()) // GET and HEAD never decide
	mux.Handle("POST /delegate", s.handleDelegate())
	mux.Handle("/delegate", s.handleDecideNotPost())

	if s.cfg.Pages != nil {
		mux.Handle("GET /p/{page}", s.handlePage()) // also HEAD
		mux.Handle("/p/{page}", s.methodNotAllowed("GET, HEAD"))
	}

	if !s.cfg.DisableAPI {
		mux.Handle("POST /api/requests", s.api(s.handleCreate()))
		mux.Handle("GET /api/requests", s.api(s.handleList()))
		mux.Handle("/api/requests", s.api(s.apiMethodNotAllowed("GET, POST")))
		mux.Handle("GET /api/requests/{id}", s.api(s.handleGet()))
		mux.Handle("/api/requests/{id}", s.api(s.apiMethodNotAllowed("GET")))
		mux.Handle("POST /api/requests/{id}/cancel", s.api(s.handleCancel()))
		mux.Handle("/api/requests/{id}/cancel", s.api(s.apiMethodNotAllowed("POST")))
		mux.Handle("POST /api/requests/{id}/extend", s.api(s.handleExtend()))
		mux.Handle("/api/requests/{id}/extend", s.api(s.apiMethodNotAllowed("POST")))
		mux.Handle("GET /api/audit", s.api(s.handleAudit()))
		mux.Handle("/api/audit", s.api(s.apiMethodNotAllowed("GET")))
		mux.Handle("/api/", s.api(s.apiNotFound()))
	}

	if s.cfg.MCP != nil && !s.cfg.DisableAPI {
		mux.Handle("/mcp", s.api(s.mcp(s.cfg.MCP)))
	}

	if s.cfg.Slack != nil {
		mux.Handle("/slack/", s.cfg.Slack)
	}

	mux.Handle("/", s.handleNotFound())
	return mux
}
