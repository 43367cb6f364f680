package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

// start is the injected clock's first reading; the nanoseconds check that the
// service truncates stored times to milliseconds.
var start = time.Date(2031, time.March, 4, 5, 6, 7, 890_123_456, time.UTC)

// clock is the injected Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// renderer is a fake Renderer whose pages carry the raw token on a line of its
// own, so that tests can vote as a person holding the page would.
type renderer struct{}

func (renderer) Page(v approval.PageView) ([]byte, error) {
	return fmt.Appendf(nil, "title=%s\nto=%s\ntoken=%s\ndecide=%s\nrule=%s\nexpires=%s\n", v.Request.Title, v.Recipient.Address, v.Token, v.DecideURL,
		v.Request.Rule.Describe(len(v.Request.Approvers)), v.Request.ExpiresAt.Format(time.RFC3339)), nil
}

func (renderer) Email(v approval.EmailView) (approval.Email, error) {
	subject := "Approval needed: " + v.Request.Title
	if v.Reminder {
		subject = "Reminder: " + subject
	}
	return approval.Email{
		To:      v.Recipient.Address,
		Subject: subject,
		Text:    "Open " + v.PageURL,
		HTML:    `<a href="` + v.PageURL + `">Open</a>`,
	}, nil
}

// chat is a fake Chat that records posts, direct messages and updates.
type chat struct {
	mu      sync.Mutex
	posts   []string // request IDs posted
	dms     []string // users messaged
	updates []string // "<status> <votes>" of each post and update: what the channel shows
	err     error
	onPost  func(r *approval.Request) // runs inside Post, before it answers
	notices []string                  // "<kind> <to or waiting>" of each notice
	postsIn []string                  // channels of each PostIn
}

func (c *chat) Post(_ context.Context, r *approval.Request) (approval.ChatMessage, error) {
	if c.onPost != nil {
		c.onPost(r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return approval.ChatMessage{}, c.err
	}
	c.posts = append(c.posts, r.ID)
	c.updates = append(c.updates, fmt.Sprintf("%s %d", r.Status, len(r.Votes)))
	return approval.ChatMessage{Channel: r.SlackChannel, TS: "1700000000.000100"}, nil
}

func (c *chat) DirectMessage(_ context.Context, r *approval.Request, user string) (approval.ChatMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return approval.ChatMessage{}, c.err
	}
	c.dms = append(c.dms, user)
	return approval.ChatMessage{Channel: "D" + user[1:], TS: "1700000000.000200"}, nil
}

func (c *chat) Update(_ context.Context, r *approval.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	c.updates = append(c.updates, fmt.Sprintf("%s %d", r.Status, len(r.Votes)))
	return nil
}

func (c *chat) Notice(_ context.Context, r *approval.Request, n approval.Notice) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	to := n.To
	if to == "" {
		to = "thread:" + strings.Join(n.Waiting, ",")
	}
	c.notices = append(c.notices, fmt.Sprintf("%s %s", n.Kind, to))
	return nil
}

func (c *chat) PostIn(_ context.Context, r *approval.Request, channel string) (approval.ChatMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return approval.ChatMessage{}, c.err
	}
	c.postsIn = append(c.postsIn, channel)
	return approval.ChatMessage{Channel: channel, TS: "1700000000.000300"}, nil
}

func (c *chat) noticeList() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.notices...)
}

func (c *chat) lastUpdate() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.updates) == 0 {
		return ""
	}
	return c.updates[len(c.updates)-1]
}

type harness struct {
	svc      *approval.Service
	store    *memory.Store
	pages    *memory.Pages
	mail     *memory.Mailer
	workflow *memory.Workflow
	chat     *chat
	clock    *clock
}

func newHarness(t *testing.T, withChat bool) *harness {
	t.Helper()
	h := &harness{
		store:    memory.NewStore(),
		pages:    memory.NewPages("http://127.0.0.1:8080"),
		mail:     memory.NewMailer(),
		workflow: memory.NewWorkflow(),
		clock:    &clock{now: start},
	}
	h.svc = &approval.Service{
		Store: h.store, Pages: h.pages, Renderer: renderer{}, Mailer: h.mail, Workflow: h.workflow,
		DecideURL: "http://127.0.0.1:8080/decide", Now: h.clock.Now, Sync: true,
	}
	if withChat {
		h.chat = &chat{}
		h.svc.Chat = h.chat
		h.svc.DefaultSlackChannel = "C0DEFAULT1"
	}
	return h
}

func validInput() approval.NewRequest {
	return approval.NewRequest{
		Title:      "Deploy v1.2 to prod",
		Details:    "Two changes.",
		Requester:  "ci@example.com",
		Approvers:  []string{"alice@example.com", "bob@example.com"},
		Links:      []approval.Link{{Label: "Diff", URL: "https://git.example.com/diff/1"}},
		Timeout:    time.Hour,
		WebhookURL: "https://hooks.example.com/x",
	}
}

func (h *harness) create(t *testing.T, in approval.NewRequest) *approval.Request {
	t.Helper()
	r, created, err := h.svc.Create(t.Context(), in)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if !created {
		t.Fatalf("Create: got created false for a new request")
	}
	return r
}

// token returns the raw token in the one-time page of approver addr.
func (h *harness) token(t *testing.T, r *approval.Request, addr string) string {
	t.Helper()
	for _, rc := range r.Recipients {
		if rc.Address != addr {
			continue
		}
		page, ok := h.pages.Get(rc.PageKey)
		if !ok {
			t.Fatalf("no page published for %s", addr)
		}
		for line := range strings.Lines(string(page)) {
			if tok, ok := strings.CutPrefix(strings.TrimSpace(line), "token="); ok {
				return tok
			}
		}
	}
	t.Fatalf("no page with a token for %s", addr)
	return ""
}

func (h *harness) get(t *testing.T, id string) *approval.Request {
	t.Helper()
	r, err := h.store.GetRequest(t.Context(), id)
	if err != nil {
		t.Fatalf("GetRequest: %v", err)
	}
	return r
}

func (h *harness) decide(t *testing.T, r *approval.Request, who string, c approval.Choice) (*approval.Request, error) {
	t.Helper()
	return h.svc.Decide(t.Context(), approval.DecideInput{Token: h.token(t, r, who), Choice: c, Comment: c.Status().String() + " by " + who})
}

func TestCreateRejectsBadInput(t *testing.T) {
	many := func(n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("a%d@example.com", i))
		}
		return out
	}
	group := func(name string, min int, members ...string) approval.GroupInput {
		return approval.GroupInput{Name: name, Min: min, Approvers: members}
	}
	tests := []struct {
		name      string
		edit      func(*approval.NewRequest)
		withChat  bool
		wantField string
	}{
		{"missing title", func(in *approval.NewRequest) { in.Title = "  " }, false, "title"},
		{"title too long", func(in *approval.NewRequest) { in.Title = strings.Repeat("x", approval.MaxTitle+1) }, false, "title"},
		{"details too long", func(in *approval.NewRequest) { in.Details = strings.Repeat("x", approval.MaxDetails+1) }, false, "details"},
		{"no approvers", func(in *approval.NewRequest) { in.Approvers = nil }, false, "approvers"},
		{"malformed email", func(in *approval.NewRequest) { in.Approvers = []string{"alice"} }, false, "approvers"},
		{"email with display name", func(in *approval.NewRequest) { in.Approvers = []string{"Alice <alice@example.com>"} }, false, "approvers"},
		{"email without domain", func(in *approval.NewRequest) { in.Approvers = []string{"alice@"} }, false, "approvers"},
		{"too many approvers", func(in *approval.NewRequest) { in.Approvers = many(approval.MaxApprovers + 1) }, false, "approvers"},
		{"Slack user only, no Slack", func(in *approval.NewRequest) { in.Approvers = []string{"U012ABCDEF"} }, false, "approvers"},
		{"timeout zero", func(in *approval.NewRequest) { in.Timeout = 0 }, false, "timeout"},
		{"timeout under a minute", func(in *approval.NewRequest) { in.Timeout = time.Minute - time.Second }, false, "timeout"},
		{"timeout over 30 days", func(in *approval.NewRequest) { in.Timeout = 30*24*time.Hour + time.Second }, false, "timeout"},
		{"link not http", func(in *approval.NewRequest) { in.Links = []approval.Link{{URL: "ftp://example.com/x"}} }, false, "links"},
		{"link relative", func(in *approval.NewRequest) { in.Links = []approval.Link{{Label: "x", URL: "/diff/1"}} }, false, "links"},
		{"link label too long", func(in *approval.NewRequest) {
			in.Links = []approval.Link{{Label: strings.Repeat("x", approval.MaxTitle+1), URL: "https://example.com/"}}
		}, false, "links"},
		{"link label not UTF-8", func(in *approval.NewRequest) {
			in.Links = []approval.Link{{Label: "\xff", URL: "https://example.com/"}}
		}, false, "links"},
		{"webhook javascript", func(in *approval.NewRequest) { in.WebhookURL = "javascript:alert(1)" }, false, "webhookURL"},
		{"webhook without host", func(in *approval.NewRequest) { in.WebhookURL = "http://" }, false, "webhookURL"},
		{"unknown policy", func(in *approval.NewRequest) { in.Policy = "majority" }, false, "policy"},
		{"quorum zero", func(in *approval.NewRequest) { in.Policy = "quorum:0" }, false, "policy"},
		{"quorum above the approvers", func(in *approval.NewRequest) { in.Policy = "quorum:3" }, false, "policy"},
		{"quorum above the approvers but the requester", func(in *approval.NewRequest) {
			in.Approvers, in.Policy = []string{"alice@example.com", "ci@example.com"}, "quorum:2"
		}, false, "policy"},
		{"all with the requester among the approvers", func(in *approval.NewRequest) {
			in.Approvers, in.Policy = []string{"alice@example.com", "CI@example.com"}, "all"
		}, false, "policy"},
		{"the requester is the only approver", func(in *approval.NewRequest) { in.Approvers = []string{"ci@example.com"} }, false, "approvers"},
		{"unknown reject policy", func(in *approval.NewRequest) { in.RejectPolicy = "never" }, false, "rejectPolicy"},
		{"groups and approvers", func(in *approval.NewRequest) { in.Groups = []approval.GroupInput{group("eng", 1, "a@example.com")} }, false, "groups"},
		{"groups and policy", func(in *approval.NewRequest) {
			in.Approvers, in.Policy, in.Groups = nil, "all", []approval.GroupInput{group("eng", 1, "a@example.com")}
		}, false, "groups"},
		{"group name with capitals", func(in *approval.NewRequest) {
			in.Approvers, in.Groups = nil, []approval.GroupInput{group("Eng", 1, "a@example.com")}
		}, false, "groups"},
		{"group name twice", func(in *approval.NewRequest) {
			in.Approvers, in.Groups = nil, []approval.GroupInput{group("eng", 1, "a@example.com"), group("eng", 1, "b@example.com")}
		}, false, "groups"},
		{"group min above its members", func(in *approval.NewRequest) {
			in.Approvers, in.Groups = nil, []approval.GroupInput{group("eng", 2, "a@example.com")}
		}, false, "groups"},
		{"group whose only member is the requester", func(in *approval.NewRequest) {
			in.Approvers, in.Groups = nil, []approval.GroupInput{group("eng", 1, "a@example.com"), group("ops", 1, "ci@example.com")}
		}, false, "groups"},
		{"group member not an address", func(in *approval.NewRequest) {
			in.Approvers, in.Groups = nil, []approval.GroupInput{group("eng", 1, "nobody")}
		}, false, "groups"},
		{"eleven groups", func(in *approval.NewRequest) {
			in.Approvers = nil
			for i := range 11 {
				in.Groups = append(in.Groups, group(fmt.Sprintf("g%d", i), 1, "a@example.com"))
			}
		}, false, "groups"},
		{"bad Slack channel", func(in *approval.NewRequest) { in.SlackChannel = "Not A Channel!" }, true, "slackChannel"},
		// Timing and hand-offs.
		{"unknown onTimeout", func(in *approval.NewRequest) { in.OnTimeout = "ignore" }, false, "onTimeout"},
		{"reminders every 4 minutes", func(in *approval.NewRequest) { in.Reminders.Every = 4 * time.Minute }, false, "reminders.everySeconds"},
		{"reminders every timeout", func(in *approval.NewRequest) { in.Reminders.Every = in.Timeout }, false, "reminders.everySeconds"},
		{"reminder before expiry not positive", func(in *approval.NewRequest) { in.Reminders.BeforeExpiry = []time.Duration{0} }, false, "reminders.beforeExpirySeconds"},
		{"reminder before expiry as long as the timeout", func(in *approval.NewRequest) {
			in.Reminders.BeforeExpiry = []time.Duration{time.Minute, in.Timeout}
		}, false, "reminders.beforeExpirySeconds"},
		{"reminder before expiry twice", func(in *approval.NewRequest) {
			in.Reminders.BeforeExpiry = []time.Duration{time.Minute, time.Minute}
		}, false, "reminders.beforeExpirySeconds"},
		{"escalation after zero", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{Approvers: []string{"carol@example.com"}}
		}, false, "escalation.afterSeconds"},
		{"escalation after the timeout", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: in.Timeout, Approvers: []string{"carol@example.com"}}
		}, false, "escalation.afterSeconds"},
		{"escalation to nobody", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: time.Minute}
		}, false, "escalation.approvers"},
		{"escalation to an approver", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: time.Minute, Approvers: []string{"Bob@example.com"}}
		}, false, "escalation.approvers"},
		{"escalation to a non-address", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: time.Minute, Approvers: []string{"carol"}}
		}, false, "escalation.approvers"},
		{"escalation to a Slack user without Slack", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: time.Minute, Approvers: []string{"U0CAROL001"}}
		}, false, "escalation.approvers"},
		{"escalation under all", func(in *approval.NewRequest) {
			in.Policy, in.Escalation = "all", &approval.EscalationInput{After: time.Minute, Approvers: []string{"carol@example.com"}}
		}, false, "escalation"},
		{"escalation past the approver limit", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: time.Minute, Approvers: many(approval.MaxApprovers - 1)}
		}, false, "escalation.approvers"},
		{"escalation bad channel", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: time.Minute, Approvers: []string{"carol@example.com"}, SlackChannel: "No Channel"}
		}, true, "escalation.slackChannel"},
		{"escalation approvers on a request with groups", func(in *approval.NewRequest) {
			in.Approvers, in.Groups = nil, []approval.GroupInput{group("eng", 1, "a@example.com")}
			in.Escalation = &approval.EscalationInput{After: time.Minute, Approvers: []string{"carol@example.com"}}
		}, false, "escalation.approvers"},
		{"escalation to an unknown group", func(in *approval.NewRequest) {
			in.Approvers, in.Groups = nil, []approval.GroupInput{group("eng", 1, "a@example.com")}
			in.Escalation = &approval.EscalationInput{After: time.Minute, Groups: []approval.GroupInput{group("ops", 0, "carol@example.com")}}
		}, false, "escalation.groups"},
		{"escalation groups on a request without", func(in *approval.NewRequest) {
			in.Escalation = &approval.EscalationInput{After: time.Minute, Groups: []approval.GroupInput{group("eng", 0, "carol@example.com")}}
		}, false, "escalation.groups"},
		{"Slack channel without Slack", func(in *approval.NewRequest) { in.SlackChannel = "C0123456789" }, false, "slackChannel"},
		{"address of 255 characters", func(in *approval.NewRequest) {
			in.Approvers = []string{strings.Repeat("a", 243) + "@example.com"}
		}, false, "approvers"},
		{"address of 5,012 characters", func(in *approval.NewRequest) {
			in.Approvers = []string{strings.Repeat("a", 5000) + "@example.com"}
		}, false, "approvers"},
		{"NUL in the title", func(in *approval.NewRequest) { in.Title = "Deploy\x00" }, false, "title"},
		{"ESC in the title", func(in *approval.NewRequest) { in.Title = "Deploy \x1b[31mv1.2" }, false, "title"},
		{"line break in the title", func(in *approval.NewRequest) { in.Title = "Deploy\nApproved: yes" }, false, "title"},
		{"right-to-left override in the title", func(in *approval.NewRequest) { in.Title = "Approve \u202egnp.exe" }, false, "title"},
		{"BEL in the details", func(in *approval.NewRequest) { in.Details = "ring\a" }, false, "details"},
		{"isolate in the details", func(in *approval.NewRequest) { in.Details = "a\u2066b" }, false, "details"},
		{"C1 control in the requester", func(in *approval.NewRequest) { in.Requester = "ci\u009b" }, false, "requester"},
		{"override in the requester", func(in *approval.NewRequest) { in.Requester = "\u202dci" }, false, "requester"},
		{"override in a link label", func(in *approval.NewRequest) {
			in.Links = []approval.Link{{Label: "diff \u202e", URL: "https://example.com/diff"}}
		}, false, "links"},
		{"space in a link URL", func(in *approval.NewRequest) {
			in.Links = []approval.Link{{Label: "diff", URL: "https://example.com/a b"}}
		}, false, "links"},
		{"angle bracket in a link URL", func(in *approval.NewRequest) {
			in.Links = []approval.Link{{Label: "diff", URL: "https://example.com/a>b"}}
		}, false, "links"},
		{"control character in an approver", func(in *approval.NewRequest) { in.Approvers = []string{"al\u202eice@example.com"} }, false, "approvers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.withChat)
			in := validInput()
			tt.edit(&in)
			r, created, err := h.svc.Create(t.Context(), in)
			if !errors.Is(err, approval.ErrInvalid) {
				t.Fatalf("Create: got error %v, want ErrInvalid", err)
			}
			var ve *approval.ValidationError
			if !errors.As(err, &ve) || ve.Field != tt.wantField {
				t.Errorf("Create: got validation error %#v, want field %q", err, tt.wantField)
			}
			if r != nil || created {
				t.Errorf("Create: got request %v, created %v; want nil, false", r, created)
			}
			pending, _, err := h.store.ListPending(t.Context(), "", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(pending) != 0 {
				t.Errorf("stored %d requests, want none", len(pending))
			}
			if keys := h.pages.Keys(); len(keys) != 0 {
				t.Errorf("published %d pages, want none", len(keys))
			}
			if sent := h.mail.Sent(); len(sent) != 0 {
				t.Errorf("sent %d emails, want none", len(sent))
			}
		})
	}
}

func TestCreate(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = []string{"Alice@Example.com", "bob@example.com", "alice@example.com", "U012ABCDEF"}
	in.Policy = "QUORUM:2"
	r := h.create(t, in)

	if !approval.ValidID(r.ID) || r.Version != 2 {
		t.Errorf("ID %q version %d; want a valid ID, version 2 (created, notifications recorded)", r.ID, r.Version)
	}
	if got, want := strings.Join(r.Approvers, ","), "alice@example.com,bob@example.com,U012ABCDEF"; got != want {
		t.Errorf("approvers %s, want %s", got, want)
	}
	if r.Rule.Policy != approval.PolicyQuorum(2) || r.Rule.RejectPolicy != approval.RejectAny || r.Rule.AllowSelfApproval {
		t.Errorf("rule %+v, want quorum:2, reject any, no self-approval", r.Rule)
	}
	if !r.CreatedAt.Equal(start.Truncate(time.Millisecond)) || !r.ExpiresAt.Equal(r.CreatedAt.Add(time.Hour)) {
		t.Errorf("created %v expires %v", r.CreatedAt, r.ExpiresAt)
	}
	// One personal link per email approver; the Slack approver gets a DM.
	if len(r.Recipients) != 2 || len(h.pages.Keys()) != 2 {
		t.Fatalf("%d recipients, %d pages; want 2 email approvers' pages", len(r.Recipients), len(h.pages.Keys()))
	}
	for _, rc := range r.Recipients {
		tok := h.token(t, r, rc.Address)
		if approval.TokenRequestID(tok) != r.ID || approval.HashToken(tok) != rc.TokenHash {
			t.Errorf("token of %s does not name its request or does not match its hash", rc.Address)
		}
	}
	if sent := h.mail.Sent(); len(sent) != 2 {
		t.Errorf("sent %d emails, want 2", len(sent))
	}
	if len(h.chat.posts) != 1 || len(h.chat.dms) != 1 || h.chat.dms[0] != "U012ABCDEF" {
		t.Errorf("chat posts %v, DMs %v; want one post and a DM to U012ABCDEF", h.chat.posts, h.chat.dms)
	}
	stored := h.get(t, r.ID)
	if stored.ChatMessage.TS == "" || len(stored.DirectMessages) != 1 {
		t.Errorf("stored chat message %+v and DMs %+v; want both recorded", stored.ChatMessage, stored.DirectMessages)
	}
	var states []string
	for _, n := range stored.Notifications() {
		states = append(states, fmt.Sprintf("%s %s %s", n.Channel, n.To, n.State))
	}
	want := "email alice@example.com sent,email bob@example.com sent,slack C0DEFAULT1 sent,slack U012ABCDEF sent"
	if got := strings.Join(states, ","); got != want {
		t.Errorf("notifications:\n got %s\nwant %s", got, want)
	}
	if !stored.DueAt().Equal(stored.ExpiresAt) {
		t.Errorf("due at %v, want its expiry (nothing else left to do)", stored.DueAt())
	}
}

func TestCreateIdempotentWithTaskToken(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.TaskToken = "task-token-1"
	first := h.create(t, in)
	again, created, err := h.svc.Create(t.Context(), in)
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("second Create: %v created %v id %s; want the first request (%s), not created", err, created, again.ID, first.ID)
	}
	if n := len(h.mail.Sent()); n != 2 {
		t.Errorf("sent %d emails after a retried create, want 2", n)
	}
	if n := len(h.pages.Keys()); n != 2 {
		t.Errorf("%d pages after a retried create, want 2", n)
	}
}

func TestDecideAny(t *testing.T) {
	h := newHarness(t, true)
	r := h.create(t, validInput())
	got, err := h.decide(t, r, "bob@example.com", approval.Approve)
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if got.Status != approval.StatusApproved || got.Decision.By != "bob@example.com" || got.Decision.Channel != approval.ChannelEmail {
		t.Fatalf("got %s decided by %+v; want approved by bob through email", got.Status, got.Decision)
	}
	if len(h.pages.Keys()) != 0 {
		t.Errorf("%d pages still published", len(h.pages.Keys()))
	}
	res := h.workflow.Delivered()
	if len(res) != 1 || res[0].Decision != "approved" || len(res[0].Votes) != 1 || res[0].Votes[0].By != "bob@example.com" {
		t.Errorf("delivered %+v, want one approval with bob's vote", res)
	}
	if h.chat.lastUpdate() != "approved 1" {
		t.Errorf("last chat update %q, want approved 1", h.chat.lastUpdate())
	}
	stored := h.get(t, r.ID)
	if !stored.Delivered() || !stored.DueAt().IsZero() {
		t.Errorf("delivered %v due %v; want delivered, nothing due", stored.Delivered(), stored.DueAt())
	}
	_, err = h.svc.Decide(t.Context(), approval.DecideInput{Token: "x", Choice: approval.Reject})
	if !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("vote with an unknown token: %v, want ErrNotFound", err)
	}
}

func TestDecideQuorum(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = []string{"alice@example.com", "bob@example.com", "carol@example.com"}
	in.Policy = "quorum:2"
	r := h.create(t, in)
	carolTok := h.token(t, r, "carol@example.com")

	got, err := h.decide(t, r, "alice@example.com", approval.Approve)
	if err != nil || got.Status != approval.StatusPending {
		t.Fatalf("first approval: %v, %v; want pending", got.Status, err)
	}
	if p := got.Tally(); p.Approvals != 1 || p.Needed != 1 || p.Required != 2 {
		t.Errorf("progress %+v, want 1 approval, 1 more needed of 2", p)
	}
	// Alice's page is gone, the others stay live.
	if keys := h.pages.Keys(); len(keys) != 2 {
		t.Errorf("%d pages after alice voted, want bob's and carol's", len(keys))
	}
	if h.chat.lastUpdate() != "pending 1" {
		t.Errorf("chat shows %q, want pending 1", h.chat.lastUpdate())
	}
	if len(h.workflow.Delivered()) != 0 {
		t.Errorf("delivered before the rule was met")
	}
	got, err = h.decide(t, r, "bob@example.com", approval.Approve)
	if err != nil || got.Status != approval.StatusApproved || got.Decision.By != "bob@example.com" {
		t.Fatalf("second approval: %v decided by %+v, %v; want approved by bob", got.Status, got.Decision, err)
	}
	res := h.workflow.Delivered()
	if len(res) != 1 || len(res[0].Votes) != 2 {
		t.Errorf("delivered %+v, want one approval with both votes", res)
	}
	if len(h.pages.Keys()) != 0 {
		t.Errorf("pages left after the close: %v", h.pages.Keys())
	}
	_, err = h.svc.Decide(t.Context(), approval.DecideInput{Token: carolTok, Choice: approval.Reject})
	if !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("carol after the close: %v, want ErrAlreadyDecided", err)
	}
}

func TestSelfApproval(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.Approvers = []string{"alice@example.com", "CI@example.com"}
	r := h.create(t, in)
	got, err := h.decide(t, r, "ci@example.com", approval.Approve)
	if !errors.Is(err, approval.ErrSelfApproval) || !errors.Is(err, approval.ErrForbidden) || got == nil || got.Status != approval.StatusPending {
		t.Fatalf("requester approving: %v, %v; want ErrSelfApproval with the pending request", got, err)
	}
	got, err = h.decide(t, r, "ci@example.com", approval.Reject)
	if err != nil || got.Status != approval.StatusRejected {
		t.Fatalf("requester rejecting: %v, %v; want rejected", got, err)
	}

	in.AllowSelfApproval = true
	r = h.create(t, in)
	if got, err := h.decide(t, r, "ci@example.com", approval.Approve); err != nil || got.Status != approval.StatusApproved {
		t.Errorf("requester approving with allowSelfApproval: %v, %v; want approved", got, err)
	}
}

func TestSlackIdentityIsOnePerson(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = []string{"alice@example.com", "bob@example.com", "U0CAROL001"}
	in.Policy = "all"
	r := h.create(t, in)
	ctx := t.Context()
	aliceTok := h.token(t, r, "alice@example.com")
	// Alice votes in Slack: her profile email makes her the email approver.
	got, err := h.svc.DecideInChat(ctx, r.ID, approval.Approve, "", approval.Identity{ID: "U0ALICE001", Email: "Alice@example.com"})
	if err != nil || got.Status != approval.StatusPending || got.Votes[0].Email != "Alice@example.com" {
		t.Fatalf("alice in Slack: %v, %v", got, err)
	}
	if len(h.pages.Keys()) != 1 {
		t.Errorf("pages %v after alice voted in Slack; want only bob's (hers is gone)", h.pages.Keys())
	}
	if _, err := h.svc.Decide(ctx, approval.DecideInput{Token: aliceTok, Choice: approval.Reject}); !errors.Is(err, approval.ErrAlreadyVoted) {
		t.Errorf("alice again through her email link: %v, want ErrAlreadyVoted", err)
	}
	if _, err := h.svc.DecideInChat(ctx, r.ID, approval.Approve, "", approval.Identity{ID: "U0EVE00001"}); !errors.Is(err, approval.ErrNotApprover) {
		t.Errorf("a stranger in Slack: %v, want ErrNotApprover", err)
	}
	// Carol asks for a personal link and votes with it.
	_, url, err := h.svc.PersonalLink(ctx, r.ID, approval.Identity{ID: "U0CAROL001"})
	if err != nil || !strings.HasPrefix(url, "http://127.0.0.1:8080/p/") {
		t.Fatalf("PersonalLink: %q, %v", url, err)
	}
	if _, _, err := h.svc.PersonalLink(ctx, r.ID, approval.Identity{ID: "U0EVE00001"}); !errors.Is(err, approval.ErrNotApprover) {
		t.Errorf("personal link for a stranger: %v, want ErrNotApprover", err)
	}
	r = h.get(t, r.ID)
	got, err = h.decide(t, r, "U0CAROL001", approval.Approve)
	if err != nil || got.Status != approval.StatusPending || got.Votes[1].By != "U0CAROL001" || got.Votes[1].Channel != approval.ChannelSlack {
		t.Fatalf("carol through her personal link: %+v, %v", got.Votes, err)
	}
	if _, _, err := h.svc.PersonalLink(ctx, r.ID, approval.Identity{ID: "U0CAROL001"}); !errors.Is(err, approval.ErrAlreadyVoted) {
		t.Errorf("personal link after voting: %v, want ErrAlreadyVoted", err)
	}
	got, err = h.decide(t, r, "bob@example.com", approval.Approve)
	if err != nil || got.Status != approval.StatusApproved {
		t.Fatalf("bob: %v, %v; want approved", got.Status, err)
	}
	if len(h.pages.Keys()) != 0 {
		t.Errorf("pages left after the close: %v", h.pages.Keys())
	}
}

func TestRejectImpossible(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.Approvers = []string{"alice@example.com", "bob@example.com", "carol@example.com"}
	in.Policy, in.RejectPolicy = "quorum:2", "impossible"
	r := h.create(t, in)
	if got, err := h.decide(t, r, "alice@example.com", approval.Reject); err != nil || got.Status != approval.StatusPending {
		t.Fatalf("one reject: %v, %v; want pending", got.Status, err)
	}
	got, err := h.decide(t, r, "bob@example.com", approval.Reject)
	if err != nil || got.Status != approval.StatusRejected || got.Decision.By != "bob@example.com" {
		t.Fatalf("two rejects: %v, %v; want rejected by bob", got.Status, err)
	}
}

func TestDecideExpired(t *testing.T) {
	h := newHarness(t, true)
	r := h.create(t, validInput())
	tok := h.token(t, r, "alice@example.com")
	h.clock.Advance(time.Hour)
	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: tok, Choice: approval.Approve})
	if !errors.Is(err, approval.ErrExpired) || got.Status != approval.StatusExpired {
		t.Fatalf("vote at expiry: %v, %v; want ErrExpired and the request expired", got, err)
	}
	if res := h.workflow.Delivered(); len(res) != 1 || res[0].Decision != "expired" {
		t.Errorf("delivered %+v, want expired", res)
	}
	if len(h.pages.Keys()) != 0 || h.chat.lastUpdate() != "expired 0" {
		t.Errorf("pages %v, chat %q; want none and expired", h.pages.Keys(), h.chat.lastUpdate())
	}
}

func TestSweepExpires(t *testing.T) {
	h := newHarness(t, false)
	var ids []string
	for range 3 {
		ids = append(ids, h.create(t, validInput()).ID)
	}
	st, err := h.svc.Sweep(t.Context())
	if err != nil || st.Expired != 0 {
		t.Fatalf("sweep before expiry: %+v, %v", st, err)
	}
	h.clock.Advance(time.Hour)
	st, err = h.svc.Sweep(t.Context())
	if err != nil || st.Expired != 3 || st.Left != 0 {
		t.Fatalf("sweep at expiry: %+v, %v; want 3 expired, none left", st, err)
	}
	for _, id := range ids {
		if r := h.get(t, id); r.Status != approval.StatusExpired || !r.Delivered() {
			t.Errorf("%s: %s delivered %v", id, r.Status, r.Delivered())
		}
	}
	if n := len(h.workflow.Delivered()); n != 3 {
		t.Errorf("delivered %d outcomes, want 3", n)
	}
	if st, _ := h.svc.Sweep(t.Context()); st.Advanced != 0 {
		t.Errorf("a second sweep advanced %d requests, want none", st.Advanced)
	}
}

func TestWait(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	tok := h.token(t, r, "bob@example.com")
	type result struct {
		r   *approval.Request
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := h.svc.Wait(context.WithoutCancel(t.Context()), r.ID)
		done <- result{got, err}
	}()
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: tok, Choice: approval.Approve}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	// Well under Wait's own polling interval: only the wake-up makes it in time.
	select {
	case res := <-done:
		if res.err != nil || res.r.Status != approval.StatusApproved || res.r.Decision.By != "bob@example.com" {
			t.Errorf("Wait: got %+v, %v; want the approval by bob", res.r, res.err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Wait did not return within 3s of the decision")
	}
}

func TestWaitExpiredAndCanceled(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got, err := h.svc.Wait(ctx, r.ID)
	if !errors.Is(err, context.Canceled) || got == nil || got.Status != approval.StatusPending {
		t.Errorf("Wait with a canceled context: got %+v, %v; want the pending request and context.Canceled", got, err)
	}
	h.clock.Advance(time.Hour)
	got, err = h.svc.Wait(t.Context(), r.ID)
	if err != nil || got.Status != approval.StatusExpired {
		t.Errorf("Wait past expiry: got %+v, %v; want the request closed as expired", got, err)
	}
	if _, err := h.svc.Wait(t.Context(), "nosuchrequest234"); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Wait for an unknown request: got %v, want ErrNotFound", err)
	}
}

func TestConcurrentDecideAny(t *testing.T) {
	const workers = 100
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = []string{"a@example.com", "b@example.com", "c@example.com", "d@example.com"}
	r := h.create(t, in)
	var toks []string
	for _, a := range in.Approvers {
		toks = append(toks, h.token(t, r, a))
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		closers int
		gate    = make(chan struct{})
	)
	for i := range workers {
		c := approval.Approve
		if i%2 == 1 {
			c = approval.Reject
		}
		wg.Go(func() {
			<-gate
			got, err := h.svc.Decide(context.WithoutCancel(t.Context()), approval.DecideInput{Token: toks[i%len(toks)], Choice: c})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && got.Status != approval.StatusPending:
				closers++
			case errors.Is(err, approval.ErrAlreadyDecided), errors.Is(err, approval.ErrAlreadyVoted):
			default:
				t.Errorf("vote %d: %v, %v", i, got, err)
			}
		})
	}
	close(gate)
	wg.Wait()
	stored := h.get(t, r.ID)
	if closers != 1 || len(stored.Votes) != 1 || len(h.workflow.Delivered()) != 1 {
		t.Errorf("%d closers, %d votes stored, %d deliveries; want 1 each", closers, len(stored.Votes), len(h.workflow.Delivered()))
	}
}

func TestLookupDecidesNothing(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	tok := h.token(t, r, "alice@example.com")
	got, err := h.svc.Lookup(t.Context(), tok)
	if err != nil || got.ID != r.ID || got.Status != approval.StatusPending {
		t.Fatalf("Lookup: %v, %v", got, err)
	}
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: tok, Choice: approval.Approve}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Lookup(t.Context(), tok); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("Lookup after the decision: %v, want ErrAlreadyDecided", err)
	}
	if _, err := h.svc.Lookup(t.Context(), r.ID+".nosuchsecret"); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Lookup of a forged token naming the request: %v, want ErrNotFound", err)
	}
}

func TestLegacyToken(t *testing.T) {
	h := newHarness(t, false)
	// A request as the first version stored it: a bare token, and a link for
	// the whole Slack channel.
	r := &approval.Request{
		ID: approval.NewID(), Title: "old", Requester: "ci@example.com", Approvers: []string{"alice@example.com"},
		Rule: approval.Rule{Policy: approval.PolicyAny}, Status: approval.StatusPending,
		CreatedAt: start, ExpiresAt: start.Add(time.Hour), WebhookURL: "https://hooks.example.com/x",
	}
	raw, hash := approval.NewToken()
	r.Recipients = []approval.Recipient{{Address: "C0CHANNEL1", Channel: approval.ChannelSlack, TokenHash: hash, PageKey: approval.NewPageKey()}}
	if err := h.store.CreateRequest(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	h.store.AddLegacyToken(hash, r.ID)
	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: raw, Choice: approval.Approve})
	if err != nil || got.Status != approval.StatusApproved || got.Decision.By != "Slack channel C0CHANNEL1" {
		t.Fatalf("vote with a first-version token: %+v, %v", got, err)
	}
}

func TestResultJSON(t *testing.T) {
	at := time.Date(2031, 3, 4, 5, 16, 7, 890_000_000, time.UTC)
	votes := []approval.Vote{
		{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, At: at.Add(-time.Minute)},
		{By: "alice@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, Comment: "ship it", At: at, Groups: []string{"eng"}},
	}
	tests := []struct {
		name string
		r    approval.Request
		want string
	}{
		{
			name: "approved",
			r: approval.Request{ID: "r1", Status: approval.StatusApproved, Votes: votes, Decision: &approval.Decision{
				Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, Comment: "ship it", At: at}},
			want: `{"requestId":"r1","decision":"approved","decidedBy":"alice@example.com","channel":"email","comment":"ship it","decidedAt":"2031-03-04T05:16:07Z",` +
				`"votes":[{"by":"bob@example.com","channel":"email","choice":"approve","comment":"","at":"2031-03-04T05:15:07Z"},` +
				`{"by":"alice@example.com","channel":"email","choice":"approve","comment":"ship it","at":"2031-03-04T05:16:07Z","groups":["eng"]}]}`,
		},
		{
			name: "expired",
			r:    approval.Request{ID: "r3", Status: approval.StatusExpired},
			want: `{"requestId":"r3","decision":"expired","votes":[]}`,
		},
		{
			name: "no approver reached",
			r:    approval.Request{ID: "r4", Status: approval.StatusCanceled, Reason: approval.ReasonNotificationFailed},
			want: `{"requestId":"r4","decision":"canceled","reason":"notification_failed","votes":[]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.r.Result())
			if err != nil {
				t.Fatal(err)
			}
			if got := string(b); got != tt.want {
				t.Errorf("Result JSON:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDecideNormalisesLineBreaks(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	bobTok := h.token(t, r, "bob@example.com")
	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: h.token(t, r, "alice@example.com"), Choice: approval.Approve, Comment: " a\r\nb\rc \n"})
	if err != nil || got.Decision.Comment != "a\nb\nc" || got.Votes[0].Comment != "a\nb\nc" {
		t.Fatalf("comment %q, %v; want line breaks as \\n, trimmed", got.Decision.Comment, err)
	}
	_, err = h.svc.Decide(t.Context(), approval.DecideInput{Token: bobTok, Choice: approval.Approve, Comment: strings.Repeat("x", approval.MaxComment+1)})
	if !errors.Is(err, approval.ErrInvalid) {
		t.Errorf("comment too long: %v, want ErrInvalid", err)
	}
}

func TestDecideRefusesControlCharacters(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	tok := h.token(t, r, "alice@example.com")
	for _, c := range []string{"ok\x1b]0;pwned\a", "fine \u202eenif", "nul\x00"} {
		_, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: tok, Choice: approval.Approve, Comment: c})
		var ve *approval.ValidationError
		if !errors.As(err, &ve) || ve.Field != "comment" {
			t.Errorf("comment %q: %v, want a validation error of comment", c, err)
		}
	}
	if got := h.get(t, r.ID); len(got.Votes) != 0 {
		t.Errorf("votes %v, want none recorded", got.Votes)
	}
	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: tok, Choice: approval.Approve, Comment: "line 1\n\tline 2"})
	if err != nil || got.Votes[0].Comment != "line 1\n\tline 2" {
		t.Errorf("comment with a line break and a tab: %v, %v; want it recorded", got, err)
	}
}

func TestCreateAcceptsLongestAddress(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	addr := strings.Repeat("a", approval.MaxAddress-len("@example.com")) + "@example.com"
	in.Approvers = []string{addr}
	r := h.create(t, in)
	if len(r.Approvers) != 1 || r.Approvers[0] != addr {
		t.Errorf("approvers %q, want the %d-character address", r.Approvers, len(addr))
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, true)
	wf := newTaskWorkflow()
	h.svc.Workflow = wf
	in := validInput()
	in.TaskToken = "task-1"
	r := h.create(t, in)
	tok := h.token(t, r, "alice@example.com")
	if _, err := h.svc.Cancel(t.Context(), r.ID, "", "x"); !errors.Is(err, approval.ErrInvalid) {
		t.Errorf("cancel without who: %v, want ErrInvalid", err)
	}
	got, err := h.svc.Cancel(t.Context(), r.ID, "ci@example.com", " superseded\r\nby v1.3 ")
	if err != nil || got.Status != approval.StatusCanceled || got.Canceled == nil || got.Canceled.Reason != "superseded\nby v1.3" {
		t.Fatalf("Cancel: %+v, %v", got, err)
	}
	if len(h.pages.Keys()) != 0 || h.chat.lastUpdate() != "canceled 0" {
		t.Errorf("pages %v, chat %q; want none and canceled", h.pages.Keys(), h.chat.lastUpdate())
	}
	if res := wf.completed[r.ID]; res.Decision != "canceled" || res.CanceledBy != "ci@example.com" || res.CancelReason != "superseded\nby v1.3" {
		t.Errorf("workflow got %+v, want canceled by ci with the reason", res)
	}
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: tok, Choice: approval.Approve}); !errors.Is(err, approval.ErrExpired) {
		t.Errorf("vote after cancel: %v, want ErrExpired", err)
	}
	if _, err := h.svc.Cancel(t.Context(), r.ID, "ci@example.com", ""); !errors.Is(err, approval.ErrExpired) {
		t.Errorf("second cancel: %v, want ErrExpired", err)
	}
	if _, err := h.svc.Cancel(t.Context(), "nosuchrequest234", "ci", ""); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("cancel of an unknown request: %v, want ErrNotFound", err)
	}
}
