package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
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

func TestStoreContractFile(t *testing.T) {
	storetest.Run(t, func(t *testing.T) approval.Store {
		return open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	})
}

func TestStoreContractMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T) approval.Store { return open(t, ":memory:") })
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	pending, pendToks := storetest.Fixture(storetest.Base)
	done, doneToks := storetest.Fixture(storetest.Base.Add(time.Minute))
	for _, c := range []struct {
		r    *approval.Request
		toks []approval.Token
	}{{pending, pendToks}, {done, doneToks}} {
		if err := s.CreateRequest(ctx, storetest.Clone(c.r), c.toks); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
	}
	d := approval.Decision{Choice: approval.Reject, By: "bob@example.com", Channel: approval.ChannelEmail, Comment: "no", At: storetest.Base.Add(2 * time.Minute)}
	decided, err := s.Claim(ctx, doneToks[1].Hash, d)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	for _, want := range []*approval.Request{pending, decided} {
		got, err := s.GetRequest(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetRequest after reopen: %v", err)
		}
		if diff := cmp.Diff(want, got, storetest.CmpOptions); diff != "" {
			t.Errorf("GetRequest after reopen (-want +got):\n%s", diff)
		}
	}
	if tok, err := s.GetToken(ctx, doneToks[1].Hash); err != nil || !tok.UsedAt.Equal(d.At) {
		t.Errorf("GetToken after reopen: got %+v, %v; want UsedAt %v", tok, err, d.At)
	}
	// Still decidable after the restart.
	if _, err := s.Claim(ctx, pendToks[0].Hash, d); err != nil {
		t.Errorf("Claim of a pending request after reopen: %v", err)
	}
	if _, err := s.Claim(ctx, doneToks[0].Hash, d); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("Claim of a decided request after reopen: got %v, want ErrAlreadyDecided", err)
	}
	if v, err := s.SchemaVersion(ctx); err != nil || v != sqlite.SchemaLatest {
		t.Errorf("SchemaVersion: got %d, %v; want %d", v, err, sqlite.SchemaLatest)
	}
}

// TestMigrateFromVersion1 opens a database written by a build before the
// delivery lease (schema version 1): it is brought up to date, keeps every
// request, and its undelivered outcomes can be leased.
func TestMigrateFromVersion1(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	old, err := sqlite.OpenAtVersion(ctx, path, 1)
	if err != nil {
		t.Fatalf("OpenAtVersion(1): %v", err)
	}
	pending, pendToks := storetest.Fixture(storetest.Base)
	undelivered, undToks := storetest.Fixture(storetest.Base.Add(time.Minute))
	delivered, delToks := storetest.Fixture(storetest.Base.Add(2 * time.Minute))
	for _, f := range []struct {
		r    *approval.Request
		toks []approval.Token
	}{{pending, pendToks}, {undelivered, undToks}, {delivered, delToks}} {
		if err := old.CreateRequest(ctx, storetest.Clone(f.r), f.toks); err != nil {
			t.Fatalf("CreateRequest at version 1: %v", err)
		}
	}
	var want []*approval.Request
	for _, hash := range []string{undToks[0].Hash, delToks[1].Hash} {
		d := approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: storetest.Base.Add(3 * time.Minute)}
		r, err := old.Claim(ctx, hash, d)
		if err != nil {
			t.Fatalf("Claim at version 1: %v", err)
		}
		want = append(want, r)
	}
	want[1].Delivered = true
	want = append(want, pending)
	if v, err := old.SchemaVersion(ctx); err != nil || v != 1 {
		t.Fatalf("SchemaVersion before migrating: got %d, %v; want 1", v, err)
	}
	if err := old.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Delivered as version 1 recorded it (this build's MarkDelivered also
	// clears the lease, a column version 1 does not have).
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "UPDATE requests SET delivered = 1 WHERE id = ?", delivered.ID); err != nil {
		t.Fatalf("mark delivered at version 1: %v", err)
	}
	db.Close()

	s := open(t, path)
	if v, err := s.SchemaVersion(ctx); err != nil || v != 2 {
		t.Errorf("SchemaVersion after migrating: got %d, %v; want 2", v, err)
	}
	for _, w := range want {
		got, err := s.GetRequest(ctx, w.ID)
		if err != nil {
			t.Fatalf("GetRequest after migrating: %v", err)
		}
		if diff := cmp.Diff(w, got, storetest.CmpOptions); diff != "" {
			t.Errorf("GetRequest after migrating (-want +got):\n%s", diff)
		}
	}
	now := storetest.Base.Add(4 * time.Minute)
	tests := []struct {
		what string
		id   string
		want error
	}{
		{"undelivered outcome", undelivered.ID, nil},
		{"undelivered outcome, lease running", undelivered.ID, approval.ErrConflict},
		{"delivered outcome", delivered.ID, approval.ErrConflict},
		{"pending request", pending.ID, approval.ErrConflict},
	}
	for _, tt := range tests {
		if err := s.LeaseDelivery(ctx, tt.id, now, now.Add(time.Minute)); !errors.Is(err, tt.want) {
			t.Errorf("LeaseDelivery of a migrated %s: got %v, want %v", tt.what, err, tt.want)
		}
	}
	list, err := s.ListUndelivered(ctx)
	if err != nil || len(list) != 1 || list[0].ID != undelivered.ID {
		t.Errorf("ListUndelivered after migrating: got %d requests, %v; want only %s", len(list), err, undelivered.ID)
	}
	// Reopening a migrated database changes nothing.
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t, path)
	if v, err := s.SchemaVersion(ctx); err != nil || v != 2 {
		t.Errorf("SchemaVersion after reopening: got %d, %v; want 2", v, err)
	}
	if err := s.LeaseDelivery(ctx, undelivered.ID, now.Add(30*time.Second), now.Add(time.Hour)); !errors.Is(err, approval.ErrConflict) {
		t.Errorf("LeaseDelivery inside the lease taken before reopening: got %v, want ErrConflict", err)
	}
}

// TestLeaseDeliveryTwoHandles takes the lease from two Stores open on the same
// file, as two processes would: exactly one is granted it.
func TestLeaseDeliveryTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	a, b := open(t, path), open(t, path)
	r, toks := storetest.Fixture(storetest.Base)
	if err := a.CreateRequest(t.Context(), r, toks); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	d := approval.Decision{Choice: approval.Reject, By: "bob@example.com", Channel: approval.ChannelEmail, At: storetest.Base.Add(time.Minute)}
	if _, err := b.Claim(t.Context(), toks[0].Hash, d); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	const workers = 20
	now := storetest.Base.Add(2 * time.Minute)
	var granted atomic.Int32
	errs := make(chan error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range workers {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			err := s.LeaseDelivery(context.Background(), r.ID, now, now.Add(time.Minute))
			switch {
			case err == nil:
				granted.Add(1)
			case !errors.Is(err, approval.ErrConflict):
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("LeaseDelivery: got %v, want nil or ErrConflict", err)
	}
	if got := granted.Load(); got != 1 {
		t.Errorf("leases granted: got %d, want 1", got)
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

// TestClaimStorm is the embedded mode's race: 200 concurrent claims over every
// token of one request on a file database, exactly one winner, and no error other
// than ErrAlreadyDecided (in particular no SQLITE_BUSY).
func TestClaimStorm(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	claimStorm(t, s, s)
}

// TestClaimStormTwoHandles runs the storm through two Stores open on the same
// file, as two processes would be: SQLite's own locking and busy timeout, not
// the in-process queue, keep the claim single-use.
func TestClaimStormTwoHandles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	claimStorm(t, open(t, path), open(t, path))
}

func claimStorm(t *testing.T, a, b *sqlite.Store) {
	t.Helper()
	const workers = 200
	r, toks := storetest.Fixture(storetest.Base)
	if err := a.CreateRequest(t.Context(), r, toks); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	var won, lost atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for i := range workers {
		d := approval.Decision{Choice: approval.Approve, By: fmt.Sprintf("u%d", i), Channel: approval.ChannelEmail, At: storetest.Base.Add(time.Minute)}
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			<-start
			// Readers run alongside, as pages are viewed while people decide.
			if _, err := s.GetRequest(context.Background(), r.ID); err != nil {
				errs <- fmt.Errorf("GetRequest: %w", err)
			}
			_, err := s.Claim(context.Background(), toks[i%len(toks)].Hash, d)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, approval.ErrAlreadyDecided):
				lost.Add(1)
			default:
				errs <- err
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	if got := won.Load(); got != 1 {
		t.Errorf("winners: got %d, want 1", got)
	}
	if got, want := lost.Load(), int32(workers-1); got != want {
		t.Errorf("ErrAlreadyDecided: got %d, want %d", got, want)
	}
}

func benchStore(b *testing.B) *sqlite.Store {
	b.Helper()
	return open(b, filepath.Join(b.TempDir(), "bench.db"))
}

func BenchmarkCreate(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	for i := 0; b.Loop(); i++ {
		r, toks := storetest.Fixture(storetest.Base.Add(time.Duration(i) * time.Millisecond))
		if err := s.CreateRequest(ctx, r, toks); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkClaim(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	var hashes []string
	for i := range b.N {
		r, toks := storetest.Fixture(storetest.Base.Add(time.Duration(i) * time.Millisecond))
		if err := s.CreateRequest(ctx, r, toks); err != nil {
			b.Fatal(err)
		}
		hashes = append(hashes, toks[0].Hash)
	}
	d := approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: storetest.Base}
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Claim(ctx, hashes[i], d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClaimContended has every goroutine claim tokens of the same few
// requests: one wins per request, the rest learn why not.
func BenchmarkClaimContended(b *testing.B) {
	s := benchStore(b)
	ctx := b.Context()
	r, toks := storetest.Fixture(storetest.Base)
	if err := s.CreateRequest(ctx, r, toks); err != nil {
		b.Fatal(err)
	}
	d := approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: storetest.Base}
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, err := s.Claim(ctx, toks[n.Add(1)%int64(len(toks))].Hash, d)
			if err != nil && !errors.Is(err, approval.ErrAlreadyDecided) {
				b.Error(err)
				return
			}
		}
	})
}
