package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/sqlite"
	"approvalbot/internal/testing/memory"
)

// renderer puts the raw token alone on the page, so the test can decide as the
// page's holder would.
type renderer struct{}

func (renderer) Page(v approval.PageView) ([]byte, error) { return []byte(v.Token), nil }

func (renderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{To: v.Recipient.Address, Subject: v.Request.Title, Text: v.PageURL}, nil
}

// clock is a settable clock, safe for the service's background work.
type clock struct{ ms atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.Set(t)
	return c
}

func (c *clock) Set(t time.Time) { c.ms.Store(t.UnixMilli()) }

func (c *clock) Now() time.Time { return time.UnixMilli(c.ms.Load()).UTC() }

func emailApprovers(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("approver%d@example.com", i))
	}
	return out
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
	r, _, err := svc.Create(t.Context(), approval.NewRequest{
		Title: "Deploy", Approvers: emailApprovers(5), Timeout: time.Hour, WebhookURL: "https://hooks.example.com/x",
	})
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
	if err := svc.Idle(t.Context()); err != nil {
		t.Fatal(err)
	}

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
	if got := workflow.Delivered(); len(got) != 1 || got[0].Decision != "approved" || len(got[0].Votes) != 1 {
		t.Errorf("workflow deliveries: got %+v, want exactly one approval with its one vote", got)
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
	if err != nil || got.Status != approval.StatusApproved || !got.Delivered() {
		t.Errorf("after reopen: got %+v, %v; want approved and delivered", got, err)
	}
	if _, err := svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Reject}); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("Decide after reopen: got %v, want ErrAlreadyDecided", err)
	}
}

// TestVoteStormTwoHandles is the embedded mode's race across two processes:
// two services, each over its own Store on one file, take 200 concurrent
// approvals over the 5 approvers' pages of a quorum:3 request. Exactly 3
// approvals count, one closes the request, its outcome is delivered once, no
// page stays, and every other attempt is told it is already decided or
// already voted (in particular, none sees SQLITE_BUSY).
func TestVoteStormTwoHandles(t *testing.T) {
	const workers = 200
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	workflow := memory.NewWorkflow()
	clk := newClock(time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC))
	var svcs []*approval.Service
	var pages []*sqlite.Pages
	for range 2 {
		s := open(t, path)
		p := sqlite.NewPages(s, "http://127.0.0.1:8080")
		pages = append(pages, p)
		svcs = append(svcs, &approval.Service{
			Store: s, Pages: p, Renderer: renderer{}, Workflow: workflow,
			DecideURL: "http://127.0.0.1:8080/decide", Now: clk.Now,
		})
	}
	r, _, err := svcs[0].Create(t.Context(), approval.NewRequest{
		Title: "Deploy", Approvers: emailApprovers(5), Policy: "quorum:3", Timeout: time.Hour,
		WebhookURL: "https://hooks.example.com/x",
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	var toks []string
	for _, rc := range r.Recipients {
		page, err := pages[1].Get(t.Context(), rc.PageKey)
		if err != nil {
			t.Fatalf("page of %s through the other handle: %v", rc.Address, err)
		}
		toks = append(toks, string(page))
	}

	var (
		mu      sync.Mutex
		closers int
		counted = map[string]int{}
	)
	errs := make(chan error, workers)
	begin := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		svc := svcs[i%2]
		tok := toks[(i/2)%len(toks)]
		wg.Go(func() {
			<-begin
			got, err := svc.Decide(context.Background(), approval.DecideInput{Token: tok, Choice: approval.Approve})
			switch {
			case err == nil:
				mu.Lock()
				defer mu.Unlock()
				counted[tok]++
				if got.Status == approval.StatusApproved {
					closers++
				}
			case errors.Is(err, approval.ErrAlreadyDecided), errors.Is(err, approval.ErrAlreadyVoted):
			default:
				errs <- err
			}
		})
	}
	close(begin)
	wg.Wait()
	close(errs)
	for _, svc := range svcs {
		if err := svc.Idle(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for err := range errs {
		t.Errorf("Decide: got %v, want nil, ErrAlreadyDecided or ErrAlreadyVoted", err)
	}
	if len(counted) != 3 || closers != 1 {
		t.Errorf("votes taken %v with %d closing; want 3 approvers once each, one closing", counted, closers)
	}
	for _, n := range counted {
		if n != 1 {
			t.Errorf("an approver's vote was taken %d times", n)
		}
	}
	got, err := svcs[1].Get(t.Context(), r.ID)
	if err != nil || got.Status != approval.StatusApproved || len(got.Votes) != 3 || !got.Delivered() {
		t.Errorf("stored: %+v, %v; want approved with 3 votes, delivered", got, err)
	}
	if d := workflow.Delivered(); len(d) != 1 || len(d[0].Votes) != 3 {
		t.Errorf("deliveries: %+v; want one, with 3 votes", d)
	}
	for _, rc := range r.Recipients {
		if _, err := pages[0].Get(t.Context(), rc.PageKey); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("page of %s after the close: got %v, want ErrNotFound", rc.Address, err)
		}
	}
	// The votes before the closing one deleted their voters' pages; the
	// close retired the rest, which Prune removes.
	want := int64(len(r.Recipients) - (len(got.Votes) - 1))
	if n, err := pages[0].Prune(t.Context(), clk.Now().Add(time.Hour)); err != nil || n != want {
		t.Errorf("Prune after the close: deleted %d, %v; want the %d pages the close retired", n, err, want)
	}
}

// BenchmarkVote measures votes per second through approval.Service over a
// file-backed store with its pages in the database, as the embedded mode
// runs, from 100 clients per CPU voting at once (b.RunParallel). The votes
// are spread over requests made beforehand; "any" has one approver per
// request, so every vote decides; "all-of-3" has three, so every third vote
// decides and votes on one request race. The time includes the effects run
// in the background (pages deleted, effects recorded).
func BenchmarkVote(b *testing.B) {
	for _, bc := range []struct {
		name      string
		policy    string
		approvers int
	}{
		{"any", "any", 1},
		{"all-of-3", "all", 3},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchStore(b)
			pages := sqlite.NewPages(s, "http://127.0.0.1:8080")
			svc := &approval.Service{
				Store: s, Pages: pages, Renderer: renderer{}, Workflow: memory.NewWorkflow(),
				DecideURL: "http://127.0.0.1:8080/decide",
			}
			ctx := context.Background()
			var toks []string
			for len(toks) < b.N {
				r, _, err := svc.Create(ctx, approval.NewRequest{
					Title: "Deploy", Approvers: emailApprovers(bc.approvers), Policy: bc.policy, Timeout: time.Hour,
				})
				if err != nil {
					b.Fatal(err)
				}
				for _, rc := range r.Recipients {
					page, err := pages.Get(ctx, rc.PageKey)
					if err != nil {
						b.Fatal(err)
					}
					toks = append(toks, string(page))
				}
			}
			if err := svc.Idle(ctx); err != nil {
				b.Fatal(err)
			}
			var next atomic.Int64
			b.SetParallelism(100)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					tok := toks[next.Add(1)-1]
					if _, err := svc.Decide(ctx, approval.DecideInput{Token: tok, Choice: approval.Approve}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			if err := svc.Idle(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "votes/s")
		})
	}
}

// TestRemindersOverSQLite: many pending requests whose reminders are due at
// once (20 pages of the due index); one sweep sends each reminder once, and a
// second sweep at the same instant sends none. (With n = 10,000 one sweep
// takes about 8 s here, without the race detector; the core's own test sends
// 10,000 reminders over the memory store.)
func TestRemindersOverSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 requests")
	}
	const n = 2_000
	store := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	start := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	c := newClock(start)
	svc := &approval.Service{
		Store: store, Pages: memory.NewPages("http://127.0.0.1:8080"), Renderer: renderer{}, Workflow: memory.NewWorkflow(),
		DecideURL: "http://127.0.0.1:8080/decide", Now: c.Now, Sync: true,
	}
	ctx := context.Background()
	for i := range n {
		if _, _, err := svc.Create(ctx, approval.NewRequest{
			Title: fmt.Sprintf("Request %d", i), Approvers: []string{fmt.Sprintf("a%d@example.com", i)},
			Timeout: 2 * time.Hour, Reminders: approval.Reminders{Every: time.Hour},
		}); err != nil {
			t.Fatal(err)
		}
	}
	mail := memory.NewMailer()
	svc.Mailer = mail
	c.Set(start.Add(time.Hour))
	began := time.Now()
	st, err := svc.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	if got := len(mail.Sent()); got != n || st.Advanced != n {
		t.Fatalf("sent %d reminders, advanced %d; want %d", got, st.Advanced, n)
	}
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(mail.Sent()); got != n {
		t.Errorf("a second sweep at once sent %d more reminders, want none", got-n)
	}
	t.Logf("%d reminders over SQLite in one sweep: %v", n, took.Round(time.Millisecond))
}
