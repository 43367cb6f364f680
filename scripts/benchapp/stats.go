package main

import (
	"fmt"
	"slices"
	"time"
)

// Latency summarizes the durations of one kind of call made during a phase.
type Latency struct {
	Name    string  `json:"name"`   // the phase
	Call    string  `json:"call"`   // the HTTP call timed
	Ops     int     `json:"ops"`    // calls that got the expected answer
	Errors  int     `json:"errors"` // calls that failed or got another status
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"opsPerSec"` // Ops over the phase's wall time
	P50     Millis  `json:"p50Ms"`
	P95     Millis  `json:"p95Ms"`
	P99     Millis  `json:"p99Ms"`
	Max     Millis  `json:"maxMs"`
	Mean    Millis  `json:"meanMs"`
	// BotCPU is the CPU time (user and system) the bot used during the
	// phase, per successful call; 0 where it was not measured (not Linux, or
	// a row that shares its phase with another: the decide row's covers the
	// page GET before each decision).
	BotCPU Millis `json:"botCpuMsPerOp"`
}

// Millis is a duration reported in milliseconds.
type Millis float64

func ms(d time.Duration) Millis { return Millis(float64(d) / float64(time.Millisecond)) }

// String formats m with a precision that suits its size.
func (m Millis) String() string {
	switch {
	case m < 10:
		return fmt.Sprintf("%.2f", float64(m))
	case m < 100:
		return fmt.Sprintf("%.1f", float64(m))
	default:
		return fmt.Sprintf("%.0f", float64(m))
	}
}

// summarize computes the percentiles of ok (the durations of the successful
// calls of a phase), and the throughput over the phase's wall time.
func summarize(name, call string, ok []time.Duration, errors int, wall time.Duration) Latency {
	l := Latency{Name: name, Call: call, Ops: len(ok), Errors: errors, Seconds: wall.Seconds()}
	if wall > 0 {
		l.PerSec = float64(len(ok)) / wall.Seconds()
	}
	if len(ok) == 0 {
		return l
	}
	s := slices.Clone(ok)
	slices.Sort(s)
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	l.P50 = ms(percentile(s, 50))
	l.P95 = ms(percentile(s, 95))
	l.P99 = ms(percentile(s, 99))
	l.Max = ms(s[len(s)-1])
	l.Mean = ms(sum / time.Duration(len(s)))
	return l
}

// percentile is the nearest-rank p-th percentile of sorted (not empty).
func percentile(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100 // ceil(p/100 * n)
	return sorted[max(rank, 1)-1]
}
