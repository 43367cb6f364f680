package web

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"unicode/utf8"

	"approvalbot/bot/approval"
	"approvalbot/pages"
)

// handleDecide takes the one-time page's form: token, decision, comment and
// confirmed. Without confirmed=1 (the page's script was off, so no dialog asked)
// it answers with a confirmation step and decides nothing; with it, it decides.
func (s *server) handleDecide() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		if err := r.ParseForm(); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				s.writeResult(w, r, http.StatusRequestEntityTooLarge, pages.Result{Kind: pages.ResultInvalid, Message: "The form is larger than 64 KiB. Please shorten your comment."})
				return
			}
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "The form could not be read."})
			return
		}
		form := r.PostForm
		token := form.Get("token")
		// Browsers send a textarea's line breaks as CRLF and count each as one
		// character in its maxlength: count and keep them as "\n".
		comment := approval.NormalizeNewlines(form.Get("comment"))
		if token == "" {
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "The form has no token. Please open the link you were sent again."})
			return
		}
		choice, err := approval.ParseChoice(form.Get("decision"))
		if err != nil {
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "Please press Approve or Reject."})
			return
		}
		if utf8.RuneCountInString(comment) > approval.MaxComment {
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "The comment is longer than 2000 characters. Please shorten it."})
			return
		}

		if form.Get("confirmed") != "1" {
			req, err := s.cfg.Service.Lookup(r.Context(), token)
			if err != nil {
				s.writeOutcome(w, r, req, err)
				return
			}
			noteRequest(r, req.ID)
			v := pages.Confirm{Request: req, Token: token, Choice: choice, Comment: comment, DecideURL: s.decideURL}
			if s.cfg.PageURL != nil {
				hash := approval.HashToken(token)
				for _, rc := range req.Recipients {
					if rc.TokenHash == hash && rc.PageKey != "" {
						v.BackURL = s.cfg.PageURL(rc.PageKey)
					}
				}
			}
			var buf bytes.Buffer
			if err := pages.RenderConfirm(&buf, v); err != nil {
				noteErr(r, err)
				s.writeResult(w, r, http.StatusInternalServerError, resultError())
				return
			}
			writeHTML(w, http.StatusOK, buf.Bytes())
			return
		}

		// Detached from the connection: a browser that goes away, or a server
		// shutting down (which cancels every request's context), must not cut a
		// decision between its claim and its delivery.
		req, err := s.cfg.Service.Decide(context.WithoutCancel(r.Context()), approval.DecideInput{Token: token, Choice: choice, Comment: comment})
		s.writeOutcome(w, r, req, err)
	})
}

// writeOutcome answers a decision attempt (or a lookup) with its result page.
func (s *server) writeOutcome(w http.ResponseWriter, r *http.Request, req *approval.Request, err error) {
	if req != nil {
		noteRequest(r, req.ID)
	}
	status, res := outcome(req, err)
	if status >= 500 {
		noteErr(r, err)
	}
	s.writeResult(w, r, status, res)
}

// outcome maps the result of Service.Decide or Service.Lookup to a status and
// result page. Only failures on our side are 5xx; a late or concurrent attempt
// is a 409, never an error.
func outcome(req *approval.Request, err error) (int, pages.Result) {
	var verr *approval.ValidationError
	switch {
	case err == nil && req != nil && req.Status == approval.StatusRejected:
		return http.StatusOK, pages.Result{Kind: pages.ResultRejected, Request: req}
	case err == nil && req != nil && req.Status == approval.StatusApproved:
		return http.StatusOK, pages.Result{Kind: pages.ResultApproved, Request: req}
	case err == nil:
		return http.StatusInternalServerError, resultError()
	case errors.Is(err, approval.ErrWorkflowGone),
		// Decided, but closed because the workflow no longer waited.
		errors.Is(err, approval.ErrExpired) && req != nil && req.Status == approval.StatusExpired && req.Decision != nil:
		return http.StatusGone, pages.Result{Kind: pages.ResultGone, Request: req}
	case errors.Is(err, approval.ErrAlreadyDecided):
		return http.StatusConflict, pages.Result{Kind: pages.ResultAlreadyDecided, Request: req}
	case errors.Is(err, approval.ErrExpired):
		return http.StatusGone, pages.Result{Kind: pages.ResultExpired, Request: req}
	case errors.Is(err, approval.ErrNotFound):
		return http.StatusNotFound, pages.Result{Kind: pages.ResultNotFound}
	case errors.As(err, &verr):
		return http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: verr.Message}
	}
	return http.StatusInternalServerError, resultError()
}

func resultError() pages.Result { return pages.Result{Kind: pages.ResultError} }

// writeResult renders a result page with status.
func (s *server) writeResult(w http.ResponseWriter, r *http.Request, status int, res pages.Result) {
	var buf bytes.Buffer
	if err := pages.RenderResult(&buf, res); err != nil {
		noteErr(r, err)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte("Something went wrong on our side. Please try again later.\n"))
		return
	}
	writeHTML(w, status, buf.Bytes())
}

func writeHTML(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b)
}

// handleDecideNotPost explains that /decide only takes the page's form.
func (s *server) handleDecideNotPost() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "POST")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte("This address takes decisions sent by the Approve and Reject buttons of an approval page (POST only).\n" +
			"Opening it decided nothing. Please use the link you were sent.\n"))
	})
}

// handlePage serves a one-time page. GET and HEAD only show it.
func (s *server) handlePage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := s.cfg.Pages.Page(r.Context(), r.PathValue("page"))
		if err != nil {
			if !errors.Is(err, approval.ErrNotFound) {
				noteErr(r, err)
				s.writeResult(w, r, http.StatusInternalServerError, resultError())
				return
			}
			s.writeResult(w, r, http.StatusNotFound, pages.Result{Kind: pages.ResultNotFound})
			return
		}
		w.Header().Set("Content-Security-Policy", s.pageCSP)
		writeHTML(w, http.StatusOK, b)
	})
}

func (s *server) handleHealth() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
}

func (s *server) handleNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeResult(w, r, http.StatusNotFound, pages.Result{Kind: pages.ResultNotFound})
	})
}

func (s *server) methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusMethodNotAllowed)
		w.Write([]byte("Method not allowed. Allowed: " + allow + "\n"))
	})
}
