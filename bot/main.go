// Command bot is approvalbot in its embedded form: one process that serves the
// one-time pages, the decision endpoint and a local API over a SQLite database in
// a data folder, writes email to an outbox folder (or sends it over SMTP), and
// posts outcomes to webhooks. The same binary is the command-line client of that
// API: "bot request", "bot get", "bot list", "bot history", "bot cancel",
// "bot extend" and "bot audit", and its MCP server for AI agents: "bot mcp".
// Run "go run ./bot -h" for help.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// Exit codes of the command-line client (and of the server on bad usage).
const (
	exitApproved = 0 // the request was approved (or the command succeeded)
	exitNotOK    = 1 // rejected, expired or canceled; or the server failed
	exitUsage    = 2 // bad usage, refused input, or the server could not be reached
)

// exitError carries an exit code; its message, if any, is printed on stderr.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// exitCode turns run's error into the process exit code, printing it first.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var e *exitError
	if errors.As(err, &e) {
		if e.err != nil {
			fmt.Fprintln(stderr, "approvalbot:", e.err)
		}
		return e.code
	}
	fmt.Fprintln(stderr, "approvalbot:", err)
	return exitNotOK
}

// run is the whole program: the server by default, or a client command.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	rest := args[1:]
	if len(rest) > 0 {
		switch rest[0] {
		case "request":
			return runRequest(ctx, rest[1:], getenv, stdout, stderr)
		case "get":
			return runGet(ctx, rest[1:], getenv, stdout, stderr)
		case "list":
			return runList(ctx, rest[1:], getenv, stdout, stderr)
		case "mcp":
			return runMCP(ctx, rest[1:], getenv, os.Stdin, stdout, stderr)
		case "cancel":
			return runCancel(ctx, rest[1:], getenv, stdout, stderr)
		case "extend":
			return runExtend(ctx, rest[1:], getenv, stdout, stderr)
		case "history":
			return runHistory(ctx, rest[1:], getenv, stdout, stderr)
		case "audit":
			return runAudit(ctx, rest[1:], getenv, stdout, stderr)
		case "serve":
			rest = rest[1:]
		case "help":
			printHelp(stdout)
			return nil
		}
	}
	m, err := newMain(rest, getenv, stdout, stderr)
	if err != nil {
		return err
	}
	return m.Run(ctx)
}
