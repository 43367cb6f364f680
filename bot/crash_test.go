package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/sqlite"
	"approvalbot/internal/testing/botproc"
)

// TestRestartRemovesDebris: what a process killed in the middle of a creation
// leaves (a page stored for a request that never was, a temporary file of an
// email being written) is gone after a restart.
func TestRestartRemovesDebris(t *testing.T) {
	data := t.TempDir()
	clock := &fakeClock{now: time.Now()}
	first := startServer(t, data, func(m *Main) { m.Now = clock.Now })
	first.create(`{"title":"Before","approvers":["a@example.com"],"timeoutSeconds":3600}`)
	first.idle()
	if err := first.m.Close(); err != nil {
		t.Fatal(err)
	}

	store, err := sqlite.Open(context.Background(), filepath.Join(data, "approvalbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	orphan := approval.NewPageKey()
	pg := sqlite.NewPages(store, "http://127.0.0.1")
	pg.Now = clock.Now
	if err := pg.Put(context.Background(), orphan, []byte("<p>a page whose request was never stored</p>")); err != nil {
		t.Fatal(err)
	}
	store.Close()
	tmp := filepath.Join(data, "outbox", ".tmp-2718281828")
	if err := os.WriteFile(tmp, []byte("From: half a mail"), 0o600); err != nil {
		t.Fatal(err)
	}

	clock.Add(time.Second)
	s := startServer(t, data, func(m *Main) { m.Now = clock.Now })
	if got := statusOf(t, s.url+"/p/"+orphan); got != http.StatusNotFound {
		t.Errorf("the page of a request never stored: status %d, want 404", got)
	}
	if n := countRows(t, data, "pages"); n != 1 {
		t.Errorf("the database holds %d pages after the restart, want 1 (the pending request's)", n)
	}
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Errorf("the outbox's temporary file is still there (%v)", err)
	}
}

// TestKillDuring (issue 9): the bot, killed with SIGKILL while requests are
// being created and while votes are being cast, loses nothing and leaves no
// debris. After a restart and a sweep past the effects' lease: every stored
// request has every notification sent (an email in the outbox for each of its
// approvers), every closed request has its outcome delivered and no page, no
// page of a request that was never stored is served, and no temporary file
// remains.
func TestKillDuring(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the bot and kills it; skipped under -short")
	}
	bin, err := botproc.Build(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, phase := range []string{"creation", "decisions"} {
		t.Run(phase, func(t *testing.T) {
			data := t.TempDir()
			hook := newWebhook(t)
			base, kill := startChild(t, bin, data)
			var created []string
			if phase == "decisions" {
				// Requests to vote on, every email out before the storm.
				for i := range 40 {
					created = append(created, childCreate(t, base, i, hook.srv.URL))
				}
				eventually(t, "the emails", func() bool { return len(outboxLinks(t, data)) == 80 })
			}
			var (
				stop  atomic.Bool
				wg    sync.WaitGroup
				mu    sync.Mutex
				calls atomic.Int32
			)
			tokens := map[string]string{}
			if phase == "decisions" {
				for who, link := range outboxLinks(t, data) {
					tokens[who] = getPage(t, link)
				}
			}
			for w := range 16 {
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						if phase == "creation" {
							form := fmt.Sprintf(`{"title":"Crash %d-%d","approvers":["w%d-%d-a@example.com","w%d-%d-b@example.com"],"timeoutSeconds":3600,"webhookURL":%q}`, w, i, w, i, w, i, hook.srv.URL)
							resp, err := http.Post(base+"/api/requests", "application/json", strings.NewReader(form))
							if err != nil {
								return // killed
							}
							var r struct{ ID string }
							json.NewDecoder(resp.Body).Decode(&r)
							resp.Body.Close()
							if r.ID != "" {
								mu.Lock()
								created = append(created, r.ID)
								mu.Unlock()
							}
						} else {
							n := w*5 + i
							if n >= 80 {
								return
							}
							who := fmt.Sprintf("c%d-%c@example.com", n/2, 'a'+n%2)
							resp, err := http.PostForm(base+"/decide", url.Values{"token": {tokens[who]}, "decision": {"approve"}, "confirmed": {"1"}})
							if err != nil {
								return // killed
							}
							resp.Body.Close()
						}
						calls.Add(1)
					}
				})
			}
			eventually(t, "calls to be under way", func() bool { return calls.Load() >= 30 })
			kill()
			stop.Store(true)
			wg.Wait()

			// Restart, past every lease, and let the sweep take over.
			clock := &fakeClock{now: time.Now().Add(approval.EffectLease + time.Minute)}
			s := startServer(t, data, func(m *Main) { m.Now = clock.Now })
			for range 3 {
				s.sweep(clock, time.Minute)
			}
			s.idle()

			for _, dir := range []string{"outbox"} {
				entries, _ := os.ReadDir(filepath.Join(data, dir))
				for _, e := range entries {
					if strings.HasPrefix(e.Name(), ".tmp-") {
						t.Errorf("%s holds the temporary file %s", dir, e.Name())
					}
				}
			}
			mails := outboxLinks(t, data)
			db, err := sql.Open("sqlite", filepath.Join(data, "approvalbot.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var stored []string
			rows, err := db.Query("SELECT id FROM requests")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var id string
				rows.Scan(&id)
				stored = append(stored, id)
			}
			rows.Close()
			if len(stored) < len(created) {
				t.Errorf("%d requests stored, but %d were answered 201", len(stored), len(created))
			}
			closed := 0
			for _, id := range stored {
				r := s.get(id)
				for _, n := range r.Notifications {
					if n.State != "sent" {
						t.Errorf("request %s: notification %+v not sent after the restart", id, n)
					}
				}
				for _, a := range r.Approvers {
					if mails[a] == "" {
						t.Errorf("request %s: no email to %s", id, a)
					}
				}
				if r.Status != "pending" {
					closed++
					if !r.Delivered {
						t.Errorf("request %s is %s but its outcome is undelivered", id, r.Status)
					}
				}
			}
			// Pages: only those of pending requests, each served.
			var orphans, dead int
			db.QueryRow(`SELECT count(*) FROM pages WHERE request_id IS NULL`).Scan(&orphans)
			db.QueryRow(`SELECT count(*) FROM pages p JOIN requests r ON r.id = p.request_id WHERE r.status != 'pending' AND length(p.html) > 0`).Scan(&dead)
			if orphans != 0 || dead != 0 {
				t.Errorf("the database holds %d pages of no request and %d of closed requests, want none", orphans, dead)
			}
			pending := map[string]bool{} // approver -> whether their request is pending
			for _, id := range stored {
				r := s.get(id)
				for _, a := range r.Approvers {
					pending[a] = r.Status == "pending"
				}
			}
			for who, link := range mails {
				// Pending: the page; closed: what happened (410); never
				// stored: nothing.
				want := http.StatusNotFound
				if p, stored := pending[who]; stored && p {
					want = http.StatusOK
				} else if stored {
					want = http.StatusGone
				}
				if code := statusOf(t, s.url+"/p/"+pageKey(link)); code != want {
					t.Errorf("page of %s: status %d, want %d", who, code, want)
				}
			}
			if phase == "decisions" {
				if closed == 0 {
					t.Errorf("no request was decided before the kill")
				}
				if got := len(hook.results()); got < closed {
					t.Errorf("the webhook got %d outcomes for %d closed requests", got, closed)
				}
			}
			t.Logf("%s: %d requests stored (%d answered 201), %d closed, %d emails", phase, len(stored), len(created), closed, len(mails))
		})
	}
}

// startChild runs the bot binary on a free port over data and returns its
// URL and a function that kills it with SIGKILL.
func startChild(t *testing.T, bin, data string) (string, func()) {
	t.Helper()
	p, err := botproc.Start(context.Background(), bin, botproc.Options{Data: data, LogLevel: "warn"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p.URL(), p.Kill
}

// childCreate creates request i of the decisions phase through the API.
func childCreate(t *testing.T, base string, i int, hook string) string {
	t.Helper()
	body := fmt.Sprintf(`{"title":"Vote %d","approvers":["c%d-a@example.com","c%d-b@example.com"],"timeoutSeconds":3600,"webhookURL":%q}`, i, i, i, hook)
	resp, err := http.Post(base+"/api/requests", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ ID string }
	json.NewDecoder(resp.Body).Decode(&r)
	if resp.StatusCode != http.StatusCreated || r.ID == "" {
		t.Fatalf("create: status %d", resp.StatusCode)
	}
	return r.ID
}
