package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/web"
)

// outboxMail is one email of the outbox: to whom, its subject and the page
// link in it.
type outboxMail struct {
	To, Subject, Link string
}

// outbox reads every email in the outbox, oldest first.
func outbox(t *testing.T, data string) []outboxMail {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	slices.Sort(files)
	var out []outboxMail
	dec := new(mime.WordDecoder)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := mail.ReadMessage(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		to, err := mail.ParseAddress(msg.Header.Get("To"))
		if err != nil {
			t.Fatal(err)
		}
		subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(msg.Body)
		out = append(out, outboxMail{To: to.Address, Subject: subject, Link: pageLink.FindString(string(body))})
	}
	return out
}

// reminders are the reminder emails of the outbox, by recipient.
func reminders(t *testing.T, data string) map[string][]outboxMail {
	t.Helper()
	out := map[string][]outboxMail{}
	for _, m := range outbox(t, data) {
		if strings.HasPrefix(m.Subject, "Reminder: ") {
			out[m.To] = append(out[m.To], m)
		}
	}
	return out
}

func (s *server) postJSON(path, body string) (int, string) {
	s.t.Helper()
	return s.do("POST", path, "application/json", body)
}

// TestRemindersInTheOutbox: reminder emails reach those who have not voted,
// at the times asked for, with the link they were sent first; none after the
// request closes.
func TestRemindersInTheOutbox(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)}
	s := startServer(t, t.TempDir(), func(m *Main) { m.Now = clock.Now })
	r := s.create(`{"title":"Rotate the keys","approvers":["alice@example.com","bob@example.com"],"policy":"all","timeoutSeconds":14400,
		"reminders":{"everySeconds":3600,"beforeExpirySeconds":[1800]}}`)
	if r.Reminders == nil || r.Reminders.NextAt == nil || !r.Reminders.NextAt.Equal(r.CreatedAt.Add(time.Hour)) {
		t.Fatalf("reminders in the API: %+v, want the next in an hour", r.Reminders)
	}
	s.idle()
	first := outboxLinks(t, s.data)

	s.sweep(clock, 59*time.Minute)
	s.idle()
	if got := reminders(t, s.data); len(got) != 0 {
		t.Fatalf("reminders before their time: %v", got)
	}
	s.sweep(clock, time.Minute)
	s.idle()
	got := reminders(t, s.data)
	for _, a := range []string{"alice@example.com", "bob@example.com"} {
		if len(got[a]) != 1 || got[a][0].Link != first[a] {
			t.Errorf("after an hour %s got %v, want one reminder with the link %s", a, got[a], first[a])
		}
	}
	// alice votes; the next rounds remind bob only: at 2h, 3h and 3h30.
	if status, body := s.vote(getPage(t, first["alice@example.com"]), "approve", "", false); status != http.StatusOK {
		t.Fatalf("alice's vote: %d %s", status, pageText(body))
	}
	for _, step := range []time.Duration{time.Hour, time.Hour, 30 * time.Minute} {
		s.sweep(clock, step)
	}
	s.idle()
	got = reminders(t, s.data)
	if len(got["alice@example.com"]) != 1 || len(got["bob@example.com"]) != 4 {
		t.Errorf("reminders: alice %d, bob %d; want 1 and 4", len(got["alice@example.com"]), len(got["bob@example.com"]))
	}
	if out := getOutput(t, s, r.ID); !strings.Contains(out, "reminders:  every 1h; 30m before the expiry; last ") {
		t.Errorf("bot get does not show the reminders:\n%s", out)
	}
	// bob votes: no more reminders.
	if status, _ := s.vote(getPage(t, first["bob@example.com"]), "approve", "", false); status != http.StatusOK {
		t.Fatal("bob's vote")
	}
	s.sweep(clock, 20*time.Minute)
	s.idle()
	if n := len(reminders(t, s.data)["bob@example.com"]); n != 4 {
		t.Errorf("bob got %d reminders after the request closed, want still 4", n)
	}
}

// getOutput is what "bot get ID" prints.
func getOutput(t *testing.T, s *server, id string) string {
	t.Helper()
	var out strings.Builder
	if err := run(context.Background(), []string{"bot", "get", id, "--server", s.url}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("bot get: %v", err)
	}
	return out.String()
}

// TestEscalationAddsApprovers: still pending after its escalation time, the
// request is put to the escalation approvers too, who can then vote.
func TestEscalationAddsApprovers(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)}
	s := startServer(t, t.TempDir(), func(m *Main) { m.Now = clock.Now })
	r := s.create(`{"title":"Open the firewall","approvers":["alice@example.com"],"timeoutSeconds":14400,
		"escalation":{"afterSeconds":7200,"approvers":["carol@example.com"]}}`)
	if e := r.Escalation; e == nil || e.DueAt == nil || !e.DueAt.Equal(r.CreatedAt.Add(2*time.Hour)) || e.EscalatedAt != nil {
		t.Fatalf("escalation in the API: %+v", r.Escalation)
	}
	s.idle()
	s.sweep(clock, 2*time.Hour-time.Second)
	s.idle()
	if _, ok := outboxLinks(t, s.data)["carol@example.com"]; ok {
		t.Fatal("carol was asked before the escalation")
	}
	s.sweep(clock, time.Second)
	s.idle()
	carol, ok := outboxLinks(t, s.data)["carol@example.com"]
	if !ok {
		t.Fatal("carol got no email at the escalation")
	}
	got := s.get(r.ID)
	if !slices.Equal(got.Approvers, []string{"alice@example.com", "carol@example.com"}) || got.Escalation.EscalatedAt == nil {
		t.Errorf("after the escalation: approvers %v, escalation %+v", got.Approvers, got.Escalation)
	}
	if page := getPageBody(t, carol); !strings.Contains(page, "escalated to you") {
		t.Errorf("carol's page does not say why she is asked:\n%s", pageText(page))
	}
	s.sweep(clock, time.Minute)
	s.idle()
	if n := len(outbox(t, s.data)); n != 2 {
		t.Errorf("%d emails after a second sweep, want 2: no second escalation", n)
	}
	status, body := s.vote(getPage(t, carol), "approve", "covering for alice", false)
	if status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Fatalf("carol's vote: %d %s", status, pageText(body))
	}
	if got := s.get(r.ID); got.Status != "approved" || got.Decision.By != "carol@example.com" {
		t.Errorf("request %s decided by %+v, want approved by carol", got.Status, got.Decision)
	}
}

func getPageBody(t *testing.T, link string) string {
	t.Helper()
	resp, err := httpClient.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestApprovedByTimeout: "request --on-timeout approve --wait" exits 0 and
// says "approved by timeout" when nobody objects; the webhook says who
// decided: "timeout".
func TestApprovedByTimeout(t *testing.T) {
	clock := &fakeClock{now: time.Now().UTC()}
	hook := newWebhook(t)
	s := startServer(t, t.TempDir(), func(m *Main) { m.Now = clock.Now })
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"bot", "request", "--server", s.url, "--title", "Nightly cleanup",
			"--approver", "alice@example.com", "--timeout", "1h", "--on-timeout", "approve", "--webhook", hook.srv.URL, "--wait"}, env(nil), out, io.Discard)
	}()
	eventually(t, "the client to print the id", func() bool { return strings.Contains(out.String(), "on timeout: approve") })
	s.idle()
	s.sweep(clock, time.Hour)
	select {
	case err := <-done:
		if code := exitCode(err, io.Discard); code != exitApproved {
			t.Errorf("request --wait exited %d (%v), want 0", code, err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting client did not get the outcome")
	}
	if !strings.Contains(out.String(), "decision:   approved by timeout") {
		t.Errorf("client output lacks \"approved by timeout\":\n%s", out)
	}
	eventually(t, "the webhook", func() bool { return len(hook.results()) == 1 })
	if got := hook.results()[0]; got.Decision != "approved" || got.DecidedBy != "timeout" || got.Channel != "" || len(got.Votes) != 0 {
		t.Errorf("webhook got %+v, want approved, decidedBy timeout, no vote", got)
	}
}

// TestCancelThroughCLIAndAPI: "bot cancel" and POST .../cancel withdraw a
// request in the API caller's name; waiting callers and the webhook are told,
// the pages go; a second cancel is refused.
func TestCancelThroughCLIAndAPI(t *testing.T) {
	hook := newWebhook(t)
	s := startServer(t, t.TempDir(), func(m *Main) { m.APIName = "release-bot" })
	r := s.create(`{"title":"Deploy v1.3","approvers":["alice@example.com"],"timeoutSeconds":3600,"webhookURL":"` + hook.srv.URL + `"}`)
	s.idle()
	link := outboxLinks(t, s.data)["alice@example.com"]

	waited := make(chan error, 1)
	waitOut := &syncBuffer{}
	go func() {
		waited <- run(context.Background(), []string{"bot", "get", r.ID, "--server", s.url, "--wait"}, env(nil), waitOut, io.Discard)
	}()
	var out strings.Builder
	if err := run(context.Background(), []string{"bot", "cancel", r.ID, "--server", s.url, "--reason", "superseded by v1.4"}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("bot cancel: %v", err)
	}
	if !strings.Contains(out.String(), "status:     canceled") || !strings.Contains(out.String(), "canceled:   by release-bot at ") || !strings.Contains(out.String(), "superseded by v1.4") {
		t.Errorf("bot cancel printed:\n%s", out.String())
	}
	select {
	case err := <-waited:
		if code := exitCode(err, io.Discard); code != exitNotOK {
			t.Errorf("get --wait exited %d, want 1 for a canceled request", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting client was not told")
	}
	if !strings.Contains(waitOut.String(), "status:     canceled") {
		t.Errorf("get --wait printed:\n%s", waitOut)
	}
	eventually(t, "the webhook", func() bool { return len(hook.results()) == 1 })
	if got := hook.results()[0]; got.Decision != "canceled" || got.CanceledBy != "release-bot" || got.CancelReason != "superseded by v1.4" {
		t.Errorf("webhook got %+v", got)
	}
	if got := statusOf(t, link); got != http.StatusGone {
		t.Errorf("page after cancel: status %d, want 410 (what happened)", got)
	}
	if err := run(context.Background(), []string{"bot", "cancel", r.ID, "--server", s.url}, env(nil), io.Discard, io.Discard); exitCode(err, io.Discard) != exitUsage {
		t.Errorf("second bot cancel: %v, want refused", err)
	}

	// Through the API directly, without a body.
	r2 := s.create(`{"title":"Deploy v1.4","approvers":["alice@example.com"],"timeoutSeconds":3600}`)
	status, body := s.do("POST", "/api/requests/"+r2.ID+"/cancel", "", "")
	var got web.RequestJSON
	json.Unmarshal([]byte(body), &got)
	if status != http.StatusOK || got.Status != "canceled" || got.Canceled == nil || got.Canceled.By != "release-bot" {
		t.Errorf("POST cancel: %d %s", status, body)
	}
	status, body = s.postJSON("/api/requests/"+r2.ID+"/cancel", `{"reason":"again"}`)
	if status != http.StatusConflict || !strings.Contains(body, "already canceled by release-bot") {
		t.Errorf("second POST cancel: %d %s, want 409", status, body)
	}
	if status, _ := s.postJSON("/api/requests/"+r2.ID+"/cancel", `{"reason":"x","who":"me"}`); status != http.StatusBadRequest {
		t.Errorf("cancel with an unknown field: %d, want 400", status)
	}
	if status, _ := s.do("GET", "/api/requests/"+r2.ID+"/cancel", "", ""); status != http.StatusMethodNotAllowed {
		t.Errorf("GET cancel: %d, want 405", status)
	}
}

// TestExtend: "bot extend" gives more time; the pages show the new expiry at
// the same address, the link still votes; refused past 30 days.
func TestExtend(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)}
	s := startServer(t, t.TempDir(), func(m *Main) { m.Now = clock.Now })
	r := s.create(`{"title":"Migrate the database","approvers":["alice@example.com"],"timeoutSeconds":3600}`)
	s.idle()
	link := outboxLinks(t, s.data)["alice@example.com"]
	if page := getPageBody(t, link); !strings.Contains(page, "Wed 25 Nov 2026, 14:00 UTC") {
		t.Fatalf("page before the extension does not show the expiry:\n%s", pageText(page))
	}
	clock.Add(50 * time.Minute)
	var out strings.Builder
	if err := run(context.Background(), []string{"bot", "extend", r.ID, "--timeout", "2h", "--server", s.url}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("bot extend: %v", err)
	}
	want := time.Date(2026, 11, 25, 15, 50, 0, 0, time.UTC)
	got := s.get(r.ID)
	if !got.ExpiresAt.Equal(want) || len(got.Extensions) != 1 || got.Extensions[0].By != "api" {
		t.Errorf("after extend: expires %v, extensions %+v; want %v by api", got.ExpiresAt, got.Extensions, want)
	}
	if !strings.Contains(out.String(), "extended:   by api at ") {
		t.Errorf("bot extend printed:\n%s", out.String())
	}
	if page := getPageBody(t, link); !strings.Contains(page, "Wed 25 Nov 2026, 15:50 UTC") {
		t.Errorf("page after the extension does not show the new expiry:\n%s", pageText(page))
	}
	status, body := s.postJSON("/api/requests/"+r.ID+"/extend", `{"timeoutSeconds":2592000}`)
	if status != http.StatusBadRequest || !strings.Contains(body, `"field":"timeoutSeconds"`) || !strings.Contains(body, "30 days") {
		t.Errorf("extend past 30 days: %d %s, want 400 naming timeoutSeconds", status, body)
	}
	if status, body := s.postJSON("/api/requests/"+r.ID+"/extend", `{}`); status != http.StatusBadRequest || !strings.Contains(body, "timeoutSeconds is required") {
		t.Errorf("extend without timeoutSeconds: %d %s", status, body)
	}
	clock.Add(90 * time.Minute) // past the old expiry, before the new one
	if status, body := s.vote(getPage(t, link), "approve", "", false); status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Errorf("vote after the old expiry: %d %s", status, pageText(body))
	}
}

// TestDelegateThroughThePage: "Delegate to…" on bob's page hands his vote to
// carol, who gets her own link and votes; bob's link no longer votes.
func TestDelegateThroughThePage(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	r := s.create(`{"title":"Grant prod access","approvers":["alice@example.com","bob@example.com"],"policy":"all","timeoutSeconds":3600}`)
	s.idle()
	links := outboxLinks(t, s.data)
	page := getPageBody(t, links["bob@example.com"])
	if !strings.Contains(page, "Delegate to…") || !strings.Contains(page, `action="`+s.url+`/delegate"`) {
		t.Fatalf("bob's page has no delegation form:\n%s", pageText(page))
	}
	bob := getPage(t, links["bob@example.com"])
	if status, body := s.do("POST", "/delegate", "application/x-www-form-urlencoded", url.Values{"token": {bob}, "to": {"alice@example.com"}}.Encode()); status != http.StatusBadRequest || !strings.Contains(body, "already an approver") {
		t.Errorf("delegate to alice: %d %s", status, pageText(body))
	}
	status, body := s.do("POST", "/delegate", "application/x-www-form-urlencoded", url.Values{"token": {bob}, "to": {"Carol@Example.com"}}.Encode())
	if status != http.StatusOK || !strings.Contains(body, "handed to <strong>carol@example.com</strong>") {
		t.Fatalf("delegate to carol: %d %s", status, pageText(body))
	}
	s.idle()
	carol, ok := outboxLinks(t, s.data)["carol@example.com"]
	if !ok {
		t.Fatal("carol got no link")
	}
	if page := getPageBody(t, carol); !strings.Contains(page, "bob@example.com handed their vote to you") {
		t.Errorf("carol's page does not say bob handed on:\n%s", pageText(page))
	}
	if got := statusOf(t, links["bob@example.com"]); got != http.StatusGone {
		t.Errorf("bob's page after delegating: %d, want 410 (what happened)", got)
	}
	if status, body := s.vote(bob, "approve", "", false); status != http.StatusConflict || !strings.Contains(body, "You handed your vote to <strong>carol@example.com</strong>") {
		t.Errorf("bob votes after delegating: %d %s", status, pageText(body))
	}
	got := s.get(r.ID)
	if len(got.Delegations) != 1 || got.Delegations[0].From != "bob@example.com" || got.Delegations[0].To != "carol@example.com" {
		t.Errorf("delegations in the API: %+v", got.Delegations)
	}
	if out := getOutput(t, s, r.ID); !strings.Contains(out, "handed on:  bob@example.com delegated to carol@example.com at ") {
		t.Errorf("bot get does not show the delegation:\n%s", out)
	}
	s.vote(getPage(t, links["alice@example.com"]), "approve", "", false)
	if status, body := s.vote(getPage(t, carol), "approve", "", false); status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Errorf("carol's vote: %d %s", status, pageText(body))
	}
}

// pick chooses user in the "Delegate to…" picker of request id's channel
// message as Slack user, signed as Slack signs it.
func (s *server) pick(id, user, picked string) {
	s.t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"type":         "block_actions",
		"user":         map[string]any{"id": user, "team_id": "T0TEAM001"},
		"team":         map[string]any{"id": "T0TEAM001"},
		"channel":      map[string]any{"id": slackChannel},
		"container":    map[string]any{"type": "message", "channel_id": slackChannel, "message_ts": "1700000000.000001", "is_ephemeral": false},
		"response_url": "https://hooks.slack.invalid/actions/1",
		"trigger_id":   "1.2.3",
		"actions": []map[string]any{{"type": "users_select", "action_id": "delegate", "block_id": "delegate:" + id,
			"selected_user": picked, "action_ts": "1700000001.000001"}},
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
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		s.t.Fatalf("pick by %s: status %d", user, resp.StatusCode)
	}
}

// TestDelegateInSlack: an approver picks a colleague in "Delegate to…"; the
// colleague gets a direct message with the buttons and votes; the delegator's
// button is refused; the channel message shows the hand-off.
func TestDelegateInSlack(t *testing.T) {
	const alice, bob, carol = "U0ALICE001", "U0BOB00001", "U0CAROL001"
	s, slack := startSlackServer(t)
	r := s.create(`{"title":"Rotate the keys","approvers":["` + alice + `","` + bob + `"],"policy":"all","timeoutSeconds":3600}`)
	s.idle()
	s.pick(r.ID, bob, carol)
	if got := slack.ephemeral(t, bob, 1); !strings.Contains(got, "handed to <@"+carol+">") {
		t.Errorf("bob is told %q", got)
	}
	s.idle()
	var opened []string
	for _, f := range slack.forms("conversations.open") {
		opened = append(opened, f.Get("users"))
	}
	if !slices.Contains(opened, carol) {
		t.Errorf("no direct message to carol (opened %v)", opened)
	}
	got := s.get(r.ID)
	if !slices.Equal(got.Approvers, []string{alice, carol}) || len(got.Delegations) != 1 || got.Delegations[0].Channel != "slack" {
		t.Errorf("after the delegation: approvers %v, delegations %+v", got.Approvers, got.Delegations)
	}
	updated := false
	for _, f := range slack.forms("chat.update") {
		b := f.Get("blocks")
		updated = updated || (strings.Contains(b, "delegated to") && strings.Contains(b, carol))
	}
	if !updated {
		t.Error("no Slack message shows the delegation")
	}
	s.click(r.ID, "approve", bob)
	if got := slack.ephemeral(t, bob, 2); !strings.Contains(got, "You handed your vote") {
		t.Errorf("bob's click after delegating: %q", got)
	}
	s.click(r.ID, "approve", alice)
	s.click(r.ID, "approve", carol)
	eventually(t, "the approval", func() bool { return s.get(r.ID).Status == "approved" })
	if v := s.get(r.ID).Votes; len(v) != 2 || v[1].By != carol {
		t.Errorf("votes %+v, want alice's and carol's", v)
	}
}

// TestTimingFieldsRefused: each new field is checked with a 400 that names it.
func TestTimingFieldsRefused(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	for _, tc := range []struct{ body, field string }{
		{`"reminders":{"everySeconds":60}`, "reminders.everySeconds"},
		{`"reminders":{"beforeExpirySeconds":[3600]}`, "reminders.beforeExpirySeconds"},
		{`"reminders":{"beforeExpirySeconds":[-5]}`, "reminders.beforeExpirySeconds"},
		{`"escalation":{"afterSeconds":3600,"approvers":["c@example.com"]}`, "escalation.afterSeconds"},
		{`"escalation":{"afterSeconds":60,"approvers":["a@example.com"]}`, "escalation.approvers"},
		{`"escalation":{"afterSeconds":60}`, "escalation.approvers"},
		{`"onTimeout":"ignore"`, "onTimeout"},
		{`"allowDelegation":"no"`, "allowDelegation"},
		{`"reminders":{"every":60}`, "every"},
	} {
		status, body := s.postJSON("/api/requests", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":3600,`+tc.body+`}`)
		var e web.ErrorJSON
		json.Unmarshal([]byte(body), &e)
		if status != http.StatusBadRequest || e.Field != tc.field {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.body, status, body, tc.field)
		}
	}
	// A request of 90 s may ask for a reminder 30 s before its expiry.
	if status, body := s.postJSON("/api/requests", `{"title":"T","approvers":["a@example.com"],"timeoutSeconds":90,"reminders":{"beforeExpirySeconds":[30]}}`); status != http.StatusCreated {
		t.Errorf("90 s with a reminder 30 s before: %d %s", status, body)
	}
	if n := countRows(t, s.data, "requests"); n != 1 {
		t.Errorf("%d requests stored, want only the valid one", n)
	}
}
