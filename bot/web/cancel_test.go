package web

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

// POST /api/requests/{id}/cancel withdraws a pending request, recording who
// and why; a closed request answers 409, an unknown one 404.
func TestAPICancel(t *testing.T) {
	f := newFixture(t)
	r, tokens := f.create(withWebhook)
	f.clock.Add(time.Minute)
	resp := f.do("POST", "/api/requests/"+r.ID+"/cancel", strings.NewReader(`{"reason":"no longer needed","by":"ci"}`), "Content-Type", "application/json")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("cancel: status %d, want 200: %s", resp.StatusCode, readBody(t, resp))
	}
	got := decode[RequestJSON](t, resp)
	want := &CancellationJSON{By: "ci", Reason: "no longer needed", At: f.clock.Now()}
	if got.Status != "canceled" || got.Reason != approval.ReasonCanceled || !cmp.Equal(got.Canceled, want) {
		t.Errorf("canceled request: status %q, reason %q, canceled %+v; want canceled by ci with the reason", got.Status, got.Reason, got.Canceled)
	}
	f.idle()
	if got := f.workflow.Delivered(); len(got) != 1 || got[0].Decision != "canceled" || got[0].CanceledBy != "ci" {
		t.Errorf("the workflow got %+v, want one canceled outcome", got)
	}
	if resp := f.postForm(map[string][]string{"token": {tokens["alice@example.com"]}, "decision": {"approve"}, "confirmed": {"1"}}); resp.StatusCode == http.StatusOK {
		t.Errorf("a vote after the cancellation: status %d, want it refused", resp.StatusCode)
	}

	// Again: already closed.
	resp = f.do("POST", "/api/requests/"+r.ID+"/cancel", nil)
	if e := decode[ErrorJSON](t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(e.Error, "already canceled") {
		t.Errorf("second cancel: status %d %q, want 409 saying already canceled", resp.StatusCode, e.Error)
	}

	// Without a body: by "api", no reason.
	r2, _ := f.create()
	resp = f.do("POST", "/api/requests/"+r2.ID+"/cancel", nil)
	if got := decode[RequestJSON](t, resp); resp.StatusCode != http.StatusOK || got.Canceled == nil || got.Canceled.By != DefaultCanceledBy || got.Canceled.Reason != "" {
		t.Errorf("cancel without a body: status %d, canceled %+v; want 200 by %q", resp.StatusCode, got.Canceled, DefaultCanceledBy)
	}

	// A decided request.
	r3, tokens3 := f.create()
	if _, err := f.svc.Decide(context.Background(), approval.DecideInput{Token: tokens3["bob@example.com"], Choice: approval.Approve}); err != nil {
		t.Fatal(err)
	}
	resp = f.do("POST", "/api/requests/"+r3.ID+"/cancel", nil)
	if e := decode[ErrorJSON](t, resp); resp.StatusCode != http.StatusConflict || !strings.Contains(e.Error, "already approved") {
		t.Errorf("cancel of an approved request: status %d %q, want 409 saying already approved", resp.StatusCode, e.Error)
	}

	for _, tc := range []struct {
		name, target, body string
		status             int
		field              string
	}{
		{"unknown id", "/api/requests/abcdefghijklmnop/cancel", "", 404, "id"},
		{"malformed id", "/api/requests/bad/cancel", "", 404, "id"},
		{"unknown field", "/api/requests/abcdefghijklmnop/cancel", `{"why":"x"}`, 400, "why"},
	} {
		var resp *http.Response
		if tc.body == "" {
			resp = f.do("POST", tc.target, nil)
		} else {
			resp = f.do("POST", tc.target, strings.NewReader(tc.body), "Content-Type", "application/json")
		}
		if e := decode[ErrorJSON](t, resp); resp.StatusCode != tc.status || e.Field != tc.field || e.Error == "" {
			t.Errorf("%s: status %d field %q (%q), want %d field %q", tc.name, resp.StatusCode, e.Field, e.Error, tc.status, tc.field)
		}
	}
	r4, _ := f.create()
	resp = f.do("POST", "/api/requests/"+r4.ID+"/cancel", strings.NewReader(`{"reason":"`+strings.Repeat("x", approval.MaxCancelReason+1)+`"}`), "Content-Type", "application/json")
	if e := decode[ErrorJSON](t, resp); resp.StatusCode != http.StatusBadRequest || e.Field != "reason" {
		t.Errorf("reason too long: status %d field %q, want 400 on reason", resp.StatusCode, e.Field)
	}
	if resp := f.do("GET", "/api/requests/"+r4.ID+"/cancel", nil); resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Errorf("GET cancel: status %d Allow %q, want 405 POST", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

// The cancel route needs the API's bearer token like every other.
func TestAPICancelNeedsToken(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *approval.Service) { c.APIToken = "t0ken" })
	r, _ := f.create()
	if resp := f.do("POST", "/api/requests/"+r.ID+"/cancel", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: status %d, want 401", resp.StatusCode)
	}
	if f.status(r.ID) != approval.StatusPending {
		t.Errorf("canceled without the token")
	}
	if resp := f.do("POST", "/api/requests/"+r.ID+"/cancel", nil, "Authorization", "Bearer t0ken"); resp.StatusCode != http.StatusOK {
		t.Errorf("with the token: status %d, want 200", resp.StatusCode)
	}
}
