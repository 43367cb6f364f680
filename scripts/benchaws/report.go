package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"approvalbot/internal/testing/awsflow"
)

// target is a milestone's target from issue 9, in units of D (0: none).
type target struct {
	name string
	d    float64
}

var (
	notifyTargets = []target{{mPagesUp, 0}, {mEmailsSent, 0}, {mPosted, 0}, {mNotified, 3.3}, {mAnswered, 4.3}, {mAll, 0}}
	decideTargets = []target{{mAnswer, 0}, {mResumed, 0}, {mDeleted, 0}, {mUpdated, 0}, {mCritical, 2.2}, {mAll, 3.2}}
)

// report prints the medians of sc's rounds and the timeline of the last one.
func report(w io.Writer, sc scenario, rounds []*measure, d time.Duration, timeline bool) {
	fmt.Fprintf(w, "\n%s: %d email approvers and the Slack channel\n", sc.name, len(sc.approvers))
	notify := make([]phase, len(rounds))
	for i, m := range rounds {
		notify[i] = m.notify
	}
	fmt.Fprintln(w, "  notify (from the notifier's invocation)")
	printMilestones(w, notify, notifyTargets, 0, d)
	for v := range sc.votes {
		votes := make([]phase, len(rounds))
		for i, m := range rounds {
			votes[i] = m.votes[v]
		}
		deciding := v == len(sc.votes)-1
		what := "deciding vote"
		extra := 0.0
		switch {
		case !deciding:
			what = "vote that does not decide"
		case sc.policy != "any":
			extra = 1 // issue 9: one more D for the deciding vote under other policies
		}
		fmt.Fprintf(w, "  decide: %s (from the confirmed POST)\n", what)
		ts := decideTargets
		if !deciding {
			ts = []target{{mAnswer, 2.2}, {mDeleted, 0}, {mUpdated, 0}, {mAll, 0}}
		}
		printMilestones(w, votes, ts, extra, d)
	}
	printServiceTime(w, rounds, d)
	if !timeline {
		return
	}
	last := rounds[len(rounds)-1]
	fmt.Fprintf(w, "  timeline of the last round, notify (start, end, call):\n")
	awsflow.Print(w, last.notify.calls, last.notify.t0, d)
	fmt.Fprintf(w, "  %6.2f D            notifier answered\n", awsflow.Units(last.notify.milestones[mAnswered], d))
	for v, p := range last.votes {
		fmt.Fprintf(w, "  timeline of the last round, vote %d (start, end, call):\n", v+1)
		awsflow.Print(w, p.calls, p.t0, d)
		fmt.Fprintf(w, "  %6.2f D            approver's answer\n", awsflow.Units(p.milestones[mAnswer], d))
	}
}

// printMilestones prints the median of each milestone over the phases, with
// its target (plus extra) when it has one.
func printMilestones(w io.Writer, phases []phase, targets []target, extra float64, d time.Duration) {
	for _, t := range targets {
		var vals []time.Duration
		for _, p := range phases {
			if v, ok := p.milestones[t.name]; ok && v >= 0 {
				vals = append(vals, v)
			}
		}
		if len(vals) == 0 {
			fmt.Fprintf(w, "    %-38s  none\n", t.name)
			continue
		}
		med := median(vals)
		line := fmt.Sprintf("    %-38s %5.2f D  (%s)", t.name, awsflow.Units(med, d), med.Round(time.Millisecond))
		if t.d > 0 {
			goal := t.d + extra
			verdict := "met"
			if awsflow.Units(med, d) > goal {
				verdict = "MISSED"
			}
			line += fmt.Sprintf("  [%.1f D: %s]", goal, verdict)
		}
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

// printServiceTime prints, per kind of call, the median time a call took
// beyond the D added to it: the emulator's (or the fake Slack API's) own
// work, which each call on a critical path adds to its D.
func printServiceTime(w io.Writer, rounds []*measure, d time.Duration) {
	beyond := map[string][]time.Duration{}
	for _, m := range rounds {
		for _, p := range append([]phase{m.notify}, m.votes...) {
			for _, c := range p.calls {
				if !c.End.IsZero() {
					beyond[c.Name] = append(beyond[c.Name], c.End.Sub(c.Start)-d)
				}
			}
		}
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(beyond)) {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, awsflow.Units(median(beyond[name]), d)))
	}
	fmt.Fprintf(w, "  time of each call beyond D (the emulators' own work), median in D: %s\n", strings.Join(parts, ", "))
}

func median(v []time.Duration) time.Duration {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
