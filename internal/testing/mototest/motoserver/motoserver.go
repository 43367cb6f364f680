// Package motoserver starts moto_server, a local emulator of the AWS wire
// protocols, on a free loopback port, waits until it answers and stops it
// together with anything it started. Package mototest launches moto for tests
// through it, and package awsflow for the demo; it does not import testing, so
// a binary may use it.
package motoserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Install is the command that installs the moto server this package expects.
const Install = `pip install "moto[server]==5.2.1"`

// ErrNotInstalled is returned by Start when moto_server is not on PATH; its
// message says how to install it.
var ErrNotInstalled = errors.New("moto_server is not on PATH; install it with: " + Install)

// Server is a moto_server process started by Start.
type Server struct {
	// URL is the server's base address, such as http://127.0.0.1:43125.
	URL string
	// Port is the port the server listens on.
	Port int

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	once sync.Once
}

// Start runs `moto_server -H 127.0.0.1 -p PORT` on a free loopback port, with
// env added to its environment (an inherited MOTO_PORT is dropped first), and
// waits until it answers or ctx ends. If the process exits before answering
// (another process may have taken the port), Start tries again on another port,
// three times in all. A failed start's error ends with moto_server's output.
func Start(ctx context.Context, env []string) (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, ErrNotInstalled
	}
	start := func() (*Server, error) {
		port, err := freePort()
		if err != nil {
			return nil, backoff.Permanent(err)
		}
		return startOn(ctx, bin, port, env)
	}
	return backoff.Retry(ctx, start, backoff.WithBackOff(&backoff.ZeroBackOff{}), backoff.WithMaxTries(3), backoff.WithMaxElapsedTime(0))
}

func startOn(ctx context.Context, bin string, port int, env []string) (*Server, error) {
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = append(withoutVar(os.Environ(), "MOTO_PORT"), env...)
	out := &tail{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), Port: port, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(s.done)
	}()
	if err := waitReady(ctx, s.URL, s.done); err != nil {
		s.Stop()
		return nil, fmt.Errorf("moto_server on port %d: %w; its output:\n%s", port, err, out.String())
	}
	return s, nil
}

// Stop ends the process and any child it started (its whole process group on
// Unix), politely first. It may be called more than once.
func (s *Server) Stop() {
	s.once.Do(func() {
		terminate(s.cmd)
		select {
		case <-s.done:
			return
		case <-time.After(5 * time.Second):
		}
		kill(s.cmd)
		<-s.done
	})
}

// WaitReady polls the moto server at url until it answers or ctx ends.
func WaitReady(ctx context.Context, url string) error {
	return waitReady(ctx, url, nil)
}

// waitReady polls the server every 50 ms until it answers, ctx ends or exited
// closes.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	ask := func() (struct{}, error) {
		select {
		case <-exited:
			return struct{}{}, backoff.Permanent(errors.New("exited before answering"))
		default:
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/moto-api/config", nil)
		if err != nil {
			return struct{}{}, backoff.Permanent(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return struct{}{}, err
		}
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return struct{}{}, fmt.Errorf("GET /moto-api/config: %s", resp.Status)
		}
		return struct{}{}, nil
	}
	var last error
	_, err := backoff.Retry(ctx, ask, backoff.WithBackOff(backoff.NewConstantBackOff(50*time.Millisecond)),
		backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, _ time.Duration) { last = err }))
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("no answer within the deadline: %w", errors.Join(last, err))
	}
	return err
}

// EnableStepFunctionsExecution makes the moto server at url really run state
// machines (moto's "execute_state_machine" configuration), so that a task
// state invokes its Lambda and waits for a task token. The setting holds for
// the whole server and survives Reset.
func EnableStepFunctionsExecution(ctx context.Context, url string) error {
	return post(ctx, url, "/moto-api/config", map[string]any{
		"stepfunctions": map[string]any{"execute_state_machine": true},
	})
}

// Reset clears every resource on the moto server at url (POST /moto-api/reset).
func Reset(ctx context.Context, url string) error {
	return post(ctx, url, "/moto-api/reset", nil)
}

func post(ctx context.Context, url, path string, body any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s body: %w", path, err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, r)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, msg)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
