package slackapp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

// socketServer plays Slack's side of a Socket Mode connection: it greets the
// client, sends the envelopes it is given and hands back the acknowledgements.
type socketServer struct {
	envelopes chan map[string]any
	acks      chan map[string]any
}

func (s *socketServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	conn, err := (&websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}).Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	if err := conn.WriteJSON(map[string]any{"type": "hello", "num_connections": 1}); err != nil {
		return
	}
	go func() {
		for {
			var ack map[string]any
			if err := conn.ReadJSON(&ack); err != nil {
				return
			}
			s.acks <- ack
		}
	}()
	for {
		select {
		case env := <-s.envelopes:
			if err := conn.WriteJSON(env); err != nil {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

func TestSocketMode(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())

	ss := &socketServer{envelopes: make(chan map[string]any, 4), acks: make(chan map[string]any, 4)}
	ws := httptest.NewServer(ss)
	t.Cleanup(ws.Close)
	e.slack.mu.Lock()
	e.slack.wsURL = "ws" + strings.TrimPrefix(ws.URL, "http") + "/link"
	e.slack.mu.Unlock()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	client := slack.New("xoxb-test", slack.OptionAPIURL(e.slack.apiURL), slack.OptionAppLevelToken("xapp-test"))
	go func() { done <- e.app.RunSocketMode(ctx, client) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("RunSocketMode: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("RunSocketMode did not return after its context ended")
		}
	})

	ack := func(want string) map[string]any {
		t.Helper()
		select {
		case a := <-ss.acks:
			if a["envelope_id"] != want {
				t.Fatalf("got acknowledgement %v, want envelope %s", a, want)
			}
			return a
		case <-time.After(10 * time.Second):
			t.Fatalf("no acknowledgement of envelope %s", want)
		}
		return nil
	}

	// A slash command is answered in its acknowledgement.
	cmd, _ := url.ParseQuery(commandBody("U0BOB0001", "mine"))
	flat := map[string]string{}
	for k := range cmd {
		flat[k] = cmd.Get(k)
	}
	ss.envelopes <- map[string]any{"type": "slash_commands", "envelope_id": "env-1", "payload": flat, "accepts_response_payload": true}
	a := ack("env-1")
	payload, _ := json.Marshal(a["payload"])
	var rep reply
	if err := json.Unmarshal(payload, &struct {
		ResponseType *string `json:"response_type"`
		Text         *string `json:"text"`
	}{&rep.ResponseType, &rep.Text}); err != nil {
		t.Fatal(err)
	}
	if rep.ResponseType != "ephemeral" || rep.Text != "1 request is waiting for your decision." {
		t.Errorf("command acknowledged with %s, want Bob's one pending request", payload)
	}
	var blocks struct {
		Blocks json.RawMessage `json:"blocks"`
	}
	json.Unmarshal(payload, &blocks)
	if got := readAnswer(t, rep.ResponseType, rep.Text, blocks.Blocks).Buttons; len(got) != 1 || got[0] != openPage(r.ID) {
		t.Errorf("command acknowledged with buttons %+v, want Bob's button to open his page", got)
	}

	// A click is acknowledged and votes as the clicking user.
	click := interactionPayload(t, r.ID, ActionReject, "U0BOB0001", where{}, e.slack.apiURL+"response/U0BOB0001")
	ss.envelopes <- map[string]any{"type": "interactive", "envelope_id": "env-2", "payload": json.RawMessage(click), "accepts_response_payload": false}
	ack("env-2")

	// The vote runs after the acknowledgement, in the bot's own process; the
	// voter is told last.
	e.slack.waitFor(t, "chat.postEphemeral", 1)
	e.idle()
	got := e.request(r.ID)
	if got.Status != approval.StatusRejected || got.Decision.By != "U0BOB0001" {
		t.Errorf("status %s, decision %+v; want rejected by U0BOB0001", got.Status, got.Decision)
	}
	if n := len(on(e.slack.messages("chat.update"), testChannel)); n != 1 {
		t.Errorf("%d updates of the channel message, want 1", n)
	}
}
