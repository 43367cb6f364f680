package approval_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

func TestNewService(t *testing.T) {
	full := approval.Deps{Store: memory.NewStore(), Pages: memory.NewPages("https://pages.example.com"), Renderer: renderer{}}
	tests := []struct {
		name    string
		deps    func(d approval.Deps) approval.Deps
		missing []string // the dependencies the error must name
	}{
		{name: "required only", deps: func(d approval.Deps) approval.Deps { return d }},
		{name: "no store", deps: func(d approval.Deps) approval.Deps { d.Store = nil; return d }, missing: []string{"Store"}},
		{name: "no pages", deps: func(d approval.Deps) approval.Deps { d.Pages = nil; return d }, missing: []string{"Pages"}},
		{name: "no renderer", deps: func(d approval.Deps) approval.Deps { d.Renderer = nil; return d }, missing: []string{"Renderer"}},
		{name: "nothing", deps: func(approval.Deps) approval.Deps { return approval.Deps{} }, missing: []string{"Store", "Pages", "Renderer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, err := approval.NewService(tt.deps(full))
			if len(tt.missing) == 0 {
				if err != nil || svc == nil {
					t.Fatalf("NewService = %v, %v; want a service", svc, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("NewService succeeded; want an error naming %v", tt.missing)
			}
			for _, name := range tt.missing {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
		})
	}
}

// A service from NewService carries every dependency and setting it was
// given: an email-only request is created, mailed and its page published.
func TestNewServiceKeepsDeps(t *testing.T) {
	pages, mail := memory.NewPages("https://pages.example.com"), memory.NewMailer()
	svc, err := approval.NewService(approval.Deps{
		Store: memory.NewStore(), Pages: pages, Renderer: renderer{}, Mailer: mail,
		DecideURL: "https://callback.example.com/decide", Sync: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !svc.Sync || svc.DecideURL != "https://callback.example.com/decide" || svc.Chat != nil || svc.Workflow != nil {
		t.Errorf("service Sync %v, DecideURL %q, Chat %v, Workflow %v", svc.Sync, svc.DecideURL, svc.Chat, svc.Workflow)
	}
	r, _, err := svc.Create(context.Background(), approval.NewRequest{Title: "Deploy", Approvers: []string{"alice@example.com"}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(mail.Sent()); got != 1 {
		t.Errorf("%d emails sent, want 1 (Sync: sent before Create returns)", got)
	}
	if r.Status != approval.StatusPending {
		t.Errorf("status %s, want pending", r.Status)
	}
}
