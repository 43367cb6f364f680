package sqlite_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/sqlite"
	"approvalbot/internal/testing/memory"
)

// auditDB makes a database with a trail: a quorum:2 request of three email
// approvers with two votes (approved), checkpointed. It returns the path, the
// request, and the store (open).
func auditDB(t *testing.T) (string, *approval.Request, *sqlite.Store) {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	s := open(t, path)
	p := sqlite.NewPages(s, "http://127.0.0.1:8080")
	svc := &approval.Service{
		Store: s, Pages: p, Renderer: renderer{}, Mailer: memory.NewMailer(),
		DecideURL: "http://127.0.0.1:8080/decide", Now: newClock(storetest.Base).Now, Sync: true,
	}
	r, _, err := svc.Create(ctx, approval.NewRequest{Title: "Deploy", Approvers: emailApprovers(3), Policy: "quorum:2", Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range r.Recipients[:2] {
		page, err := p.Get(ctx, rc.PageKey)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Decide(ctx, approval.DecideInput{Token: string(page), Choice: approval.Approve, Comment: "fine"}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := svc.Checkpoint(ctx); err != nil || n != 1 {
		t.Fatalf("Checkpoint: %d, %v", n, err)
	}
	r, err = s.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return path, r, s
}

// verifyStore reads the store's whole log and verifies it.
func verifyStore(t *testing.T, s approval.Store) approval.AuditReport {
	t.Helper()
	var lines []approval.AuditLine
	cursor := ""
	for {
		es, next, err := s.ReadAudit(t.Context(), approval.AuditQuery{Cursor: cursor, Limit: 4})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			lines = append(lines, approval.AuditLine{Line: len(lines) + 1, Entry: e})
		}
		if next == "" {
			return approval.VerifyAudit(lines, storetest.Base)
		}
		cursor = next
	}
}

// TestAuditLogAppendOnly: the log refuses to change what it holds.
func TestAuditLogAppendOnly(t *testing.T) {
	path, r, _ := auditDB(t)
	db := rawDB(t, path)
	for _, q := range []string{
		"UPDATE audit SET entry = replace(entry, 'fine', 'FINE') WHERE request_id = ?",
		"DELETE FROM audit WHERE request_id = ?",
	} {
		if _, err := db.Exec(q, r.ID); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: got %v, want the append-only refusal", q, err)
		}
	}
}

// TestAuditTampering changes the log behind the store's back (its guard
// triggers dropped, as someone with the file could): verify names the entry
// edited, deleted or moved.
func TestAuditTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(db *sql.DB, id string) error
		want   []string // in the first problem
	}{
		{"edit a vote's comment", func(db *sql.DB, id string) error {
			_, err := db.Exec(`UPDATE audit SET entry = replace(entry, '"comment":"fine"', '"comment":"fine, and I approve the next one too"')
				WHERE request_id = ? AND seq = 5`, id)
			return err
		}, []string{"entry 5 (vote)", "edited"}},
		{"delete a vote", func(db *sql.DB, id string) error {
			_, err := db.Exec("DELETE FROM audit WHERE request_id = ? AND seq = 5", id)
			return err
		}, []string{"entry 6", "entry 5 is missing", "deleted"}},
		{"delete the last entry", func(db *sql.DB, id string) error {
			_, err := db.Exec("DELETE FROM audit WHERE request_id = ? AND seq = (SELECT max(seq) FROM audit WHERE request_id = ?)", id, id)
			return err
		}, []string{"sealed by checkpoint 1, is missing"}},
		{"reorder two votes", func(db *sql.DB, id string) error {
			// Swap the stored entries 5 and 6: the log then holds 6 before 5.
			var five, six string
			q := "SELECT entry FROM audit WHERE request_id = ? AND seq = ?"
			if err := db.QueryRow(q, id, 5).Scan(&five); err != nil {
				return err
			}
			if err := db.QueryRow(q, id, 6).Scan(&six); err != nil {
				return err
			}
			if _, err := db.Exec("UPDATE audit SET entry = ? WHERE request_id = ? AND seq = 5", six, id); err != nil {
				return err
			}
			_, err := db.Exec("UPDATE audit SET entry = ? WHERE request_id = ? AND seq = 6", five, id)
			return err
		}, []string{"entry 6 (vote): comes before entry 5", "reordered"}},
		{"delete the whole request", func(db *sql.DB, id string) error {
			_, err := db.Exec("DELETE FROM audit WHERE request_id = ?", id)
			return err
		}, []string{"sealed by checkpoint 1, is missing", "deleted"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, r, s := auditDB(t)
			if rep := verifyStore(t, s); !rep.OK() {
				t.Fatalf("before tampering: %v", rep.Problems)
			}
			db := rawDB(t, path)
			if _, err := db.Exec("DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete"); err != nil {
				t.Fatal(err)
			}
			if err := tt.tamper(db, r.ID); err != nil {
				t.Fatal(err)
			}
			rep := verifyStore(t, s)
			if rep.OK() {
				t.Fatal("the tampered log verified")
			}
			got := rep.Problems[0].String()
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("first problem %q does not say %q", got, w)
				}
			}
			if rep.Problems[0].RequestID != r.ID {
				t.Errorf("first problem names request %q, want %s", rep.Problems[0].RequestID, r.ID)
			}
		})
	}
}

// TestAuditTriggerCopiesOnce: the triggers copy each entry once, in chain
// order, however often the request is written.
func TestAuditTriggerCopiesOnce(t *testing.T) {
	path, r, s := auditDB(t)
	ctx := context.Background()
	for range 3 {
		if err := s.UpdateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var n, seqs int
	if err := rawDB(t, path).QueryRow("SELECT count(*), count(DISTINCT seq) FROM audit WHERE request_id = ?", r.ID).Scan(&n, &seqs); err != nil {
		t.Fatal(err)
	}
	if n != len(r.Audit) || seqs != n {
		t.Errorf("log holds %d entries (%d distinct) of the request, want its %d", n, seqs, len(r.Audit))
	}
}
