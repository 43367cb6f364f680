// Package cmdmain is the main function of the commands under scripts/: each
// one's main is cmdmain.Main(name, run), where run does the work with the
// arguments, stdout and stderr it is given and returns an error.
//
// Main cancels run's context on an interrupt or SIGTERM, and exits 0 when run
// returns nil or flag.ErrHelp, 2 on a UsageError and 1 on any other error,
// printing the error after the command's name on stderr.
package cmdmain

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs run with the command line's arguments (without the program name)
// and exits as the package says. name prefixes the error message.
func Main(name string, run func(ctx context.Context, args []string, stdout, stderr io.Writer) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(name, err, os.Stderr))
}

// exitCode is the exit status for what run returned; it prints err, if any,
// to stderr after name.
func exitCode(name string, err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	if errors.As(err, new(UsageError)) {
		return 2
	}
	return 1
}

// UsageError is an error in the command line: Main exits 2 on it.
type UsageError struct{ Err error }

// Error is the message of the error in the command line.
func (u UsageError) Error() string { return u.Err.Error() }

// Unwrap returns the error in the command line.
func (u UsageError) Unwrap() error { return u.Err }

// Parse parses args with fs and refuses positional arguments. A bad flag or
// an argument is a UsageError; -h or -help returns flag.ErrHelp (fs has
// printed the usage), which Main takes as a success.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return UsageError{err}
	}
	if fs.NArg() > 0 {
		return UsageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return nil
}
