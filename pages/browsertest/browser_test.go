package browsertest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/pages"
)

// The browser tests need, on top of Go:
//   - node (18 or newer) and npm;
//   - Chromium at /usr/bin/chromium (Debian: apt-get install -y chromium), or the
//     path in APPROVALBOT_CHROMIUM;
//   - playwright-core, pinned in package.json: npm ci --prefix pages/browsertest
//     (it downloads no browser).
//
// Screenshots go to APPROVALBOT_SCREENSHOTS, or pages/browsertest/screenshots;
// the test logs the folder. BROWSERTEST_ONLY=dismiss,nojs runs only the named
// scenarios (for debugging).

const title = "Deploy v1.2 to prod"

// scenarios names the requests browser.test.mjs expects, with their approvers
// and policy. Each scenario's approvers have their own addresses, so that the
// test finds each one's link in the bot's mail.
var scenarios = map[string]struct {
	approvers []string
	policy    string // empty: the default, any
}{
	"dismiss":  {approvers: []string{"dismiss-alice@example.com"}},
	"double":   {approvers: []string{"double-alice@example.com"}},
	"keyboard": {approvers: []string{"keyboard-alice@example.com"}},
	"reject":   {approvers: []string{"reject-alice@example.com"}},
	"race":     {approvers: []string{"race-alice@example.com", "race-bob@example.com"}},
	"invalid":  {approvers: []string{"invalid-alice@example.com"}},
	"nojs":     {approvers: []string{"nojs-alice@example.com"}},
	"expired":  {approvers: []string{"expired-alice@example.com"}},
	"quorum":   {approvers: []string{"quorum-alice@example.com", "quorum-bob@example.com", "quorum-carol@example.com"}, policy: "quorum:2"},
}

// expiring is the scenario whose request gets the shortest timeout the bot
// allows (one minute): the page is opened at once and used after it expired.
const expiring = "expired"

// request is one request as the browser script needs it.
type request struct {
	ID    string   `json:"id"`
	Pages []string `json:"pages"` // one page link per approver, in order
}

// apiRequest is the part of the bot's GET /api/requests/{id} answer the test
// reads.
type apiRequest struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Policy   string `json:"policy"`
	Decision *struct {
		Decision string `json:"decision"`
		By       string `json:"by"`
		Channel  string `json:"channel"`
		Comment  string `json:"comment"`
	} `json:"decision"`
	Votes []struct {
		By     string `json:"by"`
		Choice string `json:"choice"`
	} `json:"votes"`
	Progress struct {
		Approvals int `json:"approvals"`
		Needed    int `json:"needed"`
	} `json:"progress"`
	Notifications []struct {
		To    string `json:"to"`
		State string `json:"state"`
		Error string `json:"error"`
	} `json:"notifications"`
}

// TestBrowser builds and starts the real bot on 127.0.0.1, creates one request
// per scenario through its API, finds each approver's link in its outbox, runs
// browser.test.mjs in headless Chromium and then checks what the bot recorded.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("the browser tests take about a minute: skipped with -short (run go test ./pages/browsertest without -short)")
	}
	chromium, node := requireTools(t)
	b := startRealBot(t)

	cfg := map[string]any{
		"origin":   b.Origin(),
		"chromium": chromium,
		"title":    title,
	}
	reqs := map[string]request{}
	for name, sc := range scenarios {
		timeout := 3600
		if name == expiring {
			timeout = 60
		}
		id := createRequest(t, b.Origin(), sc.approvers, sc.policy, timeout)
		waitNotified(t, b.Origin(), id) // emails go out right after the 201
		reqs[name] = request{ID: id, Pages: b.Links(t, sc.approvers)}
	}
	cfg["requests"] = reqs

	preview := previewServer(t)
	cfg["previewOrigin"] = preview.URL
	var previews []map[string]string
	for _, k := range []pages.ResultKind{pages.ResultGone, pages.ResultError, pages.ResultAlreadyVoted, pages.ResultSelfApproval} {
		previews = append(previews, map[string]string{"name": "result-" + string(k), "url": preview.URL + "/result/" + string(k)})
	}
	cfg["previews"] = previews

	shots := os.Getenv("APPROVALBOT_SCREENSHOTS")
	if shots == "" {
		shots = "screenshots"
	}
	shots, err := filepath.Abs(shots)
	if err != nil {
		t.Fatal(err)
	}
	cfg["screenshots"] = shots
	cfgFile := filepath.Join(t.TempDir(), "config.json")
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "browser.test.mjs", cfgFile)
	cmd.Env = append(os.Environ(), "NODE_NO_WARNINGS=1")
	lw := &lineWriter{t: t}
	cmd.Stdout, cmd.Stderr = lw, lw
	err = cmd.Run()
	lw.flush()
	if err != nil {
		t.Fatalf("browser scenarios failed (%v); see the FAIL lines above", err)
	}
	t.Logf("screenshots: %s", shots)

	// What the bot recorded, checked here too, independently of the script.
	for name, want := range map[string]struct {
		status, comment string
		votes           int
	}{
		"dismiss":  {"approved", "Looks good to me.\nShip it after lunch.", 1},
		"double":   {"approved", "", 1},
		"keyboard": {"approved", "Approved from the keyboard", 1},
		"reject":   {"rejected", "", 1},
		"race":     {"approved", "", 1},
		"invalid":  {"pending", "", 0},
		"nojs":     {"approved", "Carried without JavaScript", 1},
		"expired":  {"expired", "", 0},
		"quorum":   {"approved", "", 2},
	} {
		if !selected(name) {
			continue
		}
		got := getRequest(t, b.Origin(), reqs[name].ID)
		if got.Status != want.status {
			t.Errorf("%s: status %q, want %q", name, got.Status, want.status)
		}
		if want.comment != "" && (got.Decision == nil || strings.ReplaceAll(got.Decision.Comment, "\r\n", "\n") != want.comment) {
			t.Errorf("%s: decision %+v, want comment %q", name, got.Decision, want.comment)
		}
		if len(got.Votes) != want.votes {
			t.Errorf("%s: %d votes %+v, want %d", name, len(got.Votes), got.Votes, want.votes)
		}
	}
	shotsWanted := []string{"page", "dialog", "confirm", "result-approved", "result-rejected", "result-already-decided",
		"result-not-found", "result-invalid", "result-expired", "result-gone", "result-error",
		"page-quorum", "result-recorded", "result-approved-quorum", "result-already-voted", "result-self-approval", "late-approved"}
	if os.Getenv("BROWSERTEST_ONLY") != "" {
		return // some screenshots were not taken
	}
	for _, s := range shotsWanted {
		for _, size := range []string{"375x812", "1280x800"} {
			if _, err := os.Stat(filepath.Join(shots, s+"-"+size+".png")); err != nil {
				t.Errorf("screenshot missing: %v", err)
			}
		}
	}
}

// selected reports whether scenario name runs: all do unless BROWSERTEST_ONLY
// (a comma-separated list, for debugging) names some.
func selected(name string) bool {
	only := os.Getenv("BROWSERTEST_ONLY")
	return only == "" || slices.Contains(strings.Split(only, ","), name)
}

// requireTools returns the paths of Chromium and node, failing the test with
// install instructions when one is missing.
func requireTools(t *testing.T) (chromium, node string) {
	t.Helper()
	chromium = os.Getenv("APPROVALBOT_CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium not found at %s (%v): install it with `apt-get install -y chromium` or set APPROVALBOT_CHROMIUM", chromium, err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found (%v): install Node.js 18 or newer (Debian: apt-get install -y nodejs npm)", err)
	}
	if _, err := os.Stat(filepath.Join("node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("playwright-core is not installed (%v): run `npm ci --prefix pages/browsertest`", err)
	}
	return chromium, node
}

// createRequest creates a request through the bot's API and returns its ID.
func createRequest(t *testing.T, origin string, approvers []string, policy string, timeoutSeconds int) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"policy":         policy,
		"title":          title,
		"details":        "Release notes:\n- faster checkout\n- new payment provider\n\nDiff: https://git.example.com/acme/shop/compare/v1.1.0...v1.2.0?diff=split&w=1&a_very_long_parameter_that_never_breaks=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"requester":      "ci@example.com",
		"approvers":      approvers,
		"timeoutSeconds": timeoutSeconds,
		"links":          []map[string]string{{"label": "Runbook", "url": "https://wiki.example.com/runbooks/deploy"}},
	})
	res, err := http.Post(origin+"/api/requests", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("create request: %v", err)
	}
	defer res.Body.Close()
	var got apiRequest
	if res.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(res.Body)
		t.Fatalf("create request: %s: %s", res.Status, msg)
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil || got.ID == "" {
		t.Fatalf("create request: bad answer (%v): %+v", err, got)
	}
	if want := cmp.Or(policy, "any"); got.Policy != want {
		t.Fatalf("create request: policy %q, want %q", got.Policy, want)
	}
	return got.ID
}

// waitNotified waits until the API shows every notification of request id as
// sent, failing the test if one failed or they take longer than 30 s.
func waitNotified(t *testing.T, origin, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := getRequest(t, origin, id)
		sent := len(r.Notifications) > 0
		for _, n := range r.Notifications {
			if n.State == "failed" {
				t.Fatalf("request %s: notification to %s failed: %s", id, n.To, n.Error)
			}
			sent = sent && n.State == "sent"
		}
		if sent {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s: notifications %+v not all sent after 30 s", id, r.Notifications)
		}
		time.Sleep(20 * time.Millisecond) // polling a separate process: no clock to inject
	}
}

func getRequest(t *testing.T, origin, id string) apiRequest {
	t.Helper()
	res, err := http.Get(origin + "/api/requests/" + id)
	if err != nil {
		t.Fatalf("get request: %v", err)
	}
	defer res.Body.Close()
	var got apiRequest
	if res.StatusCode != http.StatusOK {
		t.Fatalf("get request %s: %s", id, res.Status)
	}
	if err := json.NewDecoder(res.Body).Decode(&got); err != nil {
		t.Fatalf("get request %s: %v", id, err)
	}
	return got
}

// previewServer serves the result pages that the bot cannot be made to show on
// demand (expired needs time to pass, gone a workflow that stopped, error a
// failure), rendered by the same templates, with the same headers.
func previewServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		kind := pages.ResultKind(strings.TrimPrefix(r.URL.Path, "/result/"))
		v := pages.Result{Kind: kind}
		if kind != pages.ResultError {
			v.Request = previewRequest(kind)
		}
		if kind == pages.ResultAlreadyVoted && len(v.Request.Votes) > 0 {
			v.Vote = &v.Request.Votes[0]
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", pages.ResultCSP(""))
		w.Header().Set("Cache-Control", "no-store")
		if err := pages.RenderResult(w, v); err != nil {
			t.Errorf("render %s: %v", kind, err)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// lineWriter logs what it is given, line by line, as it arrives.
type lineWriter struct {
	t   *testing.T
	mu  sync.Mutex
	buf []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.t.Log(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(string(w.buf))
		w.buf = nil
	}
}

// previewRequest is the request shown on the preview result pages.
func previewRequest(kind pages.ResultKind) *approval.Request {
	now := time.Now().UTC().Truncate(time.Minute)
	r := &approval.Request{
		ID: "previewpreview22", Title: title, Requester: "ci@example.com",
		Approvers: []string{"alice@example.com"}, Status: approval.StatusExpired,
		CreatedAt: now.Add(-2 * time.Hour), ExpiresAt: now.Add(-time.Hour),
	}
	switch kind {
	case pages.ResultGone:
		r.Decision = &approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: now}
	case pages.ResultAlreadyVoted, pages.ResultSelfApproval:
		// Pending under "quorum:2" of three, with one vote in: the progress
		// display with a vote and a long comment.
		r.Requester = "alice@example.com"
		r.Approvers = []string{"alice@example.com", "bob-with-a-rather-long-address@platform-engineering.example.com", "carol@example.com"}
		r.Rule = approval.Rule{Policy: approval.PolicyQuorum(2)}
		r.Status, r.ExpiresAt = approval.StatusPending, now.Add(time.Hour)
		r.Votes = []approval.Vote{{
			By: r.Approvers[1], Channel: approval.ChannelEmail, Choice: approval.Approve, At: now.Add(-time.Minute),
			Comment: "Checked the diff: https://git.example.com/acme/shop/compare/v1.1.0...v1.2.0?diff=split&w=1&a_very_long_parameter_that_never_breaks=aaaaaaaaaaaaaaaaaaaaaaaa",
		}}
	}
	return r
}
