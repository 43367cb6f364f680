package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/sqlite"

	"github.com/google/go-cmp/cmp"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawDB opens the database file without the store, as another tool would.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestStoreContractFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) approval.Store {
		return open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	})
}

func TestStoreContractMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) approval.Store { return open(t, ":memory:") })
}

func create(t testing.TB, s approval.Store, r *approval.Request) {
	t.Helper()
	if err := s.CreateRequest(context.Background(), r); err != nil {
		t.Fatalf("CreateRequest %s: %v", r.ID, err)
	}
}

func update(t testing.TB, s approval.Store, r *approval.Request) {
	t.Helper()
	if err := s.UpdateRequest(context.Background(), r); err != nil {
		t.Fatalf("UpdateRequest %s at version %d: %v", r.ID, r.Version, err)
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	pending := storetest.Fixture(storetest.Base)
	create(t, s, pending.Clone())
	pending.Version = 1
	closed := storetest.Fixture(storetest.Base.Add(time.Minute))
	create(t, s, closed)
	closed = storetest.Closed(closed, storetest.Base.Add(2*time.Minute))
	update(t, s, closed)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	for _, want := range []*approval.Request{pending, closed} {
		got, err := s.GetRequest(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetRequest after reopen: %v", err)
		}
		if diff := cmp.Diff(want, got, storetest.CmpOptions); diff != "" {
			t.Errorf("GetRequest after reopen (-want +got):\n%s", diff)
		}
	}
	// Still written over its version only, after the restart.
	stale := pending.Clone()
	update(t, s, pending)
	if err := s.UpdateRequest(ctx, stale); !errors.Is(err, approval.ErrConflict) {
		t.Errorf("UpdateRequest at the version before reopening and one write: got %v, want ErrConflict", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != sqlite.SchemaLatest {
		t.Errorf("SchemaVersion: got %d, %v; want %d", v, err, sqlite.SchemaLatest)
	}
}

// TestColumnsFollowEveryWrite reads the table as a tool would: the scalar
// columns, the version and the due time follow every write, so the indexes
// and tools that read them stay right.
func TestColumnsFollowEveryWrite(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	s := open(t, path)
	db := rawDB(t, path)
	r := storetest.Fixture(storetest.Base)
	create(t, s, r)

	type columns struct {
		Version   int64
		Status    string
		Title     string
		Delivered bool
		DueAt     sql.NullInt64
		Decided   sql.NullString
		ChatTS    string
	}
	read := func() columns {
		t.Helper()
		var c columns
		err := db.QueryRowContext(ctx, `SELECT version, status, title, delivered, due_at, decision_by, chat_ts
			FROM requests WHERE id = ?`, r.ID).Scan(&c.Version, &c.Status, &c.Title, &c.Delivered, &c.DueAt, &c.Decided, &c.ChatTS)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	due := func(at time.Time) sql.NullInt64 { return sql.NullInt64{Int64: at.UnixMilli(), Valid: true} }

	// The fixture's earliest due effect: bob's email, retried at +4 s.
	want := columns{Version: 1, Status: "pending", Title: r.Title, DueAt: due(storetest.Base.Add(4 * time.Second)), ChatTS: r.ChatMessage.TS}
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("columns after CreateRequest (-want +got):\n%s", diff)
	}

	c := storetest.Closed(r, storetest.Base.Add(time.Minute))
	c.Title = "renamed"
	c.ChatMessage.TS = "1700000001.000100"
	update(t, s, c)
	want = columns{Version: 2, Status: "rejected", Title: "renamed", Delivered: true, DueAt: due(storetest.Base.Add(4 * time.Second)),
		Decided: sql.NullString{String: "bob@example.com", Valid: true}, ChatTS: c.ChatMessage.TS}
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("columns after closing (-want +got):\n%s", diff)
	}

	for i := range c.Effects {
		c.Effects[i].State = approval.EffectDone
	}
	update(t, s, c)
	want.Version, want.DueAt = 3, sql.NullInt64{}
	if diff := cmp.Diff(want, read()); diff != "" {
		t.Errorf("columns once nothing is due (-want +got):\n%s", diff)
	}
}

// TestListQueriesUseIndexes checks that the lists read an index, never the
// whole table.
func TestListQueriesUseIndexes(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	for _, tt := range []struct {
		q     sqlite.Query
		index string
	}{
		{sqlite.QueryPending, "requests_status"},
		{sqlite.QueryPendingAfter, "requests_status"},
		{sqlite.QueryDue, "requests_due"},
		{sqlite.QueryClosed, "requests_closed"},
		{sqlite.QueryApprovedAfter, "requests_status"},
		{sqlite.QueryPendingOfApprover, "requests_status"},
	} {
		plan, err := s.QueryPlan(t.Context(), tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(plan, "USING INDEX "+tt.index) || strings.Contains(plan, "SCAN requests\n") || strings.HasSuffix(plan, "SCAN requests") {
			t.Errorf("query %d: plan\n%s\nwant a search or scan of index %s only", tt.q, plan, tt.index)
		}
	}
}

// TestListPendingTies pages through requests created in the same
// millisecond: the cursor breaks ties by ID, so no request is skipped or
// repeated.
func TestListPendingTies(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	ctx := t.Context()
	want := map[string]bool{}
	for range 7 {
		r := storetest.Fixture(storetest.Base)
		create(t, s, r)
		want[r.ID] = true
	}
	var got []string
	cursor := ""
	for range 10 {
		rs, next, err := s.ListPending(ctx, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			got = append(got, r.ID)
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != len(want) {
		t.Fatalf("listed %d requests over all pages, want %d", len(got), len(want))
	}
	for i, id := range got {
		if !want[id] {
			t.Errorf("listed %s twice or unknown", id)
		}
		delete(want, id)
		if i > 0 && got[i-1] <= id {
			t.Errorf("requests of one creation time not in descending ID order: %s before %s", got[i-1], id)
		}
	}
	for _, c := range []string{"not-a-cursor", "bm9kb3Q"} {
		if _, _, err := s.ListPending(ctx, c, 2); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("ListPending with cursor %q: got %v, want ErrInvalid", c, err)
		}
	}
}

// TestUpdateTwoHandles writes one version from two Stores open on the same
// file, as two processes would: SQLite's locking and busy timeout, not the
// in-process queue, let exactly one write through, and no writer sees
// SQLITE_BUSY.
func TestUpdateTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	a, b := open(t, path), open(t, path)
	r := storetest.Fixture(storetest.Base)
	create(t, a, r)
	const workers = 40
	var won atomic.Int32
	errs := make(chan error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		s := a
		if i%2 == 1 {
			s = b
		}
		c := r.Clone()
		c.Title = fmt.Sprintf("writer %d", i)
		wg.Go(func() {
			<-start
			// Readers run alongside, as pages are viewed while people vote.
			if _, err := s.GetRequest(context.Background(), r.ID); err != nil {
				errs <- fmt.Errorf("GetRequest: %w", err)
			}
			err := s.UpdateRequest(context.Background(), c)
			switch {
			case err == nil:
				won.Add(1)
			case !errors.Is(err, approval.ErrConflict):
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("UpdateRequest: got %v, want nil or ErrConflict", err)
	}
	if got := won.Load(); got != 1 {
		t.Errorf("writes of version 1: got %d, want 1", got)
	}
	got, err := b.GetRequest(t.Context(), r.ID)
	if err != nil || got.Version != 2 || !strings.HasPrefix(got.Title, "writer ") {
		t.Errorf("stored after the race: %v, %v; want one writer's title at version 2", got, err)
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	open(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := sqlite.Open(t.Context(), path); err == nil {
		s.Close()
		t.Error("Open of a database with a newer schema: got nil error, want one")
	}
}

func TestOpenInvalidPath(t *testing.T) {
	for _, path := range []string{"", "a?b", filepath.Join(t.TempDir(), "missing-dir", "x.db")} {
		if s, err := sqlite.Open(t.Context(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q): got nil error, want one", path)
		}
	}
}

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	return open(b, filepath.Join(b.TempDir(), "bench.db"))
}

func BenchmarkCreate(b *testing.B) {
	s := benchStore(b)
	for i := 0; b.Loop(); i++ {
		create(b, s, storetest.Fixture(storetest.Base.Add(time.Duration(i)*time.Millisecond)))
	}
}

// BenchmarkUpdate writes one request over and over, one writer.
func BenchmarkUpdate(b *testing.B) {
	s := benchStore(b)
	r := storetest.Fixture(storetest.Base)
	create(b, s, r)
	for b.Loop() {
		update(b, s, r)
	}
}

// BenchmarkUpdateContended has every goroutine write the same request, each
// from the version it read: one write per version goes through, the others
// read again.
func BenchmarkUpdateContended(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	r := storetest.Fixture(storetest.Base)
	create(b, s, r)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			cur, err := s.GetRequest(ctx, r.ID)
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.UpdateRequest(ctx, cur); err != nil && !errors.Is(err, approval.ErrConflict) {
				b.Error(err)
				return
			}
		}
	})
}
