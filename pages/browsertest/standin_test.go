package browsertest

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/memory"
	"approvalbot/pages"
)

// standIn is a minimal bot (the core over in-memory adapters, with the page,
// /decide and API routes) used until the real HTTP handler exists.
type standIn struct {
	srv    *httptest.Server
	svc    *approval.Service
	pages  *memory.Pages
	mailer *memory.Mailer
}

func startStandIn(t *testing.T) bot {
	t.Helper()
	b := &standIn{mailer: memory.NewMailer()}
	mux := http.NewServeMux()
	b.srv = httptest.NewServer(mux)
	t.Cleanup(b.srv.Close)
	b.pages = memory.NewPages(b.srv.URL)
	b.svc = &approval.Service{
		Store:     memory.NewStore(),
		Pages:     b.pages,
		Renderer:  pages.Renderer{},
		Mailer:    b.mailer,
		DecideURL: b.srv.URL + "/decide",
	}
	mux.HandleFunc("GET /p/{key}", b.page)
	mux.HandleFunc("POST /decide", b.decide)
	mux.HandleFunc("POST /api/requests", b.create)
	mux.HandleFunc("GET /api/requests/{id}", b.get)
	return b
}

func (b *standIn) Origin() string { return b.srv.URL }

func (b *standIn) Links(t *testing.T, approvers []string) []string {
	t.Helper()
	var links []string
	for _, a := range approvers {
		for _, m := range b.mailer.Sent() {
			if i := strings.Index(m.Text, b.srv.URL+"/p/"); m.To == a && i >= 0 {
				links = append(links, strings.Fields(m.Text[i:])[0])
			}
		}
	}
	if len(links) != len(approvers) {
		t.Fatalf("found %d page links for %v, want %d", len(links), approvers, len(approvers))
	}
	return links
}

func headers(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
}

func (b *standIn) page(w http.ResponseWriter, r *http.Request) {
	html, ok := b.pages.Get(r.PathValue("key"))
	if !ok {
		b.result(w, http.StatusNotFound, pages.Result{Kind: pages.ResultNotFound})
		return
	}
	headers(w, pages.PageCSP(b.svc.DecideURL))
	w.Write(html)
}

func (b *standIn) result(w http.ResponseWriter, status int, v pages.Result) {
	headers(w, pages.ResultCSP(""))
	w.WriteHeader(status)
	pages.RenderResult(w, v)
}

func (b *standIn) decide(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		b.result(w, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: "The form could not be read."})
		return
	}
	token, comment := r.PostFormValue("token"), r.PostFormValue("comment")
	choice, err := approval.ParseChoice(r.PostFormValue("decision"))
	if err != nil {
		b.result(w, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: err.Error()})
		return
	}
	if r.PostFormValue("confirmed") != "1" {
		req, err := b.svc.Lookup(r.Context(), token)
		if err != nil {
			b.fail(w, req, err)
			return
		}
		headers(w, pages.ResultCSP(b.svc.DecideURL))
		pages.RenderConfirm(w, pages.Confirm{Request: req, Token: token, Choice: choice, Comment: comment, DecideURL: b.svc.DecideURL})
		return
	}
	req, err := b.svc.Decide(r.Context(), approval.DecideInput{Token: token, Choice: choice, Comment: comment})
	if err != nil {
		b.fail(w, req, err)
		return
	}
	kind := pages.ResultApproved
	if choice == approval.Reject {
		kind = pages.ResultRejected
	}
	b.result(w, http.StatusOK, pages.Result{Kind: kind, Request: req})
}

func (b *standIn) fail(w http.ResponseWriter, req *approval.Request, err error) {
	var ve *approval.ValidationError
	switch {
	case errors.Is(err, approval.ErrNotFound):
		b.result(w, http.StatusNotFound, pages.Result{Kind: pages.ResultNotFound})
	case errors.Is(err, approval.ErrAlreadyDecided):
		b.result(w, http.StatusConflict, pages.Result{Kind: pages.ResultAlreadyDecided, Request: req})
	case errors.Is(err, approval.ErrExpired):
		b.result(w, http.StatusGone, pages.Result{Kind: pages.ResultExpired, Request: req})
	case errors.As(err, &ve):
		b.result(w, http.StatusBadRequest, pages.Result{Kind: pages.ResultInvalid, Message: ve.Message})
	default:
		b.result(w, http.StatusInternalServerError, pages.Result{Kind: pages.ResultError})
	}
}

func (b *standIn) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Title          string          `json:"title"`
		Details        string          `json:"details"`
		Requester      string          `json:"requester"`
		Approvers      []string        `json:"approvers"`
		TimeoutSeconds int             `json:"timeoutSeconds"`
		Links          []approval.Link `json:"links"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req, _, err := b.svc.Create(r.Context(), approval.NewRequest{
		Title: in.Title, Details: in.Details, Requester: in.Requester, Approvers: in.Approvers,
		Links: in.Links, Timeout: time.Duration(in.TimeoutSeconds) * time.Second,
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(apiView(req))
}

func (b *standIn) get(w http.ResponseWriter, r *http.Request) {
	req, err := b.svc.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	json.NewEncoder(w).Encode(apiView(req))
}

func apiView(r *approval.Request) map[string]any {
	v := map[string]any{"id": r.ID, "status": r.Status, "expiresAt": r.ExpiresAt}
	if d := r.Decision; d != nil {
		v["decision"] = map[string]any{"decision": r.Status, "by": d.By, "channel": d.Channel, "comment": d.Comment, "at": d.At}
	}
	return v
}

// previewRequest is the request shown on the preview result pages.
func previewRequest(kind pages.ResultKind) *approval.Request {
	now := time.Now().UTC().Truncate(time.Minute)
	r := &approval.Request{
		ID: "previewpreview22", Title: title, Requester: "ci@example.com",
		Approvers: []string{"alice@example.com"}, Status: approval.StatusExpired,
		CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour),
	}
	if kind == pages.ResultGone {
		r.Decision = &approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: now}
	}
	return r
}
