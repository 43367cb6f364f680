package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

// The fuzz targets of the HTTP surface. Each execution gets a fresh
// in-memory service (synchronous, so that nothing outlives it) whose renderer
// only remembers the tokens: the renderers have fuzz targets of their own
// (package pages). Run them with scripts/fuzz.

// tokenRenderer is a renderer that keeps each recipient's token.
type tokenRenderer struct {
	mu     sync.Mutex
	tokens map[string]string // address -> token
}

func (r *tokenRenderer) Page(v approval.PageView) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[v.Recipient.Address] = v.Token
	return []byte("<p>page</p>"), nil
}

func (r *tokenRenderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{To: v.Recipient.Address, Subject: "s", Text: "t", HTML: "h"}, nil
}

// fuzzService is a fresh synchronous service on the in-memory adapters.
func fuzzService() (*approval.Service, *tokenRenderer) {
	rend := &tokenRenderer{tokens: map[string]string{}}
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	return &approval.Service{
		Store: memory.NewStore(), Pages: memory.NewPages(base), Renderer: rend, Mailer: memory.NewMailer(),
		Workflow: memory.NewWorkflow(), DecideURL: base + "/decide", Now: func() time.Time { return now }, Sync: true,
	}, rend
}

// checkVotes fails unless every vote on the stored request is by one of its
// approvers, once per person.
func checkVotes(t *testing.T, svc *approval.Service, id string) {
	t.Helper()
	r, err := svc.Store.GetRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, v := range r.Votes {
		if !r.IsApprover(v.By) || seen[strings.ToLower(v.By)] {
			t.Fatalf("vote %+v: not an approver, or a second vote; votes %+v", v, r.Votes)
		}
		seen[strings.ToLower(v.By)] = true
	}
}

// FuzzDecideForm posts arbitrary forms to /decide, where "TOKEN" in the body
// stands for alice's real token. No form gets a 5xx, and no vote is recorded
// but an approver's.
func FuzzDecideForm(f *testing.F) {
	for _, seed := range []string{
		"token=TOKEN&decision=approve&confirmed=1",
		"token=TOKEN&decision=reject&comment=not+now&confirmed=1",
		"token=TOKEN&decision=approve&comment=line%0D%0Aline",
		"token=TOKEN&decision=approve&comment=%1B%5B2J&confirmed=1",
		"token=TOKEN&decision=REJECT&confirmed=1&confirmed=0",
		"token=TOKEN.x&decision=approve&confirmed=1",
		"token=abcdefghijklmnop.xyz&decision=approve&confirmed=1",
		"token=&decision=approve",
		"token=TOKEN&decision=maybe",
		"token=%ZZ",
		"decision=approve&confirmed=1&comment=" + strings.Repeat("x", 2001),
	} {
		f.Add(seed, "application/x-www-form-urlencoded")
	}
	f.Add("--b\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\nTOKEN\r\n--b--\r\n", "multipart/form-data; boundary=b")
	f.Fuzz(func(t *testing.T, body, contentType string) {
		svc, rend := fuzzService()
		r, _, err := svc.Create(context.Background(), approval.NewRequest{
			Title: "T", Requester: "ci", Approvers: []string{"alice@example.com", "bob@example.com"},
			Timeout: time.Hour, Policy: "all",
		})
		if err != nil {
			t.Fatal(err)
		}
		h := New(Config{Service: svc})
		body = strings.ReplaceAll(body, "TOKEN", rend.tokens["alice@example.com"])
		req := httptest.NewRequest("POST", "/decide", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 200, 400, 403, 404, 409, 410, 413:
		default:
			t.Fatalf("status %d for %q:\n%s", w.Code, body, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Fatalf("Content-Type %q", ct)
		}
		checkVotes(t, svc, r.ID)
	})
}

// FuzzCreateRequest posts arbitrary bodies to POST /api/requests. Nothing
// gets a 5xx; every refusal is a sentence (never starting with a missing
// field name); whatever is stored passes the text checks.
func FuzzCreateRequest(f *testing.F) {
	for _, seed := range []string{
		`{"title":"Deploy","approvers":["alice@example.com"],"timeoutSeconds":600}`,
		`{"title":"Deploy","details":"line\nline\ttab","requester":"ci","approvers":["alice@example.com","U0BOB00001"],"timeoutSeconds":600,"links":[{"label":"diff","url":"https://example.com/a|b"}],"webhookURL":"https://hooks.example.com/x","policy":"quorum:2","rejectPolicy":"impossible","allowSelfApproval":true}`,
		`{"title":"T","timeoutSeconds":600,"groups":[{"name":"eng","approvers":["a@example.com","b@example.com"],"min":2},{"name":"sec","approvers":["U0SEC00001"]}]}`,
		`{"TITLE":"T","approvers":["a@example.com"]}`,
		`{"title":"Approve \u202egnp.exe","approvers":["a@example.com"]}`,
		`{"title":"T","approvers":["a@example.com"],"timeoutSeconds":60.5}`,
		`{"title":"T","approvers":"a@example.com"}`,
		`{"title":"T","approvers":["a@example.com"],"slackChannel":"C0123456789"}`,
		`[]`, `"x"`, `{}`, `{"title":"T"} {}`, `{"links":[{"URL":"x"}]}`, `{"groups":[{"Name":"x"}]}`,
	} {
		f.Add(seed, "application/json")
	}
	f.Fuzz(func(t *testing.T, body, contentType string) {
		svc, _ := fuzzService()
		h := New(Config{Service: svc})
		req := httptest.NewRequest("POST", "/api/requests", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		switch w.Code {
		case 201:
			var got RequestJSON
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("201 with %q: %v", w.Body, err)
			}
			r, err := svc.Store.GetRequest(context.Background(), got.ID)
			if err != nil {
				t.Fatal(err)
			}
			type text struct {
				field, s string
				lines    bool
			}
			texts := []text{{"title", r.Title, false}, {"details", r.Details, true}, {"requester", r.Requester, false}}
			for _, a := range r.Approvers {
				if len(a) > approval.MaxAddress {
					t.Fatalf("stored an approver of %d bytes", len(a))
				}
				texts = append(texts, text{"approvers", a, false})
			}
			for _, l := range r.Links {
				texts = append(texts, text{"links", l.Label, false}, text{"links", l.URL, false})
			}
			for _, tx := range texts {
				if err := approval.CheckText(tx.field, tx.s, tx.lines); err != nil {
					t.Fatalf("stored %s %q: %v", tx.field, tx.s, err)
				}
			}
		case 400, 413, 415:
			var e ErrorJSON
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("status %d with %q (%v), want an error sentence", w.Code, w.Body, err)
			}
			if strings.HasPrefix(e.Error, " ") || strings.Contains(e.Error, "number, not number") {
				t.Fatalf("error sentence %q", e.Error)
			}
		default:
			t.Fatalf("status %d for %q:\n%s", w.Code, body, w.Body)
		}
	})
}

// FuzzDecodeJSON checks DecodeJSON against encoding/json: it accepts only
// what a strict decode accepts, and then exactly the keys that name fields.
func FuzzDecodeJSON(f *testing.F) {
	f.Add(`{"title":"T","links":[{"label":"l","url":"u"}],"groups":[{"name":"n","approvers":["a"],"min":1}]}`)
	f.Add(`{"Title":"T"}`)
	f.Add(`{"links":[{"Url":"u"}]}`)
	f.Fuzz(func(t *testing.T, body string) {
		var strict createRequest
		err := DecodeJSON([]byte(body), &strict)
		var loose createRequest
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		lerr := dec.Decode(&loose)
		if err == nil && lerr != nil {
			t.Fatalf("DecodeJSON accepted %q, encoding/json refused it: %v", body, lerr)
		}
		var nameErr *FieldNameError
		if errors.As(err, &nameErr) && (lerr != nil || nameErr.Path == "") {
			t.Fatalf("FieldNameError %v for %q that encoding/json refuses (%v)", err, body, lerr)
		}
		if err == nil {
			_, terr := dec.Token()
			if terr != io.EOF {
				t.Fatalf("DecodeJSON accepted trailing data in %q", body)
			}
		}
	})
}
