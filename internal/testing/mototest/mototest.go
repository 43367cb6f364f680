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
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"approvalbot/internal/testing/mototest/motoserver"
)

// EndpointEnv names the environment variable that points the tests at a moto
// server already running; when it is empty, the tests start their own.
const EndpointEnv = "MOTO_ENDPOINT"

// Install is the command that installs the moto server this package expects.
const Install = motoserver.Install

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

	proc *motoserver.Server // nil for a server that someone else started
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
		s.proc.Stop()
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
	t.Cleanup(s.proc.Stop)
	return s
}

// dial checks that a server someone else started answers at url.
func dial(url string) (*Server, error) {
	url = strings.TrimRight(url, "/")
	port := 0
	if i := strings.LastIndex(url, ":"); i >= 0 {
		port, _ = strconv.Atoi(url[i+1:])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := motoserver.WaitReady(ctx, url); err != nil {
		return nil, fmt.Errorf("%s=%s does not answer: %w", EndpointEnv, url, err)
	}
	return &Server{URL: url, Port: port}, nil
}

// launch runs moto_server on a free loopback port (see motoserver.Start).
func launch(env []string) (*Server, error) {
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	p, err := motoserver.Start(ctx, env)
	if errors.Is(err, motoserver.ErrNotInstalled) {
		return nil, fmt.Errorf("%w (or set %s to a running server)", err, EndpointEnv)
	}
	if err != nil {
		return nil, err
	}
	return &Server{URL: p.URL, Port: p.Port, proc: p}, nil
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

// HTTPClient returns the HTTP client of Config's configurations, for SDK
// configurations of a moto server that this package did not start (such as
// awsflow.Start's): it sends one DynamoDB request at a time (see
// serialDynamoDB).
func HTTPClient() *http.Client { return httpClient }

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
	if err := motoserver.Reset(context.Background(), s.URL); err != nil {
		t.Fatalf("moto: %v", err)
	}
}

// EnableStepFunctionsExecution makes moto really run state machines (moto's
// "execute_state_machine" configuration), so that a task state invokes its
// Lambda and waits for a task token. The setting holds for the whole server
// and survives Reset. In this mode moto 5.2.1 fails a StartExecution made while
// another execution runs, and names unnamed executions "None": run one
// execution at a time and always name it.
func (s *Server) EnableStepFunctionsExecution(t testing.TB) {
	t.Helper()
	if err := motoserver.EnableStepFunctionsExecution(context.Background(), s.URL); err != nil {
		t.Fatalf("moto: %v", err)
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
