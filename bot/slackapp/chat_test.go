package slackapp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got); run go test -update if the change is intended:\n%s", path, diff)
	}
}

// indent pretty-prints raw JSON with the request's random values replaced by
// stable names.
func indent(t *testing.T, raw []byte, r *approval.Request) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatalf("blocks are not JSON: %v: %s", err, raw)
	}
	repl := []string{r.ID, "{{REQUEST_ID}}", `\u003c`, "<", `\u003e`, ">", `\u0026`, "&"}
	for _, rc := range r.Recipients {
		repl = append(repl, rc.PageKey, "{{PAGE_KEY:"+rc.Address+"}}")
	}
	return []byte(strings.NewReplacer(repl...).Replace(buf.String()) + "\n")
}

func deployRequest() approval.NewRequest {
	return approval.NewRequest{
		Title:     "Deploy billing-api v2.3.1 to production",
		Details:   "Changes: 14 commits, 2 migrations.\nPlease check <!channel> & the *diff* before approving.",
		Requester: "ci-pipeline <deploy@example.com>",
		Approvers: []string{"alice@example.com", "U0BOB0001"},
		Links:     []approval.Link{{Label: "Diff", URL: "https://git.example.com/billing/compare/v2.3.0...v2.3.1"}},
		Timeout:   2 * time.Hour,
	}
}

// button is a button of a message as the test reads it.
type button struct {
	ActionID, Value, URL string
	Confirm              bool
}

// shown is a message's blocks as the test reads them.
type shown struct {
	Sections []string // the text of each section with text
	Fields   []string // the fields of sections
	Context  []string
	Buttons  []button // in action blocks and accessories
}

func parseBlocks(t *testing.T, raw json.RawMessage) shown {
	t.Helper()
	type element struct {
		Type     string          `json:"type"`
		Text     json.RawMessage `json:"text"`
		ActionID string          `json:"action_id"`
		Value    string          `json:"value"`
		URL      string          `json:"url"`
		Confirm  json.RawMessage `json:"confirm"`
	}
	var blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Text string `json:"text"`
		} `json:"text"`
		Fields []struct {
			Text string `json:"text"`
		} `json:"fields"`
		Elements  []element `json:"elements"`
		Accessory *element  `json:"accessory"`
	}
	if err := json.Unmarshal(raw, &blocks); err != nil {
		t.Fatalf("blocks are not JSON: %v: %s", err, raw)
	}
	var s shown
	toButton := func(el element) button {
		return button{el.ActionID, el.Value, el.URL, len(el.Confirm) > 0}
	}
	for _, b := range blocks {
		switch b.Type {
		case "section":
			if b.Text != nil {
				s.Sections = append(s.Sections, b.Text.Text)
			}
			for _, f := range b.Fields {
				s.Fields = append(s.Fields, f.Text)
			}
			if b.Accessory != nil && b.Accessory.Type == "button" {
				s.Buttons = append(s.Buttons, toButton(*b.Accessory))
			}
		case "context":
			for _, el := range b.Elements {
				var txt string // a context's elements are text objects
				json.Unmarshal(el.Text, &txt)
				s.Context = append(s.Context, txt)
			}
		case "actions":
			for _, el := range b.Elements {
				s.Buttons = append(s.Buttons, toButton(el))
			}
		}
	}
	return s
}

// on returns the messages sent with method to channel.
func on(msgs []sent, channel string) []sent {
	var out []sent
	for _, m := range msgs {
		if m.Channel == channel {
			out = append(out, m)
		}
	}
	return out
}

// voteButtons are the elements of a pending request's message: the vote
// buttons and the "Delegate to…" user picker (confirmed, no value: its
// block names the request).
func voteButtons(id string) []button {
	return []button{
		{ActionApprove, id, "", true},
		{ActionReject, id, "", true},
		{ActionOpenPage, id, "", false},
		{ActionDelegate, "", "", true},
	}
}

func TestPostMessage(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())

	posts := on(e.slack.messages("chat.postMessage"), testChannel)
	if len(posts) != 1 {
		t.Fatalf("got %d chat.postMessage calls to %s, want 1", len(posts), testChannel)
	}
	p := posts[0]
	if p.UnfurlLinks != "false" || p.UnfurlMedia != "false" {
		t.Errorf("got unfurl_links=%q unfurl_media=%q, want both \"false\"", p.UnfurlLinks, p.UnfurlMedia)
	}
	if want := "Approval requested: Deploy billing-api v2.3.1 to production"; p.Text != want {
		t.Errorf("got text %q, want %q", p.Text, want)
	}
	golden(t, "post_blocks.golden.json", indent(t, p.Blocks, r))

	// The stored request knows where its message is.
	if got, want := r.ChatMessage, (approval.ChatMessage{Channel: testChannel, TS: p.TS}); got != want {
		t.Errorf("stored chat message %+v, want %+v", got, want)
	}

	// Beyond the golden file: the buttons carry the request ID, Approve and
	// Reject a confirm dialog; no button and no text links to a page, and no
	// token leaks.
	got := parseBlocks(t, p.Blocks)
	if diff := cmp.Diff(voteButtons(r.ID), got.Buttons); diff != "" {
		t.Errorf("buttons (-want +got):\n%s", diff)
	}
	if want := "*Rule:* one approval from any approver approves\n*Progress:* 0 of 1 approval"; !slices.Contains(got.Sections, want) {
		t.Errorf("sections %q lack the rule and progress %q", got.Sections, want)
	}
	if tok := e.render.token(r.ID, "alice@example.com"); tok == "" || bytes.Contains(p.Blocks, []byte(tok)) {
		t.Errorf("token of alice missing from the test renderer or present in the Slack message")
	}
	for _, key := range r.PageKeys() {
		if bytes.Contains(p.Blocks, []byte(key)) {
			t.Errorf("the Slack message names page %s", key)
		}
	}
	if bytes.Contains(p.Blocks, []byte("approvals.example.com")) {
		t.Errorf("the Slack message links to the pages' host: %s", p.Blocks)
	}
	if bytes.Contains(p.Blocks, []byte("<!channel>")) {
		t.Errorf("details were not escaped: the message would notify the whole channel")
	}
}

// TestDirectMessages: approvers given as Slack user IDs get a direct message
// with the buttons, which is updated like the channel message, and a vote in
// it counts.
func TestDirectMessages(t *testing.T) {
	e := newEnv(t)
	in := deployRequest()
	in.Approvers = []string{"alice@example.com", "U0BOB0001", "U0CAROL01"}
	in.Policy = "quorum:2"
	r := e.create(in)

	e.slack.mu.Lock()
	opened := slices.Sorted(slices.Values(e.slack.opened))
	e.slack.mu.Unlock()
	if diff := cmp.Diff([]string{"U0BOB0001", "U0CAROL01"}, opened); diff != "" {
		t.Errorf("conversations opened (-want +got):\n%s", diff)
	}
	var dms []approval.ChatMessage
	for _, user := range []string{"U0BOB0001", "U0CAROL01"} {
		posts := on(e.slack.messages("chat.postMessage"), dmChannel(user))
		if len(posts) != 1 {
			t.Fatalf("got %d messages to %s's direct conversation, want 1", len(posts), user)
		}
		p := posts[0]
		dms = append(dms, approval.ChatMessage{Channel: p.Channel, TS: p.TS})
		if p.UnfurlLinks != "false" || p.Text != "Your approval is requested: "+r.Title {
			t.Errorf("DM to %s: unfurl_links=%q text %q; want false and the request", user, p.UnfurlLinks, p.Text)
		}
		got := parseBlocks(t, p.Blocks)
		if diff := cmp.Diff(voteButtons(r.ID), got.Buttons); diff != "" {
			t.Errorf("DM to %s: buttons (-want +got):\n%s", user, diff)
		}
		if !slices.Contains(got.Context, "You are an approver of this request.") {
			t.Errorf("DM to %s: context %q, want it to say why it came", user, got.Context)
		}
	}
	stored := slices.Clone(r.DirectMessages)
	slices.SortFunc(stored, func(a, b approval.ChatMessage) int { return strings.Compare(a.Channel, b.Channel) })
	if diff := cmp.Diff(dms, stored); diff != "" {
		t.Errorf("stored direct messages (-want +got):\n%s", diff)
	}

	// Alice votes through her emailed page: every message shows it.
	e.clock.Add(time.Hour)
	if _, err := e.decide(r, "alice@example.com", approval.Approve, ""); err != nil {
		t.Fatalf("alice's vote: %v", err)
	}
	aliceVote := ":white_check_mark: alice@example.com approved <!date^1795602660^{date_short_pretty} at {time}|2026-11-25 10:31 UTC> via the emailed page"
	for _, ch := range []string{testChannel, dmChannel("U0BOB0001"), dmChannel("U0CAROL01")} {
		updates := on(e.slack.messages("chat.update"), ch)
		if len(updates) != 1 {
			t.Fatalf("got %d updates in %s after one vote, want 1", len(updates), ch)
		}
		got := parseBlocks(t, updates[0].Blocks)
		want := []string{"*Rule:* 2 of 3 approvers must approve\n*Progress:* 1 of 2 approvals", "*Votes*\n" + aliceVote}
		if diff := cmp.Diff(want, got.Sections[len(got.Sections)-2:]); diff != "" {
			t.Errorf("%s after alice's vote (-want +got):\n%s", ch, diff)
		}
		if diff := cmp.Diff(voteButtons(r.ID), got.Buttons); diff != "" {
			t.Errorf("%s after alice's vote: buttons (-want +got):\n%s", ch, diff)
		}
	}

	// Bob approves in his direct message: the request is approved, he is
	// told there, and every message shows the outcome without buttons.
	e.clickAt(r.ID, ActionApprove, "U0BOB0001", where{Channel: dmChannel("U0BOB0001")}, nil)
	eph := e.slack.messages("chat.postEphemeral")
	if len(eph) != 1 || eph[0].Channel != dmChannel("U0BOB0001") || eph[0].User != "U0BOB0001" ||
		eph[0].Text != "Your approval is recorded: the request is approved." {
		t.Errorf("ephemeral messages %+v, want Bob told in his DM that the request is approved", eph)
	}
	for _, ch := range []string{testChannel, dmChannel("U0BOB0001"), dmChannel("U0CAROL01")} {
		updates := on(e.slack.messages("chat.update"), ch)
		if len(updates) != 2 {
			t.Fatalf("got %d updates in %s after two votes, want 2", len(updates), ch)
		}
		got := parseBlocks(t, updates[1].Blocks)
		if len(got.Buttons) != 0 {
			t.Errorf("%s still has buttons once approved: %+v", ch, got.Buttons)
		}
		want := []string{
			":white_check_mark: *Approved* by <@U0BOB0001> <!date^1795602660^{date_short_pretty} at {time}|2026-11-25 10:31 UTC> via Slack\n*Rule:* 2 of 3 approvers must approve",
			"*Votes*\n" + aliceVote + "\n:white_check_mark: <@U0BOB0001> approved <!date^1795602660^{date_short_pretty} at {time}|2026-11-25 10:31 UTC> via Slack",
		}
		if diff := cmp.Diff(want, got.Sections[len(got.Sections)-2:]); diff != "" {
			t.Errorf("%s once approved (-want +got):\n%s", ch, diff)
		}
	}
	d := e.workflow.Delivered()
	if len(d) != 1 || d[0].Decision != "approved" || len(d[0].Votes) != 2 {
		t.Errorf("delivered %+v, want one approval with both votes", d)
	}
}

// TestProgressByGroups: the message says the rule of groups, lists them, and
// after a vote shows which group is still waiting.
func TestProgressByGroups(t *testing.T) {
	e := newEnv(t)
	r := e.create(approval.NewRequest{
		Title: "Open port 443",
		Groups: []approval.GroupInput{
			{Name: "eng", Approvers: []string{"alice@example.com", "U0BOB0001"}, Min: 1},
			{Name: "security", Approvers: []string{"U0CAROL01", "sec@example.com"}, Min: 1},
		},
	})
	post := on(e.slack.messages("chat.postMessage"), testChannel)[0]
	got := parseBlocks(t, post.Blocks)
	if want := "*Approvers*\neng (1 of 2): alice@example.com, <@U0BOB0001>\nsecurity (1 of 2): <@U0CAROL01>, sec@example.com"; !slices.Contains(got.Fields, want) {
		t.Errorf("fields %q, want the approvers by group %q", got.Fields, want)
	}

	e.click(r.ID, ActionApprove, "U0BOB0001", nil)
	if diff := cmp.Diff([]string{"Your approval is recorded. 1 more approval is needed: waiting for security (0 of 1)."}, e.told("U0BOB0001")); diff != "" {
		t.Errorf("Bob was told (-want +got):\n%s", diff)
	}
	updates := on(e.slack.messages("chat.update"), testChannel)
	if len(updates) != 1 {
		t.Fatalf("got %d updates of the channel message, want 1", len(updates))
	}
	got = parseBlocks(t, updates[0].Blocks)
	want := []string{
		"*Rule:* one approval from each group: eng, security\n*Progress:* 1 of 2 approvals · waiting for security (0 of 1)",
		"*Votes*\n:white_check_mark: <@U0BOB0001> approved <!date^1795599060^{date_short_pretty} at {time}|2026-11-25 09:31 UTC> via Slack",
	}
	if diff := cmp.Diff(want, got.Sections[len(got.Sections)-2:]); diff != "" {
		t.Errorf("progress and votes (-want +got):\n%s", diff)
	}
}

func TestUpdateAfterDecision(t *testing.T) {
	const at = "<!date^1795604400^{date_short_pretty} at {time}|2026-11-25 11:00 UTC>"
	tests := []struct {
		name   string
		decide func(e *env, r *approval.Request)
		// outcome is the status section; votes the votes section ("" for none).
		outcome, votes string
		delivered      string
	}{
		{
			name: "email page",
			decide: func(e *env, r *approval.Request) {
				if _, err := e.decide(r, "alice@example.com", approval.Approve, "Ship it <now>"); err != nil {
					t.Fatalf("decide: %v", err)
				}
			},
			outcome:   ":white_check_mark: *Approved* by alice@example.com " + at + " via the emailed page",
			votes:     ":white_check_mark: alice@example.com approved " + at + " via the emailed page: “Ship it &lt;now&gt;”",
			delivered: "approved",
		},
		{
			name: "personal link asked for in Slack",
			decide: func(e *env, r *approval.Request) {
				e.click(r.ID, ActionOpenPage, "U0BOB0001", nil)
				if _, err := e.decide(r, "U0BOB0001", approval.Reject, "not on a Friday"); err != nil {
					t.Fatalf("decide: %v", err)
				}
			},
			outcome:   ":x: *Rejected* by <@U0BOB0001> " + at + " via Slack",
			votes:     ":x: <@U0BOB0001> rejected " + at + " via Slack: “not on a Friday”",
			delivered: "rejected",
		},
		{
			name:      "Slack button",
			decide:    func(e *env, r *approval.Request) { e.click(r.ID, ActionApprove, "U0BOB0001", nil) },
			outcome:   ":white_check_mark: *Approved* by <@U0BOB0001> " + at + " via Slack",
			votes:     ":white_check_mark: <@U0BOB0001> approved " + at + " via Slack",
			delivered: "approved",
		},
		{
			name: "expiry",
			decide: func(e *env, r *approval.Request) {
				e.clock.Add(3 * time.Hour)
				if st, err := e.svc.Sweep(context.Background()); err != nil || st.Expired != 1 {
					t.Fatalf("sweep: %+v, %v; want one request expired", st, err)
				}
			},
			outcome:   ":hourglass: *Expired* <!date^1795606200^{date_short_pretty} at {time}|2026-11-25 11:30 UTC> without a decision",
			delivered: "expired",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.create(deployRequest()) // created 09:30, expires 11:30
			e.clock.Add(89 * time.Minute)  // decided at 11:00 (create moved the clock a minute)
			posted := on(e.slack.messages("chat.postMessage"), testChannel)[0]
			tt.decide(e, r)

			updates := on(e.slack.messages("chat.update"), testChannel)
			if len(updates) != 1 {
				t.Fatalf("got %d chat.update calls of the channel message, want 1", len(updates))
			}
			u := updates[0]
			if u.TS != posted.TS {
				t.Errorf("updated message %s, want the posted one %s", u.TS, posted.TS)
			}
			if dm := on(e.slack.messages("chat.update"), dmChannel("U0BOB0001")); len(dm) != 1 || !bytes.Equal(dm[0].Blocks, u.Blocks) {
				t.Errorf("Bob's direct message was updated %d times, want once, like the channel message", len(dm))
			}
			got := parseBlocks(t, u.Blocks)
			if len(got.Buttons) != 0 {
				t.Errorf("updated message still has buttons: %+v", got.Buttons)
			}
			want := []string{
				"Changes: 14 commits, 2 migrations.\nPlease check &lt;!channel&gt; &amp; the *diff* before approving.",
				"<https://git.example.com/billing/compare/v2.3.0...v2.3.1|Diff>",
				tt.outcome + "\n*Rule:* one approval from any approver approves",
			}
			if tt.votes != "" {
				want = append(want, "*Votes*\n"+tt.votes)
			}
			if diff := cmp.Diff(want, got.Sections); diff != "" {
				t.Errorf("updated message sections (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"Request " + r.ID}, got.Context); diff != "" {
				t.Errorf("updated message context (-want +got):\n%s", diff)
			}
			var delivered []string
			for _, d := range e.workflow.Delivered() {
				delivered = append(delivered, d.Decision)
			}
			if diff := cmp.Diff([]string{tt.delivered}, delivered); diff != "" {
				t.Errorf("outcomes delivered to the workflow (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSlackDownKeepsDecision: when chat.update fails, the decision still
// reaches the workflow and the voter is told; the sweep updates the message
// once Slack is back.
func TestSlackDownKeepsDecision(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	e.slack.mu.Lock()
	e.slack.down = true
	e.slack.mu.Unlock()

	e.click(r.ID, ActionApprove, "U0BOB0001", nil)

	if got := e.request(r.ID); got.Status != approval.StatusApproved || !got.Delivered() {
		t.Errorf("status %s, delivered %v; want approved and delivered", got.Status, got.Delivered())
	}
	if got := len(e.workflow.Delivered()); got != 1 {
		t.Errorf("workflow got %d outcomes, want 1", got)
	}
	if diff := cmp.Diff([]string{"Your approval is recorded: the request is approved."}, e.told("U0BOB0001")); diff != "" {
		t.Errorf("Bob was told (-want +got):\n%s", diff)
	}
	tried := len(e.slack.messages("chat.update"))
	if tried == 0 {
		t.Fatalf("chat.update was not tried")
	}
	e.slack.mu.Lock()
	e.slack.down = false
	e.slack.mu.Unlock()
	e.clock.Add(time.Minute)
	if _, err := e.svc.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(e.slack.messages("chat.update")); got <= tried {
		t.Errorf("chat.update tried %d times after the sweep, want it retried", got)
	}
	if got := e.request(r.ID); got.DueAt() != (time.Time{}) {
		t.Errorf("request still due at %s after Slack came back, want nothing left to do; effects %+v", got.DueAt(), got.Effects)
	}
	if got := len(e.workflow.Delivered()); got != 1 {
		t.Errorf("workflow got %d outcomes, want still 1", got)
	}
}
