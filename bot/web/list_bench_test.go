package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/sqlite"
	"approvalbot/bot/web"
	"approvalbot/internal/testing/memory"
	"approvalbot/pages"
)

// pendingBig is how many pending requests the paging benchmarks hold: the
// target of the embedded form (issue 12) is a page of the pending list in
// under 20 ms with this many, the first and any later one, and memory flat
// while paging.
const pendingBig = 100_000

// newBigBot fills a database with pendingBig pending requests (each like
// storetest.Fixture: three approvers, two groups, a vote, three personal
// links, five effects; created a millisecond apart, expiring in a year) and
// serves the API over it on 127.0.0.1. Filling it takes a few seconds.
func newBigBot(b *testing.B) (*sqlite.Store, string) {
	b.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "approvalbot.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	start := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < pendingBig; i += 16 {
				r := storetest.Fixture(start.Add(time.Duration(i) * time.Millisecond))
				r.ExpiresAt = start.Add(365 * 24 * time.Hour)
				if err := store.CreateRequest(context.Background(), r); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	svc := &approval.Service{Store: store, Pages: memory.NewPages("http://127.0.0.1"), Renderer: pages.Renderer{}, DecideURL: "http://127.0.0.1/decide"}
	srv := httptest.NewServer(web.New(web.Config{Service: svc}))
	b.Cleanup(srv.Close)
	return store, srv.URL
}

// page reads one page of the pending list through the API.
func page(b *testing.B, base, cursor string, limit int) web.ListJSON {
	q := url.Values{"status": {"pending"}, "limit": {fmt.Sprint(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	resp, err := http.Get(base + "/api/requests?" + q.Encode())
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var l web.ListJSON
	if err := json.NewDecoder(resp.Body).Decode(&l); err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("list: status %d, %v", resp.StatusCode, err)
	}
	return l
}

// BenchmarkListPending100k: GET /api/requests?status=pending&limit=50 with
// 100,000 requests pending, over loopback HTTP: the first page, and the page
// after the 50,000th request (a cursor deep in the list).
//
//	go test -run '^$' -bench 'ListPending100k|Paging100k' -benchtime 200x ./bot/web/
func BenchmarkListPending100k(b *testing.B) {
	_, base := newBigBot(b)
	b.Run("first-page", func(b *testing.B) {
		for b.Loop() {
			if l := page(b, base, "", 50); len(l.Requests) != 50 {
				b.Fatalf("%d requests, want 50", len(l.Requests))
			}
		}
	})
	// The cursor after the 50,000th request, reached by paging.
	cursor := ""
	for range 50_000 / 200 {
		cursor = page(b, base, cursor, 200).NextCursor
	}
	b.Run("page-after-50000", func(b *testing.B) {
		for b.Loop() {
			if l := page(b, base, cursor, 50); len(l.Requests) != 50 {
				b.Fatalf("%d requests, want 50", len(l.Requests))
			}
		}
	})
}

// BenchmarkPaging100k pages through all 100,000 pending requests, 50 a page
// (2,000 pages), as bot list --all does, and reports the median, 99th
// percentile and slowest page and the live heap at every 500th page: flat,
// whatever the depth. Run it once (-benchtime 1x).
func BenchmarkPaging100k(b *testing.B) {
	_, base := newBigBot(b)
	for b.Loop() {
		var (
			times []time.Duration
			heaps []float64
			n     int
		)
		cursor := ""
		for p := 0; ; p++ {
			t0 := time.Now()
			l := page(b, base, cursor, 50)
			times = append(times, time.Since(t0))
			n += len(l.Requests)
			if p%500 == 0 {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heaps = append(heaps, float64(ms.HeapAlloc)/(1<<20))
			}
			if l.NextCursor == "" {
				break
			}
			cursor = l.NextCursor
		}
		if n != pendingBig {
			b.Fatalf("paged through %d requests, want %d", n, pendingBig)
		}
		slices.Sort(times)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		b.ReportMetric(ms(times[len(times)/2]), "ms-median-page")
		b.ReportMetric(ms(times[len(times)*99/100]), "ms-p99-page")
		b.ReportMetric(ms(times[len(times)-1]), "ms-slowest-page")
		for i, h := range heaps {
			b.ReportMetric(h, fmt.Sprintf("MiB-heap-at-page-%d", i*500))
		}
	}
}

// BenchmarkStoreListPending100k is the store's List alone (no HTTP, no JSON):
// the first page of 50 and a page after the 50,000th request.
func BenchmarkStoreListPending100k(b *testing.B) {
	store, _ := newBigBot(b)
	ctx := context.Background()
	b.Run("first-page", func(b *testing.B) {
		for b.Loop() {
			if rs, _, err := store.List(ctx, approval.Query{Limit: 50}); err != nil || len(rs) != 50 {
				b.Fatalf("%d, %v", len(rs), err)
			}
		}
	})
	cursor := ""
	for range 50_000 / 1000 {
		_, next, err := store.List(ctx, approval.Query{Limit: 1000, Cursor: cursor})
		if err != nil {
			b.Fatal(err)
		}
		cursor = next
	}
	b.Run("page-after-50000", func(b *testing.B) {
		for b.Loop() {
			if rs, _, err := store.List(ctx, approval.Query{Limit: 50, Cursor: cursor}); err != nil || len(rs) != 50 {
				b.Fatalf("%d, %v", len(rs), err)
			}
		}
	})
}
