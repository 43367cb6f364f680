package slackapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// MaxBody is the largest request body the Slack routes accept. Interaction
// payloads carry the whole message; ours stay far below this.
const MaxBody = 256 << 10

// workTimeout bounds the work a button click does after Slack has its answer.
const workTimeout = 30 * time.Second

// Handler serves Slack's HTTP requests to the app:
//
//	POST /slack/commands      the /approvals slash command
//	POST /slack/interactions  button clicks (block_actions)
//
// Every request must carry a valid v0 signature made with the signing secret
// and a timestamp within five minutes; anything else gets 401 and changes
// nothing. Mount it on the full paths (mux.Handle("/slack/", h)), without
// stripping the prefix.
type Handler struct {
	app    *App
	secret string
	mux    *http.ServeMux
}

// NewHandler returns the HTTP handler of app, verifying requests with
// signingSecret.
func NewHandler(app *App, signingSecret string) *Handler {
	h := &Handler{app: app, secret: signingSecret, mux: http.NewServeMux()}
	h.mux.Handle("POST /slack/commands", h.verified(h.commands))
	h.mux.Handle("POST /slack/interactions", h.verified(h.interactions))
	return h
}

// ServeHTTP routes the request.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	h.mux.ServeHTTP(w, r)
}

// verified checks the signature and the size of the body before next sees the
// request, with the body it read put back in place.
func (h *Handler) verified(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sv, err := slack.NewSecretsVerifier(r.Header, h.secret)
		if err != nil {
			h.refuse(w, r, err)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, "Request body too large.", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "Could not read the request.", http.StatusBadRequest)
			return
		}
		sv.Write(body)
		if err := sv.Ensure(); err != nil {
			h.refuse(w, r, err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next(w, r)
	})
}

func (h *Handler) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, slack.ErrInvalidConfiguration) {
		h.app.log.Error("slack: request refused: no signing secret configured", "path", r.URL.Path)
	} else {
		h.app.log.Warn("slack: request refused: signature not valid", "path", r.URL.Path, "reason", err.Error())
	}
	http.Error(w, "Invalid Slack signature.", http.StatusUnauthorized)
}

func (h *Handler) commands(w http.ResponseWriter, r *http.Request) {
	cmd, err := slack.SlashCommandParse(r)
	if err != nil {
		http.Error(w, "Malformed slash command.", http.StatusBadRequest)
		return
	}
	if r.PostForm.Get("ssl_check") == "1" {
		return // Slack checking the certificate: an empty 200 is the answer
	}
	out := h.app.command(r.Context(), cmd)
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.app.log.Error("slack: write command reply", "err", err)
	}
}

func (h *Handler) interactions(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "Malformed interaction.", http.StatusBadRequest)
		return
	}
	var cb slack.InteractionCallback
	if err := json.Unmarshal([]byte(r.PostForm.Get("payload")), &cb); err != nil {
		http.Error(w, "Malformed interaction payload.", http.StatusBadRequest)
		return
	}
	retried := strings.TrimSpace(r.Header.Get("X-Slack-Retry-Num")) != ""

	// Answer Slack at once: an empty 200 is the whole acknowledgement, so the
	// click never times out while the decision is delivered. The work goes on
	// in this same request (nothing is handed to a goroutine that could be
	// lost), detached from the connection that has already been answered.
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), workTimeout)
	defer cancel()
	h.app.interaction(ctx, cb, retried)
}
