package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "approvalbot.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitQueued waits until n writes are queued.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := len(s.queue)
		s.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", got, n)
		}
		runtime.Gosched()
	}
}

func pageCount(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.db.QueryRow("SELECT count(*) FROM pages").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestGroupCommitKeepsOutcomesApart queues writes while the writer is busy,
// so that the next holder writes them as one batch, one of them failing: the
// others are written all the same, each with its own outcome.
func TestGroupCommitKeepsOutcomesApart(t *testing.T) {
	s := openTest(t)
	const writes = 20
	s.writer <- struct{}{} // busy: every write queues
	errs := make([]error, writes)
	counts := make([]int64, writes)
	var wg sync.WaitGroup
	for i := range writes {
		query, args := putPage, []any{fmt.Sprintf("page-key-%012d", i), []byte("x"), 1}
		switch i {
		case 7: // a NOT NULL violation
			args = []any{"page-key-broken00000", nil, 1}
			query = "INSERT INTO pages (key, html, created_at) VALUES (?, ?, ?)"
		case 12: // changes no row
			query, args = "DELETE FROM pages WHERE key = ?", []any{"no-such-key-000000"}
		}
		wg.Go(func() { counts[i], errs[i] = s.exec(context.Background(), query, args...) })
	}
	waitQueued(t, s, writes)
	s.unlock()
	wg.Wait()
	for i, err := range errs {
		want := int64(1)
		switch i {
		case 7:
			if err == nil {
				t.Errorf("write %d broke a constraint: got nil error", i)
			}
			continue
		case 12:
			want = 0
		}
		if err != nil || counts[i] != want {
			t.Errorf("write %d: %d rows, %v; want %d, nil", i, counts[i], err, want)
		}
	}
	if n := pageCount(t, s); n != writes-2 {
		t.Errorf("%d pages stored, want %d", n, writes-2)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) != 0 {
		t.Errorf("%d writes left in the queue", len(s.queue))
	}
}

// TestGroupCommitBounded: a queue longer than one batch is written by
// successive holders, every write exactly once.
func TestGroupCommitBounded(t *testing.T) {
	s := openTest(t)
	writes := 2*maxBatch + 5
	s.writer <- struct{}{}
	errs := make([]error, writes)
	var wg sync.WaitGroup
	for i := range writes {
		wg.Go(func() {
			_, errs[i] = s.exec(context.Background(), putPage, fmt.Sprintf("page-key-%012d", i), []byte("x"), 1)
		})
	}
	waitQueued(t, s, writes)
	s.unlock()
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Error(err)
	}
	if n := pageCount(t, s); n != writes {
		t.Errorf("%d pages stored, want %d", n, writes)
	}
}

// TestWriteWithdrawn: a write whose context ends while it waits for the
// writer is withdrawn and never written.
func TestWriteWithdrawn(t *testing.T) {
	s := openTest(t)
	s.writer <- struct{}{}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() {
		_, err := s.exec(ctx, putPage, "page-key-withdrawn00", []byte("x"), 1)
		done <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("exec after its context ended: got %v, want context.Canceled", err)
	}
	waitQueued(t, s, 0)
	s.unlock()
	if _, err := s.exec(t.Context(), putPage, "page-key-after000000", []byte("x"), 1); err != nil {
		t.Fatal(err)
	}
	if n := pageCount(t, s); n != 1 {
		t.Errorf("%d pages stored, want only the write made after", n)
	}
}

// TestGroupAtomic: the statements of a group are written all or none, alone
// or in a batch with other writes, and those after the first only when the
// first changed a row.
func TestGroupAtomic(t *testing.T) {
	page := func(key string) stmt { return stmt{putPage, []any{key, []byte("x"), 1}} }
	broken := stmt{"INSERT INTO pages (key, html, created_at) VALUES (?, ?, ?)", []any{"page-key-broken00000", nil, 1}}
	none := stmt{"DELETE FROM pages WHERE key = ?", []any{"no-such-key-000000"}}
	for _, batched := range []bool{false, true} {
		s := openTest(t)
		ctx := t.Context()
		if batched {
			s.writer <- struct{}{} // busy: the writes below queue, and go as one batch
		}
		var wg sync.WaitGroup
		var errFailed, errSkipped, errOK, errSingle error
		var nSkipped, nOK int64
		wg.Go(func() { _, errFailed = s.execGroup(ctx, page("page-key-group-a0000"), broken) })
		wg.Go(func() { nSkipped, errSkipped = s.execGroup(ctx, none, page("page-key-group-b0000")) })
		wg.Go(func() { nOK, errOK = s.execGroup(ctx, page("page-key-group-c0000"), page("page-key-group-d0000")) })
		wg.Go(func() { _, errSingle = s.exec(ctx, putPage, "page-key-single00000", []byte("x"), 1) })
		if batched {
			waitQueued(t, s, 4)
			s.unlock()
		}
		wg.Wait()
		if errFailed == nil {
			t.Errorf("batched %v: a group with a failing statement: nil error, want one", batched)
		}
		if errSkipped != nil || nSkipped != 0 || errOK != nil || nOK != 1 || errSingle != nil {
			t.Errorf("batched %v: skipped group %d, %v; whole group %d, %v; single %v; want 0, nil; 1, nil; nil",
				batched, nSkipped, errSkipped, nOK, errOK, errSingle)
		}
		var keys []string
		rows, err := s.db.Query("SELECT key FROM pages ORDER BY key")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var k string
			rows.Scan(&k)
			keys = append(keys, k)
		}
		rows.Close()
		if want := []string{"page-key-group-c0000", "page-key-group-d0000", "page-key-single00000"}; !slices.Equal(keys, want) {
			t.Errorf("batched %v: pages %v, want %v", batched, keys, want)
		}
	}
}
