// Package mototest runs tests of the AWS adapters against moto, a local
// emulator of the AWS wire protocols (DynamoDB, S3, SES v2, Step Functions…).
//
// A test gets a server with Start. When MOTO_ENDPOINT is set (for example
// http://127.0.0.1:5000), that server is used; otherwise Start runs
// `moto_server -H 127.0.0.1 -p PORT` on a free loopback port, waits until it
// answers and stops it when the test ends. A package with many tests can share
// one server through Main in its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }
//
// If moto cannot be had, the test fails with a message saying how to install
// it (pip install "moto[server]==5.2.1"); it never skips.
//
// A server holds state for every test that uses it: give each test its own
// names (UniqueName) rather than relying on Reset, which clears everything.
//
// Make SDK clients from Server.Config: besides pointing at moto, it sends one
// DynamoDB request at a time, because moto's DynamoDB transactions are not
// isolated from concurrent requests (see serialDynamoDB in the source).
package mototest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
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
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// EndpointEnv names the environment variable that points the tests at a moto
// server already running; when it is empty, the tests start their own.
const EndpointEnv = "MOTO_ENDPOINT"

// Install is the command that installs the moto server this package expects.
const Install = `pip install "moto[server]==5.2.1"`

// Region is the AWS region of the configuration returned by Server.Config.
const Region = "us-east-1"

// StartTimeout bounds how long Start waits for moto to answer.
var StartTimeout = 60 * time.Second

// Server is a moto server the tests talk to.
type Server struct {
	// URL is the server's base address, such as http://127.0.0.1:43125. It is
	// the BaseEndpoint of Config and the value for AWS_ENDPOINT_URL when running
	// a binary against moto.
	URL string
	// Port is the port the server listens on.
	Port int

	proc *process // nil for a server that someone else started
}

// Options change how Start launches moto_server.
type Options struct {
	// Env is added to the environment of the moto_server process. Setting it
	// always launches a dedicated server, even when MOTO_ENDPOINT is set.
	//
	// moto's Step Functions calls other services (Lambda included) at
	// http://localhost:$MOTO_PORT, where MOTO_PORT defaults to the server's own
	// port. An end-to-end test routes those calls through a proxy in front of
	// moto by listening on a port first and passing "MOTO_PORT=<proxy port>".
	Env []string
}

var (
	shared    *Server
	sharedErr error
)

// Main runs the tests of a package against one moto server, shared by all of
// them, and returns the exit code for os.Exit. It uses MOTO_ENDPOINT when set
// and otherwise launches moto_server and stops it after the tests. If moto
// cannot be started, every test that calls Start fails with the reason.
func Main(m *testing.M) int {
	s, err := startShared()
	if err != nil {
		sharedErr = err
		fmt.Fprintln(os.Stderr, "mototest:", err)
	}
	shared = s
	code := m.Run()
	if s != nil && s.proc != nil {
		s.proc.stop()
	}
	return code
}

func startShared() (*Server, error) {
	if ep := os.Getenv(EndpointEnv); ep != "" {
		return dial(ep)
	}
	return launch(nil)
}

// Start returns the moto server for t: the one Main started, else the one at
// MOTO_ENDPOINT, else a new moto_server stopped when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	switch {
	case sharedErr != nil:
		t.Fatalf("moto: %v", sharedErr)
	case shared != nil:
		return shared
	}
	if ep := os.Getenv(EndpointEnv); ep != "" {
		s, err := dial(ep)
		if err != nil {
			t.Fatalf("moto: %v", err)
		}
		return s
	}
	return StartWith(t, Options{})
}

// StartWith launches a moto_server for t alone, configured by o, and stops it
// when t ends.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	s, err := launch(o.Env)
	if err != nil {
		t.Fatalf("moto: %v", err)
	}
	t.Cleanup(s.proc.stop)
	return s
}

// dial checks that a server someone else started answers at url.
func dial(url string) (*Server, error) {
	url = strings.TrimRight(url, "/")
	port := 0
	if i := strings.LastIndex(url, ":"); i >= 0 {
		port, _ = strconv.Atoi(url[i+1:])
	}
	s := &Server{URL: url, Port: port}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.waitReady(ctx, nil); err != nil {
		return nil, fmt.Errorf("%s=%s does not answer: %w", EndpointEnv, url, err)
	}
	return s, nil
}

// launch runs moto_server on a free loopback port, trying a few ports in case
// another process takes the chosen one first.
func launch(env []string) (*Server, error) {
	bin, err := exec.LookPath("moto_server")
	if err != nil {
		return nil, fmt.Errorf("moto_server is not on PATH; install it with: %s (or set %s to a running server)", Install, EndpointEnv)
	}
	var last error
	for range 3 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s, err := launchOn(bin, port, env)
		if err == nil {
			return s, nil
		}
		last = err
	}
	return nil, last
}

func launchOn(bin string, port int, env []string) (*Server, error) {
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Env = append(withoutVar(os.Environ(), "MOTO_PORT"), env...)
	out := &tail{max: 16 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	p, err := startProcess(cmd)
	if err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	s := &Server{URL: "http://127.0.0.1:" + strconv.Itoa(port), Port: port, proc: p}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	if err := s.waitReady(ctx, p.done); err != nil {
		p.stop()
		return nil, fmt.Errorf("moto_server on port %d: %w; its output:\n%s", port, err, out.String())
	}
	return s, nil
}

// waitReady polls the server until it answers, ctx ends or exited closes.
func (s *Server) waitReady(ctx context.Context, exited <-chan struct{}) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/moto-api/config", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 300 {
				return nil
			}
			err = fmt.Errorf("GET /moto-api/config: %s", resp.Status)
		}
		select {
		case <-exited:
			return errors.New("exited before answering")
		case <-ctx.Done():
			return fmt.Errorf("no answer within the deadline: %w", err)
		case <-tick.C:
		}
	}
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

// Config returns an AWS SDK configuration for the server: static test
// credentials, region us-east-1 and BaseEndpoint set to the server. S3 clients
// made from it need path-style addressing:
//
//	s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
//
// Its HTTP client sends one DynamoDB request at a time (see serialDynamoDB),
// so clients made from it see DynamoDB's isolation, which moto lacks.
func (s *Server) Config(t testing.TB) aws.Config {
	t.Helper()
	return aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(s.URL),
		HTTPClient:   httpClient,
	}
}

var httpClient = &http.Client{Transport: serialDynamoDB{next: newTransport()}}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 64
	return t
}

// dynamoMu serialises the DynamoDB requests of the whole test process.
var dynamoMu sync.Mutex

// serialDynamoDB sends DynamoDB requests one at a time; other requests pass
// freely. moto 5.2.1 serves requests on concurrent threads but its
// TransactWriteItems is not isolated: it snapshots the whole table when it
// starts and, if a condition fails, restores that snapshot, undoing whatever
// other requests wrote meanwhile (and readers can see a transaction half
// applied). DynamoDB itself serialises conflicting transactions; sending one
// request at a time gives the tests the same guarantee, so a concurrency test
// checks the adapter's logic and not moto's races. moto answers only once an
// operation is complete, so holding the lock until the response headers
// arrive is enough.
type serialDynamoDB struct{ next http.RoundTripper }

func (s serialDynamoDB) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasPrefix(req.Header.Get("X-Amz-Target"), "DynamoDB_") {
		dynamoMu.Lock()
		defer dynamoMu.Unlock()
	}
	return s.next.RoundTrip(req)
}

// Env returns the environment variables that point a process using the AWS
// SDK's default configuration at the server. Such a process does not get the
// serialised DynamoDB requests of Config.
func (s *Server) Env() []string {
	return []string{
		"AWS_ENDPOINT_URL=" + s.URL,
		"AWS_REGION=" + Region,
		"AWS_ACCESS_KEY_ID=test",
		"AWS_SECRET_ACCESS_KEY=test",
	}
}

// Reset clears every resource on the server (POST /moto-api/reset). It affects
// every test using the server, so call it only on a server of your own
// (StartWith) or when tests do not run in parallel.
func (s *Server) Reset(t testing.TB) {
	t.Helper()
	s.post(t, "/moto-api/reset", nil)
}

// EnableStepFunctionsExecution makes moto really run state machines (moto's
// "execute_state_machine" configuration), so that a task state invokes its
// Lambda and waits for a task token. The setting holds for the whole server
// and survives Reset. In this mode moto 5.2.1 fails a StartExecution made while
// another execution runs, and names unnamed executions "None": run one
// execution at a time and always name it.
func (s *Server) EnableStepFunctionsExecution(t testing.TB) {
	t.Helper()
	s.post(t, "/moto-api/config", map[string]any{
		"stepfunctions": map[string]any{"execute_state_machine": true},
	})
}

func (s *Server) post(t testing.TB, path string, body any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatalf("moto: encode %s body: %v", path, err)
		}
		r = bytes.NewReader(b)
	}
	resp, err := http.Post(s.URL+path, "application/json", r)
	if err != nil {
		t.Fatalf("moto: POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		t.Fatalf("moto: POST %s: %s: %s", path, resp.Status, msg)
	}
}

// SentEmail is one message sent through SES (v1 or v2) as moto recorded it.
type SentEmail struct {
	ID   string
	From string
	// To holds every destination address (To, Cc and Bcc).
	To      []string
	Subject string
	// Body is the HTML part of a simple message, or its text part when it has
	// no HTML: moto 5.2.1 keeps only one of the two.
	Body string
	// Raw is the MIME source of a raw message; empty for simple messages.
	Raw string
}

// SentEmails returns every message sent through SES on the server, read from
// GET /moto-api/data.json: simple messages, then raw ones, each oldest first.
func (s *Server) SentEmails(t testing.TB) []SentEmail {
	t.Helper()
	resp, err := http.Get(s.URL + "/moto-api/data.json")
	if err != nil {
		t.Fatalf("moto: GET /moto-api/data.json: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("moto: GET /moto-api/data.json: %s", resp.Status)
	}
	var data struct {
		SES struct {
			Message []struct {
				ID           string              `json:"id"`
				Source       string              `json:"source"`
				Subject      string              `json:"subject"`
				Body         string              `json:"body"`
				Destinations map[string][]string `json:"destinations"`
			} `json:"Message"`
			RawMessage []struct {
				ID           string   `json:"id"`
				Source       string   `json:"source"`
				Destinations []string `json:"destinations"`
				RawData      string   `json:"raw_data"`
			} `json:"RawMessage"`
		} `json:"ses"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&data); err != nil {
		t.Fatalf("moto: decode /moto-api/data.json: %v", err)
	}
	var out []SentEmail
	for _, m := range data.SES.Message {
		var to []string
		for _, k := range []string{"ToAddresses", "CcAddresses", "BccAddresses"} {
			to = append(to, m.Destinations[k]...)
		}
		out = append(out, SentEmail{ID: m.ID, From: m.Source, To: to, Subject: m.Subject, Body: m.Body})
	}
	for _, m := range data.SES.RawMessage {
		out = append(out, SentEmail{ID: m.ID, From: m.Source, To: m.Destinations, Raw: m.RawData})
	}
	return out
}

// UniqueName returns prefix followed by a random suffix, for tables, buckets
// and other resources that must not collide between tests sharing a server.
// It uses lower-case letters and digits only, valid in every such name.
func UniqueName(prefix string) string {
	b := make([]byte, 6)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
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
