package cmdmain

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestExitCode(t *testing.T) {
	tests := []struct {
		err     error
		code    int
		message string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{fmt.Errorf("parse flags: %w", flag.ErrHelp), 0, ""},
		{UsageError{errors.New("-n 0: want 1 to 10")}, 2, "bench: -n 0: want 1 to 10\n"},
		{fmt.Errorf("config: %w", UsageError{errors.New("bad")}), 2, "bench: config: bad\n"},
		{errors.New("the bot did not start"), 1, "bench: the bot did not start\n"},
	}
	for _, tt := range tests {
		var stderr strings.Builder
		if got := exitCode("bench", tt.err, &stderr); got != tt.code || stderr.String() != tt.message {
			t.Errorf("exitCode(%v) = %d, printed %q; want %d, %q", tt.err, got, stderr.String(), tt.code, tt.message)
		}
	}
}

func TestParse(t *testing.T) {
	newFlags := func() (*flag.FlagSet, *int) {
		fs := flag.NewFlagSet("bench", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		return fs, fs.Int("n", 1, "requests")
	}
	fs, n := newFlags()
	if err := Parse(fs, []string{"-n", "7"}); err != nil || *n != 7 {
		t.Errorf("Parse(-n 7) = %v, n = %d; want nil, 7", err, *n)
	}
	fs, _ = newFlags()
	if err := Parse(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("Parse(-h) = %v, want flag.ErrHelp", err)
	}
	for _, args := range [][]string{{"-n", "x"}, {"-unknown"}, {"-n", "3", "extra"}} {
		fs, _ := newFlags()
		var u UsageError
		if err := Parse(fs, args); !errors.As(err, &u) {
			t.Errorf("Parse(%q) = %v, want a UsageError", args, err)
		}
	}
}
