package slackapp

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

func TestListCommand(t *testing.T) {
	e := newEnv(t) // 09:30
	e.create(approval.NewRequest{Title: "Rotate <db> keys", Requester: "alice", Approvers: []string{"alice@example.com"}, Timeout: 24 * time.Hour})
	e.clock.Add(59 * time.Minute) // 10:30
	b := e.create(approval.NewRequest{Title: "Open port 443", Requester: "bob", Approvers: []string{"carol@example.com"}, Timeout: time.Hour})
	chat := e.svc.Chat
	e.svc.Chat = nil // created while Slack was not configured: no Slack page to link
	e.create(approval.NewRequest{Title: "No Slack", Requester: "ci", Approvers: []string{"carol@example.com"}, Timeout: time.Hour})
	e.svc.Chat = chat
	decided := e.create(approval.NewRequest{Title: "Already decided", Approvers: []string{"bob@example.com"}})
	e.click(decided.ID, ActionApprove, "U0BOB0001", nil)
	e.create(approval.NewRequest{Title: "Past its expiry", Approvers: []string{"bob@example.com"}, Timeout: time.Minute})
	e.clock.Add(26 * time.Minute) // 11:00

	got := e.command("U0CAROL01", "")
	want := answer{
		ResponseType: "ephemeral",
		Text:         "3 requests are waiting for a decision.",
		Lines: []string{
			"*3 requests are waiting for a decision.*",
			"*No Slack*\nRequested by ci · 29m ago · 31m left",
			"*<" + e.slackPage(b) + "|Open port 443>*\nRequested by bob · 30m ago · 30m left · in <#C0APPROVALS>",
			// Carol is not an approver: no link to the page, which decides for
			// whoever opens it; the channel reference only.
			"*Rotate &lt;db&gt; keys*\nRequested by alice · 1h 30m ago · 22h 30m left · in <#C0APPROVALS>",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/approvals (-want +got):\n%s", diff)
	}
}

func TestListMine(t *testing.T) {
	e := newEnv(t)
	byEmail := e.create(approval.NewRequest{Title: "Carol by email", Approvers: []string{"CAROL@example.com", "bob@example.com"}})
	e.create(approval.NewRequest{Title: "Not Carol", Approvers: []string{"bob@example.com"}})
	byID := e.create(approval.NewRequest{Title: "Carol by Slack ID", Approvers: []string{"U0CAROL01"}})

	got := e.command("U0CAROL01", " Mine ")
	want := answer{
		ResponseType: "ephemeral",
		Text:         "2 requests are waiting for your decision.",
		Lines: []string{
			"*2 requests are waiting for your decision.*",
			"*<" + e.slackPage(byID) + "|Carol by Slack ID>*\nRequested by ci-pipeline · 1m ago · 1h 59m left · in <#C0APPROVALS>",
			"*<" + e.slackPage(byEmail) + "|Carol by email>*\nRequested by ci-pipeline · 3m ago · 1h 57m left · in <#C0APPROVALS>",
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/approvals mine (-want +got):\n%s", diff)
	}

	if got, want := e.command("U0MALLORY", "mine").Text, "No requests are waiting for your decision."; got != want {
		t.Errorf("/approvals mine for a non-approver: got %q, want %q", got, want)
	}
}

func TestListPaginates(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 12; i++ {
		e.create(approval.NewRequest{Title: fmt.Sprintf("Request %02d", i), Approvers: []string{"alice@example.com"}, Timeout: 24 * time.Hour})
	}
	got := e.command("U0ALICE01", "")
	if want := "12 requests are waiting for a decision."; got.Text != want {
		t.Errorf("got text %q, want %q", got.Text, want)
	}
	if len(got.Lines) != 12 {
		t.Fatalf("got %d blocks, want a heading, 10 requests and a count of the rest:\n%s", len(got.Lines), strings.Join(got.Lines, "\n"))
	}
	for i, line := range got.Lines[1:11] {
		if title := fmt.Sprintf("|Request %02d>*", 12-i); !strings.Contains(line, title) {
			t.Errorf("item %d is %q, want request %q (newest first)", i+1, line, title)
		}
	}
	if got, want := got.Lines[11], "…and 2 more."; got != want {
		t.Errorf("last block %q, want %q", got, want)
	}
}

func TestHelpAndUnknown(t *testing.T) {
	e := newEnv(t)
	for _, text := range []string{"help", "frobnicate <!here>"} {
		got := e.command("U0ALICE01", text)
		if got.ResponseType != "ephemeral" || !strings.Contains(got.Text, "*/approvals mine* lists only those you can decide.") {
			t.Errorf("/approvals %s: got %+v, want the ephemeral help", text, got)
		}
		if strings.Contains(got.Text, "<!here>") {
			t.Errorf("/approvals %s: the answer repeats a broadcast unescaped: %q", text, got.Text)
		}
	}
	if got := e.command("U0ALICE01", "nope").Text; !strings.HasPrefix(got, "I don't know “nope”.") {
		t.Errorf("/approvals nope: got %q, want it to say it does not know the option", got)
	}
}

func TestClickByNonApproverRefused(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest()) // approvers alice@example.com and U0BOB0001
	for _, user := range []string{"U0MALLORY", "U0NOMAIL1", "U0UNKNOWN"} {
		e.click(r.ID, ActionApprove, user, nil)
	}
	if got := e.request(r.ID).Status; got != approval.StatusPending {
		t.Errorf("request is %s after clicks by non-approvers, want pending", got)
	}
	if n := len(e.workflow.Delivered()); n != 0 {
		t.Errorf("%d outcomes delivered, want none", n)
	}
	if n := len(e.slack.messages("chat.update")); n != 0 {
		t.Errorf("%d chat.update calls, want none", n)
	}
	var got []sent
	for _, m := range e.slack.messages("chat.postEphemeral") {
		got = append(got, sent{Channel: m.Channel, User: m.User, Text: m.Text})
	}
	want := []sent{
		{Channel: testChannel, User: "U0MALLORY", Text: msgNotApprover},
		{Channel: testChannel, User: "U0NOMAIL1", Text: msgNotApprover},
		{Channel: testChannel, User: "U0UNKNOWN", Text: msgNotApprover},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ephemeral messages (-want +got):\n%s", diff)
	}

	// An approver matched by the email Slack reports (any case) may decide.
	e.click(r.ID, ActionReject, "U0ALICE01", nil)
	got2 := e.request(r.ID)
	if got2.Status != approval.StatusRejected || got2.Decision.By != "alice@example.com" || got2.Decision.Channel != approval.ChannelSlack {
		t.Errorf("after Alice's click: status %s, decision %+v; want rejected by alice@example.com via slack", got2.Status, got2.Decision)
	}
}

func TestUnsignedRequestsRefused(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	click := interactionBody(t, r.ID, ActionApprove, "U0BOB0001")
	list := commandBody("U0BOB0001", "")
	now := time.Now()

	tests := []struct {
		name, path, body string
		header           http.Header
	}{
		{"forged signature", "/slack/interactions", click, sign("not-the-secret", now, click)},
		{"stale timestamp", "/slack/interactions", click, sign(testSecret, now.Add(-6*time.Minute), click)},
		{"future timestamp", "/slack/interactions", click, sign(testSecret, now.Add(6*time.Minute), click)},
		{"body changed after signing", "/slack/interactions", click, sign(testSecret, now, strings.Replace(click, "approve", "reject", 1))},
		{"missing signature", "/slack/interactions", click, without(sign(testSecret, now, click), "X-Slack-Signature")},
		{"missing timestamp", "/slack/interactions", click, without(sign(testSecret, now, click), "X-Slack-Request-Timestamp")},
		{"missing both", "/slack/interactions", click, http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
		{"command forged", "/slack/commands", list, sign("not-the-secret", now, list)},
		{"command stale", "/slack/commands", list, sign(testSecret, now.Add(-10*time.Minute), list)},
		{"command unsigned", "/slack/commands", list, without(sign(testSecret, now, list), "X-Slack-Signature")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.post(tt.path, tt.header, tt.body)
			if w.Code != http.StatusUnauthorized {
				t.Errorf("status %d, want 401", w.Code)
			}
		})
	}
	if got := e.request(r.ID).Status; got != approval.StatusPending {
		t.Errorf("request is %s after refused requests, want pending", got)
	}
	if n := len(e.workflow.Delivered()) + len(e.slack.messages("chat.update")) + len(e.slack.messages("chat.postEphemeral")); n != 0 {
		t.Errorf("refused requests caused %d deliveries or Slack messages, want none", n)
	}
	if n := e.slack.usersInfoCalls(); n != 0 {
		t.Errorf("refused requests caused %d users.info calls, want none", n)
	}
}

func without(h http.Header, key string) http.Header {
	h.Del(key)
	return h
}

func TestRetriedClickDecidesOnce(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	body := interactionBody(t, r.ID, ActionApprove, "U0BOB0001")

	first := e.post("/slack/interactions", sign(testSecret, time.Now(), body), body)
	retry := sign(testSecret, time.Now(), body)
	retry.Set("X-Slack-Retry-Num", "1")
	retry.Set("X-Slack-Retry-Reason", "http_timeout")
	calls := e.slack.usersInfoCalls()
	second := e.post("/slack/interactions", retry, body)
	if got := e.slack.usersInfoCalls(); got != calls {
		t.Errorf("the retry made %d users.info calls, want none: a retry of a closed request does nothing", got-calls)
	}
	// The same person pressing the same button again (a double click) is
	// also answered quietly.
	e.click(r.ID, ActionApprove, "U0BOB0001", nil)

	if first.Code != http.StatusOK || second.Code != http.StatusOK {
		t.Errorf("got statuses %d and %d, want 200 for the click and its retry", first.Code, second.Code)
	}
	if got := e.workflow.Attempts(); got != 1 {
		t.Errorf("workflow got %d deliveries, want 1", got)
	}
	if got := len(e.slack.messages("chat.update")); got != 1 {
		t.Errorf("got %d chat.update calls, want 1", got)
	}
	if got := e.slack.messages("chat.postEphemeral"); len(got) != 0 {
		t.Errorf("got ephemeral messages %+v, want none", got)
	}
	if d := e.request(r.ID).Decision; d == nil || d.By != "bob@example.com" || d.Choice != approval.Approve {
		t.Errorf("decision %+v, want approve by bob@example.com", d)
	}

	// Another approver pressing later is told who decided.
	e.click(r.ID, ActionReject, "U0ALICE01", nil)
	eph := e.slack.messages("chat.postEphemeral")
	if len(eph) != 1 || !strings.HasPrefix(eph[0].Text, "This request was already approved by bob@example.com ") || eph[0].User != "U0ALICE01" {
		t.Errorf("got ephemeral messages %+v, want one telling Alice it was already approved by Bob", eph)
	}
	if got := e.request(r.ID).Status; got != approval.StatusApproved {
		t.Errorf("status %s after a later reject, want approved", got)
	}
}

func TestClickAfterExpiry(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	e.clock.Add(3 * time.Hour)
	e.click(r.ID, ActionApprove, "U0BOB0001", nil)
	if got := e.request(r.ID).Status; got != approval.StatusExpired {
		t.Errorf("status %s, want expired", got)
	}
	eph := e.slack.messages("chat.postEphemeral")
	if len(eph) != 1 || eph[0].Text != msgExpired {
		t.Errorf("got ephemeral messages %+v, want %q", eph, msgExpired)
	}
}

func TestLinkButtonClickIgnored(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	e.click(r.ID, ActionOpenPage, "U0MALLORY", nil)
	if got := e.request(r.ID).Status; got != approval.StatusPending {
		t.Errorf("status %s, want pending", got)
	}
	if n := len(e.slack.messages("chat.postEphemeral")); n != 0 {
		t.Errorf("%d ephemeral messages for a link click, want none", n)
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t)
	big := "payload=" + strings.Repeat("x", MaxBody)
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		want                     int
	}{
		{"GET commands", http.MethodGet, "/slack/commands", "", nil, http.StatusMethodNotAllowed},
		{"unknown path", http.MethodPost, "/slack/events", "", sign(testSecret, time.Now(), ""), http.StatusNotFound},
		{"body too large", http.MethodPost, "/slack/interactions", big, sign(testSecret, time.Now(), big), http.StatusRequestEntityTooLarge},
		{"SSL check", http.MethodPost, "/slack/commands", "ssl_check=1&token=x", sign(testSecret, time.Now(), "ssl_check=1&token=x"), http.StatusOK},
		{"malformed payload", http.MethodPost, "/slack/interactions", "payload=%7B", sign(testSecret, time.Now(), "payload=%7B"), http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptestRequest(tt.method, tt.path, tt.body, tt.header)
			w := newRecorder()
			e.handler.ServeHTTP(w, req)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d", w.Code, tt.want)
			}
			if tt.want == http.StatusOK && w.Body.Len() != 0 {
				t.Errorf("body %q, want none", w.Body)
			}
		})
	}
}

func TestListMineWhenSlackHangs(t *testing.T) {
	defer func(d time.Duration) { lookupTimeout = d }(lookupTimeout)
	lookupTimeout = 50 * time.Millisecond
	e := newEnv(t)
	byID := e.create(approval.NewRequest{Title: "Carol by Slack ID", Approvers: []string{"U0CAROL01"}})
	e.create(approval.NewRequest{Title: "Carol by email", Approvers: []string{"carol@example.com"}})
	e.slack.mu.Lock()
	e.slack.hang = true
	e.slack.mu.Unlock()

	start := time.Now()
	got := e.command("U0CAROL01", "mine")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("/approvals mine took %s with users.info hanging, want well under Slack's 3s", took)
	}
	// Without the email, only the request naming Carol's user ID is hers.
	want := []string{
		"*1 request is waiting for your decision.*",
		"*<" + e.slackPage(byID) + "|Carol by Slack ID>*\nRequested by ci-pipeline · 2m ago · 1h 58m left · in <#C0APPROVALS>",
	}
	if diff := cmp.Diff(want, got.Lines); diff != "" {
		t.Errorf("/approvals mine (-want +got):\n%s", diff)
	}
}

// A click on a request that was decided but closed because its workflow had
// stopped waiting is told so, not "expired; nothing was decided".
func TestClickAfterWorkflowGone(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	e.workflow.SetErr(approval.ErrWorkflowGone)
	e.click(r.ID, ActionApprove, "U0BOB0001", nil)
	e.click(r.ID, ActionReject, "U0BOB0001", nil)
	eph := e.slack.messages("chat.postEphemeral")
	var got []string
	for _, m := range eph {
		got = append(got, m.Text)
	}
	if diff := cmp.Diff([]string{msgWorkflowGone, msgClosed}, got); diff != "" {
		t.Errorf("ephemeral messages (-want +got):\n%s", diff)
	}
}
