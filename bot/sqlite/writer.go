package sqlite

import (
	"context"
	"database/sql"
	"slices"
)

// maxBatch bounds how many queued writes one transaction takes.
const maxBatch = 128

// write is one writing statement waiting in the Store's queue, and then its
// outcome.
type write struct {
	query string
	args  []any
	n     int64 // rows affected
	err   error
	done  bool
}

// exec runs one writing statement in this process's turn and returns the
// number of rows it changed. Writes queue for the one writer of the process
// (s.writer); whoever holds it writes the writes queued so far in one
// transaction (group commit), so that under load the cost of a commit is
// shared. Each statement keeps its own condition and outcome; a batch in which
// a statement fails, or whose commit fails, is rolled back and its writes run
// again one by one, so that one write's failure is never another's.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	w := &write{query: query, args: args}
	s.mu.Lock()
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	select {
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
		// Being written: its outcome is known once the writer is free.
		s.writer <- struct{}{}
	}
	defer s.unlock()
	if w.done {
		return w.n, w.err // written by the previous holder's batch
	}
	s.mu.Lock()
	n := min(len(s.queue), maxBatch)
	batch := slices.Clone(s.queue[:n])
	s.queue = slices.Delete(s.queue, 0, n)
	if !slices.Contains(batch, w) {
		i := slices.Index(s.queue, w)
		s.queue = slices.Delete(s.queue, i, i+1)
		batch = append(batch, w)
	}
	s.mu.Unlock()
	s.writeBatch(context.WithoutCancel(ctx), batch)
	return w.n, w.err
}

// writeBatch writes batch, in one transaction when it holds more than one
// write, and records each write's outcome. The caller holds the writer.
func (s *Store) writeBatch(ctx context.Context, batch []*write) {
	defer func() {
		for _, w := range batch {
			w.done = true
		}
	}()
	if len(batch) > 1 {
		tx, err := s.db.BeginTx(ctx, nil)
		if err == nil {
			ok := true
			for _, w := range batch {
				if st := s.stmt[w.query]; st != nil {
					w.n, w.err = rowsAffected(tx.StmtContext(ctx, st).ExecContext(ctx, w.args...))
				} else {
					w.n, w.err = rowsAffected(tx.ExecContext(ctx, w.query, w.args...))
				}
				if w.err != nil {
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
	// One by one: a single write, or a batch that failed as a whole.
	for _, w := range batch {
		if st := s.stmt[w.query]; st != nil {
			w.n, w.err = rowsAffected(st.ExecContext(ctx, w.args...))
		} else {
			w.n, w.err = rowsAffected(s.db.ExecContext(ctx, w.query, w.args...))
		}
	}
}

// rowsAffected is the count of rows res changed.
func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
