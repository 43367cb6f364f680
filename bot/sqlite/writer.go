package sqlite

import (
	"context"
	"database/sql"
	"slices"
)

// maxBatch bounds how many queued writes one transaction takes.
const maxBatch = 128

// write is one write waiting in the Store's queue, and then its outcome: one
// statement, or a group of statements written atomically (see execGroup).
type write struct {
	stmts []stmt
	n     int64 // rows changed by the first statement
	err   error
	// done is closed once the outcome is set, by the holder of the writer
	// that wrote it.
	done chan struct{}
}

// stmt is one statement of a write.
type stmt struct {
	query string
	args  []any
}

// exec runs one writing statement in this process's turn and returns the
// number of rows it changed. Writes queue for the one writer of the process
// (s.writer); whoever holds it writes the writes queued so far in one
// transaction (group commit), so that under load the cost of a commit is
// shared, and tells each waiting writer its outcome, so that a write done by
// another's batch never waits for the writer again. Each statement keeps its
// own condition and outcome; a batch in which a statement fails, or whose
// commit fails, is rolled back and its writes run again one by one, so that
// one write's failure is never another's.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	return s.execGroup(ctx, stmt{query, args})
}

// execGroup is exec for a group of statements written atomically, in order:
// the statements after the first run only when the first changed a row (so
// that, for instance, the pages of a request are stored only when the
// request is). It returns the number of rows the first changed.
func (s *Store) execGroup(ctx context.Context, stmts ...stmt) (int64, error) {
	w := &write{stmts: stmts, done: make(chan struct{})}
	s.mu.Lock()
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	select {
	case <-w.done: // written by another holder's batch
		return w.n, w.err
	case s.writer <- struct{}{}:
	case <-ctx.Done():
		s.mu.Lock()
		if i := slices.Index(s.queue, w); i >= 0 {
			// Not taken by a batch: withdrawn, never written.
			s.queue = slices.Delete(s.queue, i, i+1)
			s.mu.Unlock()
			return 0, ctx.Err()
		}
		s.mu.Unlock()
		// Being written: its outcome is known once that batch is done.
		<-w.done
		return w.n, w.err
	}
	defer s.unlock()
	s.mu.Lock()
	i := slices.Index(s.queue, w)
	if i < 0 {
		// Taken by the batch of the previous holder, which has closed
		// done (it let the writer go only after).
		s.mu.Unlock()
		<-w.done
		return w.n, w.err
	}
	s.queue = slices.Delete(s.queue, i, i+1)
	n := min(len(s.queue), maxBatch-1)
	batch := make([]*write, 0, n+1)
	batch = append(batch, w)
	batch = append(batch, s.queue[:n]...)
	s.queue = slices.Delete(s.queue, 0, n)
	s.mu.Unlock()
	s.writeBatch(context.WithoutCancel(ctx), batch)
	return w.n, w.err
}

// writeBatch writes batch, in one transaction when it holds more than one
// statement, records each write's outcome and closes its done. The caller
// holds the writer.
func (s *Store) writeBatch(ctx context.Context, batch []*write) {
	defer func() {
		for _, w := range batch {
			close(w.done)
		}
	}()
	if len(batch) > 1 || len(batch[0].stmts) > 1 {
		tx, err := s.db.BeginTx(ctx, nil)
		if err == nil {
			ok := true
			for _, w := range batch {
				if w.n, w.err = s.writeGroup(ctx, tx, w.stmts); w.err != nil {
					ok = false
					break
				}
			}
			if ok && tx.Commit() == nil {
				return
			}
			tx.Rollback()
		}
	}
	// One by one: a single statement, or a batch that failed as a whole
	// (each group again in a transaction of its own).
	for _, w := range batch {
		if len(w.stmts) == 1 {
			w.n, w.err = rowsAffected(s.stmtExec(ctx, nil, w.stmts[0]))
			continue
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			w.n, w.err = 0, err
			continue
		}
		if w.n, w.err = s.writeGroup(ctx, tx, w.stmts); w.err == nil {
			w.err = tx.Commit()
		}
		if w.err != nil {
			w.n = 0
			tx.Rollback()
		}
	}
}

// writeGroup runs the statements of one write in tx: the first, then the
// others when the first changed a row.
func (s *Store) writeGroup(ctx context.Context, tx *sql.Tx, stmts []stmt) (int64, error) {
	n, err := rowsAffected(s.stmtExec(ctx, tx, stmts[0]))
	if err != nil || n == 0 {
		return n, err
	}
	for _, st := range stmts[1:] {
		if _, err := s.stmtExec(ctx, tx, st); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// stmtExec runs st, in tx when set, prepared if it is one of prepared.
func (s *Store) stmtExec(ctx context.Context, tx *sql.Tx, st stmt) (sql.Result, error) {
	prep := s.stmt[st.query]
	switch {
	case tx != nil && prep != nil:
		return tx.StmtContext(ctx, prep).ExecContext(ctx, st.args...)
	case tx != nil:
		return tx.ExecContext(ctx, st.query, st.args...)
	case prep != nil:
		return prep.ExecContext(ctx, st.args...)
	}
	return s.db.ExecContext(ctx, st.query, st.args...)
}

// rowsAffected is the count of rows res changed.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
