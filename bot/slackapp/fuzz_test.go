package slackapp

import (
	"context"
	"encoding/json"
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

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

// The fuzz targets of the Slack routes: the bodies are signed as Slack signs
// them, so that the fuzzer reaches what runs after the signature check. Each
// execution gets a fresh in-memory service and an in-process Slack (no HTTP
// to a fake server), so that nothing outlives it.

// fuzzSlack is the Web API in process: it answers every call, and users.info
// with the profiles of fakeSlack.
type fuzzSlack struct {
	mu   sync.Mutex
	told []string // ephemeral texts
}

func (f *fuzzSlack) PostEphemeralContext(_ context.Context, _, _ string, opts ...slack.MsgOption) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.told = append(f.told, "ephemeral")
	return "1700000000.000200", nil
}

func (f *fuzzSlack) GetUserInfoContext(_ context.Context, user string, _ ...slack.GetUserInfoOption) (*slack.User, error) {
	emails := map[string]string{"U0ALICE01": "Alice@Example.com", "U0BOB0001": "bob@example.com", "U0MALLORY": "mallory@example.com"}
	email, ok := emails[user]
	if !ok {
		return nil, slack.SlackErrorResponse{Err: "user_not_found"}
	}
	return &slack.User{ID: user, Profile: slack.UserProfile{Email: email}}, nil
}

func (f *fuzzSlack) PostMessageContext(_ context.Context, channel string, _ ...slack.MsgOption) (string, string, error) {
	return channel, "1700000000.000100", nil
}

func (f *fuzzSlack) UpdateMessageContext(_ context.Context, channel, ts string, _ ...slack.MsgOption) (string, string, string, error) {
	return channel, ts, "", nil
}

func (f *fuzzSlack) OpenConversationContext(_ context.Context, p *slack.OpenConversationParameters) (*slack.Channel, bool, bool, error) {
	ch := &slack.Channel{}
	ch.ID = "D" + p.Users[0][1:]
	return ch, false, false, nil
}

// fuzzEnv is a handler over a fresh service holding one pending request
// (alice, bob and U0CAROL01 approve; mallory asked).
func fuzzEnv(t *testing.T) (http.Handler, *approval.Service, *approval.Request) {
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	api := &fuzzSlack{}
	svc := &approval.Service{
		Store: memory.NewStore(), Pages: memory.NewPages("https://approvals.example.com"), Renderer: &renderer{tokens: map[string]string{}},
		Chat: &Chat{api: api}, Workflow: memory.NewWorkflow(), DecideURL: "https://approvals.example.com/decide",
		DefaultSlackChannel: testChannel, Now: func() time.Time { return now }, Sync: true,
	}
	r, _, err := svc.Create(context.Background(), approval.NewRequest{
		Title: "Deploy", Requester: "mallory@example.com", Timeout: time.Hour, Policy: "quorum:2",
		Approvers: []string{"alice@example.com", "bob@example.com", "U0CAROL01", "mallory@example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	app := &App{svc: svc, api: api, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler),
		respond: func(context.Context, string, *slack.WebhookMessage) error { return nil }}
	return NewHandler(app, testSecret), svc, r
}

// checkSlackVotes fails unless every vote is by an approver, once each, and
// the requester approved nothing.
func checkSlackVotes(t *testing.T, svc *approval.Service, id string) {
	t.Helper()
	r, err := svc.Store.GetRequest(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, v := range r.Votes {
		person := strings.ToLower(v.By)
		if v.Email != "" {
			person = v.Email
		}
		if !r.IsApprover(v.By) && !r.IsApprover(v.Email) || seen[person] {
			t.Fatalf("vote %+v: not an approver, or a second vote; votes %+v", v, r.Votes)
		}
		if v.Choice == approval.Approve && (v.Email == "mallory@example.com" || v.By == "U0MALLORY") {
			t.Fatalf("the requester approved: %+v", v)
		}
		seen[person] = true
	}
}

func signedPost(h http.Handler, path, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	for k, v := range sign(testSecret, time.Now(), body) {
		req.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// FuzzSlashCommand sends arbitrary signed bodies to /slack/commands: every
// answer is a 2xx with a JSON reply, or a 400, never a 5xx or a panic.
func FuzzSlashCommand(f *testing.F) {
	for _, seed := range []string{
		commandBody("U0ALICE01", ""), commandBody("U0ALICE01", "mine"), commandBody("U0BOB0001", "help"),
		commandBody("U0NOBODY1", "what\u202e"), commandBody("", "list"), "ssl_check=1&token=x",
		"text=%ZZ", "command=%2Fapprovals&text=" + strings.Repeat("m", 5000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		h, _, _ := fuzzEnv(t)
		w := signedPost(h, "/slack/commands", body)
		switch {
		case w.Code == http.StatusBadRequest:
		case w.Code == http.StatusOK && w.Body.Len() == 0: // ssl_check
		case w.Code == http.StatusOK:
			var rep struct {
				Text   string          `json:"text"`
				Blocks json.RawMessage `json:"blocks"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &rep); err != nil || rep.Text == "" {
				t.Fatalf("reply %q (%v), want JSON with a text", w.Body, err)
			}
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
	})
}

// FuzzInteraction sends arbitrary signed interaction payloads ("REQID" stands
// for the request's ID) to /slack/interactions: every one is acknowledged
// with an empty 200 (or refused with a 400), and whatever it does, every
// vote is by an approver, once each, and the requester approves nothing.
func FuzzInteraction(f *testing.F) {
	raw, err := os.ReadFile("testdata/block_actions.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range []struct{ action, user, ephemeral string }{
		{ActionApprove, "U0ALICE01", "false"}, {ActionReject, "U0BOB0001", "false"}, {ActionApprove, "U0MALLORY", "false"},
		{ActionApprove, "U0CAROL01", "true"}, {ActionOpenPage, "U0ALICE01", "false"}, {ActionMore, "U0ALICE01", "true"},
		{ActionApprove, "U0NOBODY1", "false"}, {ActionPersonalPage, "U0ALICE01", "true"},
	} {
		value := "REQID"
		if c.action == ActionMore {
			value = "all:"
		}
		f.Add(strings.NewReplacer("{{VALUE}}", value, "{{ACTION_ID}}", c.action, "{{USER_ID}}", c.user, "{{CHANNEL}}", testChannel,
			"{{EPHEMERAL}}", c.ephemeral, "{{RESPONSE_URL}}", "https://hooks.slack.com/actions/T0TEAM001/1/abc").Replace(string(raw)))
	}
	f.Add(`{"type":"block_actions","user":{"id":"U0ALICE01"},"actions":[{"action_id":"approve","value":"REQID"},{"action_id":"reject","value":"REQID"}]}`)
	f.Add(`{"type":"view_submission"}`)
	f.Add(`not json`)
	f.Fuzz(func(t *testing.T, payload string) {
		h, svc, r := fuzzEnv(t)
		body := url.Values{"payload": {strings.ReplaceAll(payload, "REQID", r.ID)}}.Encode()
		w := signedPost(h, "/slack/interactions", body)
		if w.Code != http.StatusOK && w.Code != http.StatusBadRequest {
			t.Fatalf("status %d for %q: %s", w.Code, payload, w.Body)
		}
		checkSlackVotes(t, svc, r.ID)
	})
}
