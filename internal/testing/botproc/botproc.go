// Package botproc builds the approvalbot server and runs it as a child
// process on 127.0.0.1 with a clean environment, as `go run ./bot` runs it:
// no APPROVALBOT_ or SLACK_ variable reaches it, so it keeps its data in a
// folder of its own, writes mail to its outbox and talks to nobody else.
//
// Build compiles the binary once; Start runs it on a free loopback port and
// waits until it says where it listens; Stop ends it cleanly, Kill abruptly.
// On Linux, Memory and CPU read what the process uses from /proc.
package botproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// Package is the import path of the approvalbot server.
const Package = "approvalbot/bot"

// listening starts the line the server prints on stdout once it listens.
const listening = "approvalbot listening on "

const (
	startTimeout = 60 * time.Second // from Start to the listening line
	stopTimeout  = 20 * time.Second // from the interrupt to the exit
)

// Build compiles the approvalbot server into dir and returns the binary's
// path. It must run inside the approvalbot module (any folder of it).
func Build(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "approvalbot")
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, Package).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", Package, err, bytes.TrimSpace(out))
	}
	return bin, nil
}

// Options say how Start runs the server.
type Options struct {
	// Data is the server's data folder (-data). Required.
	Data string
	// LogLevel, when set, is the server's APPROVALBOT_LOG_LEVEL.
	LogLevel string
	// Args are more flags, after -addr and -data.
	Args []string
	// Env are more NAME=value variables, after the clean environment.
	Env []string
	// Stdout gets what the server prints on stdout; Stderr gets its log.
	// Nil discards. They may be the same writer, which then gets no
	// concurrent writes.
	Stdout, Stderr io.Writer
}

// Proc is a running approvalbot server.
type Proc struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{} // closed once the process has exited
	err    error         // what Wait said, set before exited closes
}

// Start runs the server binary bin on a free 127.0.0.1 port as opts say and
// waits until it prints where it listens. The caller must end it with Stop
// or Kill. Cancelling ctx while Start waits kills the process.
func Start(ctx context.Context, bin string, opts Options) (*Proc, error) {
	if opts.Data == "" {
		return nil, errors.New("start bot: no data folder")
	}
	args := append([]string{"-addr", "127.0.0.1:0", "-data", opts.Data}, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Env = cleanEnv(os.Environ())
	if opts.LogLevel != "" {
		cmd.Env = append(cmd.Env, "APPROVALBOT_LOG_LEVEL="+opts.LogLevel)
	}
	cmd.Env = append(cmd.Env, opts.Env...)
	addr := make(chan string, 1)
	stdout := &watcher{w: opts.Stdout, addr: addr}
	if stdout.w == nil {
		stdout.w = io.Discard
	}
	cmd.Stdout, cmd.Stderr = stdout, opts.Stderr
	if opts.Stderr != nil && same(opts.Stdout, opts.Stderr) {
		// One writer for both: exec then copies both streams in one
		// goroutine, never writing to it concurrently.
		cmd.Stderr = stdout
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start bot %s: %w", bin, err)
	}
	p := &Proc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	select {
	case a := <-addr:
		host, _, err := net.SplitHostPort(a)
		if err != nil || !net.ParseIP(host).IsLoopback() {
			p.Kill()
			return nil, fmt.Errorf("the bot listens on %q, not on a loopback address", a)
		}
		p.url = "http://" + a
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("the bot exited before listening (%v)", p.err)
	case <-time.After(startTimeout):
		p.Kill()
		return nil, fmt.Errorf("the bot did not start within %s", startTimeout)
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

// URL is where the server answers: http://127.0.0.1:port.
func (p *Proc) URL() string { return p.url }

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Stop interrupts the server (a clean shutdown that closes the database) and
// waits for it to exit, killing it if it takes longer than 20 seconds. It
// returns an error if the server did not exit cleanly.
func (p *Proc) Stop() error {
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.Kill()
		return fmt.Errorf("stop bot: %w", err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("bot exited: %w", p.err)
		}
		return nil
	case <-time.After(stopTimeout):
		p.Kill()
		return fmt.Errorf("the bot did not stop within %s after an interrupt; killed", stopTimeout)
	}
}

// Kill ends the server with SIGKILL, as a crash would, and waits until it has
// exited. Killing an exited server does nothing.
func (p *Proc) Kill() {
	p.cmd.Process.Kill()
	<-p.exited
}

// cleanEnv drops the bot's own settings (SMTP, Slack, API token...) from env.
func cleanEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if strings.HasPrefix(kv, "APPROVALBOT_") || strings.HasPrefix(kv, "SLACK_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// same reports whether a and b are the same writer.
func same(a, b io.Writer) bool {
	return reflect.TypeOf(a) == reflect.TypeOf(b) && reflect.TypeOf(a).Comparable() && a == b
}

// watcher passes what the server prints on to w, and sends the address of
// the first listening line to addr.
type watcher struct {
	w    io.Writer
	addr chan<- string // nil once sent
	line []byte        // the start of a line not yet ended, until then
}

func (w *watcher) Write(b []byte) (int, error) {
	if w.addr != nil {
		w.line = append(w.line, b...)
		for {
			i := bytes.IndexByte(w.line, '\n')
			if i < 0 {
				break
			}
			if a, ok := strings.CutPrefix(string(w.line[:i]), listening); ok {
				w.addr <- strings.TrimSpace(a)
				w.addr, w.line = nil, nil
				break
			}
			w.line = w.line[i+1:]
		}
	}
	return w.w.Write(b)
}
