package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/memory"
)

// renderer puts the raw token alone on the page, so the test can decide as the
// page's holder would.
type renderer struct{}

func (renderer) Page(v approval.PageView) ([]byte, error) { return []byte(v.Token), nil }

func (renderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{To: v.Recipient.Address, Subject: v.Request.Title, Text: v.PageURL}, nil
}

// TestServiceDecideStorm runs the core over this store as the embedded mode
// does: 200 concurrent decisions through every token of one request, then a
// restart; exactly one decision, delivered once, no other error.
func TestServiceDecideStorm(t *testing.T) {
	const workers = 200
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	store := open(t, path)
	pages, workflow := memory.NewPages("http://127.0.0.1:8080"), memory.NewWorkflow()
	now := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	svc := &approval.Service{
		Store: store, Pages: pages, Renderer: renderer{}, Mailer: memory.NewMailer(), Workflow: workflow,
		DecideURL: "http://127.0.0.1:8080/decide", Now: func() time.Time { return now },
	}
	var approvers []string
	for i := range 5 {
		approvers = append(approvers, fmt.Sprintf("approver%d@example.com", i))
	}
	r, _, err := svc.Create(t.Context(), approval.NewRequest{Title: "Deploy", Approvers: approvers, Timeout: time.Hour})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	var toks []string
	for _, rc := range r.Recipients {
		page, ok := pages.Get(rc.PageKey)
		if !ok {
			t.Fatalf("no page for %s", rc.Address)
		}
		toks = append(toks, string(page))
	}

	errs := make([]error, workers)
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			<-begin
			_, errs[i] = svc.Decide(context.Background(), approval.DecideInput{Token: toks[i%len(toks)], Choice: approval.Approve})
		})
	}
	close(begin)
	wg.Wait()

	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
		case errors.Is(err, approval.ErrAlreadyDecided):
		default:
			t.Errorf("decision %d: got error %v, want nil or ErrAlreadyDecided", i, err)
		}
	}
	if winners != 1 {
		t.Errorf("got %d winners, want 1", winners)
	}
	if got := workflow.Delivered(); len(got) != 1 || got[0].Decision != "approved" {
		t.Errorf("workflow deliveries: got %+v, want exactly one approval", got)
	}
	if keys := pages.Keys(); len(keys) != 0 {
		t.Errorf("pages left: %s", strings.Join(keys, ", "))
	}

	// After a restart the decision stands.
	if err := store.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	svc.Store = open(t, path)
	got, err := svc.Get(t.Context(), r.ID)
	if err != nil || got.Status != approval.StatusApproved || !got.Delivered {
		t.Errorf("after reopen: got %+v, %v; want approved and delivered", got, err)
	}
	if _, err := svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Reject}); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("Decide after reopen: got %v, want ErrAlreadyDecided", err)
	}
}
