package slackapp

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
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

func TestPostMessage(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())

	posts := e.slack.messages("chat.postMessage")
	if len(posts) != 1 {
		t.Fatalf("got %d chat.postMessage calls, want 1", len(posts))
	}
	p := posts[0]
	if p.Channel != testChannel {
		t.Errorf("posted to channel %q, want %q", p.Channel, testChannel)
	}
	if p.UnfurlLinks != "false" || p.UnfurlMedia != "false" {
		t.Errorf("got unfurl_links=%q unfurl_media=%q, want both \"false\"", p.UnfurlLinks, p.UnfurlMedia)
	}
	if want := "Approval requested: Deploy billing-api v2.3.1 to production"; p.Text != want {
		t.Errorf("got text %q, want %q", p.Text, want)
	}
	golden(t, "post_blocks.golden.json", indent(t, p.Blocks, r))

	// The stored request knows where its message is.
	if got, want := e.request(r.ID).ChatMessage, (approval.ChatMessage{Channel: testChannel, TS: p.TS}); got != want {
		t.Errorf("stored chat message %+v, want %+v", got, want)
	}

	// Beyond the golden file: the buttons carry the request ID and a confirm
	// dialog, the link goes to the Slack channel's page, and no token leaks.
	var blocks []struct {
		Type     string `json:"type"`
		Elements []struct {
			ActionID string          `json:"action_id"`
			Value    string          `json:"value"`
			URL      string          `json:"url"`
			Confirm  json.RawMessage `json:"confirm"`
		} `json:"elements"`
	}
	if err := json.Unmarshal(p.Blocks, &blocks); err != nil {
		t.Fatal(err)
	}
	rc, _ := r.Recipient(approval.ChannelSlack)
	type button struct {
		ActionID, Value, URL string
		Confirm              bool
	}
	var got []button
	for _, b := range blocks {
		if b.Type == "actions" {
			for _, el := range b.Elements {
				got = append(got, button{el.ActionID, el.Value, el.URL, len(el.Confirm) > 0})
			}
		}
	}
	want := []button{
		{ActionOpenPage, r.ID, e.pages.URL(rc.PageKey), false},
		{ActionApprove, r.ID, "", true},
		{ActionReject, r.ID, "", true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("buttons (-want +got):\n%s", diff)
	}
	for _, addr := range []string{"alice@example.com", testChannel} {
		if tok := e.render.token(r.ID, addr); tok == "" || bytes.Contains(p.Blocks, []byte(tok)) {
			t.Errorf("token of %s missing from the test renderer or present in the Slack message", addr)
		}
	}
	if bytes.Contains(p.Blocks, []byte("<!channel>")) {
		t.Errorf("details were not escaped: the message would notify the whole channel")
	}
}

func TestUpdateAfterDecision(t *testing.T) {
	tests := []struct {
		name   string
		decide func(e *env, r *approval.Request)
		// want is the outcome line; comment the comment block ("" for none).
		want, comment string
		delivered     string
	}{
		{
			name: "email page",
			decide: func(e *env, r *approval.Request) {
				if _, err := e.svc.Decide(context.Background(), approval.DecideInput{
					Token: e.render.token(r.ID, "alice@example.com"), Choice: approval.Approve, Comment: "Ship it <now>",
				}); err != nil {
					t.Fatalf("decide: %v", err)
				}
			},
			want:      ":white_check_mark: *Approved* by alice@example.com <!date^1795604400^{date_short_pretty} at {time}|2026-11-25 11:00 UTC> via the emailed page",
			comment:   "*Comment:* Ship it &lt;now&gt;",
			delivered: "approved",
		},
		{
			name: "Slack page",
			decide: func(e *env, r *approval.Request) {
				if _, err := e.svc.Decide(context.Background(), approval.DecideInput{
					Token: e.render.token(r.ID, testChannel), Choice: approval.Reject, Comment: "not on a Friday",
				}); err != nil {
					t.Fatalf("decide: %v", err)
				}
			},
			want:      ":x: *Rejected* by Slack channel C0APPROVALS <!date^1795604400^{date_short_pretty} at {time}|2026-11-25 11:00 UTC> via Slack",
			comment:   "*Comment:* not on a Friday",
			delivered: "rejected",
		},
		{
			name:      "Slack button",
			decide:    func(e *env, r *approval.Request) { e.click(r.ID, ActionApprove, "U0BOB0001", nil) },
			want:      ":white_check_mark: *Approved* by bob@example.com <!date^1795604400^{date_short_pretty} at {time}|2026-11-25 11:00 UTC> via Slack",
			delivered: "approved",
		},
		{
			name: "expiry",
			decide: func(e *env, r *approval.Request) {
				e.clock.Add(3 * time.Hour)
				if n, err := e.svc.ExpireDue(context.Background()); err != nil || n != 1 {
					t.Fatalf("expire due: %d, %v; want 1, nil", n, err)
				}
			},
			want:      ":hourglass: *Expired* <!date^1795606200^{date_short_pretty} at {time}|2026-11-25 11:30 UTC> without a decision",
			delivered: "expired",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.create(deployRequest()) // created 09:30, expires 11:30
			e.clock.Add(89 * time.Minute)  // decided at 11:00 (create moved the clock a minute)
			posted := e.slack.messages("chat.postMessage")[0]
			tt.decide(e, r)

			updates := e.slack.messages("chat.update")
			if len(updates) != 1 {
				t.Fatalf("got %d chat.update calls, want 1", len(updates))
			}
			u := updates[0]
			if u.Channel != testChannel || u.TS != posted.TS {
				t.Errorf("updated message %s/%s, want the posted one %s/%s", u.Channel, u.TS, testChannel, posted.TS)
			}
			var blocks []struct {
				Type string `json:"type"`
				Text struct {
					Text string `json:"text"`
				} `json:"text"`
			}
			if err := json.Unmarshal(u.Blocks, &blocks); err != nil {
				t.Fatal(err)
			}
			var sections []string
			for _, b := range blocks {
				if b.Type == "actions" {
					t.Errorf("updated message still has buttons")
				}
				if b.Type == "section" && b.Text.Text != "" {
					sections = append(sections, b.Text.Text)
				}
			}
			wantSections := []string{
				"Changes: 14 commits, 2 migrations.\nPlease check &lt;!channel&gt; &amp; the *diff* before approving.",
				"<https://git.example.com/billing/compare/v2.3.0...v2.3.1|Diff>",
				tt.want,
			}
			if tt.comment != "" {
				wantSections = append(wantSections, tt.comment)
			}
			if diff := cmp.Diff(wantSections, sections); diff != "" {
				t.Errorf("updated message sections (-want +got):\n%s", diff)
			}
			for _, key := range r.PageKeys() {
				if bytes.Contains(u.Blocks, []byte(key)) {
					t.Errorf("updated message still links to page %s", key)
				}
			}
			var got []string
			for _, d := range e.workflow.Delivered() {
				got = append(got, d.Decision)
			}
			if diff := cmp.Diff([]string{tt.delivered}, got); diff != "" {
				t.Errorf("outcomes delivered to the workflow (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSlackDownKeepsDecision: when chat.update fails, the decision still
// reaches the workflow, and the update is tried again.
func TestSlackDownKeepsDecision(t *testing.T) {
	e := newEnv(t)
	r := e.create(deployRequest())
	e.slack.mu.Lock()
	e.slack.down = true
	e.slack.mu.Unlock()

	e.click(r.ID, ActionApprove, "U0BOB0001", nil)

	if got := e.request(r.ID); got.Status != approval.StatusApproved || !got.Delivered {
		t.Errorf("status %s, delivered %v; want approved and delivered", got.Status, got.Delivered)
	}
	if got := len(e.workflow.Delivered()); got != 1 {
		t.Errorf("workflow got %d outcomes, want 1", got)
	}
	if got := len(e.slack.messages("chat.update")); got < 2 {
		t.Errorf("chat.update tried %d times, want it retried", got)
	}
	if got := e.slack.messages("chat.postEphemeral"); len(got) != 0 {
		t.Errorf("the approver was told %+v, want nothing: the decision succeeded", got)
	}
}
