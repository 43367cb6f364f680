package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
)

// TestShutdownFinishesInFlightDecision: a decision whose webhook is being
// called when the bot is told to stop is delivered and recorded as delivered
// before the bot exits (stopping cancels every request's context first, to
// end long polls, and then waits for the effects running in the background).
// The person who decided had their answer before the webhook answered.
func TestShutdownFinishesInFlightDecision(t *testing.T) {
	data := t.TempDir()
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	var (
		mu  sync.Mutex
		got []approval.Result
	)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
			return // the bot gave up on the delivery
		}
		var res approval.Result
		if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, res)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()

	s := startServer(t, data, nil)
	req := s.create(`{"title":"Deploy","approvers":["a@example.com"],"timeoutSeconds":3600,"webhookURL":"` + hook.URL + `"}`)
	var links map[string]string
	eventually(t, "the email", func() bool { links = outboxLinks(t, data); return len(links) == 1 })
	token := getPage(t, links["a@example.com"])

	if status, _ := s.decide(token, "approve", "1"); status != http.StatusOK {
		t.Fatalf("decision answered %d, want 200", status)
	}
	select {
	case <-arrived:
	case <-time.After(20 * time.Second):
		t.Fatal("the decision never reached the webhook")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.m.Close() }()
	eventually(t, "the bot to stop listening", func() bool {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err != nil
	})
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while the webhook call was in flight", err)
	default:
	}
	close(release)

	if err := <-closed; err != nil {
		t.Errorf("Close: %v", err)
	}
	mu.Lock()
	if len(got) != 1 || got[0].RequestID != req.ID || got[0].Decision != "approved" {
		t.Errorf("webhook got %+v, want one approval of %s", got, req.ID)
	}
	mu.Unlock()
	s2 := startServer(t, data, nil)
	if r := s2.get(req.ID); r.Status != "approved" || !r.Delivered {
		t.Errorf("after restart: %s, delivered %v; want approved and delivered", r.Status, r.Delivered)
	}
}
