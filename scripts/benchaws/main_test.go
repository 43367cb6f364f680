package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"approvalbot/internal/testing/awsflow"

	"github.com/google/go-cmp/cmp"
)

func TestParseFlags(t *testing.T) {
	c, err := parseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.D != 200*time.Millisecond || c.Rounds != 3 || c.Async {
		t.Errorf("defaults = %+v, want D 200ms, 3 rounds, synchronous only", c)
	}
	for _, args := range [][]string{{"-d", "0s"}, {"-rounds", "0"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}

// The milestones are read from the calls that follow the vote's POST.
func TestDecidePhase(t *testing.T) {
	const d = 50 * time.Millisecond
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(units float64) time.Time { return t0.Add(time.Duration(units * float64(d))) }
	calls := []awsflow.Call{
		{Name: "s3.GetObject", Start: at(-2), End: at(-1)}, // opening the page: before the vote
		{Name: "dynamodb.GetItem", Start: at(0), End: at(1)},
		{Name: "dynamodb.PutItem", Start: at(1), End: at(2)},
		{Name: "sfn.SendTaskSuccess", Start: at(2), End: at(3.2)},
		{Name: "s3.DeleteObjects", Start: at(2), End: at(3.1)},
		{Name: "slack.chat.update", Start: at(2), End: at(3)},
		{Name: "dynamodb.PutItem", Start: at(3.2), End: at(4.5)},
	}
	p := decidePhase(t0, at(4.6), calls)
	got := map[string]float64{}
	for k, v := range p.milestones {
		got[k] = float64(int(awsflow.Units(v, d)*100+0.5)) / 100
	}
	want := map[string]float64{mAnswer: 4.6, mResumed: 3.2, mDeleted: 3.1, mUpdated: 3, mCritical: 4.6, mAll: 4.6}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("milestones in D (-want +got):\n%s", diff)
	}
	if len(p.calls) != 6 {
		t.Errorf("%d calls in the phase, want the 6 after the POST", len(p.calls))
	}
	var b strings.Builder
	awsflow.Print(&b, p.calls, t0, d)
	if !strings.Contains(b.String(), "    2.00 D    3.20 D  sfn.SendTaskSuccess\n") {
		t.Errorf("timeline:\n%s", b.String())
	}
}

func TestMedian(t *testing.T) {
	if got := median([]time.Duration{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 = %v, want 2", got)
	}
	if got := median([]time.Duration{4, 1, 2, 3}); got != 2 {
		t.Errorf("median of 4 = %v, want 2 (2.5 truncated)", got)
	}
}
