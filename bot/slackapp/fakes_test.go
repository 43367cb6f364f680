package slackapp

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

const (
	testSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
	testChannel = "C0APPROVALS"
)

// sent is one message the fake Slack received.
type sent struct {
	Method      string
	Channel     string
	TS          string
	User        string
	Text        string
	Blocks      json.RawMessage
	UnfurlLinks string
	UnfurlMedia string
	ThreadTS    string
}

// fakeSlack records what the app sends to Slack's Web API, served by slacktest.
type fakeSlack struct {
	mu        sync.Mutex
	sent      []sent
	emails    map[string]string // user ID -> email
	userCalls int
	ts        int
	apiURL    string   // where slacktest serves the Web API
	opened    []string // users whose direct conversation was opened
	wsURL     string   // what apps.connections.open answers (Socket Mode tests)
	changed   chan struct{}
	hang      bool // users.info answers only when the caller gives up
	down      bool // chat.update fails as when Slack is down
}

func newFakeSlack(t *testing.T) (*fakeSlack, *slack.Client) {
	t.Helper()
	f := &fakeSlack{changed: make(chan struct{}, 1), emails: map[string]string{
		"U0ALICE01": "Alice@Example.com",
		"U0BOB0001": "bob@example.com",
		"U0CAROL01": "carol@example.com",
		"U0MALLORY": "mallory@example.com",
		"U0NOMAIL1": "",
	}}
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", f.record("chat.postMessage"))
		c.Handle("/chat.update", f.record("chat.update"))
		c.Handle("/chat.postEphemeral", f.record("chat.postEphemeral"))
		c.Handle("/users.info", f.usersInfo)
		c.Handle("/conversations.open", f.conversationsOpen)
		c.Handle("/response/", f.responseURL)
		c.Handle("/apps.connections.open", f.connectionsOpen)
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	f.apiURL = srv.GetAPIURL()
	return f, slack.New("xoxb-test", slack.OptionAPIURL(srv.GetAPIURL()))
}

func (f *fakeSlack) record(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		m := sent{
			Method:      method,
			Channel:     r.PostForm.Get("channel"),
			TS:          r.PostForm.Get("ts"),
			User:        r.PostForm.Get("user"),
			Text:        r.PostForm.Get("text"),
			UnfurlLinks: r.PostForm.Get("unfurl_links"),
			UnfurlMedia: r.PostForm.Get("unfurl_media"),
			ThreadTS:    r.PostForm.Get("thread_ts"),
		}
		if b := r.PostForm.Get("blocks"); b != "" {
			m.Blocks = json.RawMessage(b)
		}
		if method == "chat.postMessage" {
			f.ts++
			m.TS = fmt.Sprintf("1764072000.%06d", f.ts)
		}
		f.sent = append(f.sent, m)
		select {
		case f.changed <- struct{}{}:
		default:
		}
		if f.down && method == "chat.update" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "service_unavailable"})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": m.Channel, "ts": m.TS, "message_ts": m.TS})
	}
}

// conversationsOpen opens the direct conversation D… of user U… (or W…).
func (f *fakeSlack) conversationsOpen(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	users := r.Form.Get("users")
	f.mu.Lock()
	f.opened = append(f.opened, users)
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if strings.Contains(users, ",") || !approval.IsSlackUserID(users) {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "user_not_found"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "channel": map[string]any{"id": dmChannel(users)}})
}

// dmChannel is the direct conversation the fake opens with user.
func dmChannel(user string) string { return "D" + user[1:] }

// responseURL records a message posted to an interaction's response_url,
// under the method "response_url" with the response type in User.
func (f *fakeSlack) responseURL(w http.ResponseWriter, r *http.Request) {
	var msg struct {
		Text            string          `json:"text"`
		ResponseType    string          `json:"response_type"`
		ReplaceOriginal bool            `json:"replace_original"`
		Blocks          json.RawMessage `json:"blocks"`
	}
	if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	m := sent{Method: "response_url", Channel: r.URL.Path, User: msg.ResponseType, Text: msg.Text, Blocks: msg.Blocks}
	if msg.ReplaceOriginal {
		m.User += "+replace"
	}
	f.sent = append(f.sent, m)
	w.Write([]byte("ok"))
}

func (f *fakeSlack) usersInfo(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	id := r.Form.Get("user")
	f.mu.Lock()
	f.userCalls++
	email, ok := f.emails[id]
	hang := f.hang
	f.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if !ok {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "user_not_found"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "user": map[string]any{
		"id": id, "name": strings.ToLower(id), "profile": map[string]any{"email": email},
	}})
}

func (f *fakeSlack) usersInfoCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.userCalls
}

func (f *fakeSlack) connectionsOpen(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer xapp-test" {
		json.NewEncoder(w).Encode(map[string]any{"ok": false, "error": "invalid_auth"})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"ok": true, "url": f.wsURL})
}

// waitFor waits until n messages were sent with method, or fails the test
// after a deadline. Only for work the app does after answering Slack.
func (f *fakeSlack) waitFor(t *testing.T, method string, n int) []sent {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		if got := f.messages(method); len(got) >= n {
			return got
		}
		select {
		case <-f.changed:
		case <-deadline.C:
			t.Fatalf("waited 10s for %d %s calls; got %d", n, method, len(f.messages(method)))
		}
	}
}

// messages returns what was sent with the given method, in order.
func (f *fakeSlack) messages(method string) []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sent
	for _, m := range f.sent {
		if m.Method == method {
			out = append(out, m)
		}
	}
	return out
}

// renderer is an approval.Renderer that keeps each recipient's raw token, so a
// test can decide through the one-time pages.
type renderer struct {
	mu     sync.Mutex
	tokens map[string]string // recipient address -> raw token
}

func (r *renderer) Page(v approval.PageView) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tokens[v.Request.ID+"/"+v.Recipient.Address] = v.Token
	return []byte("<p>page</p>"), nil
}

func (r *renderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{To: v.Recipient.Address, Subject: v.Request.Title, Text: v.PageURL}, nil
}

func (r *renderer) token(id, address string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tokens[id+"/"+address]
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a Service with the Slack Chat, its App and Handler, and fakes around them.
type env struct {
	t        *testing.T
	slack    *fakeSlack
	store    *memory.Store
	pages    *memory.Pages
	workflow *memory.Workflow
	render   *renderer
	clock    *clock
	svc      *approval.Service
	app      *App
	handler  http.Handler
	tasks    int // task tokens handed out
}

func newEnv(t *testing.T) *env {
	t.Helper()
	fs, client := newFakeSlack(t)
	e := &env{
		t:        t,
		slack:    fs,
		store:    memory.NewStore(),
		pages:    memory.NewPages("https://approvals.example.com"),
		workflow: memory.NewWorkflow(),
		render:   &renderer{tokens: map[string]string{}},
		clock:    &clock{t: time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)},
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	e.svc = &approval.Service{
		Store:               e.store,
		Pages:               e.pages,
		Renderer:            e.render,
		Chat:                NewChat(client),
		Workflow:            e.workflow,
		DecideURL:           "https://approvals.example.com/decide",
		DefaultSlackChannel: testChannel,
		Now:                 e.clock.Now,
		Log:                 log,
	}
	e.app = NewApp(e.svc, client, log)
	e.handler = NewHandler(e.app, testSecret)
	return e
}

// create makes a request waited for by a workflow (a task token), lets its
// notifications finish, and moves the clock on a minute, so that requests
// created one after the other have distinct ages.
func (e *env) create(in approval.NewRequest) *approval.Request {
	e.t.Helper()
	if in.Timeout == 0 {
		in.Timeout = 2 * time.Hour
	}
	if in.Requester == "" {
		in.Requester = "ci-pipeline"
	}
	if in.TaskToken == "" {
		e.tasks++
		in.TaskToken = fmt.Sprintf("task-token-%d", e.tasks)
	}
	r, _, err := e.svc.Create(context.Background(), in)
	if err != nil {
		e.t.Fatalf("create request: %v", err)
	}
	e.idle()
	e.clock.Add(time.Minute)
	return e.request(r.ID)
}

// idle waits until the service's background effects are done.
func (e *env) idle() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.Idle(ctx); err != nil {
		e.t.Fatalf("effects still running after 10s: %v", err)
	}
}

// decide votes through the personal page of address (its raw token).
func (e *env) decide(r *approval.Request, address string, c approval.Choice, comment string) (*approval.Request, error) {
	e.t.Helper()
	tok := e.render.token(r.ID, address)
	if tok == "" {
		e.t.Fatalf("no personal page of %s on request %s", address, r.ID)
	}
	got, err := e.svc.Decide(context.Background(), approval.DecideInput{Token: tok, Choice: c, Comment: comment})
	e.idle()
	return got, err
}

func (e *env) request(id string) *approval.Request {
	e.t.Helper()
	r, err := e.store.GetRequest(context.Background(), id)
	if err != nil {
		e.t.Fatalf("get request %s: %v", id, err)
	}
	return r
}

// sign returns Slack's signature headers for body at ts with secret.
func sign(secret string, ts time.Time, body string) http.Header {
	stamp := fmt.Sprint(ts.Unix())
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	h := http.Header{}
	h.Set("X-Slack-Request-Timestamp", stamp)
	h.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	return h
}

// post sends body to path with the given headers and returns the response.
func (e *env) post(path string, h http.Header, body string) *httptest.ResponseRecorder {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	e.handler.ServeHTTP(w, req)
	return w
}

// answer is a command reply as the test reads it: the text of each section
// and context block, and the buttons.
type answer struct {
	ResponseType string
	Text         string
	Lines        []string
	Buttons      []button
}

// command runs a signed /approvals with text as userID.
func (e *env) command(userID, text string) answer {
	e.t.Helper()
	body := commandBody(userID, text)
	w := e.post("/slack/commands", sign(testSecret, time.Now(), body), body)
	if w.Code != http.StatusOK {
		e.t.Fatalf("/approvals %s: status %d, body %q", text, w.Code, w.Body)
	}
	var got struct {
		ResponseType string          `json:"response_type"`
		Text         string          `json:"text"`
		Blocks       json.RawMessage `json:"blocks"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		e.t.Fatalf("/approvals %s: reply is not JSON: %v: %s", text, err, w.Body)
	}
	return readAnswer(e.t, got.ResponseType, got.Text, got.Blocks)
}

// readAnswer reads an answer's blocks.
func readAnswer(t *testing.T, responseType, text string, blocks json.RawMessage) answer {
	t.Helper()
	a := answer{ResponseType: responseType, Text: text}
	if len(blocks) == 0 {
		return a
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(blocks, &raw); err != nil {
		t.Fatalf("blocks are not JSON: %v: %s", err, blocks)
	}
	for _, b := range raw {
		s := parseBlocks(t, json.RawMessage("["+string(b)+"]"))
		a.Lines = append(a.Lines, s.Sections...)
		if len(s.Context) > 0 {
			a.Lines = append(a.Lines, strings.Join(s.Context, ""))
		}
		a.Buttons = append(a.Buttons, s.Buttons...)
	}
	return a
}

func commandBody(userID, text string) string {
	return url.Values{
		"token":        {"deprecated-verification-token"},
		"team_id":      {"T0TEAM001"},
		"team_domain":  {"example"},
		"channel_id":   {testChannel},
		"channel_name": {"approvals"},
		"user_id":      {userID},
		"user_name":    {strings.ToLower(userID)},
		"command":      {"/approvals"},
		"text":         {text},
		"api_app_id":   {"A0APP0001"},
		"response_url": {"https://hooks.slack.com/commands/T0TEAM001/1/abc"},
		"trigger_id":   {"1.2.3"},
	}.Encode()
}

// where says where a button was clicked: the message's channel, whether the
// message was ephemeral (a listing), and the value of the button.
type where struct {
	Channel   string // testChannel when empty
	Ephemeral bool
}

// interactionBody is a block_actions payload like Slack's for a click of
// actionID with value (a request ID, or a More button's value) by userID, on
// the app's message in testChannel, from testdata/block_actions.json.
func interactionBody(t *testing.T, value, actionID, userID string) string {
	t.Helper()
	return interactionBodyAt(t, value, actionID, userID, where{}, "https://hooks.slack.com/actions/T0TEAM001/1234567890/abcdef")
}

func interactionBodyAt(t *testing.T, value, actionID, userID string, at where, responseURL string) string {
	t.Helper()
	return url.Values{"payload": {interactionPayload(t, value, actionID, userID, at, responseURL)}}.Encode()
}

func interactionPayload(t *testing.T, value, actionID, userID string, at where, responseURL string) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/block_actions.json")
	if err != nil {
		t.Fatal(err)
	}
	if at.Channel == "" {
		at.Channel = testChannel
	}
	return strings.NewReplacer(
		"{{VALUE}}", value, "{{ACTION_ID}}", actionID, "{{USER_ID}}", userID, "{{CHANNEL}}", at.Channel,
		"{{EPHEMERAL}}", fmt.Sprint(at.Ephemeral), "{{RESPONSE_URL}}", responseURL,
	).Replace(string(raw))
}

// click sends a signed button click on the channel message, checks that Slack
// got a 200 and waits for the effects of the click.
func (e *env) click(id, actionID, userID string, extra http.Header) {
	e.t.Helper()
	e.clickAt(id, actionID, userID, where{}, extra)
}

// clickAt is click at a given place; answers through the response URL reach
// the fake Slack.
func (e *env) clickAt(value, actionID, userID string, at where, extra http.Header) {
	e.t.Helper()
	body := interactionBodyAt(e.t, value, actionID, userID, at, e.slack.apiURL+"response/"+userID)
	h := sign(testSecret, time.Now(), body)
	for k, v := range extra {
		h[k] = v
	}
	if w := e.post("/slack/interactions", h, body); w.Code != http.StatusOK {
		e.t.Fatalf("click %s by %s: status %d, body %q", actionID, userID, w.Code, w.Body)
	}
	e.idle()
}

// told returns the answers shown to user only (ephemeral messages and
// response_url answers), in order, as text.
func (e *env) told(user string) []string {
	e.t.Helper()
	var out []string
	e.slack.mu.Lock()
	defer e.slack.mu.Unlock()
	for _, m := range e.slack.sent {
		switch {
		case m.Method == "chat.postEphemeral" && m.User == user,
			m.Method == "response_url" && m.Channel == "/response/"+user:
			out = append(out, m.Text)
		}
	}
	return out
}

func httptestRequest(method, path, body string, h http.Header) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	for k, v := range h {
		req.Header[k] = v
	}
	return req
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
