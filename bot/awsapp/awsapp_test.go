package awsapp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
	"approvalbot/pages"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestDecodeNotifyEvent(t *testing.T) {
	tests := []struct {
		name, in  string
		wantField string
		wantMsg   string
	}{
		{"not json", `{`, "", "not valid JSON"},
		{"not an object", `[1]`, "", "must be a JSON object"},
		{"no task token", `{"request":{"title":"t","approvers":["a@example.com"],"timeoutSeconds":60}}`, "taskToken", "taskToken is required"},
		{"no request", `{"taskToken":"x"}`, "request", "request is required"},
		{"no timeout", `{"taskToken":"x","request":{"title":"t","approvers":["a@example.com"]}}`, "request.timeoutSeconds", "timeoutSeconds is required"},
		{"timeout as string", `{"taskToken":"x","request":{"timeoutSeconds":"60"}}`, "request.timeoutSeconds", "request.timeoutSeconds must be a whole number, not a JSON string"},
		{"approvers as string", `{"taskToken":"x","request":{"approvers":"a@example.com"}}`, "request.approvers", "must be a list"},
		{"unknown field", `{"taskToken":"x","request":{"approver":["a@example.com"]}}`, "", `unknown field "approver"`},
		{"group min as string", `{"taskToken":"x","request":{"groups":[{"name":"eng","approvers":["a@example.com"],"min":"1"}]}}`, "request.groups.min", "must be a whole number"},
		{"self-approval as string", `{"taskToken":"x","request":{"allowSelfApproval":"yes"}}`, "request.allowSelfApproval", "request.allowSelfApproval must be true or false, not a JSON string"},
		{"trailing data", `{"taskToken":"x","request":{"timeoutSeconds":60}} {}`, "", "data after"},
		{"timeout not whole", `{"taskToken":"x","request":{"timeoutSeconds":60.5}}`, "request.timeoutSeconds", "request.timeoutSeconds must be a whole number, not 60.5"},
		{"field name in capitals", `{"taskToken":"x","request":{"TITLE":"t","approvers":["a@example.com"],"timeoutSeconds":60}}`, "request.TITLE", `unknown field "request.TITLE": field names are case-sensitive (did you mean "title"?)`},
		{"task token in another case", `{"TaskToken":"x","request":{"title":"t","approvers":["a@example.com"],"timeoutSeconds":60}}`, "TaskToken", `did you mean "taskToken"?`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeNotifyEvent([]byte(tt.in))
			var ir *InvalidRequest
			if !errors.As(err, &ir) {
				t.Fatalf("err = %v, want *InvalidRequest", err)
			}
			if ir.Field != tt.wantField || !strings.Contains(ir.Message, tt.wantMsg) {
				t.Errorf("got field %q, message %q; want field %q, message containing %q", ir.Field, ir.Message, tt.wantField, tt.wantMsg)
			}
			if !errors.Is(err, approval.ErrInvalid) {
				t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
			}
		})
	}
}

// memoryApp is an App on the in-process adapters, synchronous as New makes it.
func memoryApp(t *testing.T) (*App, *memory.Pages, *memory.Mailer) {
	t.Helper()
	pg, mail := memory.NewPages("https://pages.example.net"), memory.NewMailer()
	svc := &approval.Service{Store: memory.NewStore(), Pages: pg, Renderer: pages.Renderer{}, Mailer: mail,
		Workflow: memory.NewWorkflow(), DecideURL: "https://cb.example.net/decide", Sync: true}
	return &App{Service: svc, Log: slog.New(slog.DiscardHandler)}, pg, mail
}

const goodEvent = `{"taskToken":"tt-1","request":{"title":"Deploy v2","details":"to prod","requester":"ci",
	"approvers":["alice@example.com","bob@example.com"],"timeoutSeconds":3600,
	"links":[{"label":"diff","url":"https://example.com/diff"}],"policy":"any"}}`

func TestNotify(t *testing.T) {
	ctx := context.Background()
	a, pg, mail := memoryApp(t)
	out, err := a.Notify(ctx, json.RawMessage(goodEvent))
	if err != nil {
		t.Fatalf("Notify: %v", err)
	}
	if !out.Created || out.RequestID != approval.IDFromTaskToken("tt-1") {
		t.Errorf("Notify = %+v, want created request %s", out, approval.IDFromTaskToken("tt-1"))
	}
	if got := len(pg.Keys()); got != 2 {
		t.Errorf("%d pages, want 2", got)
	}
	if got := len(mail.Sent()); got != 2 {
		t.Errorf("%d emails, want 2", got)
	}
	wantNotes := []Notification{{To: "alice@example.com", Channel: "email", State: "sent"}, {To: "bob@example.com", Channel: "email", State: "sent"}}
	if diff := cmp.Diff(wantNotes, out.Notifications); diff != "" || out.Status != "pending" {
		t.Errorf("status %q, notifications (-want +got):\n%s", out.Status, diff)
	}

	// A retried invocation for the same task token creates nothing new.
	again, err := a.Notify(ctx, json.RawMessage(goodEvent))
	if err != nil {
		t.Fatalf("second Notify: %v", err)
	}
	if again.Created || again.RequestID != out.RequestID {
		t.Errorf("second Notify = %+v, want the first request, not created", again)
	}
	if got := len(pg.Keys()); got != 2 {
		t.Errorf("after retry: %d pages, want 2", got)
	}
	if got := len(mail.Sent()); got != 2 {
		t.Errorf("after retry: %d emails, want 2", got)
	}
}

func TestNotifyInvalid(t *testing.T) {
	tests := []struct {
		name, in  string
		wantField string
	}{
		{"no title", `{"taskToken":"x","request":{"approvers":["a@example.com"],"timeoutSeconds":60}}`, "request.title"},
		{"bad approver", `{"taskToken":"x","request":{"title":"t","approvers":["not-an-address"],"timeoutSeconds":60}}`, "request.approvers"},
		{"short timeout", `{"taskToken":"x","request":{"title":"t","approvers":["a@example.com"],"timeoutSeconds":5}}`, "request.timeoutSeconds"},
		{"bad policy", `{"taskToken":"x","request":{"title":"t","approvers":["a@example.com"],"timeoutSeconds":60,"policy":"most"}}`, "request.policy"},
		{"quorum above the approvers", `{"taskToken":"x","request":{"title":"t","approvers":["a@example.com","b@example.com"],"timeoutSeconds":60,"policy":"quorum:3"}}`, "request.policy"},
		{"groups and approvers", `{"taskToken":"x","request":{"title":"t","approvers":["a@example.com"],"timeoutSeconds":60,
			"groups":[{"name":"eng","approvers":["b@example.com"]}]}}`, "request.groups"},
		{"bad group name", `{"taskToken":"x","request":{"title":"t","timeoutSeconds":60,"groups":[{"name":"Eng Team","approvers":["b@example.com"]}]}}`, "request.groups"},
		{"bad reject policy", `{"taskToken":"x","request":{"title":"t","approvers":["a@example.com"],"timeoutSeconds":60,"rejectPolicy":"never"}}`, "request.rejectPolicy"},
		{"requester alone may not approve", `{"taskToken":"x","request":{"title":"t","requester":"a@example.com","approvers":["a@example.com"],"timeoutSeconds":60}}`, "request.approvers"},
		{"all with the requester", `{"taskToken":"x","request":{"title":"t","requester":"a@example.com","approvers":["a@example.com","b@example.com"],"timeoutSeconds":60,"policy":"all"}}`, "request.policy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, pg, _ := memoryApp(t)
			_, err := a.Notify(context.Background(), json.RawMessage(tt.in))
			var ir *InvalidRequest
			if !errors.As(err, &ir) {
				t.Fatalf("err = %v, want *InvalidRequest", err)
			}
			if ir.Field != tt.wantField || !strings.HasPrefix(ir.Message, tt.wantField+": ") {
				t.Errorf("got field %q, message %q; want field %q named in the message", ir.Field, ir.Message, tt.wantField)
			}
			if n := len(pg.Keys()); n != 0 {
				t.Errorf("%d pages published for an invalid request", n)
			}
		})
	}
}

// The request's rule comes from the event: policy, groups, reject policy and
// self-approval, under the names of the API.
func TestNotifyRule(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, request string
		want          approval.Rule
		approvers     []string
	}{
		{"quorum", `"approvers":["a@example.com","b@example.com","c@example.com"],"policy":"quorum:2","rejectPolicy":"impossible"`,
			approval.Rule{Policy: "quorum:2", RejectPolicy: "impossible"}, []string{"a@example.com", "b@example.com", "c@example.com"}},
		{"groups", `"groups":[{"name":"eng","approvers":["a@example.com","b@example.com"],"min":2},{"name":"security","approvers":["Sec@Example.com"]}],"allowSelfApproval":true`,
			approval.Rule{Groups: []approval.Group{
				{Name: "eng", Approvers: []string{"a@example.com", "b@example.com"}, Min: 2},
				{Name: "security", Approvers: []string{"sec@example.com"}, Min: 1},
			}, RejectPolicy: "any", AllowSelfApproval: true}, []string{"a@example.com", "b@example.com", "sec@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _, mail := memoryApp(t)
			ev := `{"taskToken":"tt-rule","request":{"title":"Rule","requester":"ci@example.com","timeoutSeconds":600,` + tt.request + `}}`
			out, err := a.Notify(ctx, json.RawMessage(ev))
			if err != nil {
				t.Fatalf("Notify: %v", err)
			}
			r, err := a.Service.Get(ctx, out.RequestID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, r.Rule, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("rule (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.approvers, r.Approvers); diff != "" {
				t.Errorf("approvers (-want +got):\n%s", diff)
			}
			if got := len(mail.Sent()); got != len(tt.approvers) {
				t.Errorf("%d emails sent, want %d", got, len(tt.approvers))
			}
		})
	}
}

// Every email failing does not fail the task: the notifier answers with the
// notifications retrying; the sweep tries them again, and once every one has
// been given up the request is closed and the workflow told
// (NotificationFailed on Step Functions, see package sfn).
func TestNotifyMailFailure(t *testing.T) {
	ctx := context.Background()
	a, clock, pg, mail, wf, _ := sweepApp(t)
	mail.SetErr(errors.New("SES is down"))
	out, err := a.Notify(ctx, event("tt-1", "86400"))
	if err != nil {
		t.Fatalf("Notify with every email failing = %v, want an answer", err)
	}
	if out.Status != "pending" || len(out.Notifications) != 2 {
		t.Fatalf("Notify = %+v, want a pending request with two notifications", out)
	}
	for _, n := range out.Notifications {
		if n.State != "retrying" || !strings.Contains(n.Error, "SES is down") {
			t.Errorf("notification %+v, want retrying with the cause", n)
		}
	}
	var r *approval.Request
	for i := 0; i <= approval.MaxAttempts; i++ {
		clock.Advance(10 * time.Minute)
		if _, err := a.Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		if r, err = a.Service.Store.GetRequest(ctx, out.RequestID); err != nil {
			t.Fatal(err)
		}
		if r.Status != approval.StatusPending {
			break
		}
	}
	if r.Status != approval.StatusCanceled || r.Reason != approval.ReasonNotificationFailed || !r.Delivered() {
		t.Fatalf("request after the retries: status %s, reason %q, delivered %v; want canceled for notification_failed, delivered",
			r.Status, r.Reason, r.Delivered())
	}
	if d := wf.Delivered(); len(d) != 1 || d[0].Decision != "canceled" || d[0].Reason != approval.ReasonNotificationFailed {
		t.Errorf("workflow deliveries %+v, want one cancellation for notification_failed", d)
	}
	if keys := pg.Keys(); len(keys) != 0 {
		t.Errorf("pages left after the request closed: %v", keys)
	}
	for _, n := range r.Notifications() {
		if n.State != "failed" {
			t.Errorf("notification %+v, want failed", n)
		}
	}
}

// A retried invocation for the same task token takes over the notifications
// that the first one left undone: one that failed, once its retry time has
// come, and one whose run died before it was recorded, once its lease lapsed.
func TestNotifyRetryTakesOver(t *testing.T) {
	ctx := context.Background()
	t.Run("failed", func(t *testing.T) {
		a, clock, _, _, _, _ := sweepApp(t)
		m := &failFor{addr: "bob@example.com"}
		a.Service.Mailer = m
		if _, err := a.Notify(ctx, json.RawMessage(goodEvent)); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
		m.Fail("")
		out, err := a.Notify(ctx, json.RawMessage(goodEvent))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"alice@example.com", "bob@example.com"}, m.Sent()); diff != "" || out.Created {
			t.Errorf("created %v; emails sent (-want +got):\n%s", out.Created, diff)
		}
		for _, n := range out.Notifications {
			if n.State != "sent" {
				t.Errorf("notification %+v after the retry, want sent", n)
			}
		}
	})
	t.Run("died", func(t *testing.T) {
		a, clock, _, mail, _, _ := sweepApp(t)
		// The first invocation stores the request, then dies: its emails
		// are neither sent nor recorded.
		store := a.Service.Store
		a.Service.Store = &frozenAfterCreate{Store: store}
		mail.SetErr(errors.New("the process froze"))
		if _, err := a.Notify(ctx, json.RawMessage(goodEvent)); err != nil {
			t.Fatal(err)
		}
		a.Service.Store = store
		mail.SetErr(nil)
		// Retried before the first run's lease lapsed, nothing is taken over.
		clock.Advance(approval.EffectLease / 2)
		if _, err := a.Notify(ctx, json.RawMessage(goodEvent)); err != nil {
			t.Fatal(err)
		}
		if n := len(mail.Sent()); n != 0 {
			t.Fatalf("%d emails sent while the first run held them, want 0", n)
		}
		clock.Advance(approval.EffectLease)
		out, err := a.Notify(ctx, json.RawMessage(goodEvent))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(mail.Sent()); n != 2 {
			t.Errorf("%d emails sent by the retried invocation, want 2", n)
		}
		for _, n := range out.Notifications {
			if n.State != "sent" {
				t.Errorf("notification %+v after the retry, want sent", n)
			}
		}
	})
}

// frozenAfterCreate stores requests but no later change, as a Lambda frozen
// right after storing the request would.
type frozenAfterCreate struct{ approval.Store }

func (frozenAfterCreate) UpdateRequest(context.Context, *approval.Request) error {
	return errors.New("the process froze")
}

// The task token must never reach a log line.
func TestNotifyLogsNoTaskToken(t *testing.T) {
	a, _, _ := memoryApp(t)
	var buf strings.Builder
	a.Log = slog.New(slog.NewJSONHandler(&buf, nil))
	a.Service.Log = a.Log
	const token = "SECRET-task-token-value"
	ev := strings.Replace(goodEvent, "tt-1", token, 1)
	if _, err := a.Notify(context.Background(), json.RawMessage(ev)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Notify(context.Background(), json.RawMessage(`{"taskToken":"`+token+`","request":{"title":""}}`)); err == nil {
		t.Fatal("Notify accepted a request without title")
	}
	if strings.Contains(buf.String(), token) {
		t.Errorf("the task token appears in the logs:\n%s", buf.String())
	}
	if !strings.Contains(buf.String(), approval.ShortHash(token)) {
		t.Errorf("the logs do not correlate by the task's short hash:\n%s", buf.String())
	}
}

// failFor fails the emails to one address and delivers the others.
type failFor struct {
	mu   sync.Mutex
	addr string
	sent []string
}

func (f *failFor) Send(_ context.Context, e approval.Email) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e.To == f.addr {
		return errors.New("mailbox full")
	}
	f.sent = append(f.sent, e.To)
	return nil
}

// Sent returns the addresses sent to, sorted.
func (f *failFor) Sent() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(slices.Values(f.sent))
}

// Fail makes the emails to addr fail ("" for none).
func (f *failFor) Fail(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addr = addr
}

// One unreachable approver out of two does not fail the task: the other can
// still decide.
func TestNotifyPartialMailFailure(t *testing.T) {
	a, _, _ := memoryApp(t)
	m := &failFor{addr: "bob@example.com"}
	a.Service.Mailer = m
	out, err := a.Notify(context.Background(), json.RawMessage(goodEvent))
	if err != nil {
		t.Fatalf("Notify = %v, want success when one approver was reached", err)
	}
	if sent := m.Sent(); !out.Created || len(sent) != 1 || sent[0] != "alice@example.com" {
		t.Errorf("Notify = %+v, sent to %v; want created, sent to alice", out, sent)
	}
	want := []Notification{
		{To: "alice@example.com", Channel: "email", State: "sent"},
		{To: "bob@example.com", Channel: "email", State: "retrying", Error: "mailbox full"},
	}
	if diff := cmp.Diff(want, out.Notifications); diff != "" {
		t.Errorf("notifications (-want +got):\n%s", diff)
	}
}
