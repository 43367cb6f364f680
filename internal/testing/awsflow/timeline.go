package awsflow

import (
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// Call is one remote call seen by a Proxy or a fake service: what it was and
// when it started and ended.
type Call struct {
	Name       string
	Start, End time.Time
}

// Timeline collects calls from several goroutines (the proxy in front of
// moto, a fake Slack API), for a benchmark to read the critical paths from.
type Timeline struct {
	mu    sync.Mutex
	calls []Call
}

// Add records a call.
func (t *Timeline) Add(name string, start, end time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = append(t.calls, Call{Name: name, Start: start, End: end})
}

// Calls returns the calls recorded so far, ordered by start.
func (t *Timeline) Calls() []Call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.calls)
	slices.SortStableFunc(out, func(a, b Call) int { return a.Start.Compare(b.Start) })
	return out
}

// Reset forgets every call.
func (t *Timeline) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls = nil
}

// Print writes the calls that started at or after t0, one a line, with their
// start and end relative to t0 in units of d: "  0.00 D   1.02 D  dynamodb.GetItem".
func Print(w io.Writer, calls []Call, t0 time.Time, d time.Duration) {
	for _, c := range calls {
		if c.Start.Before(t0) {
			continue
		}
		fmt.Fprintf(w, "  %6.2f D  %6.2f D  %s\n", Units(c.Start.Sub(t0), d), Units(c.End.Sub(t0), d), c.Name)
	}
}

// Units is x in units of d.
func Units(x, d time.Duration) float64 { return float64(x) / float64(d) }
