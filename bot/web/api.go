package web

import (
	"bytes"
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
	"reflect"
	"strconv"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// createRequest is the body of POST /api/requests.
type createRequest struct {
	Title          string      `json:"title"`
	Details        string      `json:"details"`
	Approvers      []string    `json:"approvers"`
	Requester      string      `json:"requester"`
	TimeoutSeconds *int64      `json:"timeoutSeconds"`
	Links          []LinkJSON  `json:"links"`
	WebhookURL     string      `json:"webhookURL"`
	SlackChannel   string      `json:"slackChannel"`
	Policy         string      `json:"policy"`
	Groups         []GroupJSON `json:"groups"`
	RejectPolicy   string      `json:"rejectPolicy"`
	// AllowSelfApproval lets the requester approve their own request.
	AllowSelfApproval bool `json:"allowSelfApproval"`
	// Timing and hand-offs (lifecycle.go).
	OnTimeout       string           `json:"onTimeout"`
	Reminders       *remindersInput  `json:"reminders"`
	Escalation      *escalationInput `json:"escalation"`
	AllowDelegation *bool            `json:"allowDelegation"`
}

// DefaultTimeout is the timeout of a request that gives no timeoutSeconds.
const DefaultTimeout = 24 * time.Hour

// LinkJSON is a labelled link shown with a request.
type LinkJSON struct {
	Label string `json:"label"`
	URL   string `json:"url"`
}

// RequestJSON is a request as the API shows it. It never holds a token, a page
// key, the task token or the webhook URL.
type RequestJSON struct {
	ID        string     `json:"id"`
	Status    string     `json:"status"`
	Title     string     `json:"title"`
	Details   string     `json:"details"`
	Requester string     `json:"requester"`
	Approvers []string   `json:"approvers"` // with groups: the members of every group
	Links     []LinkJSON `json:"links"`
	// Policy is the rule of a request without groups: any, all or quorum:N.
	Policy string `json:"policy,omitempty"`
	// Groups replace Policy: every group needs Min approvals of its members.
	Groups       []GroupJSON `json:"groups,omitempty"`
	RejectPolicy string      `json:"rejectPolicy"` // any or impossible
	// AllowSelfApproval is true when the requester may approve their own
	// request.
	AllowSelfApproval bool          `json:"allowSelfApproval"`
	SlackChannel      string        `json:"slackChannel,omitempty"`
	CreatedAt         time.Time     `json:"createdAt"`
	ExpiresAt         time.Time     `json:"expiresAt"`
	Decision          *DecisionJSON `json:"decision,omitempty"`
	// Reason says why a request closed without a decision
	// (notification_failed, workflow_gone, canceled).
	Reason string `json:"reason,omitempty"`
	// Canceled says who withdrew the request, when and why.
	Canceled *CancellationJSON `json:"canceled,omitempty"`
	// Votes are every vote cast, in order.
	Votes    []VoteJSON   `json:"votes"`
	Progress ProgressJSON `json:"progress"`
	// Notifications are the states of the messages that reach the approvers.
	Notifications []NotificationJSON `json:"notifications"`
	// Delivered is true once the outcome reached the webhook (or there is none).
	Delivered bool `json:"delivered"`

	// OnTimeout is what the expiry does while pending: expire, reject or
	// approve.
	OnTimeout string `json:"onTimeout"`
	// Reminders and Escalation are the request's timers, when it has them.
	Reminders  *RemindersJSON  `json:"reminders,omitempty"`
	Escalation *EscalationJSON `json:"escalation,omitempty"`
	// AllowDelegation is true when approvers may hand their vote on.
	AllowDelegation bool `json:"allowDelegation"`
	// Delegations are the votes handed on, in order.
	Delegations []DelegationJSON `json:"delegations,omitempty"`
	// Extensions are the changes of the expiry, in order.
	Extensions []ExtensionJSON `json:"extensions,omitempty"`
}

// CancellationJSON says who withdrew a request, when and why.
type CancellationJSON struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"` // empty when none was given
	At     time.Time `json:"at"`
}

// GroupJSON is one group of approvers of whom at least Min must approve.
type GroupJSON struct {
	Name      string   `json:"name"`
	Approvers []string `json:"approvers"`
	Min       int      `json:"min"`
}

// DecisionJSON is the vote that closed a request: who cast it, how and when.
type DecisionJSON struct {
	Decision string    `json:"decision"` // approved or rejected
	By       string    `json:"by"`
	Channel  string    `json:"channel"`
	Comment  string    `json:"comment"` // empty when there is none
	At       time.Time `json:"at"`
	// ByTimeout is true when the request's onTimeout decided it (By is
	// "timeout", Channel empty).
	ByTimeout bool `json:"byTimeout,omitempty"`
}

// VoteJSON is one person's vote.
type VoteJSON struct {
	// By is the voter: an email address, or a Slack user ID.
	By      string    `json:"by"`
	Channel string    `json:"channel"` // email or slack
	Choice  string    `json:"choice"`  // approve or reject
	Comment string    `json:"comment"` // empty when there is none
	At      time.Time `json:"at"`
	// Groups are the groups the vote counts in (empty without groups).
	Groups []string `json:"groups"`
}

// ProgressJSON is how far a request's votes are from approving it.
type ProgressJSON struct {
	Approvals  int `json:"approvals"`
	Rejections int `json:"rejections"`
	// Needed is how many more approvals the rule needs; Required how many
	// it needs in all.
	Needed   int                 `json:"needed"`
	Required int                 `json:"required"`
	Groups   []GroupProgressJSON `json:"groups,omitempty"`
}

// GroupProgressJSON is the progress of one group: its approvals so far, the
// approvals it needs (its min) and whether it has them.
type GroupProgressJSON struct {
	Name      string `json:"name"`
	Approvals int    `json:"approvals"`
	Needed    int    `json:"needed"`
	Satisfied bool   `json:"satisfied"`
}

// NotificationJSON is the state of one approver's notification (or of the
// channel message).
type NotificationJSON struct {
	To      string `json:"to"`
	Channel string `json:"channel"` // email or slack
	State   string `json:"state"`   // pending, sent, retrying or failed
	Error   string `json:"error,omitempty"`
}

// ListJSON is the answer of GET /api/requests: a page of requests, and the
// cursor of the next page (absent after the last page).
type ListJSON struct {
	Requests   []RequestJSON `json:"requests"`
	NextCursor string        `json:"nextCursor,omitempty"`
}

// ErrorJSON is every API error: a sentence and, for bad input, the field.
type ErrorJSON struct {
	Error string `json:"error"`
	Field string `json:"field,omitempty"`
}

func requestJSON(r *approval.Request) RequestJSON {
	rp := r.Rule.RejectPolicy
	if rp == "" {
		rp = approval.RejectAny
	}
	out := RequestJSON{
		ID:                r.ID,
		Status:            string(r.Status),
		Title:             r.Title,
		Details:           r.Details,
		Requester:         r.Requester,
		Approvers:         append([]string{}, r.Approvers...),
		Links:             []LinkJSON{},
		RejectPolicy:      string(rp),
		AllowSelfApproval: r.Rule.AllowSelfApproval,
		SlackChannel:      r.SlackChannel,
		CreatedAt:         r.CreatedAt.UTC(),
		ExpiresAt:         r.ExpiresAt.UTC(),
		Reason:            r.Reason,
		Votes:             []VoteJSON{},
		Notifications:     []NotificationJSON{},
		Delivered:         r.Delivered(),
	}
	if len(r.Rule.Groups) > 0 {
		for _, g := range r.Rule.Groups {
			out.Groups = append(out.Groups, GroupJSON{Name: g.Name, Approvers: append([]string{}, g.Approvers...), Min: g.Min})
		}
	} else {
		out.Policy = string(r.Rule.Policy)
		if out.Policy == "" {
			out.Policy = string(approval.PolicyAny)
		}
	}
	for _, l := range r.Links {
		out.Links = append(out.Links, LinkJSON(l))
	}
	for _, v := range r.Votes {
		out.Votes = append(out.Votes, VoteJSON{
			By: v.By, Channel: string(v.Channel), Choice: string(v.Choice), Comment: v.Comment, At: v.At.UTC(),
			Groups: append([]string{}, v.Groups...),
		})
	}
	p := r.Tally()
	out.Progress = ProgressJSON{Approvals: p.Approvals, Rejections: p.Rejections, Needed: p.Needed, Required: p.Required}
	for _, g := range p.Groups {
		out.Progress.Groups = append(out.Progress.Groups, GroupProgressJSON(g))
	}
	for _, n := range r.Notifications() {
		out.Notifications = append(out.Notifications, NotificationJSON{To: n.To, Channel: string(n.Channel), State: n.State, Error: n.Error})
	}
	if c := r.Canceled; c != nil {
		out.Canceled = &CancellationJSON{By: c.By, Reason: c.Reason, At: c.At.UTC()}
	}
	if d := r.Decision; d != nil {
		out.Decision = &DecisionJSON{
			Decision:  string(d.Choice.Status()),
			By:        d.By,
			Channel:   string(d.Channel),
			Comment:   d.Comment,
			At:        d.At.UTC(),
			ByTimeout: d.ByTimeout(),
		}
	}
	lifecycleJSON(r, &out)
	return out
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// api guards an API route with the bearer token, when one is configured.
func (s *server) api(next http.Handler) http.Handler {
	want := []byte(s.cfg.APIToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.APIToken != "" && subtle.ConstantTimeCompare([]byte(bearerToken(r.Header.Get("Authorization"))), want) != 1 {
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

// bearerToken is the token of an Authorization header of the Bearer scheme,
// whose name is case-insensitive (RFC 7235), or "".
func bearerToken(h string) string {
	scheme, token, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimLeft(token, " ")
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
			Title:             in.Title,
			Details:           in.Details,
			Requester:         in.Requester,
			Approvers:         in.Approvers,
			Timeout:           DefaultTimeout,
			Policy:            in.Policy,
			RejectPolicy:      in.RejectPolicy,
			AllowSelfApproval: in.AllowSelfApproval,
			SlackChannel:      in.SlackChannel,
			WebhookURL:        in.WebhookURL,
		}
		for _, g := range in.Groups {
			nr.Groups = append(nr.Groups, approval.GroupInput{Name: g.Name, Approvers: g.Approvers, Min: g.Min})
		}
		in.lifecycle(&nr)
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
		id, ok := pathID(w, r)
		if !ok {
			return
		}
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

// Limits of GET /api/requests?limit=.
const (
	DefaultListLimit = 50
	MaxListLimit     = 200
)

// handleList answers GET /api/requests?status=S&limit=N&cursor=C with a page
// of requests, newest first, and the cursor of the next page. status is
// pending (the default), approved, rejected, expired, canceled or closed;
// approver=, requester=, since= and until= filter.
func (s *server) handleList() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, field, msg := parseListQuery(r.URL.Query())
		if msg != "" {
			writeJSONError(w, http.StatusBadRequest, field, msg)
			return
		}
		reqs, next, err := s.cfg.Service.List(r.Context(), q)
		var verr *approval.ValidationError
		switch {
		case errors.As(err, &verr):
			writeJSONError(w, http.StatusBadRequest, verr.Field, verr.Message)
			return
		case err != nil:
			if r.Context().Err() != nil {
				return // the caller left
			}
			noteErr(r, err)
			writeJSONError(w, http.StatusInternalServerError, "", "internal error")
			return
		}
		out := ListJSON{Requests: make([]RequestJSON, 0, len(reqs)), NextCursor: next}
		for _, req := range reqs {
			out.Requests = append(out.Requests, requestJSON(req))
		}
		writeJSON(w, http.StatusOK, out)
	})
}

// parseListQuery reads the parameters of GET /api/requests; on bad input it
// returns the field and the message.
func parseListQuery(v url.Values) (q approval.Query, field, msg string) {
	st, err := approval.ParseListStatus(v.Get("status"))
	if err != nil {
		return q, "status", err.Error()
	}
	q = approval.Query{
		Status: st, Cursor: v.Get("cursor"), Limit: DefaultListLimit,
		Requester: strings.TrimSpace(v.Get("requester")),
		Approver:  approval.Identity{ID: strings.TrimSpace(v.Get("approver"))},
	}
	if l := v.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > MaxListLimit {
			return q, "limit", fmt.Sprintf("limit must be a whole number from 1 to %d, got %q", MaxListLimit, l)
		}
		q.Limit = n
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"until", &q.Until}} {
		if raw := v.Get(t.name); raw != "" {
			at, err := ParseTime(raw)
			if err != nil {
				return q, t.name, fmt.Sprintf("%s must be a time such as 2026-11-25T14:00:00Z or a date such as 2026-11-25, got %q", t.name, raw)
			}
			*t.dst = at
		}
	}
	if err := q.Check(); err != nil {
		var verr *approval.ValidationError
		if errors.As(err, &verr) {
			return q, verr.Field, verr.Message
		}
		return q, "", err.Error()
	}
	return q, "", ""
}

// ParseTime reads a time of the API's query parameters: RFC 3339
// (2026-11-25T14:00:00Z), or a date (2026-11-25, midnight UTC).
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("time %q: want RFC 3339 or YYYY-MM-DD", s)
	}
	return t, nil
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err == nil {
		err = DecodeJSON(body, v)
	}
	var (
		tooBig  *http.MaxBytesError
		typeErr *json.UnmarshalTypeError
		synErr  *json.SyntaxError
		nameErr *FieldNameError
	)
	switch {
	case err == nil:
		return 0, "", ""
	case errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, "", "the body is larger than 64 KiB"
	case errors.Is(err, io.EOF):
		return http.StatusBadRequest, "", "the body is empty; send a JSON object"
	case errors.As(err, &nameErr):
		return http.StatusBadRequest, nameErr.Path, nameErr.Error()
	case errors.As(err, &typeErr):
		return http.StatusBadRequest, typeErr.Field, TypeErrorText(typeErr, "the body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name, _ := strconv.Unquote(strings.TrimPrefix(err.Error(), "json: unknown field "))
		return http.StatusBadRequest, name, fmt.Sprintf("unknown field %q", name)
	case errors.As(err, &synErr), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest, "", "the body is not valid JSON"
	}
	return http.StatusBadRequest, "", "the body must be one JSON object"
}

// errTrailing is the error of a JSON document followed by more data.
var errTrailing = errors.New("trailing data after the JSON value")

// DecodeJSON decodes the one JSON value in data into v, refusing unknown
// fields, field names that match only ignoring case (see CheckFieldNames)
// and anything after the value. An empty data is io.EOF.
func DecodeJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errTrailing
	}
	return CheckFieldNames(data, v)
}

// TypeErrorText says in words what is wrong with a JSON value of the wrong
// type: "timeoutSeconds must be a whole number, not 60.5", "groups must be
// an array, not an object". whole names the document, for a top-level value
// of the wrong type ("the body must be a JSON object, not an array").
func TypeErrorText(e *json.UnmarshalTypeError, whole string) string {
	field := e.Field
	if field == "" {
		field = whole
	}
	return fmt.Sprintf("%s must be %s, not %s", field, jsonKind(e.Type), jsonValue(e.Value))
}

// jsonKind names what a Go type takes in JSON.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "a JSON object"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number of at least 0"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a JSON " + t.Kind().String()
}

// jsonValue names a JSON value as encoding/json describes it in an
// UnmarshalTypeError ("string", "number 60.5", "array", ...).
func jsonValue(v string) string {
	if n, ok := strings.CutPrefix(v, "number "); ok {
		return n
	}
	switch v {
	case "array", "object":
		return "an " + v
	case "bool":
		return "a boolean"
	case "":
		return "this value"
	}
	return "a " + v
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
