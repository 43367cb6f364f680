// Package awsflow runs the AWS form of approvalbot locally against moto: a proxy
// in front of moto that answers Step Functions' Lambda invocations with Go
// handlers in this process, the creation of the table, bucket, sender identity and
// state machine the Lambdas need, and a loopback web server that serves the pages
// (as CloudFront would) and the callback (as its function URL would). Start
// puts them together with the two Lambdas (a Stack); the end-to-end tests, the
// sweep tests of package awsapp, the local demo (scripts/demoapp) and the AWS
// benchmark (scripts/benchaws) are built on it.
package awsflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"time"
)

// Handler is a Lambda function's body: it gets the invocation payload and returns
// the response payload, or an error that becomes the function error.
type Handler func(ctx context.Context, payload []byte) ([]byte, error)

// maxPayload bounds an invocation payload (Lambda's own limit is 6 MB).
const maxPayload = 6 << 20

// Proxy sits in front of moto. It answers Lambda Invoke calls
// (POST /2015-03-31/functions/{name}/invocations) for the functions registered
// with Handle, and forwards every other request to moto. moto 5.2.1's Step
// Functions calls Lambda at http://localhost:$MOTO_PORT, so a moto_server started
// with MOTO_PORT set to the proxy's port runs its Lambda tasks through it.
//
// For fault and latency tests it can also wait a fixed time before forwarding
// each call (SetDelay), drop the answers of chosen calls after they took
// effect (DropResponses), fail the nth call it forwards, before or after it
// took effect (FailCall), and write every call to a Timeline (SetTimeline).
type Proxy struct {
	mu       sync.Mutex
	backend  *httputil.ReverseProxy
	handlers map[string]Handler
	invoked  map[string]int
	record   map[string]bool     // X-Amz-Target values whose bodies are kept
	recorded map[string][][]byte // bodies by X-Amz-Target
	delay    time.Duration
	drop     map[string]int // X-Amz-Target values whose next answers are dropped
	timeline *Timeline
	fault    *fault // nil: none armed

	ln  net.Listener
	srv *http.Server
}

// NewProxy listens on a free loopback port. Call SetBackend before any request
// that is not a registered Lambda invocation, and Close when done.
func NewProxy() (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("lambda proxy: %w", err)
	}
	p := &Proxy{
		handlers: map[string]Handler{}, invoked: map[string]int{}, record: map[string]bool{}, recorded: map[string][][]byte{},
		drop: map[string]int{}, ln: ln,
	}
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(ln)
	return p, nil
}

// Port is the port the proxy listens on (the value for moto's MOTO_PORT).
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// URL is the proxy's base address.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy.
func (p *Proxy) Close() error { return p.srv.Close() }

// SetBackend sets the moto server that receives everything but the registered
// Lambda invocations.
func (p *Proxy) SetBackend(motoURL string) error {
	u, err := url.Parse(motoURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("lambda proxy: bad backend URL %q", motoURL)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = httputil.NewSingleHostReverseProxy(u)
	return nil
}

// Handle registers h as the function with the given name. Invocations name the
// function by name or by ARN; both reach h.
func (p *Proxy) Handle(name string, h Handler) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handlers[name] = h
}

// Invocations returns how many times the named function was invoked.
func (p *Proxy) Invocations(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.invoked[name]
}

// Record makes the proxy keep the body of every request forwarded to moto whose
// X-Amz-Target header is target (such as "AWSStepFunctions.SendTaskFailure"),
// for a test to read with Recorded. It lets a test check what was sent where
// moto does not keep it (moto 5.2.1 drops SendTaskFailure's cause).
func (p *Proxy) Record(target string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.record[target] = true
}

// Recorded returns the bodies of the requests recorded for target, oldest first.
func (p *Proxy) Recorded(target string) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.recorded[target]...)
}

// SetDelay makes the proxy wait d before it forwards each request to moto: a
// fixed latency added to every AWS call that goes through it. The Lambda
// invocations it answers itself are not delayed. Zero turns it off.
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delay = d
}

// DropResponses makes the proxy forward the next n requests whose
// X-Amz-Target header is target (such as "AWSStepFunctions.SendTaskSuccess")
// to moto and then close the caller's connection without an answer: the call
// takes effect, and its caller sees a broken connection.
func (p *Proxy) DropResponses(target string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.drop[target] = n
}

// fault is the armed FailCall: the calls forwarded since, and which to fail.
type fault struct {
	nth   int
	after bool
	calls []string
}

// FailCall makes the proxy count the calls it forwards from now on and fail
// the nth of them (none when n is 0) with AccessDenied, which the SDK does
// not retry: before it reaches moto, or, with after, once moto has done it
// (the call took effect; its caller is told it failed). Lambda invocations
// the proxy answers itself are not counted. StopFaults ends it.
func (p *Proxy) FailCall(n int, after bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault = &fault{nth: n, after: after}
}

// StopFaults disarms FailCall and returns the names of the calls counted
// since it was armed, in the order they came.
func (p *Proxy) StopFaults() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var calls []string
	if p.fault != nil {
		calls = p.fault.calls
	}
	p.fault = nil
	return calls
}

// countCall counts a forwarded call for an armed FailCall and says whether to
// fail it, and when.
func (p *Proxy) countCall(name string) (fail, after bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.fault
	if f == nil {
		return false, false
	}
	f.calls = append(f.calls, name)
	return len(f.calls) == f.nth, f.after
}

// writeAccessDenied answers an AWS call with AccessDenied in its protocol's
// form: S3's XML, or the JSON error of the other services.
func writeAccessDenied(w http.ResponseWriter, name string) {
	if strings.HasPrefix(name, "s3.") {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>injected fault</Message></Error>`)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
	w.WriteHeader(http.StatusBadRequest)
	io.WriteString(w, `{"__type":"AccessDeniedException","message":"injected fault"}`)
}

// SetTimeline makes the proxy add every call it forwards or answers to t
// (nil stops it).
func (p *Proxy) SetTimeline(t *Timeline) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.timeline = t
}

// ServeHTTP routes one request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	p.mu.Lock()
	tl := p.timeline
	p.mu.Unlock()
	if tl != nil {
		name := CallName(r)
		defer func() { tl.Add(name, start, time.Now()) }()
	}
	if name, ok := invocationTarget(r); ok {
		p.mu.Lock()
		h := p.handlers[name]
		if h != nil {
			p.invoked[name]++
		}
		p.mu.Unlock()
		if h != nil {
			serveInvocation(w, r, h)
			return
		}
	}
	target := r.Header.Get("X-Amz-Target")
	p.mu.Lock()
	b, delay := p.backend, p.delay
	keep := p.record[target]
	drop := p.drop[target] > 0
	if drop {
		p.drop[target]--
	}
	p.mu.Unlock()
	if keep {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxPayload))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		p.mu.Lock()
		p.recorded[target] = append(p.recorded[target], body)
		p.mu.Unlock()
	}
	if b == nil {
		http.Error(w, "lambda proxy: no backend", http.StatusBadGateway)
		return
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if fail, after := p.countCall(CallName(r)); fail {
		if after {
			b.ServeHTTP(httptest.NewRecorder(), r) // takes effect; its caller is told it failed
		}
		writeAccessDenied(w, CallName(r))
		return
	}
	if drop {
		b.ServeHTTP(httptest.NewRecorder(), r) // takes effect; the answer is lost
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	b.ServeHTTP(w, r)
}

// CallName names an AWS call as the proxy sees it: "dynamodb.UpdateItem",
// "sfn.SendTaskSuccess", "s3.PutObject", "ses.SendEmail", "lambda.Invoke
// notifier"… A request it does not recognise is named by method and path.
func CallName(r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		svc, op, ok := strings.Cut(t, ".")
		if !ok {
			return t
		}
		switch {
		case strings.HasPrefix(svc, "DynamoDB"):
			svc = "dynamodb"
		case svc == "AWSStepFunctions":
			svc = "sfn"
		case strings.HasPrefix(svc, "secretsmanager"):
			svc = "secretsmanager"
		}
		return svc + "." + op
	}
	if name, ok := invocationTarget(r); ok {
		return "lambda.Invoke " + name
	}
	path := r.URL.Path
	switch {
	case path == "/v2/email/outbound-emails" && r.Method == http.MethodPost:
		return "ses.SendEmail"
	case path == "/v2/email/identities" && r.Method == http.MethodPost:
		return "ses.CreateEmailIdentity"
	case strings.HasPrefix(path, "/moto-api/"):
		return "moto " + path
	}
	// S3, path-style: /bucket[/key]
	key := strings.Contains(strings.TrimPrefix(path, "/"), "/")
	q := r.URL.Query()
	switch {
	case r.Method == http.MethodPost && q.Has("delete"):
		return "s3.DeleteObjects"
	case r.Method == http.MethodPut && key:
		return "s3.PutObject"
	case r.Method == http.MethodPut:
		return "s3.CreateBucket"
	case r.Method == http.MethodGet && key:
		return "s3.GetObject"
	case r.Method == http.MethodGet && q.Get("list-type") == "2":
		return "s3.ListObjectsV2"
	case r.Method == http.MethodDelete && key:
		return "s3.DeleteObject"
	}
	return r.Method + " " + path
}

// invocationTarget returns the function name of a Lambda Invoke request.
func invocationTarget(r *http.Request) (string, bool) {
	const prefix, suffix = "/2015-03-31/functions/", "/invocations"
	path := r.URL.EscapedPath()
	if r.Method != http.MethodPost || !strings.HasPrefix(path, prefix) || !strings.HasSuffix(path, suffix) {
		return "", false
	}
	name, err := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(path, prefix), suffix))
	if err != nil || name == "" {
		return "", false
	}
	// arn:aws:lambda:region:account:function:name[:qualifier]
	if parts := strings.Split(name, ":"); len(parts) >= 7 && parts[0] == "arn" {
		name = parts[6]
	}
	return name, true
}

// serveInvocation answers like Lambda's Invoke API: the payload on success; on
// failure status 200 with X-Amz-Function-Error and {"errorType","errorMessage"},
// errorType being the error's Go type name as aws-lambda-go reports it.
func serveInvocation(w http.ResponseWriter, r *http.Request, h Handler) {
	payload, err := io.ReadAll(io.LimitReader(r.Body, maxPayload))
	if err != nil {
		http.Error(w, "read payload", http.StatusBadRequest)
		return
	}
	out, err := h(r.Context(), payload)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		b, _ := json.Marshal(map[string]string{"errorType": ErrorType(err), "errorMessage": err.Error()})
		w.Write(b)
		return
	}
	if len(out) == 0 {
		out = []byte("null")
	}
	w.Write(out)
}

// ErrorType is the name Lambda's Go runtime gives a returned error: the name of
// its type, or of the type it points to.
func ErrorType(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}
