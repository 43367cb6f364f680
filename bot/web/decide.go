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
// it answers with a confirmation step and records nothing; with it, it records
// the vote of the token's holder, which may decide the request.
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
		var verr *approval.ValidationError
		if err := approval.CheckText("comment", comment, true); errors.As(err, &verr) {
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "The " + verr.Message + "."})
			return
		}

		if form.Get("confirmed") != "1" {
			s.confirmStep(w, r, token, choice, comment)
			return
		}

		// Detached from the connection: a browser that goes away, or a server
		// shutting down (which cancels every request's context), must not cut a
		// vote between its write and the effects that follow it.
		req, err := s.cfg.Service.Decide(context.WithoutCancel(r.Context()), approval.DecideInput{Token: token, Choice: choice, Comment: comment})
		s.writeOutcome(w, r, req, token, err)
	})
}

// confirmStep answers a vote sent without the page's script (so no dialog
// asked) with a confirmation step, and records nothing. A vote its holder
// could not cast is refused at once, as it would be once confirmed.
func (s *server) confirmStep(w http.ResponseWriter, r *http.Request, token string, choice approval.Choice, comment string) {
	req, err := s.cfg.Service.Lookup(r.Context(), token)
	if err == nil && choice == approval.Approve && !req.Rule.AllowSelfApproval && req.IsRequester(holder(req, token)) {
		err = approval.ErrSelfApproval
	}
	if err != nil {
		s.writeOutcome(w, r, req, token, err)
		return
	}
	noteRequest(r, req.ID)
	rc, _ := req.RecipientByHash(approval.HashToken(token))
	v := pages.Confirm{Request: req, Token: token, Choice: choice, Comment: comment, DecideURL: s.decideURL, Recipient: rc}
	v.BackURL = s.pageURL(rc)
	var buf bytes.Buffer
	if err := pages.RenderConfirm(&buf, v); err != nil {
		noteErr(r, err)
		s.writeResult(w, r, http.StatusInternalServerError, resultError())
		return
	}
	writeHTML(w, http.StatusOK, buf.Bytes())
}

// pageURL is the address of rc's one-time page, or "" when unknown.
func (s *server) pageURL(rc approval.Recipient) string {
	if s.cfg.PageURL == nil || rc.PageKey == "" {
		return ""
	}
	return s.cfg.PageURL(rc.PageKey)
}

// holder is the identity of the person holding token on req.
func holder(req *approval.Request, token string) approval.Identity {
	if req == nil {
		return approval.Identity{}
	}
	rc, ok := req.RecipientByHash(approval.HashToken(token))
	if !ok {
		return approval.Identity{}
	}
	return rc.Identity()
}

// writeOutcome answers a vote (or a lookup) with its result page.
func (s *server) writeOutcome(w http.ResponseWriter, r *http.Request, req *approval.Request, token string, err error) {
	if req != nil {
		noteRequest(r, req.ID)
	}
	status, res := outcome(req, err)
	if req != nil && token != "" {
		if id := holder(req, token); id.ID != "" {
			res.Vote = req.VoteOf(id)
			res.Delegation = req.DelegationOf(id)
		}
		if res.Kind == pages.ResultSelfApproval {
			rc, _ := req.RecipientByHash(approval.HashToken(token))
			res.BackURL = s.pageURL(rc)
		}
	}
	if status >= 500 {
		noteErr(r, err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	s.writeResult(w, r, status, res)
}

// outcome maps the result of Service.Decide or Service.Lookup to a status and
// result page: the one place where a vote's errors become HTTP. Only failures
// on our side are 5xx; a vote that is refused (already voted, already decided,
// not allowed) or late is a 4xx with a page that says why, never an error.
func outcome(req *approval.Request, err error) (int, pages.Result) {
	var verr *approval.ValidationError
	switch {
	case err == nil && req == nil:
		return http.StatusInternalServerError, resultError()
	case err == nil:
		switch req.Status {
		case approval.StatusApproved:
			return http.StatusOK, pages.Result{Kind: pages.ResultApproved, Request: req}
		case approval.StatusRejected:
			return http.StatusOK, pages.Result{Kind: pages.ResultRejected, Request: req}
		case approval.StatusPending:
			// Recorded; the request waits for more votes.
			return http.StatusOK, pages.Result{Kind: pages.ResultRecorded, Request: req}
		case approval.StatusExpired:
			if req.Decision != nil {
				return http.StatusGone, pages.Result{Kind: pages.ResultGone, Request: req}
			}
		}
		return http.StatusGone, pages.Result{Kind: pages.ResultExpired, Request: req}
	case errors.Is(err, approval.ErrWorkflowGone),
		// Decided, but closed because the workflow no longer waited.
		errors.Is(err, approval.ErrExpired) && req != nil && req.Status == approval.StatusExpired && req.Decision != nil:
		return http.StatusGone, pages.Result{Kind: pages.ResultGone, Request: req}
	case errors.Is(err, approval.ErrAlreadyDecided):
		return http.StatusConflict, pages.Result{Kind: pages.ResultAlreadyDecided, Request: req}
	case errors.Is(err, approval.ErrAlreadyVoted):
		return http.StatusConflict, pages.Result{Kind: pages.ResultAlreadyVoted, Request: req}
	case errors.Is(err, approval.ErrSelfApproval):
		return http.StatusForbidden, pages.Result{Kind: pages.ResultSelfApproval, Request: req}
	case errors.Is(err, approval.ErrDelegated):
		return http.StatusConflict, pages.Result{Kind: pages.ResultDelegatedAway, Request: req}
	case errors.Is(err, approval.ErrNoDelegation):
		return http.StatusForbidden, pages.Result{Kind: pages.ResultInvalid, Request: req, Message: "This request does not allow handing your vote to someone else."}
	case errors.Is(err, approval.ErrForbidden): // ErrNotApprover, and any other refusal
		return http.StatusForbidden, pages.Result{Kind: pages.ResultNotApprover, Request: req}
	case errors.Is(err, approval.ErrExpired):
		return http.StatusGone, pages.Result{Kind: pages.ResultExpired, Request: req}
	case errors.Is(err, approval.ErrNotFound):
		return http.StatusNotFound, pages.Result{Kind: pages.ResultNotFound}
	case errors.As(err, &verr):
		return http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: verr.Message}
	case errors.Is(err, approval.ErrConflict):
		// Too many changes of the request at once: nothing was recorded.
		return http.StatusServiceUnavailable, pages.Result{Kind: pages.ResultBusy, Request: req}
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
		key := r.PathValue("page")
		b, err := s.cfg.Pages.Page(r.Context(), key)
		var gone *approval.PageGoneError
		if errors.As(err, &gone) {
			s.writeLate(w, r, gone.RequestID, key)
			return
		}
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

// writeLate answers a late visitor, who opened the page key of request id
// after it was taken down, with what happened to the request: 410, a page
// with no token and nothing that decides.
func (s *server) writeLate(w http.ResponseWriter, r *http.Request, id, key string) {
	noteRequest(r, id)
	req, err := s.cfg.Service.Get(r.Context(), id)
	if err != nil {
		if !errors.Is(err, approval.ErrNotFound) {
			noteErr(r, err)
			s.writeResult(w, r, http.StatusInternalServerError, resultError())
			return
		}
		s.writeResult(w, r, http.StatusNotFound, pages.Result{Kind: pages.ResultNotFound})
		return
	}
	v := pages.Late{Request: req}
	for _, rc := range req.Recipients {
		if rc.PageKey == key {
			v.Vote = req.VoteOf(rc.Identity())
		}
	}
	var buf bytes.Buffer
	if err := pages.RenderLate(&buf, v); err != nil {
		noteErr(r, err)
		s.writeResult(w, r, http.StatusInternalServerError, resultError())
		return
	}
	writeHTML(w, http.StatusGone, buf.Bytes())
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
