package awsapp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
)

// The request fields of timing and hand-offs reach the request; the task's
// timeout bounds the request's and its extensions.
func TestNotifyTimingAndTaskTimeout(t *testing.T) {
	ctx := context.Background()
	a, _, _ := memoryApp(t)
	clock := &testClock{now: time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)}
	a.Service.Now = clock.Now
	ev := `{"taskToken":"tt-t","taskTimeoutSeconds":7200,"stateEnteredTime":"2026-11-25T13:59:58Z","request":{"title":"Deploy","approvers":["alice@example.com"],
		"timeoutSeconds":3600,"onTimeout":"reject","reminders":{"everySeconds":600,"beforeExpirySeconds":[300]},
		"escalation":{"afterSeconds":1800,"approvers":["carol@example.com"]},"allowDelegation":false}}`
	out, err := a.Handle(ctx, json.RawMessage(ev))
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	id := out.(NotifyOutput).RequestID
	r, err := a.Service.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.OnTimeout != approval.TimeoutReject || r.Reminders.Every != 10*time.Minute || r.Escalation == nil || !r.NoDelegation ||
		!r.TaskDeadline.Equal(time.Date(2026, 11, 25, 15, 59, 58, 0, time.UTC)) {
		t.Errorf("request %+v: want the timing fields and the task deadline", r)
	}

	// Extend through the notifier: past the task's end is refused, within it done.
	_, err = a.Handle(ctx, json.RawMessage(`{"action":"extend","requestId":"`+id+`","timeoutSeconds":7200}`))
	var inv *InvalidRequest
	if !errors.As(err, &inv) || inv.Field != "timeoutSeconds" || !strings.Contains(inv.Message, "task stops waiting") {
		t.Errorf("extend past the task: %v, want InvalidRequest on timeoutSeconds", err)
	}
	got, err := a.Handle(ctx, json.RawMessage(`{"action":"extend","requestId":"`+id+`","timeoutSeconds":7000,"by":"ops@example.com"}`))
	if err != nil || got.(ActionOutput).ExpiresAt != "2026-11-25T15:56:40Z" {
		t.Errorf("extend within the task: %+v, %v", got, err)
	}
	if r, _ := a.Service.Get(ctx, id); len(r.Extensions) != 1 || r.Extensions[0].By != "ops@example.com" {
		t.Errorf("extensions %+v", r.Extensions)
	}

	// A request longer than its task is refused, naming the field.
	long := strings.Replace(ev, `"tt-t"`, `"tt-long"`, 1)
	long = strings.Replace(long, `"taskTimeoutSeconds":7200`, `"taskTimeoutSeconds":3000`, 1)
	if _, err := a.Handle(ctx, json.RawMessage(long)); !errors.As(err, &inv) || inv.Field != "request.timeoutSeconds" {
		t.Errorf("request longer than its task: %v, want InvalidRequest on request.timeoutSeconds", err)
	}
	bad := strings.Replace(ev, `"everySeconds":600`, `"everySeconds":60`, 1)
	bad = strings.Replace(bad, `"tt-t"`, `"tt-bad"`, 1)
	if _, err := a.Handle(ctx, json.RawMessage(bad)); !errors.As(err, &inv) || inv.Field != "request.reminders.everySeconds" {
		t.Errorf("reminders every minute: %v, want InvalidRequest on request.reminders.everySeconds", err)
	}
}

func TestActCancel(t *testing.T) {
	ctx := context.Background()
	a, pg, _ := memoryApp(t)
	out, err := a.Notify(ctx, json.RawMessage(goodEvent))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ ev, field string }{
		{`{"action":"cancel"}`, "requestId"},
		{`{"action":"undo","requestId":"` + out.RequestID + `"}`, "action"},
		{`{"action":"extend","requestId":"` + out.RequestID + `"}`, "timeoutSeconds"},
	} {
		var inv *InvalidRequest
		if _, err := a.Handle(ctx, json.RawMessage(tc.ev)); !errors.As(err, &inv) || inv.Field != tc.field {
			t.Errorf("%s: %v, want InvalidRequest on %s", tc.ev, err, tc.field)
		}
	}
	got, err := a.Handle(ctx, json.RawMessage(`{"action":"cancel","requestId":"`+out.RequestID+`","reason":"superseded"}`))
	if err != nil || got.(ActionOutput).Status != "canceled" {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	r, _ := a.Service.Get(ctx, out.RequestID)
	if r.Canceled == nil || r.Canceled.By != DefaultActor || r.Canceled.Reason != "superseded" || len(pg.Keys()) != 0 {
		t.Errorf("canceled %+v, pages %v", r.Canceled, pg.Keys())
	}
	var refused *ActionRefused
	if _, err := a.Handle(ctx, json.RawMessage(`{"action":"cancel","requestId":"`+out.RequestID+`"}`)); !errors.As(err, &refused) {
		t.Errorf("second cancel: %v, want ActionRefused", err)
	}
	if _, err := a.Handle(ctx, json.RawMessage(`{"action":"cancel","requestId":"aaaaaaaaaaaaaaaa"}`)); !errors.As(err, &refused) {
		t.Errorf("cancel of an unknown request: %v, want ActionRefused", err)
	}
}
