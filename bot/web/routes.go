package web

import "net/http"

// routes lists every route the handler serves.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /healthz", s.handleHealth())
	mux.Handle("/healthz", s.methodNotAllowed("GET, HEAD"))

	mux.Handle("POST /decide", s.handleDecide())
	mux.Handle("/decide", s.handleDecideNotPost()) // GET and HEAD never decide

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
		mux.Handle("GET /api/audit", s.api(s.handleAudit()))
		mux.Handle("/api/audit", s.api(s.apiMethodNotAllowed("GET")))
		mux.Handle("/api/", s.api(s.apiNotFound()))
	}

	if s.cfg.Slack != nil {
		mux.Handle("/slack/", s.cfg.Slack)
	}

	mux.Handle("/", s.handleNotFound())
	return mux
}
