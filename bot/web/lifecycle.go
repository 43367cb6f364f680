package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/pages"
)

// remindersInput is "reminders" of POST /api/requests.
type remindersInput struct {
	EverySeconds        int64   `json:"everySeconds"`
	BeforeExpirySeconds []int64 `json:"beforeExpirySeconds"`
}

// escalationInput is "escalation" of POST /api/requests.
type escalationInput struct {
	AfterSeconds int64             `json:"afterSeconds"`
	Approvers    []string          `json:"approvers"`
	Groups       []EscalationGroup `json:"groups"`
	SlackChannel string            `json:"slackChannel"`
}

// EscalationGroup adds approvers to a group of a request with groups when it
// escalates.
type EscalationGroup struct {
	Name      string   `json:"name"`
	Approvers []string `json:"approvers"`
}

// RemindersJSON is a request's reminders: the schedule asked for, when the
// last round went out and when the next one is due.
type RemindersJSON struct {
	EverySeconds        int64      `json:"everySeconds,omitempty"`
	BeforeExpirySeconds []int64    `json:"beforeExpirySeconds,omitempty"`
	LastAt              *time.Time `json:"lastAt,omitempty"`
	NextAt              *time.Time `json:"nextAt,omitempty"`
}

// EscalationJSON is a request's escalation: when, to whom, where; dueAt
// while it is still to come, escalatedAt once done.
type EscalationJSON struct {
	AfterSeconds int64             `json:"afterSeconds"`
	Approvers    []string          `json:"approvers,omitempty"`
	Groups       []EscalationGroup `json:"groups,omitempty"`
	SlackChannel string            `json:"slackChannel,omitempty"`
	DueAt        *time.Time        `json:"dueAt,omitempty"`
	EscalatedAt  *time.Time        `json:"escalatedAt,omitempty"`
}

// DelegationJSON is one vote handed on: "bob delegated to carol".
type DelegationJSON struct {
	From    string    `json:"from"`
	To      string    `json:"to"`
	At      time.Time `json:"at"`
	Channel string    `json:"channel"` // email (the page) or slack
}

// ExtensionJSON is one change of the expiry: who, when, from and to.
type ExtensionJSON struct {
	By        string    `json:"by"`
	At        time.Time `json:"at"`
	From      time.Time `json:"from"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// extendBody is the body of POST /api/requests/{id}/extend.
type extendBody struct {
	TimeoutSeconds *int64 `json:"timeoutSeconds"`
}

// seconds turns a number of seconds from JSON into a duration, saturating
// far beyond every limit rather than overflowing.
func seconds(n int64) time.Duration {
	const most = int64(10 * approval.MaxTimeout / time.Second)
	return time.Duration(max(min(n, most), -most)) * time.Second
}

// lifecycle sets the timing and hand-off fields of nr from the API body.
func (in *createRequest) lifecycle(nr *approval.NewRequest) {
	nr.OnTimeout = in.OnTimeout
	nr.NoDelegation = in.AllowDelegation != nil && !*in.AllowDelegation
	if m := in.Reminders; m != nil {
		nr.Reminders.Every = seconds(m.EverySeconds)
		for _, b := range m.BeforeExpirySeconds {
			nr.Reminders.BeforeExpiry = append(nr.Reminders.BeforeExpiry, seconds(b))
		}
	}
	if e := in.Escalation; e != nil {
		nr.Escalation = &approval.EscalationInput{After: seconds(e.AfterSeconds), Approvers: e.Approvers, SlackChannel: e.SlackChannel}
		for _, g := range e.Groups {
			nr.Escalation.Groups = append(nr.Escalation.Groups, approval.GroupInput{Name: g.Name, Approvers: g.Approvers})
		}
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// lifecycleJSON sets the timing and hand-off fields of out from r.
func lifecycleJSON(r *approval.Request, out *RequestJSON) {
	out.OnTimeout = string(r.OnTimeout)
	if out.OnTimeout == "" {
		out.OnTimeout = string(approval.TimeoutExpire)
	}
	out.AllowDelegation = !r.NoDelegation
	if m := r.Reminders; !m.IsZero() {
		out.Reminders = &RemindersJSON{
			EverySeconds: int64(m.Every / time.Second), LastAt: timePtr(r.RemindedAt), NextAt: timePtr(r.NextReminder()),
		}
		for _, b := range m.BeforeExpiry {
			out.Reminders.BeforeExpirySeconds = append(out.Reminders.BeforeExpirySeconds, int64(b/time.Second))
		}
	}
	if e := r.Escalation; e != nil {
		out.Escalation = &EscalationJSON{
			AfterSeconds: int64(e.After / time.Second), Approvers: e.Approvers, SlackChannel: e.SlackChannel,
			DueAt: timePtr(r.EscalatesAt()), EscalatedAt: timePtr(e.At),
		}
		for _, g := range e.Groups {
			out.Escalation.Groups = append(out.Escalation.Groups, EscalationGroup{Name: g.Name, Approvers: g.Approvers})
		}
	}
	for _, d := range r.Delegations {
		out.Delegations = append(out.Delegations, DelegationJSON{From: d.From, To: d.To, At: d.At.UTC(), Channel: string(d.Channel)})
	}
	for _, x := range r.Extensions {
		out.Extensions = append(out.Extensions, ExtensionJSON{By: x.By, At: x.At.UTC(), From: x.From.UTC(), ExpiresAt: x.To.UTC()})
	}
}

// apiName is who an API caller is: the configured name of the bearer token,
// or "api".
func (s *server) apiName() string {
	if n := strings.TrimSpace(s.cfg.APIName); n != "" {
		return n
	}
	return DefaultCanceledBy
}

// closedMessage says why a request that is no longer pending cannot be
// canceled or extended.
func closedMessage(r *approval.Request) string {
	switch {
	case r == nil:
		return "the request is no longer pending"
	case r.Decision != nil && r.Status.Decided():
		return fmt.Sprintf("the request was already %s by %s at %s", r.Status, r.Decision.By, r.Decision.At.UTC().Format(time.RFC3339))
	case r.Canceled != nil:
		return fmt.Sprintf("the request was already canceled by %s at %s", r.Canceled.By, r.Canceled.At.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("the request is already %s", r.Status)
}

// answerChange answers a cancel or an extend: the request as it now stands,
// or why not.
func (s *server) answerChange(w http.ResponseWriter, r *http.Request, req *approval.Request, err error) {
	var verr *approval.ValidationError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, requestJSON(req))
	case errors.As(err, &verr):
		field := verr.Field
		if field == "timeout" {
			field = "timeoutSeconds"
		}
		writeJSONError(w, http.StatusBadRequest, field, verr.Message)
	case errors.Is(err, approval.ErrNotFound):
		writeJSONError(w, http.StatusNotFound, "id", "no request has this id")
	case errors.Is(err, approval.ErrAlreadyDecided), errors.Is(err, approval.ErrExpired):
		writeJSONError(w, http.StatusConflict, "", closedMessage(req))
	case errors.Is(err, approval.ErrConflict):
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "", "too many changes of this request at once; try again")
	default:
		noteErr(r, err)
		writeJSONError(w, http.StatusInternalServerError, "", "internal error")
	}
}

// handleExtend answers POST /api/requests/{id}/extend with
// {"timeoutSeconds": N}: the request now expires N seconds from now.
func (s *server) handleExtend() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		var in extendBody
		if status, field, msg := decodeJSON(w, r, &in); status != 0 {
			writeJSONError(w, status, field, msg)
			return
		}
		if in.TimeoutSeconds == nil {
			writeJSONError(w, http.StatusBadRequest, "timeoutSeconds", "timeoutSeconds is required: how long from now the request waits, in seconds")
			return
		}
		req, err := s.cfg.Service.Extend(context.WithoutCancel(r.Context()), id, s.apiName(), seconds(*in.TimeoutSeconds))
		s.answerChange(w, r, req, err)
	})
}

// handleDelegate takes the one-time page's "Delegate to…" form: token and to
// (an email address). Typing an address and pressing the button is the
// confirmation; GET never delegates.
func (s *server) handleDelegate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		if err := r.ParseForm(); err != nil {
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "The form could not be read."})
			return
		}
		token, to := r.PostForm.Get("token"), strings.TrimSpace(r.PostForm.Get("to"))
		if token == "" {
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "The form has no token. Please open the link you were sent again."})
			return
		}
		if to == "" {
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "Please give the email address of the person you hand your vote to."})
			return
		}
		req, err := s.cfg.Service.Delegate(context.WithoutCancel(r.Context()), token, to)
		var verr *approval.ValidationError
		switch {
		case err == nil:
			noteRequest(r, req.ID)
			s.writeResult(w, r, http.StatusOK, pages.Result{Kind: pages.ResultDelegated, Request: req, Delegation: req.DelegationOf(holder(req, token))})
		case errors.As(err, &verr):
			if req != nil {
				noteRequest(r, req.ID)
			}
			s.writeResult(w, r, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Request: req, Message: sentence(verr.Message)})
		default:
			s.writeOutcome(w, r, req, token, err)
		}
	})
}

// sentence makes a core message a sentence for a page: a capital letter and a
// full stop.
func sentence(s string) string {
	if s == "" {
		return s
	}
	s = strings.ToUpper(s[:1]) + s[1:]
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}
