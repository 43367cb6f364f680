package web

import (
	"context"
	"errors"
	"net/http"

	"approvalbot/bot/approval"
)

// CancelJSON is the body of POST /api/requests/{id}/cancel. The body is
// optional: without one, nobody says why and the caller is recorded under the
// API token's configured name (Config.APIName), or DefaultCanceledBy.
type CancelJSON struct {
	// Reason says why the request is withdrawn (at most 500 characters).
	Reason string `json:"reason,omitempty"`
	// By names who cancels, as the API caller knows them (a person, a
	// pipeline, an agent); the bearer token names nobody.
	By string `json:"by,omitempty"`
}

// DefaultCanceledBy is who cancels or extends a request through the API when
// neither the call nor the configuration (Config.APIName) names anybody.
const DefaultCanceledBy = "api"

// pathID reads the request ID of an /api/requests/{id} route, notes it for the
// log, and answers 404 itself when it is no request ID.
func pathID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !approval.ValidID(id) {
		writeJSONError(w, http.StatusNotFound, "id", "no request has this id")
		return "", false
	}
	noteRequest(r, id)
	return id, true
}

// handleCancel answers POST /api/requests/{id}/cancel: 200 with the canceled
// request, 409 when it is already closed, 404 when there is no such request.
func (s *server) handleCancel() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := pathID(w, r)
		if !ok {
			return
		}
		var in CancelJSON
		if r.ContentLength != 0 {
			if status, field, msg := decodeJSON(w, r, &in); status != 0 {
				writeJSONError(w, status, field, msg)
				return
			}
		}
		if in.By == "" {
			in.By = s.apiName()
		}
		// Detached from the connection, like a decision: once asked, the
		// cancellation is stored and announced whole.
		req, err := s.cfg.Service.Cancel(context.WithoutCancel(r.Context()), id, in.By, in.Reason)
		var verr *approval.ValidationError
		switch {
		case errors.As(err, &verr):
			writeJSONError(w, http.StatusBadRequest, verr.Field, verr.Message)
		case errors.Is(err, approval.ErrNotFound):
			writeJSONError(w, http.StatusNotFound, "id", "no request has this id")
		case (errors.Is(err, approval.ErrAlreadyDecided) || errors.Is(err, approval.ErrExpired)) && req != nil:
			writeJSONError(w, http.StatusConflict, "", closedMessage(req)+"; only a pending request can be canceled")
		case errors.Is(err, approval.ErrConflict):
			w.Header().Set("Retry-After", "1")
			writeJSONError(w, http.StatusServiceUnavailable, "", "too many changes of this request at once; try again")
		case err != nil:
			noteErr(r, err)
			writeJSONError(w, http.StatusInternalServerError, "", "internal error")
		default:
			writeJSON(w, http.StatusOK, requestJSON(req))
		}
	})
}
