package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeSlack is the part of the Slack Web API the bot calls, recording each call.
type fakeSlack struct {
	mu      sync.Mutex
	calls   map[string][]url.Values // method -> forms
	emails  map[string]string       // user ID -> profile email
	ts      int
	changed chan struct{}
}

func newFakeSlack(t *testing.T) (*fakeSlack, string) {
	f := &fakeSlack{calls: map[string][]url.Values{}, changed: make(chan struct{}, 1), emails: map[string]string{
		"U0ALICE001": "alice@example.com",
		"U0BOB00001": "Bob@Example.com",
		"U0CAROL001": "carol@example.com",
		"U0MALLORY1": "mallory@example.com",
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		method := strings.TrimPrefix(r.URL.Path, "/")
		f.mu.Lock()
		f.calls[method] = append(f.calls[method], r.Form)
		f.ts++
		ts := fmt.Sprintf("1700000000.%06d", f.ts)
		email, known := f.emails[r.Form.Get("user")]
		f.mu.Unlock()
		select {
		case f.changed <- struct{}{}:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		var out any
		switch method {
		case "users.info":
			out = map[string]any{"ok": false, "error": "user_not_found"}
			if known {
				out = map[string]any{"ok": true, "user": map[string]any{"id": r.Form.Get("user"), "profile": map[string]any{"email": email}}}
			}
		case "conversations.open":
			out = map[string]any{"ok": true, "channel": map[string]any{"id": "D" + strings.TrimPrefix(r.Form.Get("users"), "U")}}
		case "chat.postEphemeral":
			out = map[string]any{"ok": true, "message_ts": ts}
		default:
			channel := r.Form.Get("channel")
			if channel == "" {
				channel = "C0123456789"
			}
			out = map[string]any{"ok": true, "channel": channel, "ts": ts}
		}
		json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(srv.Close)
	return f, srv.URL + "/"
}

func (f *fakeSlack) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls[method])
}

func (f *fakeSlack) forms(method string) []url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls[method])
}

// ephemeral waits for the nth (from 1) message shown to user only and
// returns its text.
func (f *fakeSlack) ephemeral(t *testing.T, user string, n int) string {
	t.Helper()
	var got []string
	eventually(t, fmt.Sprintf("ephemeral message %d to %s", n, user), func() bool {
		got = nil
		for _, form := range f.forms("chat.postEphemeral") {
			if form.Get("user") == user {
				got = append(got, form.Get("text"))
			}
		}
		return len(got) >= n
	})
	return got[n-1]
}

const (
	slackSecret  = "8f742231b10e8888abcd99yyyzzz85a5"
	slackChannel = "C0123456789"
)

// startSlackServer starts the bot with Slack on, against the fake Slack API.
func startSlackServer(t *testing.T) (*server, *fakeSlack) {
	t.Helper()
	slack, apiURL := newFakeSlack(t)
	logs := &syncBuffer{}
	m, err := newMain([]string{"-addr", "127.0.0.1:0", "-data", t.TempDir()}, env(map[string]string{
		"SLACK_BOT_TOKEN":       "xoxb-test",
		"SLACK_SIGNING_SECRET":  slackSecret,
		"SLACK_DEFAULT_CHANNEL": slackChannel,
		"SLACK_API_URL":         apiURL,
	}), io.Discard, logs)
	if err != nil {
		t.Fatal(err)
	}
	m.SweepEvery = time.Hour
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &server{t: t, m: m, url: m.URL(), data: m.DataDir, logs: logs}, slack
}

// click presses a button (approve, reject or open_page) of request id's
// channel message as Slack user, signed as Slack signs it.
func (s *server) click(id, action, user string) {
	s.t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "team_id": "T0TEAM001"},
		"team":         map[string]any{"id": "T0TEAM001"},
		"channel":      map[string]any{"id": slackChannel},
		"container":    map[string]any{"type": "message", "channel_id": slackChannel, "message_ts": "1700000000.000001", "is_ephemeral": false},
		"response_url": "https://hooks.slack.invalid/actions/1",
		"trigger_id":   "1.2.3",
		"actions":      []map[string]any{{"type": "button", "action_id": action, "block_id": "decision", "value": id, "action_ts": "1700000001.000001"}},
	})
	body := url.Values{"payload": {string(payload)}}.Encode()
	req, err := http.NewRequest("POST", s.url+"/slack/interactions", strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	stamp := fmt.Sprint(time.Now().Unix())
	mac := hmac.New(sha256.New, []byte(slackSecret))
	fmt.Fprintf(mac, "v0:%s:%s", stamp, body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Slack-Request-Timestamp", stamp)
	req.Header.Set("X-Slack-Signature", "v0="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := httpClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("click %s by %s: status %d", action, user, resp.StatusCode)
	}
}

// TestSlackWiring: with the Slack variables set, requests are posted to the
// channel, the message is updated once decided, and Slack's routes are mounted
// (and check signatures).
func TestSlackWiring(t *testing.T) {
	s, slack := startSlackServer(t)
	r := s.create(`{"title":"Slack too","approvers":["a@example.com"],"timeoutSeconds":600}`)
	if r.SlackChannel != slackChannel {
		t.Errorf("slackChannel = %q, want the default channel", r.SlackChannel)
	}
	s.idle()
	if n := slack.count("chat.postMessage"); n != 1 {
		t.Fatalf("chat.postMessage called %d times, want 1", n)
	}
	var link string
	eventually(t, "the email", func() bool { link = outboxLinks(t, s.data)["a@example.com"]; return link != "" })
	if status, _ := s.decide(getPage(t, link), "approve", "1"); status != http.StatusOK {
		t.Fatalf("approve: status %d", status)
	}
	s.idle()
	if n := slack.count("chat.update"); n != 1 {
		t.Errorf("chat.update called %d times after the decision, want 1", n)
	}

	resp, err := http.Post(s.url+"/slack/commands", "application/x-www-form-urlencoded", strings.NewReader("command=/approvals"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("unsigned /slack/commands: status %d, want 401", resp.StatusCode)
	}
}

// slackVote is one step of a Slack scenario.
type slackVote struct {
	user   string // the Slack user who clicks
	how    string // "approve", "reject": a button of the channel message; "link": approve through a personal link; "email": approve through the emailed page of approver
	email  string // with how "email": the approver whose emailed page it is
	answer string // a phrase of what they are told
	after  string // the request's status after it
}

// TestSlackVotes runs each rule through Slack end to end: the Approve and
// Reject buttons of the channel message vote as the Slack user who clicks
// (their profile email makes them one person with their email address), and
// "Open approval page" answers an approver with a personal link only they
// see. Self-approval, a second vote by one person through another channel,
// and strangers are refused.
func TestSlackVotes(t *testing.T) {
	const (
		alice, bob, carol, mallory = "U0ALICE001", "U0BOB00001", "U0CAROL001", "U0MALLORY1"
		carolEmail                 = "carol@example.com"
	)
	for _, tc := range []struct {
		name  string
		rule  string
		votes []slackVote
		voted []string // the votes recorded: "<by> <choice> <channel>"
	}{
		{
			name: "any", rule: `"approvers":["` + alice + `","` + bob + `"]`,
			votes: []slackVote{
				{user: mallory, how: "approve", answer: "not an approver", after: "pending"},
				{user: mallory, how: "link", answer: "not an approver", after: "pending"},
				{user: bob, how: "approve", answer: "Your approval is recorded: the request is approved", after: "approved"},
				{user: alice, how: "reject", answer: "already approved by", after: "approved"},
			},
			voted: []string{bob + " approve slack"},
		},
		{
			name: "all", rule: `"approvers":["` + alice + `","` + bob + `","` + carolEmail + `"],"policy":"all"`,
			votes: []slackVote{
				{user: alice, how: "approve", answer: "2 more approvals", after: "pending"},
				{user: alice, how: "approve", answer: "You already approved", after: "pending"},
				{user: bob, how: "link", answer: "recorded", after: "pending"},
				{how: "email", email: carolEmail, answer: "Approved", after: "approved"},
			},
			voted: []string{alice + " approve slack", bob + " approve slack", carolEmail + " approve email"},
		},
		{
			name: "quorum:2, one person through two channels", rule: `"approvers":["` + alice + `","` + bob + `","` + carolEmail + `"],"policy":"quorum:2"`,
			votes: []slackVote{
				{how: "email", email: carolEmail, answer: "1 more approval", after: "pending"},
				{user: carol, how: "approve", answer: "You already approved", after: "pending"},
				{user: carol, how: "link", answer: "You already approved", after: "pending"},
				{user: bob, how: "approve", answer: "approved", after: "approved"},
			},
			voted: []string{carolEmail + " approve email", bob + " approve slack"},
		},
		{
			name: "groups", rule: `"groups":[{"name":"eng","approvers":["` + alice + `","` + bob + `"]},{"name":"security","approvers":["` + carolEmail + `"]}]`,
			votes: []slackVote{
				{user: alice, how: "approve", answer: "security", after: "pending"},
				{user: carol, how: "link", answer: "Approved", after: "approved"},
			},
			voted: []string{alice + " approve slack", carolEmail + " approve slack"},
		},
		{
			name: "self-approval refused", rule: `"requester":"bob@example.com","approvers":["` + alice + `","` + bob + `"]`,
			votes: []slackVote{
				{user: bob, how: "approve", answer: "may not approve", after: "pending"},
				{user: alice, how: "approve", answer: "approved", after: "approved"},
			},
			voted: []string{alice + " approve slack"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, slack := startSlackServer(t)
			r := s.create(`{"title":"Deploy ` + tc.name + `",` + tc.rule + `,"timeoutSeconds":3600}`)
			s.idle()
			if n := slack.count("chat.postMessage"); n < 1 {
				t.Fatalf("the request was not posted to Slack")
			}
			// Every approver given as a Slack user gets a direct message.
			var dms []string
			for _, f := range slack.forms("conversations.open") {
				dms = append(dms, f.Get("users"))
			}
			for _, u := range []string{alice, bob} {
				if !slices.Contains(dms, u) && strings.Contains(tc.rule, u) {
					t.Errorf("no direct message opened with %s (opened: %v)", u, dms)
				}
			}
			seen := map[string]int{}
			for i, v := range tc.votes {
				var answer string
				switch v.how {
				case "approve", "reject":
					s.click(r.ID, v.how, v.user)
					seen[v.user]++
					answer = slack.ephemeral(t, v.user, seen[v.user])
				case "link":
					s.click(r.ID, "open_page", v.user)
					seen[v.user]++
					answer = slack.ephemeral(t, v.user, seen[v.user])
					link := pageLink.FindString(answer)
					if link == "" {
						break // refused: the answer says why
					}
					if !strings.Contains(answer, "personal") {
						t.Errorf("vote %d: the link comes without saying it is personal: %q", i, answer)
					}
					_, body := s.vote(getPage(t, link), "approve", "", false)
					answer = pageText(body)
				case "email":
					links := outboxLinks(t, s.data)
					_, body := s.vote(getPage(t, links[v.email]), "approve", "", false)
					answer = pageText(body)
				}
				if !strings.Contains(answer, v.answer) {
					t.Errorf("vote %d (%s by %s%s): answer %q, want %q in it", i, v.how, v.user, v.email, answer, v.answer)
				}
				if got := s.get(r.ID).Status; got != v.after {
					t.Fatalf("after vote %d the request is %s, want %s", i, got, v.after)
				}
			}
			final := s.get(r.ID)
			var voted []string
			for _, v := range final.Votes {
				voted = append(voted, v.By+" "+v.Choice+" "+v.Channel)
			}
			if !slices.Equal(voted, tc.voted) {
				t.Errorf("votes %q, want %q", voted, tc.voted)
			}
			// The channel message and the direct messages show the outcome.
			s.idle()
			updated := map[string]bool{}
			for _, f := range slack.forms("chat.update") {
				updated[f.Get("channel")] = true
			}
			if !updated[slackChannel] {
				t.Errorf("the channel message was never updated")
			}
			// No Slack message ever holds a link that decides for whoever opens it.
			for _, method := range []string{"chat.postMessage", "chat.update"} {
				for _, f := range slack.forms(method) {
					if l := pageLink.FindString(f.Get("blocks") + f.Get("text")); l != "" {
						t.Errorf("%s to %s holds a page link %s", method, f.Get("channel"), l)
					}
				}
			}
		})
	}
}

// TestSlackPersonalLinkIsTheWholePerson: a personal link minted in Slack votes
// as the whole person Slack vouches for, their profile email included, as the
// buttons do. So the requester (an approver by Slack user ID, the requester by
// email address) may reject through their link but not approve, and a person
// listed both by Slack user ID and by email address votes once.
func TestSlackPersonalLinkIsTheWholePerson(t *testing.T) {
	const alice, bob = "U0ALICE001", "U0BOB00001"
	t.Run("requester", func(t *testing.T) {
		s, slack := startSlackServer(t)
		r := s.create(`{"title":"Mine","requester":"bob@example.com","approvers":["` + alice + `","` + bob + `"],"timeoutSeconds":3600}`)
		s.idle()
		s.click(r.ID, "open_page", bob)
		link := pageLink.FindString(slack.ephemeral(t, bob, 1))
		if link == "" {
			t.Fatal("the requester, an approver, got no personal link")
		}
		token := getPage(t, link)
		status, body := s.vote(token, "approve", "", false)
		if status != http.StatusForbidden || !strings.Contains(body, "cannot approve your own request") {
			t.Errorf("the requester's approve through their personal link: status %d, want 403 refusing self-approval\n%s", status, pageText(body))
		}
		if got := s.get(r.ID); got.Status != "pending" || len(got.Votes) != 0 {
			t.Fatalf("the request is %s with %d votes, want pending without any", got.Status, len(got.Votes))
		}
		if status, body := s.vote(token, "reject", "", true); status != http.StatusOK || s.get(r.ID).Status != "rejected" {
			t.Errorf("the requester's reject through their personal link: status %d, request %s; want 200 and rejected\n%s", status, s.get(r.ID).Status, pageText(body))
		}
	})
	t.Run("one person, two entries", func(t *testing.T) {
		s, slack := startSlackServer(t)
		r := s.create(`{"title":"Twice","approvers":["` + alice + `","alice@example.com","` + bob + `"],"policy":"quorum:2","timeoutSeconds":3600}`)
		s.idle()
		s.click(r.ID, "open_page", alice)
		link := pageLink.FindString(slack.ephemeral(t, alice, 1))
		if link == "" {
			t.Fatal("alice got no personal link")
		}
		slackToken := getPage(t, link)
		if status, body := s.vote(getPage(t, outboxLinks(t, s.data)["alice@example.com"]), "approve", "", false); status != http.StatusOK {
			t.Fatalf("alice's approve by email: status %d\n%s", status, pageText(body))
		}
		status, body := s.vote(slackToken, "approve", "", false)
		if got := s.get(r.ID); status != http.StatusConflict || got.Status != "pending" || len(got.Votes) != 1 {
			t.Errorf("alice's second approve, through her Slack link: status %d, request %s with %d votes; want 409 and pending with one vote\n%s", status, got.Status, len(got.Votes), pageText(body))
		}
	})
}

// TestSlackConfigErrors: a partial Slack configuration stops the bot with a
// message naming the variable.
func TestSlackConfigErrors(t *testing.T) {
	for _, e := range []map[string]string{
		{"SLACK_SIGNING_SECRET": "x"},
		{"SLACK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
	} {
		_, err := newMain(nil, env(e), io.Discard, io.Discard)
		if got := exitCode(err, io.Discard); got != exitUsage || !strings.Contains(err.Error(), "SLACK_") {
			t.Errorf("%v: exit %d, err %v; want 2 naming the variable", e, got, err)
		}
	}
}
