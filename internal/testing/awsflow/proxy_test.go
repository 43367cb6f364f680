package awsflow

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestCallName(t *testing.T) {
	tests := []struct {
		method, path, target, want string
	}{
		{"POST", "/", "DynamoDB_20120810.UpdateItem", "dynamodb.UpdateItem"},
		{"POST", "/", "AWSStepFunctions.SendTaskSuccess", "sfn.SendTaskSuccess"},
		{"POST", "/2015-03-31/functions/notifier/invocations", "", "lambda.Invoke notifier"},
		{"POST", "/v2/email/outbound-emails", "", "ses.SendEmail"},
		{"POST", "/v2/email/identities", "", "ses.CreateEmailIdentity"},
		{"PUT", "/pages/p/abc", "", "s3.PutObject"},
		{"POST", "/pages?delete", "", "s3.DeleteObjects"},
		{"GET", "/pages/p/abc", "", "s3.GetObject"},
		{"GET", "/pages?list-type=2&prefix=p%2F", "", "s3.ListObjectsV2"},
		{"PUT", "/pages", "", "s3.CreateBucket"},
		{"GET", "/moto-api/data.json", "", "moto /moto-api/data.json"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(tt.method, tt.path, nil)
		if tt.target != "" {
			r.Header.Set("X-Amz-Target", tt.target)
		}
		if got := CallName(r); got != tt.want {
			t.Errorf("CallName(%s %s %s) = %q, want %q", tt.method, tt.path, tt.target, got, tt.want)
		}
	}
}

// proxyToCounter is a proxy in front of a backend that answers {} to
// everything, and the count of the calls the backend served.
func proxyToCounter(t *testing.T) (*Proxy, *atomic.Int32) {
	t.Helper()
	served := &atomic.Int32{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "{}")
	}))
	t.Cleanup(backend.Close)
	p, err := NewProxy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.SetBackend(backend.URL); err != nil {
		t.Fatal(err)
	}
	return p, served
}

// The proxy delays what it forwards, writes it to the timeline, and drops
// the answers it is told to after the backend has served them.
func TestProxyDelayAndDrop(t *testing.T) {
	p, served := proxyToCounter(t)
	tl := &Timeline{}
	p.SetTimeline(tl)
	const delay = 30 * time.Millisecond
	p.SetDelay(delay)
	p.DropResponses("AWSStepFunctions.SendTaskSuccess", 1)

	call := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, p.URL()+"/", strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", "AWSStepFunctions.SendTaskSuccess")
		return http.DefaultClient.Do(req)
	}
	start := time.Now()
	if resp, err := call(); err == nil {
		resp.Body.Close()
		t.Fatalf("first call answered %s, want its answer dropped", resp.Status)
	}
	if served.Load() != 1 {
		t.Errorf("backend served %d calls, want the dropped one to have reached it", served.Load())
	}
	resp, err := call()
	if err != nil {
		t.Fatalf("second call: %v", err)
	}
	resp.Body.Close()
	if took := time.Since(start); took < 2*delay {
		t.Errorf("two calls took %s, want at least 2 x %s", took, delay)
	}
	calls := tl.Calls()
	if len(calls) != 2 || calls[0].Name != "sfn.SendTaskSuccess" || calls[1].End.Sub(calls[1].Start) < delay {
		t.Errorf("timeline %+v, want two delayed sfn.SendTaskSuccess", calls)
	}
}

// FailCall fails the nth forwarded call with AccessDenied, before the
// backend sees it or after, and counts what it forwarded until StopFaults.
func TestProxyFailCall(t *testing.T) {
	p, served := proxyToCounter(t)
	call := func(target string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, p.URL()+"/", strings.NewReader("{}"))
		req.Header.Set("X-Amz-Target", target)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType") + " " + string(body)
	}
	for _, after := range []bool{false, true} {
		served.Store(0)
		p.FailCall(2, after)
		if code, _ := call("DynamoDB_20120810.GetItem"); code != http.StatusOK {
			t.Errorf("first call answered %d, want 200", code)
		}
		code, body := call("DynamoDB_20120810.UpdateItem")
		if code != http.StatusBadRequest || !strings.Contains(body, "AccessDeniedException") {
			t.Errorf("second call answered %d %q, want 400 AccessDeniedException", code, body)
		}
		want := int32(1)
		if after {
			want = 2
		}
		if n := served.Load(); n != want {
			t.Errorf("after=%v: the backend served %d calls, want %d", after, n, want)
		}
		if code, _ := call("DynamoDB_20120810.PutItem"); code != http.StatusOK {
			t.Errorf("third call answered %d, want 200", code)
		}
		if got := p.StopFaults(); !slices.Equal(got, []string{"dynamodb.GetItem", "dynamodb.UpdateItem", "dynamodb.PutItem"}) {
			t.Errorf("calls counted %v", got)
		}
	}
	if got := p.StopFaults(); got != nil {
		t.Errorf("calls counted when disarmed: %v", got)
	}
}
