package awsapp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

// stubRenderer renders nothing worth reading: the renderers have fuzz
// targets of their own (package pages).
type stubRenderer struct{}

func (stubRenderer) Page(approval.PageView) ([]byte, error) { return []byte("<p>page</p>"), nil }
func (stubRenderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{To: v.Recipient.Address, Subject: "s", Text: "t", HTML: "h"}, nil
}

// FuzzNotifyEvent hands arbitrary input to the notifier, as Step Functions
// would: it either creates the request or answers *InvalidRequest with a
// sentence (never a NotifierError, which would make the state machine retry
// bad input, and never a panic).
func FuzzNotifyEvent(f *testing.F) {
	for _, seed := range []string{
		goodEvent,
		`{"taskToken":"t","request":{"title":"T","timeoutSeconds":60,"groups":[{"name":"eng","approvers":["a@example.com","U0BOB00001"],"min":2}],"rejectPolicy":"impossible","allowSelfApproval":true}}`,
		`{"taskToken":"t","request":{"title":"T","approvers":["a@example.com"],"timeoutSeconds":60,"slackChannel":"C0123456"}}`,
		`{"taskToken":"t","request":{"TITLE":"T","approvers":["a@example.com"],"timeoutSeconds":60}}`,
		`{"taskToken":"t","request":{"title":"\u202eT","approvers":["a@example.com"],"timeoutSeconds":60.5}}`,
		`{"taskToken":"t","request":null}`, `[1]`, `{`, `{"taskToken":"t","request":{"timeoutSeconds":60}} {}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
		svc := &approval.Service{Store: memory.NewStore(), Pages: memory.NewPages("https://pages.example.net"), Renderer: stubRenderer{},
			Mailer: memory.NewMailer(), Workflow: memory.NewWorkflow(), DecideURL: "https://cb.example.net/decide",
			Now: func() time.Time { return now }, Sync: true}
		a := &App{Service: svc, Log: slog.New(slog.DiscardHandler)}
		out, err := a.Notify(context.Background(), json.RawMessage(raw))
		var ir *InvalidRequest
		switch {
		case err == nil:
			if out.RequestID == "" || out.Status != string(approval.StatusPending) {
				t.Fatalf("Notify(%q) = %+v, want a pending request", raw, out)
			}
			if _, err := svc.Store.GetRequest(context.Background(), out.RequestID); err != nil {
				t.Fatalf("Notify(%q) answered request %s, which is not stored: %v", raw, out.RequestID, err)
			}
		case errors.As(err, &ir):
			if ir.Message == "" || !errors.Is(err, approval.ErrInvalid) {
				t.Fatalf("Notify(%q): %#v, want a sentence", raw, ir)
			}
		default:
			t.Fatalf("Notify(%q): %v, want success or *InvalidRequest", raw, err)
		}
	})
}
