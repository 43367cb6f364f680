package web

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// createRequest is the body of POST /api/requests.
type createRequest struct {
	Title          string     `json:"title"`
	Details        string     `json:"details"`
	Approvers      []string   `json:"approvers"`
	Requester      string     `json:"requester"`
	TimeoutSeconds *int64     `json:"timeoutSeconds"`
	Links          []linkJSON `json:"links"`
	WebhookURL     string     `json:"webhookURL"`
	SlackChannel   string     `json:"slackChannel"`
	Policy         string     `json:"policy"`
}

// DefaultTimeout is the timeout of a request that gives no timeoutSeconds.
const DefaultTimeout = 24 * time.Hour

type linkJSON struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// RequestJSON is a request as the API shows it. It never holds a token, a page
// key, the task token or the webhook URL.
type RequestJSON struct {
	ID           string        `json:"id"`
	Status       string        `json:"status"`
	Title        string        `json:"title"`
	Details      string        `json:"details"`
	Requester    string        `json:"requester"`
	Approvers    []string      `json:"approvers"`
	Links        []linkJSON    `json:"links"`
	Policy       string        `json:"policy"`
	SlackChannel string        `json:"slackChannel,omitempty"`
	CreatedAt    time.Time     `json:"createdAt"`
	ExpiresAt    time.Time     `json:"expiresAt"`
	Decision     *DecisionJSON `json:"decision,omitempty"`
	// Delivered is true once the outcome reached the webhook (or there is none).
	Delivered bool `json:"delivered"`
}

// DecisionJSON is who decided a request, how and when.
type DecisionJSON struct {
	Decision string    `json:"decision"` // approved or rejected
	By       string    `json:"by"`
	Channel  string    `json:"channel"`
	Comment  string    `json:"comment,omitempty"`
	At       time.Time `json:"at"`
}

// ListJSON is the answer of GET /api/requests.
type ListJSON struct {
	Requests []RequestJSON `json:"requests"`
}

// ErrorJSON is every API error: a sentence and, for bad input, the field.
type ErrorJSON struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func requestJSON(r *approval.Request) RequestJSON {
	out := RequestJSON{
		ID:           r.ID,
		Status:       string(r.Status),
		Title:        r.Title,
		Details:      r.Details,
		Requester:    r.Requester,
		Approvers:    append([]string{}, r.Approvers...),
		Links:        []linkJSON{},
		Policy:       string(r.Policy),
		SlackChannel: r.SlackChannel,
		CreatedAt:    r.CreatedAt.UTC(),
		ExpiresAt:    r.ExpiresAt.UTC(),
		Delivered:    r.Delivered,
	}
	for _, l := range r.Links {
		out.Links = append(out.Links, linkJSON(l))
	}
	if d := r.Decision; d != nil {
		out.Decision = &DecisionJSON{
			Decision: string(d.Choice.Status()),
			By:       d.By,
			Channel:  string(d.Channel),
			Comment:  d.Comment,
			At:       d.At.UTC(),
		}
	}
	return out
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// api guards an API route with the bearer token, when one is configured.
func (s *server) api(next http.Handler) http.Handler {
	want := []byte("Bearer " + s.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.APIToken != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="approvalbot"`)
			writeJSONError(w, http.StatusUnauthorized, "", "this API needs the bearer token set in APPROVALBOT_API_TOKEN")
			return
		}
		if s.cfg.APIToken == "" && !s.ownHost(r.Host) {
			writeJSONError(w, http.StatusForbidden, "", "without APPROVALBOT_API_TOKEN this API answers only at the bot's own address, an IP address or localhost")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ownHost reports whether host (a Host header) names the bot itself: the host
// of its base URL, an IP address or localhost. Any other name may be a
// stranger's domain pointed at the bot (DNS rebinding), through which a web
// page could call an API that has no token.
func (s *server) ownHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(host, "[]"), ".")
	if net.ParseIP(host) != nil || strings.EqualFold(host, "localhost") {
		return true
	}
	if u, err := url.Parse(s.decideURL); err == nil && u.Hostname() != "" {
		return strings.EqualFold(host, u.Hostname())
	}
	return false
}

func (s *server) handleCreate() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in createRequest
		if status, field, msg := decodeJSON(w, r, &in); status != 0 {
			writeJSONError(w, status, field, msg)
			return
		}
		nr := approval.NewRequest{
			Title:        in.Title,
			Details:      in.Details,
			Requester:    in.Requester,
			Approvers:    in.Approvers,
			Timeout:      DefaultTimeout,
			Policy:       in.Policy,
			SlackChannel: in.SlackChannel,
			WebhookURL:   in.WebhookURL,
		}
		if ts := in.TimeoutSeconds; ts != nil {
			if *ts < int64(approval.MinTimeout/time.Second) || *ts > int64(approval.MaxTimeout/time.Second) {
				writeJSONError(w, http.StatusBadRequest, "timeoutSeconds", fmt.Sprintf(
					"timeoutSeconds must be between %d (1 minute) and %d (30 days), got %d",
					int64(approval.MinTimeout/time.Second), int64(approval.MaxTimeout/time.Second), *ts))
				return
			}
			nr.Timeout = time.Duration(*ts) * time.Second
		}
		for _, l := range in.Links {
			nr.Links = append(nr.Links, approval.Link(l))
		}
		// Detached from the connection, like a decision: a request is stored
		// and announced whole even if the caller leaves or the server stops.
		req, _, err := s.cfg.Service.Create(context.WithoutCancel(r.Context()), nr)
		var verr *approval.ValidationError
		switch {
		case errors.As(err, &verr):
			field := verr.Field
			if field == "timeout" {
				field = "timeoutSeconds"
			}
			writeJSONError(w, http.StatusBadRequest, field, verr.Message)
			return
		case req == nil:
			noteErr(r, err)
			writeJSONError(w, http.StatusInternalServerError, "", "the request could not be created; see the server log")
			return
		case err != nil:
			// Stored, but someone was not notified: the service logged whom.
			noteErr(r, err)
		}
		noteRequest(r, req.ID)
		w.Header().Set("Location", "/api/requests/"+req.ID)
		writeJSON(w, http.StatusCreated, requestJSON(req))
	})
}

func (s *server) handleGet() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if !approval.ValidID(id) {
			writeJSONError(w, http.StatusNotFound, "id", "no request has this id")
			return
		}
		noteRequest(r, id)
		wait, err := parseWait(r.URL.Query().Get("wait"), s.cfg.MaxWait)
		if err != nil {
			writeJSONError(w, http.StatusBadRequest, "wait", err.Error())
			return
		}
		var req *approval.Request
		if wait > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), wait)
			req, err = s.cfg.Service.Wait(ctx, id)
			cancel()
			if err != nil && ctx.Err() != nil {
				// Waited long enough, or the server is shutting down: answer
				// with the request as it stands, reading it once more if the
				// wait ended in the middle of a read.
				if req == nil {
					req, err = s.cfg.Service.Get(context.WithoutCancel(r.Context()), id)
				} else {
					err = nil
				}
			}
		} else {
			req, err = s.cfg.Service.Get(r.Context(), id)
		}
		switch {
		case errors.Is(err, approval.ErrNotFound):
			writeJSONError(w, http.StatusNotFound, "id", "no request has this id")
		case err != nil:
			if r.Context().Err() != nil {
				return // the caller left
			}
			noteErr(r, err)
			writeJSONError(w, http.StatusInternalServerError, "", "internal error")
		default:
			writeJSON(w, http.StatusOK, requestJSON(req))
		}
	})
}

// parseWait reads ?wait= as a Go duration ("30s", "2m") or a number of seconds,
// capped at max.
func parseWait(v string, max time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseFloat(v, 64)
		if nerr != nil {
			return 0, fmt.Errorf("wait must be a duration such as 30s, got %q", v)
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d < 0 {
		return 0, fmt.Errorf("wait must not be negative")
	}
	return min(d, max), nil
}

func (s *server) handleList() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if st := q.Get("status"); st != "" && st != string(approval.StatusPending) {
			writeJSONError(w, http.StatusBadRequest, "status", fmt.Sprintf("status %q is not supported: only status=pending is", st))
			return
		}
		all, err := s.cfg.Service.ListPending(r.Context())
		if err != nil {
			noteErr(r, err)
			writeJSONError(w, http.StatusInternalServerError, "", "internal error")
			return
		}
		out := ListJSON{Requests: make([]RequestJSON, 0, len(all))}
		for _, req := range all {
			out.Requests = append(out.Requests, requestJSON(req))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

func (s *server) apiMethodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeJSONError(w, http.StatusMethodNotAllowed, "", fmt.Sprintf("method %s is not allowed here; allowed: %s", r.Method, allow))
	})
}

func (s *server) apiNotFound() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "", "no such API route; see /api/requests")
	})
}

// decodeJSON reads one JSON object of at most MaxBody bytes into v, refusing
// unknown fields. On failure it returns the status, field and message to answer.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) (status int, field, msg string) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return http.StatusUnsupportedMediaType, "", "the body must be JSON, with Content-Type: application/json"
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("trailing data")
	}
	if err == nil {
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("trailing data")
		}
	}
	var (
		tooBig  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
	)
	switch {
	case err == nil:
		return 0, "", ""
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, "", "the body is larger than 64 KiB"
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "", "the body is empty; send a JSON object"
	case errors.As(err, &typeErr):
		return http.StatusBadRequest, typeErr.Field, fmt.Sprintf("%s must be a JSON %s, not %s", typeErr.Field, jsonKind(typeErr.Type.Kind().String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return http.StatusBadRequest, name, fmt.Sprintf("unknown field %q", name)
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "", "the body is not valid JSON"
	}
	return http.StatusBadRequest, "", "the body must be one JSON object"
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	case "bool":
		return "boolean"
	}
	return "number"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, status int, field, msg string) {
	writeJSON(w, status, ErrorJSON{Error: msg, Field: field})
}
