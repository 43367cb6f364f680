package memory_test

import (
	"errors"
	"testing"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"

	"github.com/google/go-cmp/cmp"
)

func TestPages(t *testing.T) {
	ctx := t.Context()
	p := memory.NewPages("http://127.0.0.1:8080/")
	if got, want := p.URL("abc"), "http://127.0.0.1:8080/p/abc"; got != want {
		t.Errorf("URL: got %q, want %q", got, want)
	}
	html := []byte("<p>hi</p>")
	if err := p.Put(ctx, "a", html); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := p.Put(ctx, "b", []byte("b")); err != nil {
		t.Fatalf("Put: %v", err)
	}
	html[0] = 'X' // the stored copy must not change
	if got, ok := p.Get("a"); !ok || string(got) != "<p>hi</p>" {
		t.Errorf("Get(a): got %q, %v; want %q, true", got, ok, "<p>hi</p>")
	}
	if err := p.Delete(ctx, []string{"a", "missing"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, ok := p.Get("a"); ok {
		t.Error("Get(a) after Delete: got a page, want none")
	}
	if diff := cmp.Diff([]string{"b"}, p.Keys()); diff != "" {
		t.Errorf("Keys (-want +got):\n%s", diff)
	}
}

func TestMailer(t *testing.T) {
	ctx := t.Context()
	m := memory.NewMailer()
	e := approval.Email{To: "alice@example.com", Subject: "s", Text: "t", HTML: "h"}
	if err := m.Send(ctx, e); err != nil {
		t.Fatalf("Send: %v", err)
	}
	boom := errors.New("smtp down")
	m.SetErr(boom)
	if err := m.Send(ctx, approval.Email{To: "bob@example.com"}); !errors.Is(err, boom) {
		t.Errorf("Send with SetErr: got %v, want %v", err, boom)
	}
	if diff := cmp.Diff([]approval.Email{e}, m.Sent()); diff != "" {
		t.Errorf("Sent (-want +got):\n%s", diff)
	}
}

func TestWorkflow(t *testing.T) {
	ctx := t.Context()
	w := memory.NewWorkflow()
	r := &approval.Request{ID: "r1", Status: approval.StatusRejected}
	w.SetErr(approval.ErrWorkflowGone)
	if err := w.Deliver(ctx, r); !errors.Is(err, approval.ErrWorkflowGone) {
		t.Errorf("Deliver with SetErr: got %v, want ErrWorkflowGone", err)
	}
	w.SetErr(nil)
	if err := w.Deliver(ctx, r); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if diff := cmp.Diff([]approval.Result{{RequestID: "r1", Decision: "rejected", Votes: []approval.VoteResult{}}}, w.Delivered()); diff != "" {
		t.Errorf("Delivered (-want +got):\n%s", diff)
	}
	if got, want := w.Attempts(), 2; got != want {
		t.Errorf("Attempts: got %d, want %d", got, want)
	}
}
