package slackapp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

func openPage(id string) button { return button{ActionID: ActionOpenPage, Value: id} }

func TestListCommand(t *testing.T) {
	e := newEnv(t) // 09:30
	e.create(approval.NewRequest{Title: "Rotate <db> keys", Requester: "alice", Approvers: []string{"alice@example.com"}, Timeout: 24 * time.Hour})
	e.clock.Add(59 * time.Minute) // 10:30
	port := e.create(approval.NewRequest{Title: "Open port 443", Requester: "bob", Approvers: []string{"carol@example.com", "bob@example.com"}, Policy: "all", Timeout: time.Hour})
	chat := e.svc.Chat
	e.svc.Chat = nil // created while Slack was not configured: no message
	noSlack := e.create(approval.NewRequest{Title: "No Slack", Requester: "ci", Approvers: []string{"carol@example.com"}, Timeout: time.Hour})
	e.svc.Chat = chat
	decided := e.create(approval.NewRequest{Title: "Already decided", Approvers: []string{"bob@example.com"}})
	e.click(decided.ID, ActionApprove, "U0BOB0001", nil)
	e.click(port.ID, ActionApprove, "U0BOB0001", nil)
	e.create(approval.NewRequest{Title: "Past its expiry", Approvers: []string{"bob@example.com"}, Timeout: time.Minute})
	e.clock.Add(26 * time.Minute) // 11:00

	items := []string{
		"*No Slack*\nRequested by ci · 29m ago · 31m left\n0 of 1 approval",
		"*Open port 443*\nRequested by bob · 30m ago · 30m left · in <#C0APPROVALS>\n1 of 2 approvals",
		"*Rotate &lt;db&gt; keys*\nRequested by alice · 1h 30m ago · 22h 30m left · in <#C0APPROVALS>\n0 of 1 approval",
	}
	got := e.command("U0CAROL01", "")
	want := answer{
		ResponseType: "ephemeral",
		Text:         "3 requests are waiting for a decision.",
		Lines:        append([]string{"*3 requests are waiting for a decision.*"}, items...),
		// Carol may ask for her page of the two requests she can vote on;
		// nothing in the listing links to a page.
		Buttons: []button{openPage(noSlack.ID), openPage(port.ID)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("/approvals by Carol (-want +got):\n%s", diff)
	}

	// Bob has voted on "Open port 443": no button for him there.
	if got := e.command("U0BOB0001", "").Buttons; len(got) != 0 {
		t.Errorf("/approvals by Bob: buttons %+v, want none", got)
	}
}

func TestListMine(t *testing.T) {
	e := newEnv(t)
	byEmail := e.create(approval.NewRequest{Title: "Carol by email", Approvers: []string{"CAROL@example.com", "bob@example.com"}})
	e.create(approval.NewRequest{Title: "Not Carol", Approvers: []string{"bob@example.com"}})
	byID := e.create(approval.NewRequest{Title: "Carol by Slack ID", Approvers: []string{"U0CAROL01"}})
	voted := e.create(approval.NewRequest{Title: "Carol voted", Approvers: []string{"carol@example.com", "bob@example.com", "alice@example.com"}, Policy: "quorum:2"})
	e.click(voted.ID, ActionApprove, "U0CAROL01", nil)
	if got := e.request(voted.ID).Status; got != approval.StatusPending {
		t.Fatalf("request Carol voted on is %s, want pending", got)
	}

	got := e.command("U0CAROL01", " Mine ")
	want := answer{
		ResponseType: "ephemeral",
		Text:         "2 requests are waiting for your decision.",
		Lines: []string{
			"*2 requests are waiting for your decision.*",
			"*Carol by Slack ID*\nRequested by ci-pipeline · 2m ago · 1h 58m left · in <#C0APPROVALS>\n0 of 1 approval",
			"*Carol by email*\nRequested by ci-pipeline · 4m ago · 1h 56m left · in <#C0APPROVALS>\n0 of 1 approval",
		},
		Buttons: []button{openPage(byID.ID), openPage(byEmail.ID)},
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
	var ids []string
	for i := 1; i <= 12; i++ {
		r := e.create(approval.NewRequest{Title: fmt.Sprintf("Request %02d", i), Approvers: []string{"alice@example.com"}, Timeout: 24 * time.Hour})
		ids = append(ids, r.ID)
	}
	got := e.command("U0ALICE01", "")
	if want := "The 10 newest requests waiting for a decision:"; got.Text != want {
		t.Errorf("got text %q, want %q", got.Text, want)
	}
	if len(got.Lines) != 11 {
		t.Fatalf("got %d blocks of text, want a heading and 10 requests:\n%s", len(got.Lines), strings.Join(got.Lines, "\n"))
	}
	for i, line := range got.Lines[1:] {
		if title := fmt.Sprintf("*Request %02d*\n", 12-i); !strings.HasPrefix(line, title) {
			t.Errorf("item %d is %q, want request %q (newest first)", i+1, line, title)
		}
	}
	if len(got.Buttons) != 11 {
		t.Fatalf("got %d buttons, want 10 to open a page and More: %+v", len(got.Buttons), got.Buttons)
	}
	more := got.Buttons[10]
	if more.ActionID != ActionMore || more.URL != "" {
		t.Fatalf("last button %+v, want More", more)
	}

	// More answers the next page, to Alice only, through the response URL of
	// the (ephemeral) listing.
	e.clickAt(more.Value, ActionMore, "U0ALICE01", where{Ephemeral: true}, nil)
	if n := len(e.slack.messages("chat.postEphemeral")); n != 0 {
		t.Errorf("%d chat.postEphemeral calls for a click in an ephemeral message, want the response URL", n)
	}
	answers := on(e.slack.messages("response_url"), "/response/U0ALICE01")
	if len(answers) != 1 {
		t.Fatalf("got %d answers through the response URL, want 1", len(answers))
	}
	if answers[0].User != "ephemeral" {
		t.Errorf("answer of type %q, want ephemeral, not replacing the listing", answers[0].User)
	}
	next := readAnswer(t, "ephemeral", answers[0].Text, answers[0].Blocks)
	if want := "2 more requests waiting for a decision:"; next.Text != want {
		t.Errorf("next page %q, want %q", next.Text, want)
	}
	if diff := cmp.Diff([]button{openPage(ids[1]), openPage(ids[0])}, next.Buttons); diff != "" {
		t.Errorf("next page's buttons (-want +got), want the two oldest and no More:\n%s", diff)
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
	if got := e.request(r.ID); got.Status != approval.StatusPending || len(got.Votes) != 0 {
		t.Errorf("request is %s with %d votes after clicks by non-approvers, want pending without votes", got.Status, len(got.Votes))
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

	// An approver matched by the email Slack reports (any case) may vote: the
	// vote is cast by their Slack user, with that email.
	e.click(r.ID, ActionReject, "U0ALICE01", nil)
	after := e.request(r.ID)
	if after.Status != approval.StatusRejected || after.Decision.By != "U0ALICE01" || after.Decision.Channel != approval.ChannelSlack {
		t.Errorf("after Alice's click: status %s, decision %+v; want rejected by U0ALICE01 via slack", after.Status, after.Decision)
	}
	if len(after.Votes) != 1 || after.Votes[0].Email != "alice@example.com" {
		t.Errorf("votes %+v, want Alice's with her profile email", after.Votes)
	}
	if diff := cmp.Diff([]string{"Your rejection is recorded: the request is rejected."}, e.told("U0ALICE01")); diff != "" {
		t.Errorf("Alice was told (-want +got):\n%s", diff)
	}
}

// TestVoteIdentity: a vote in Slack counts as the approver named by email
// when the Slack profile has that email, and the same person cannot vote
// twice, through Slack or their emailed page.
func TestVoteIdentity(t *testing.T) {
	e := newEnv(t)
	r := e.create(approval.NewRequest{
		Title:     "Rotate keys",
		Approvers: []string{"alice@example.com", "U0BOB0001", "carol@example.com"},
		Policy:    "quorum:2",
	})
	calls := e.slack.usersInfoCalls()

	e.click(r.ID, ActionApprove, "U0ALICE01", nil)
	at := slackDate(e.clock.Now())
	if _, err := e.decide(r, "alice@example.com", approval.Approve, ""); !errors.Is(err, approval.ErrAlreadyVoted) {
		t.Errorf("alice's emailed page after her Slack vote: got %v, want ErrAlreadyVoted", err)
	}
	e.click(r.ID, ActionReject, "U0ALICE01", nil)
	wantTold := []string{
		"Your approval is recorded. 1 more approval is needed.",
		"You already approved this request " + at + ".",
	}
	if diff := cmp.Diff(wantTold, e.told("U0ALICE01")); diff != "" {
		t.Errorf("Alice was told (-want +got):\n%s", diff)
	}
	if got := e.slack.usersInfoCalls() - calls; got != 1 {
		t.Errorf("two clicks by Alice made %d users.info calls, want 1 (cached)", got)
	}
	mid := e.request(r.ID)
	if mid.Status != approval.StatusPending || len(mid.Votes) != 1 {
		t.Fatalf("after Alice: status %s with %d votes, want pending with 1", mid.Status, len(mid.Votes))
	}

	e.click(r.ID, ActionApprove, "U0BOB0001", nil)
	if diff := cmp.Diff([]string{"Your approval is recorded: the request is approved."}, e.told("U0BOB0001")); diff != "" {
		t.Errorf("Bob was told (-want +got):\n%s", diff)
	}
	d := e.workflow.Delivered()
	if len(d) != 1 || d[0].Decision != "approved" || len(d[0].Votes) != 2 || d[0].Votes[0].By != "U0ALICE01" || d[0].Votes[1].By != "U0BOB0001" {
		t.Errorf("delivered %+v, want approved with Alice's and Bob's votes", d)
	}
}

func TestSelfApprovalRefused(t *testing.T) {
	e := newEnv(t)
	r := e.create(approval.NewRequest{
		Title:     "Grant me admin",
		Requester: "carol@example.com",
		Approvers: []string{"carol@example.com", "U0BOB0001"},
	})
	e.click(r.ID, ActionApprove, "U0CAROL01", nil)
	if got := e.request(r.ID); got.Status != approval.StatusPending || len(got.Votes) != 0 {
		t.Errorf("after the requester's approve: %s with %d votes, want pending without votes", got.Status, len(got.Votes))
	}
	e.click(r.ID, ActionReject, "U0CAROL01", nil)
	want := []string{msgSelfApproval, "Your rejection is recorded: the request is rejected."}
	if diff := cmp.Diff(want, e.told("U0CAROL01")); diff != "" {
		t.Errorf("Carol was told (-want +got):\n%s", diff)
	}
	if got := e.request(r.ID).Status; got != approval.StatusRejected {
		t.Errorf("status %s after the requester's reject, want rejected", got)
	}
}

// TestOpenApprovalPage: the "Open approval page" button answers an approver,
// and only them, with a personal link; anyone else is told they are not an
// approver; no message posted for all carries a link.
func TestOpenApprovalPage(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest()) // approvers alice@example.com and U0BOB0001
	pages := len(e.pages.Keys())

	e.click(r.ID, ActionOpenPage, "U0MALLORY", nil)
	if diff := cmp.Diff([]string{msgNotApprover}, e.told("U0MALLORY")); diff != "" {
		t.Errorf("Mallory was told (-want +got):\n%s", diff)
	}
	if got := len(e.pages.Keys()); got != pages {
		t.Errorf("%d pages after Mallory's click, want %d: none minted for a non-approver", got, pages)
	}

	// A retried delivery of a click already answered does nothing.
	e.click(r.ID, ActionOpenPage, "U0ALICE01", nil)
	e.click(r.ID, ActionOpenPage, "U0ALICE01", http.Header{"X-Slack-Retry-Num": {"1"}})
	eph := e.slack.messages("chat.postEphemeral")
	var mine []sent
	for _, m := range eph {
		if m.User == "U0ALICE01" {
			mine = append(mine, m)
		}
	}
	if len(mine) != 1 || mine[0].Channel != testChannel {
		t.Fatalf("ephemeral messages to Alice %+v, want one in the channel", mine)
	}
	got := parseBlocks(t, mine[0].Blocks)
	if len(got.Buttons) != 1 || got.Buttons[0].ActionID != ActionPersonalPage || got.Buttons[0].URL == "" {
		t.Fatalf("buttons %+v, want one link to Alice's page", got.Buttons)
	}
	link := got.Buttons[0].URL
	if want := "Here is your personal approval page for “" + r.Title + "”: " + link; mine[0].Text != want {
		t.Errorf("text %q, want %q", mine[0].Text, want)
	}
	stored := e.request(r.ID)
	var rc approval.Recipient
	for _, c := range stored.Recipients {
		if e.pages.URL(c.PageKey) == link {
			rc = c
		}
	}
	if rc.Address != "alice@example.com" || rc.Channel != approval.ChannelSlack {
		t.Errorf("the link is the page of %+v, want Alice's (her approver entry) through Slack", rc)
	}
	if _, ok := e.pages.Get(rc.PageKey); !ok {
		t.Errorf("Alice's personal page is not published")
	}

	// Voting through it counts as Alice.
	if _, err := e.decide(r, "alice@example.com", approval.Approve, "fine"); err != nil {
		t.Fatalf("vote through the personal page: %v", err)
	}
	after := e.request(r.ID)
	if after.Status != approval.StatusApproved || after.Decision.By != "alice@example.com" {
		t.Errorf("status %s, decision %+v; want approved by alice@example.com", after.Status, after.Decision)
	}
	if keys := e.pages.Keys(); len(keys) != 0 {
		t.Errorf("pages %v still published after the request closed", keys)
	}
	e.click(r.ID, ActionOpenPage, "U0ALICE01", nil)
	e.click(r.ID, ActionPersonalPage, "U0ALICE01", nil) // the link reports its clicks: nothing to do
	told := e.told("U0ALICE01")
	if len(told) != 2 || !strings.HasPrefix(told[1], "You already approved this request ") || !strings.HasSuffix(told[1], " It is approved.") {
		t.Errorf("Alice was told %q, want the link and then that she already approved", told)
	}

	// No message for the channel or a DM ever carried a link to a page.
	for _, method := range []string{"chat.postMessage", "chat.update"} {
		for _, m := range e.slack.messages(method) {
			if bytes.Contains(m.Blocks, []byte("approvals.example.com")) || strings.Contains(m.Text, "approvals.example.com") {
				t.Errorf("%s to %s carries a page link: %s", method, m.Channel, m.Blocks)
			}
		}
	}
}

func TestUnsignedRequestsRefused(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	click := interactionBody(t, r.ID, ActionApprove, "U0BOB0001")
	list := commandBody("U0BOB0001", "")
	now := time.Now()
	calls := e.slack.usersInfoCalls()

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
	e.idle()
	if got := e.request(r.ID); got.Status != approval.StatusPending || len(got.Votes) != 0 {
		t.Errorf("request is %s with %d votes after refused requests, want pending without votes", got.Status, len(got.Votes))
	}
	if n := len(e.workflow.Delivered()) + len(e.slack.messages("chat.update")) + len(e.slack.messages("chat.postEphemeral")); n != 0 {
		t.Errorf("refused requests caused %d deliveries or Slack messages, want none", n)
	}
	if n := e.slack.usersInfoCalls() - calls; n != 0 {
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
	e.idle()
	retry := sign(testSecret, time.Now(), body)
	retry.Set("X-Slack-Retry-Num", "1")
	retry.Set("X-Slack-Retry-Reason", "http_timeout")
	calls := e.slack.usersInfoCalls()
	second := e.post("/slack/interactions", retry, body)
	e.idle()
	if got := e.slack.usersInfoCalls(); got != calls {
		t.Errorf("the retry made %d users.info calls, want none: a retry of a closed request does nothing", got-calls)
	}
	if first.Code != http.StatusOK || second.Code != http.StatusOK {
		t.Errorf("got statuses %d and %d, want 200 for the click and its retry", first.Code, second.Code)
	}
	// The same person pressing the same button again (a double click) is
	// told they already voted.
	e.click(r.ID, ActionApprove, "U0BOB0001", nil)

	if got := e.workflow.Attempts(); got != 1 {
		t.Errorf("workflow got %d deliveries, want 1", got)
	}
	if got := len(on(e.slack.messages("chat.update"), testChannel)); got != 1 {
		t.Errorf("got %d chat.update calls of the channel message, want 1", got)
	}
	at := slackDate(e.clock.Now())
	want := []string{
		"Your approval is recorded: the request is approved.",
		"You already approved this request " + at + ". It is approved.",
	}
	if diff := cmp.Diff(want, e.told("U0BOB0001")); diff != "" {
		t.Errorf("Bob was told (-want +got):\n%s", diff)
	}
	if d := e.request(r.ID).Decision; d == nil || d.By != "U0BOB0001" || d.Choice != approval.Approve {
		t.Errorf("decision %+v, want approve by U0BOB0001", d)
	}

	// Another approver pressing later is told who decided.
	e.click(r.ID, ActionReject, "U0ALICE01", nil)
	if diff := cmp.Diff([]string{"This request was already approved by <@U0BOB0001> " + at + "."}, e.told("U0ALICE01")); diff != "" {
		t.Errorf("Alice was told (-want +got):\n%s", diff)
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
	if diff := cmp.Diff([]string{msgExpired}, e.told("U0BOB0001")); diff != "" {
		t.Errorf("Bob was told (-want +got):\n%s", diff)
	}
}

// TestClickWhenProfileUnknown: when Slack cannot be asked for the clicking
// user's profile, an approver named by email is not told they are no
// approver, but to try again.
func TestClickWhenProfileUnknown(t *testing.T) {
	defer func(d time.Duration) { clickLookupTimeout = d }(clickLookupTimeout)
	clickLookupTimeout = 50 * time.Millisecond
	e := newEnv(t)
	r := e.create(deployRequest())
	e.slack.mu.Lock()
	e.slack.hang = true
	e.slack.mu.Unlock()
	e.click(r.ID, ActionApprove, "U0ALICE01", nil)
	if diff := cmp.Diff([]string{msgUnknownUser}, e.told("U0ALICE01")); diff != "" {
		t.Errorf("Alice was told (-want +got):\n%s", diff)
	}
	// Bob is named by his user ID: his vote needs no profile.
	e.click(r.ID, ActionApprove, "U0BOB0001", nil)
	if got := e.request(r.ID); got.Status != approval.StatusApproved || got.Votes[0].Email != "" {
		t.Errorf("status %s, votes %+v; want approved by Bob, known by ID only", got.Status, got.Votes)
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
	want := answer{
		ResponseType: "ephemeral",
		Text:         "1 request is waiting for your decision.",
		Lines: []string{
			"*1 request is waiting for your decision.*",
			"*Carol by Slack ID*\nRequested by ci-pipeline · 2m ago · 1h 58m left · in <#C0APPROVALS>\n0 of 1 approval",
		},
		Buttons: []button{openPage(byID.ID)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
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
	if diff := cmp.Diff([]string{msgWorkflowGone, msgClosed}, e.told("U0BOB0001")); diff != "" {
		t.Errorf("Bob was told (-want +got):\n%s", diff)
	}
}

// TestListFailure: when the store cannot list, /approvals says so in a
// sentence, never with the internal error.
func TestListFailure(t *testing.T) {
	e := newEnv(t)
	e.create(approval.NewRequest{Title: "One", Approvers: []string{"alice@example.com"}})
	e.app.svc = failingList{e.svc}
	if got := e.command("U0ALICE01", ""); got.Text != msgListFailed || len(got.Lines) != 0 {
		t.Errorf("/approvals with the store down: got %+v, want %q", got, msgListFailed)
	}
}

// failingList is a service whose listing fails.
type failingList struct{ *approval.Service }

func (failingList) ListPending(context.Context, string, int) ([]*approval.Request, string, error) {
	return nil, "", errors.New("store down")
}

func (failingList) List(context.Context, approval.Query) ([]*approval.Request, string, error) {
	return nil, "", errors.New("store down")
}
