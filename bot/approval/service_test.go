package approval_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/memory"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
// own, so that tests can decide as a person holding the page would.
type renderer struct{}

func (renderer) Page(v approval.PageView) ([]byte, error) {
	return fmt.Appendf(nil, "title=%s\nto=%s\ntoken=%s\ndecide=%s\n", v.Request.Title, v.Recipient.Address, v.Token, v.DecideURL), nil
}

func (renderer) Email(v approval.EmailView) (approval.Email, error) {
	return approval.Email{
		To:      v.Recipient.Address,
		Subject: "Approval needed: " + v.Request.Title,
		Text:    "Open " + v.PageURL,
		HTML:    `<a href="` + v.PageURL + `">Open</a>`,
	}, nil
}

// chat is a fake Chat that records posts and updates.
type chat struct {
	mu      sync.Mutex
	posts   []string // page URLs posted
	updates []approval.Status
	onPost  func(r *approval.Request) // runs inside Post, before it answers
}

func (c *chat) Post(_ context.Context, r *approval.Request, pageURL string) (approval.ChatMessage, error) {
	if c.onPost != nil {
		c.onPost(r)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.posts = append(c.posts, pageURL)
	return approval.ChatMessage{Channel: r.SlackChannel, TS: "1700000000.000100"}, nil
}

func (c *chat) Update(_ context.Context, r *approval.Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.updates = append(c.updates, r.Status)
	return nil
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
		DecideURL: "http://127.0.0.1:8080/decide", Now: h.clock.Now,
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
		Title:     "Deploy v1.2 to prod",
		Details:   "Two changes.",
		Requester: "ci@example.com",
		Approvers: []string{"alice@example.com", "bob@example.com"},
		Links:     []approval.Link{{Label: "Diff", URL: "https://git.example.com/diff/1"}},
		Timeout:   time.Hour,
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

// token returns the raw token in the recipient's one-time page.
func (h *harness) token(t *testing.T, rc approval.Recipient) string {
	t.Helper()
	page, ok := h.pages.Get(rc.PageKey)
	if !ok {
		t.Fatalf("no page published for %s", rc.Address)
	}
	for line := range strings.Lines(string(page)) {
		if tok, ok := strings.CutPrefix(strings.TrimSpace(line), "token="); ok {
			return tok
		}
	}
	t.Fatalf("page for %s has no token", rc.Address)
	return ""
}

// tokens returns the raw tokens of every recipient, in recipient order.
func (h *harness) tokens(t *testing.T, r *approval.Request) []string {
	t.Helper()
	var out []string
	for _, rc := range r.Recipients {
		out = append(out, h.token(t, rc))
	}
	return out
}

func (h *harness) get(t *testing.T, id string) *approval.Request {
	t.Helper()
	r, err := h.store.GetRequest(t.Context(), id)
	if err != nil {
		t.Fatalf("GetRequest: %v", err)
	}
	return r
}

var cmpOpts = cmp.Options{cmpopts.EquateEmpty(), cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })}

func TestCreateRejectsBadInput(t *testing.T) {
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
		{"too many approvers", func(in *approval.NewRequest) {
			in.Approvers = nil
			for i := range approval.MaxApprovers + 1 {
				in.Approvers = append(in.Approvers, fmt.Sprintf("a%d@example.com", i))
			}
		}, false, "approvers"},
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
		{"unsupported policy all", func(in *approval.NewRequest) { in.Policy = "all" }, false, "policy"},
		{"unsupported policy quorum", func(in *approval.NewRequest) { in.Policy = "quorum:2" }, false, "policy"},
		{"bad Slack channel", func(in *approval.NewRequest) { in.SlackChannel = "Not A Channel!" }, true, "slackChannel"},
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
			pending, err := h.store.ListPending(t.Context())
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
			if h.chat != nil && len(h.chat.posts) != 0 {
				t.Errorf("posted %d chat messages, want none", len(h.chat.posts))
			}
		})
	}
}

func TestCreate(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = []string{"Alice@Example.com", "bob@example.com", "alice@example.com", "U012ABCDEF"}
	in.Policy = "ANY"
	r := h.create(t, in)

	if !approval.ValidID(r.ID) {
		t.Errorf("ID %q is not a valid request ID", r.ID)
	}
	wantCreated := start.Truncate(time.Millisecond)
	if !r.CreatedAt.Equal(wantCreated) || !r.ExpiresAt.Equal(wantCreated.Add(time.Hour)) {
		t.Errorf("times: got created %v expires %v, want %v and an hour later", r.CreatedAt, r.ExpiresAt, wantCreated)
	}
	if diff := cmp.Diff([]string{"alice@example.com", "bob@example.com", "U012ABCDEF"}, r.Approvers); diff != "" {
		t.Errorf("approvers normalised and deduplicated (-want +got):\n%s", diff)
	}
	if r.Status != approval.StatusPending || r.Policy != approval.PolicyAny || r.SlackChannel != "C0DEFAULT1" {
		t.Errorf("got status %q policy %q slack channel %q; want pending, any, the default channel", r.Status, r.Policy, r.SlackChannel)
	}

	// One token per email approver and one for the Slack channel; the Slack user
	// is reached through the channel only.
	type rcpt struct {
		Address string
		Channel approval.Channel
	}
	var got []rcpt
	for _, rc := range r.Recipients {
		got = append(got, rcpt{rc.Address, rc.Channel})
	}
	want := []rcpt{{"alice@example.com", approval.ChannelEmail}, {"bob@example.com", approval.ChannelEmail}, {"C0DEFAULT1", approval.ChannelSlack}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("recipients (-want +got):\n%s", diff)
	}

	stored := h.get(t, r.ID)
	if diff := cmp.Diff(r, stored, cmpOpts); diff != "" {
		t.Errorf("stored request differs from the returned one (-returned +stored):\n%s", diff)
	}
	if want := (approval.ChatMessage{Channel: "C0DEFAULT1", TS: "1700000000.000100"}); stored.ChatMessage != want {
		t.Errorf("stored chat message: got %+v, want %+v", stored.ChatMessage, want)
	}

	seen := map[string]bool{}
	for _, rc := range r.Recipients {
		raw := h.token(t, rc)
		if len(raw) < 43 || seen[raw] {
			t.Errorf("token for %s: got %d characters (duplicate %v), want a fresh 256-bit token", rc.Address, len(raw), seen[raw])
		}
		seen[raw] = true
		if got := approval.HashToken(raw); got != rc.TokenHash {
			t.Errorf("token on %s's page does not hash to the recipient's token hash", rc.Address)
		}
		if strings.Contains(rc.PageKey, raw) || strings.Contains(raw, rc.PageKey) {
			t.Errorf("page key of %s is related to its token", rc.Address)
		}
		tok, err := h.store.GetToken(t.Context(), rc.TokenHash)
		if err != nil {
			t.Fatalf("GetToken(%s): %v", rc.Address, err)
		}
		wantTok := &approval.Token{Hash: rc.TokenHash, RequestID: r.ID, Recipient: rc.Address, Channel: rc.Channel, PageKey: rc.PageKey, ExpiresAt: r.ExpiresAt}
		if diff := cmp.Diff(wantTok, tok, cmpOpts); diff != "" {
			t.Errorf("stored token of %s (-want +got):\n%s", rc.Address, diff)
		}
		page, _ := h.pages.Get(rc.PageKey)
		if !strings.Contains(string(page), "decide=http://127.0.0.1:8080/decide\n") {
			t.Errorf("page of %s does not post to the decide URL:\n%s", rc.Address, page)
		}
	}
	if got := len(h.pages.Keys()); got != 3 {
		t.Errorf("published %d pages, want 3", got)
	}

	sent := h.mail.Sent()
	gotTo := map[string]string{}
	for _, m := range sent {
		gotTo[m.To] = m.Text
	}
	wantTo := map[string]string{}
	for _, rc := range r.Recipients[:2] {
		wantTo[rc.Address] = "Open " + h.pages.URL(rc.PageKey)
	}
	if diff := cmp.Diff(wantTo, gotTo); diff != "" {
		t.Errorf("emails: recipient -> text (-want +got):\n%s", diff)
	}
	slackRc, _ := r.Recipient(approval.ChannelSlack)
	if diff := cmp.Diff([]string{h.pages.URL(slackRc.PageKey)}, h.chat.posts); diff != "" {
		t.Errorf("chat posts (-want +got):\n%s", diff)
	}
}

func TestCreateWithoutChatIgnoresSlackChannel(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.SlackChannel = "C0123ABCD"
	r := h.create(t, in)
	if r.SlackChannel != "" {
		t.Errorf("SlackChannel: got %q, want empty without Chat", r.SlackChannel)
	}
	if _, ok := r.Recipient(approval.ChannelSlack); ok || len(r.Recipients) != 2 {
		t.Errorf("got %d recipients (Slack: %v), want the 2 email approvers only", len(r.Recipients), ok)
	}
}

func TestCreateIdempotentWithTaskToken(t *testing.T) {
	h := newHarness(t, false)
	in := validInput()
	in.TaskToken = "AAAAKgAAAAIAAAAAAAAAA-task-token"
	first := h.create(t, in)
	pages, mails := h.pages.Keys(), h.mail.Sent()

	in.Title = "a retried notification"
	second, created, err := h.svc.Create(t.Context(), in)
	if err != nil {
		t.Fatalf("second Create: %v", err)
	}
	if created {
		t.Error("second Create: got created true, want false")
	}
	if diff := cmp.Diff(first, second, cmpOpts); diff != "" {
		t.Errorf("second Create returned another request (-first +second):\n%s", diff)
	}
	if first.ID != approval.IDFromTaskToken(in.TaskToken) {
		t.Errorf("ID: got %q, want the one derived from the task token", first.ID)
	}
	if diff := cmp.Diff(pages, h.pages.Keys()); diff != "" {
		t.Errorf("pages changed by the second Create (-before +after):\n%s", diff)
	}
	if got, want := len(h.mail.Sent()), len(mails); got != want {
		t.Errorf("emails after the second Create: got %d, want %d", got, want)
	}
}

func TestCreateEmailFailureKeepsRequest(t *testing.T) {
	h := newHarness(t, false)
	h.mail.SetErr(errors.New("smtp down"))
	r, created, err := h.svc.Create(t.Context(), validInput())
	if err == nil {
		t.Error("Create with a failing mailer: got nil error, want one")
	}
	if r == nil || !created {
		t.Fatalf("Create with a failing mailer: got %v, %v; want the stored request", r, created)
	}
	if got := h.get(t, r.ID); got.Status != approval.StatusPending {
		t.Errorf("status: got %q, want pending", got.Status)
	}
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name       string
		choice     approval.Choice
		recipient  int // index into Recipients
		by         string
		wantStatus approval.Status
		wantBy     string
		wantChan   approval.Channel
	}{
		{"approve by email", approval.Approve, 1, "", approval.StatusApproved, "bob@example.com", approval.ChannelEmail},
		{"reject by email", approval.Reject, 0, "", approval.StatusRejected, "alice@example.com", approval.ChannelEmail},
		{"approve on the Slack page", approval.Approve, 2, "", approval.StatusApproved, "Slack channel C0DEFAULT1", approval.ChannelSlack},
		{"reject with a named decider", approval.Reject, 2, "U012ABCDEF", approval.StatusRejected, "U012ABCDEF", approval.ChannelSlack},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, true)
			r := h.create(t, validInput())
			toks := h.tokens(t, r)
			h.clock.Advance(10 * time.Minute)
			at := h.clock.Now().Truncate(time.Millisecond)

			got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[tt.recipient], Choice: tt.choice, Comment: "  ship it  ", By: tt.by})
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			want := approval.Decision{Choice: tt.choice, By: tt.wantBy, Channel: tt.wantChan, Comment: "ship it", At: at}
			if got.Status != tt.wantStatus || got.Decision == nil {
				t.Fatalf("Decide: got status %q decision %v, want %q", got.Status, got.Decision, tt.wantStatus)
			}
			if diff := cmp.Diff(want, *got.Decision, cmpOpts); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if !got.Delivered {
				t.Error("returned request not marked delivered")
			}
			stored := h.get(t, r.ID)
			if diff := cmp.Diff(got, stored, cmpOpts); diff != "" {
				t.Errorf("stored request differs from the returned one (-returned +stored):\n%s", diff)
			}

			wantResult := approval.Result{
				RequestID: r.ID, Decision: string(tt.wantStatus), DecidedBy: tt.wantBy,
				Channel: string(tt.wantChan), Comment: "ship it", DecidedAt: at.Format(time.RFC3339),
			}
			if diff := cmp.Diff([]approval.Result{wantResult}, h.workflow.Delivered()); diff != "" {
				t.Errorf("workflow deliveries (-want +got):\n%s", diff)
			}
			if keys := h.pages.Keys(); len(keys) != 0 {
				t.Errorf("pages left after the decision: %d, want none", len(keys))
			}
			if diff := cmp.Diff([]approval.Status{tt.wantStatus}, h.chat.updates); diff != "" {
				t.Errorf("chat updates (-want +got):\n%s", diff)
			}

			// Every later attempt, through any token, is told who decided.
			for i, tok := range toks {
				h.clock.Advance(time.Second)
				again, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: tok, Choice: approval.Approve})
				if !errors.Is(err, approval.ErrAlreadyDecided) {
					t.Errorf("second Decide with token %d: got error %v, want ErrAlreadyDecided", i, err)
					continue
				}
				if again == nil || again.Decision == nil || again.Decision.By != tt.wantBy || again.Status != tt.wantStatus {
					t.Errorf("second Decide with token %d: got request %+v, want the first decision by %s", i, again, tt.wantBy)
				}
			}
			if got := len(h.workflow.Delivered()); got != 1 {
				t.Errorf("workflow deliveries after repeated attempts: got %d, want 1", got)
			}
		})
	}
}

func TestDecideInChat(t *testing.T) {
	h := newHarness(t, true)
	in := validInput()
	in.Approvers = append(in.Approvers, "U012ABCDEF")
	r := h.create(t, in)
	got, err := h.svc.DecideInChat(t.Context(), r.ID, approval.Approve, "ok", "U012ABCDEF")
	if err != nil {
		t.Fatalf("DecideInChat: %v", err)
	}
	if got.Status != approval.StatusApproved || got.Decision.By != "U012ABCDEF" || got.Decision.Channel != approval.ChannelSlack {
		t.Errorf("DecideInChat: got status %q decision %+v; want approved by U012ABCDEF through Slack", got.Status, got.Decision)
	}
	_, err = h.svc.DecideInChat(t.Context(), r.ID, approval.Reject, "", "U012ABCDEF")
	if !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("second DecideInChat: got %v, want ErrAlreadyDecided", err)
	}

	noChat := newHarness(t, false)
	r = noChat.create(t, validInput())
	if _, err := noChat.svc.DecideInChat(t.Context(), r.ID, approval.Approve, "", "U012ABCDEF"); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("DecideInChat on a request without Slack: got %v, want ErrNotFound", err)
	}
}

func TestDecideRejectsBadInput(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	tok := h.tokens(t, r)[0]
	unknown, _ := approval.NewToken()
	tests := []struct {
		name string
		in   approval.DecideInput
		want error
	}{
		{"no token", approval.DecideInput{Choice: approval.Approve}, approval.ErrInvalid},
		{"unknown token", approval.DecideInput{Token: unknown, Choice: approval.Approve}, approval.ErrNotFound},
		{"bad choice", approval.DecideInput{Token: tok, Choice: "maybe"}, approval.ErrInvalid},
		{"comment too long", approval.DecideInput{Token: tok, Choice: approval.Approve, Comment: strings.Repeat("é", approval.MaxComment+1)}, approval.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.svc.Decide(t.Context(), tt.in)
			if !errors.Is(err, tt.want) {
				t.Errorf("Decide: got error %v, want %v", err, tt.want)
			}
		})
	}
	if got := h.get(t, r.ID); got.Status != approval.StatusPending {
		t.Errorf("after rejected attempts: status %q, want pending", got.Status)
	}
	if got := len(h.workflow.Delivered()); got != 0 {
		t.Errorf("workflow deliveries: got %d, want 0", got)
	}
}

func TestDecideExpired(t *testing.T) {
	tests := []struct {
		name    string
		advance time.Duration
		wantErr error
	}{
		{"a millisecond before expiry", time.Hour - time.Millisecond, nil},
		{"at expiry", time.Hour, approval.ErrExpired},
		{"a day after expiry", 25 * time.Hour, approval.ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			// Start on a whole millisecond so that the boundary is exact.
			h.clock.now = start.Truncate(time.Millisecond)
			r := h.create(t, validInput())
			toks := h.tokens(t, r)
			h.clock.Advance(tt.advance)

			got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Approve})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decide: got error %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil {
				if got.Status != approval.StatusApproved {
					t.Errorf("status: got %q, want approved", got.Status)
				}
				return
			}
			// Nothing had deleted or closed the request: the clock alone refuses
			// the token, and the refusal closes the request as expired.
			if got == nil || got.Status != approval.StatusExpired || got.Decision != nil {
				t.Fatalf("Decide: got request %+v, want it closed as expired without a decision", got)
			}
			if stored := h.get(t, r.ID); stored.Status != approval.StatusExpired || !stored.Delivered {
				t.Errorf("stored: status %q delivered %v, want expired and delivered", stored.Status, stored.Delivered)
			}
			if diff := cmp.Diff([]approval.Result{{RequestID: r.ID, Decision: "expired"}}, h.workflow.Delivered()); diff != "" {
				t.Errorf("workflow deliveries (-want +got):\n%s", diff)
			}
			if keys := h.pages.Keys(); len(keys) != 0 {
				t.Errorf("pages left after expiry: %d, want none", len(keys))
			}
			// The other token is refused as well.
			if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Reject}); !errors.Is(err, approval.ErrExpired) {
				t.Errorf("Decide with the other token: got %v, want ErrExpired", err)
			}
			if got := len(h.workflow.Delivered()); got != 1 {
				t.Errorf("workflow deliveries: got %d, want 1", got)
			}
		})
	}
}

func TestLookupDecidesNothing(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	toks := h.tokens(t, r)
	for range 3 {
		got, err := h.svc.Lookup(t.Context(), toks[0])
		if err != nil || got.Status != approval.StatusPending {
			t.Fatalf("Lookup: got %v, %v; want the pending request", got, err)
		}
	}
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Reject}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if _, err := h.svc.Lookup(t.Context(), toks[0]); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("Lookup after the decision: got %v, want ErrAlreadyDecided", err)
	}

	late := h.create(t, validInput())
	h.clock.Advance(2 * time.Hour)
	if _, err := h.svc.Lookup(t.Context(), h.tokens(t, late)[0]); !errors.Is(err, approval.ErrExpired) {
		t.Errorf("Lookup after expiry: got %v, want ErrExpired", err)
	}
}

func TestWorkflowFailureRedeliver(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	toks := h.tokens(t, r)
	h.workflow.SetErr(errors.New("connection refused"))

	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Approve})
	if err != nil {
		t.Fatalf("Decide with the workflow down: %v (the decision itself must stand)", err)
	}
	if got.Status != approval.StatusApproved || got.Delivered {
		t.Errorf("Decide: got status %q delivered %v, want approved and undelivered", got.Status, got.Delivered)
	}
	undelivered, err := h.store.ListUndelivered(t.Context())
	if err != nil || len(undelivered) != 1 || undelivered[0].ID != r.ID {
		t.Fatalf("ListUndelivered: got %d requests, %v; want the decided one", len(undelivered), err)
	}
	h.clock.Advance(approval.RedeliverGrace + time.Second)
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 1 {
		t.Errorf("Redeliver with the workflow still down: got %d left, %v; want 1", left, err)
	}

	h.workflow.SetErr(nil)
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 0 {
		t.Errorf("Redeliver: got %d left, %v; want 0", left, err)
	}
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 0 {
		t.Errorf("Redeliver again: got %d left, %v; want 0", left, err)
	}
	// A later attempt on the page finds it delivered and delivers nothing more.
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Reject}); !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("later Decide: got %v, want ErrAlreadyDecided", err)
	}
	if got := h.workflow.Delivered(); len(got) != 1 || got[0].Decision != "approved" {
		t.Errorf("workflow deliveries: got %+v, want exactly one approval", got)
	}
	if !h.get(t, r.ID).Delivered {
		t.Error("stored request not marked delivered")
	}
}

func TestWorkflowFailureLaterDecideDelivers(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	toks := h.tokens(t, r)
	h.workflow.SetErr(errors.New("connection refused"))
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Reject, Comment: "no"}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	h.workflow.SetErr(nil)
	h.clock.Advance(time.Minute)

	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Approve})
	if !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Fatalf("later Decide: got %v, want ErrAlreadyDecided", err)
	}
	if got.Status != approval.StatusRejected || !got.Delivered {
		t.Errorf("later Decide: got status %q delivered %v, want rejected and delivered", got.Status, got.Delivered)
	}
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 0 {
		t.Errorf("Redeliver: got %d left, %v; want 0", left, err)
	}
	if got := h.workflow.Delivered(); len(got) != 1 || got[0].Decision != "rejected" || got[0].Comment != "no" {
		t.Errorf("workflow deliveries: got %+v, want exactly one rejection", got)
	}
}

func TestWorkflowGone(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	toks := h.tokens(t, r)
	h.workflow.SetErr(approval.ErrWorkflowGone)

	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Approve})
	if !errors.Is(err, approval.ErrWorkflowGone) {
		t.Fatalf("Decide: got %v, want ErrWorkflowGone", err)
	}
	if got == nil || got.Status != approval.StatusExpired || !got.Delivered || got.Decision == nil || got.Decision.By != "alice@example.com" {
		t.Fatalf("Decide: got %+v, want the request closed as expired and delivered, decision kept", got)
	}
	if stored := h.get(t, r.ID); stored.Status != approval.StatusExpired || !stored.Delivered {
		t.Errorf("stored: status %q delivered %v, want expired and delivered", stored.Status, stored.Delivered)
	}
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 0 {
		t.Errorf("Redeliver: got %d left, %v; want 0", left, err)
	}
	if keys := h.pages.Keys(); len(keys) != 0 {
		t.Errorf("pages left: %d, want none", len(keys))
	}
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Approve}); !errors.Is(err, approval.ErrExpired) {
		t.Errorf("later Decide: got %v, want ErrExpired", err)
	}
}

func TestExpireDue(t *testing.T) {
	h := newHarness(t, false)
	var rs []*approval.Request
	for _, timeout := range []time.Duration{time.Minute, time.Hour, 2 * time.Hour} {
		in := validInput()
		in.Timeout = timeout
		rs = append(rs, h.create(t, in))
		h.clock.Advance(time.Second)
	}
	decided := h.create(t, validInput())
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: h.tokens(t, decided)[0], Choice: approval.Approve}); err != nil {
		t.Fatalf("Decide: %v", err)
	}

	if n, err := h.svc.ExpireDue(t.Context()); err != nil || n != 0 {
		t.Errorf("ExpireDue before anything is due: got %d, %v; want 0", n, err)
	}
	h.clock.Advance(time.Hour)
	// Past expiry but not yet closed: already hidden from the pending list.
	pending, err := h.svc.ListPending(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{rs[2].ID}, ids(pending)); diff != "" {
		t.Errorf("ListPending (-want +got):\n%s", diff)
	}
	if n, err := h.svc.ExpireDue(t.Context()); err != nil || n != 2 {
		t.Errorf("ExpireDue: got %d, %v; want 2", n, err)
	}
	if n, err := h.svc.ExpireDue(t.Context()); err != nil || n != 0 {
		t.Errorf("ExpireDue again: got %d, %v; want 0", n, err)
	}
	for i, r := range rs {
		want := approval.StatusExpired
		if i == 2 {
			want = approval.StatusPending
		}
		if got := h.get(t, r.ID); got.Status != want {
			t.Errorf("request %d: status %q, want %q", i, got.Status, want)
		}
	}
	var expired []string
	for _, res := range h.workflow.Delivered() {
		if res.Decision == "expired" {
			expired = append(expired, res.RequestID)
		}
	}
	if diff := cmp.Diff([]string{rs[0].ID, rs[1].ID}, expired, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("expired outcomes delivered (-want +got):\n%s", diff)
	}
	for _, rc := range rs[0].Recipients {
		if _, ok := h.pages.Get(rc.PageKey); ok {
			t.Errorf("page of an expired request still published")
		}
	}
	for _, rc := range rs[2].Recipients {
		if _, ok := h.pages.Get(rc.PageKey); !ok {
			t.Errorf("page of a pending request removed")
		}
	}
}

func ids(rs []*approval.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func TestWait(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	toks := h.tokens(t, r)

	type result struct {
		r   *approval.Request
		err error
	}
	done := make(chan result, 1)
	go func() {
		got, err := h.svc.Wait(context.WithoutCancel(t.Context()), r.ID)
		done <- result{got, err}
	}()
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Approve}); err != nil {
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

// gatedWorkflow holds the first delivery until the gate opens, as a slow
// workflow would, so that the losers of a race run while the winner delivers.
type gatedWorkflow struct {
	*memory.Workflow
	gate    chan struct{}
	started atomic.Bool
}

func (g *gatedWorkflow) Deliver(ctx context.Context, r *approval.Request) error {
	if g.started.CompareAndSwap(false, true) {
		<-g.gate
	}
	return g.Workflow.Deliver(ctx, r)
}

func TestConcurrentDecide(t *testing.T) {
	const workers = 100
	h := newHarness(t, true)
	gated := &gatedWorkflow{Workflow: h.workflow, gate: make(chan struct{})}
	h.svc.Workflow = gated
	in := validInput()
	in.Approvers = []string{"a@example.com", "b@example.com", "c@example.com"}
	r := h.create(t, in)
	toks := h.tokens(t, r)

	errs := make([]error, workers)
	got := make([]*approval.Request, workers)
	begin := make(chan struct{})
	returned := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i := range workers {
		choice := approval.Approve
		if i%3 == 0 {
			choice = approval.Reject
		}
		wg.Go(func() {
			<-begin
			got[i], errs[i] = h.svc.Decide(context.WithoutCancel(t.Context()), approval.DecideInput{Token: toks[i%len(toks)], Choice: choice})
			returned <- struct{}{}
		})
	}
	close(begin)
	// Let every attempt but the one held in the workflow return, then release it.
	for range workers - 1 {
		<-returned
	}
	close(gated.gate)
	wg.Wait()

	winners := 0
	var winner *approval.Request
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			winner = got[i]
		case errors.Is(err, approval.ErrAlreadyDecided):
			if got[i] == nil || !got[i].Status.Decided() {
				t.Errorf("attempt %d: ErrAlreadyDecided without the decided request", i)
			}
		default:
			t.Errorf("attempt %d: got error %v, want nil or ErrAlreadyDecided", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("got %d winners, want exactly 1", winners)
	}
	if diff := cmp.Diff(winner, h.get(t, r.ID), cmpOpts, cmpopts.IgnoreFields(approval.Request{}, "Delivered")); diff != "" {
		t.Errorf("stored request differs from the winner's (-winner +stored):\n%s", diff)
	}
	if got := h.workflow.Delivered(); len(got) != 1 || got[0].Decision != string(winner.Status) {
		t.Errorf("workflow deliveries: got %+v, want exactly one %q", got, winner.Status)
	}
	if keys := h.pages.Keys(); len(keys) != 0 {
		t.Errorf("pages left: %d, want none", len(keys))
	}
}

func TestResultJSON(t *testing.T) {
	at := time.Date(2031, 3, 4, 5, 16, 7, 890_000_000, time.UTC)
	tests := []struct {
		name string
		r    approval.Request
		want string
	}{
		{
			name: "approved",
			r: approval.Request{ID: "r1", Status: approval.StatusApproved, Decision: &approval.Decision{
				Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, Comment: "ship it", At: at}},
			want: `{"requestId":"r1","decision":"approved","decidedBy":"alice@example.com","channel":"email","comment":"ship it","decidedAt":"2031-03-04T05:16:07Z"}`,
		},
		{
			name: "rejected in Slack without comment",
			r: approval.Request{ID: "r2", Status: approval.StatusRejected, Decision: &approval.Decision{
				Choice: approval.Reject, By: "U012ABCDEF", Channel: approval.ChannelSlack, At: at.In(time.FixedZone("X", 3600))}},
			want: `{"requestId":"r2","decision":"rejected","decidedBy":"U012ABCDEF","channel":"slack","decidedAt":"2031-03-04T05:16:07Z"}`,
		},
		{
			name: "expired",
			r:    approval.Request{ID: "r3", Status: approval.StatusExpired},
			want: `{"requestId":"r3","decision":"expired"}`,
		},
		{
			name: "decided, then the workflow was gone",
			r: approval.Request{ID: "r4", Status: approval.StatusExpired, Decision: &approval.Decision{
				Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: at}},
			want: `{"requestId":"r4","decision":"expired"}`,
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

// racingWorkflow stands for a workflow that another process has just been told
// the outcome: its task is closed (ErrWorkflowGone) and the store already says
// delivered.
type racingWorkflow struct {
	store *memory.Store
}

func (w racingWorkflow) Deliver(ctx context.Context, r *approval.Request) error {
	if err := w.store.MarkDelivered(ctx, r.ID); err != nil {
		return err
	}
	return approval.ErrWorkflowGone
}

func TestDeliveredElsewhereIsNotWorkflowGone(t *testing.T) {
	h := newHarness(t, false)
	h.svc.Workflow = racingWorkflow{h.store}
	r := h.create(t, validInput())
	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: h.tokens(t, r)[0], Choice: approval.Approve})
	if err != nil {
		t.Fatalf("Decide: %v", err)
	}
	if got.Status != approval.StatusApproved || !got.Delivered {
		t.Errorf("Decide: got status %q delivered %v, want approved and delivered", got.Status, got.Delivered)
	}
	if stored := h.get(t, r.ID); stored.Status != approval.StatusApproved {
		t.Errorf("stored status: got %q, want approved", stored.Status)
	}
}

func TestLaterDecideWithinGraceLeavesDeliveryToWinner(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	toks := h.tokens(t, r)
	h.workflow.SetErr(errors.New("connection refused"))
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Approve}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	h.workflow.SetErr(nil)
	h.clock.Advance(approval.RedeliverGrace / 2)
	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Reject})
	if !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Fatalf("later Decide: got %v, want ErrAlreadyDecided", err)
	}
	if got.Delivered {
		t.Errorf("later Decide within the grace period delivered the outcome; want it left to the winner")
	}
	if n := len(h.workflow.Delivered()); n != 0 {
		t.Errorf("workflow deliveries: got %d, want 0", n)
	}
}

// A sweep that finds an outcome within the grace period leaves it to the
// process that closed it, which may be delivering it right now: sending it a
// second time would find the task closed and flip the approval to expired.
func TestRedeliverWithinGraceLeavesDeliveryToWinner(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	h.workflow.SetErr(errors.New("connection refused"))
	if _, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: h.tokens(t, r)[0], Choice: approval.Approve}); err != nil {
		t.Fatalf("Decide: %v", err)
	}
	// As the task would answer once the winner's send has closed it.
	h.workflow.SetErr(approval.ErrWorkflowGone)
	h.clock.Advance(approval.RedeliverGrace - time.Millisecond)
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 1 {
		t.Errorf("Redeliver within the grace period: got %d left, %v; want 1", left, err)
	}
	if got := h.get(t, r.ID); got.Status != approval.StatusApproved || got.Delivered {
		t.Errorf("after Redeliver within the grace period: status %q delivered %v; want approved, undelivered", got.Status, got.Delivered)
	}

	h.workflow.SetErr(nil)
	h.clock.Advance(2 * time.Millisecond)
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 0 {
		t.Errorf("Redeliver past the grace period: got %d left, %v; want 0", left, err)
	}
	if got := h.workflow.Delivered(); len(got) != 1 || got[0].Decision != "approved" {
		t.Errorf("workflow deliveries: got %+v, want exactly one approval", got)
	}
	if got := h.get(t, r.ID); got.Status != approval.StatusApproved || !got.Delivered {
		t.Errorf("after Redeliver: status %q delivered %v; want approved, delivered", got.Status, got.Delivered)
	}
}

// Browsers send a textarea's line breaks as CRLF; the decision keeps "\n" only,
// and the length limit counts a line break once, as the page's maxlength does.
func TestDecideNormalisesLineBreaks(t *testing.T) {
	long := strings.Repeat("a\r\n", approval.MaxComment/2) // MaxComment runes once normalised
	tests := []struct {
		name, comment, want string
	}{
		{"CRLF", "line one\r\nline two\r\n\r\nline four", "line one\nline two\n\nline four"},
		{"lone CR", "one\rtwo", "one\ntwo"},
		{"at the limit", long, strings.TrimSpace(strings.ReplaceAll(long, "\r\n", "\n"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			r := h.create(t, validInput())
			got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: h.tokens(t, r)[0], Choice: approval.Approve, Comment: tt.comment})
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if got.Decision.Comment != tt.want {
				t.Errorf("comment = %q, want %q", got.Decision.Comment, tt.want)
			}
			if res := h.workflow.Delivered(); len(res) != 1 || res[0].Comment != tt.want {
				t.Errorf("delivered %+v, want one result with comment %q", res, tt.want)
			}
		})
	}
}

// ctxWorkflow fails, like a webhook or Step Functions call, once its context is
// done.
type ctxWorkflow struct{ *memory.Workflow }

func (w ctxWorkflow) Deliver(ctx context.Context, r *approval.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return w.Workflow.Deliver(ctx, r)
}

// Closing a request is finished even when the call that closed it ends right
// after (a long poll reaching its deadline, a page left mid-request): the
// outcome is delivered at once, not left to a later redelivery.
func TestCloseOutlivesTheCaller(t *testing.T) {
	done, cancel := context.WithCancel(t.Context())
	cancel()
	t.Run("expiry", func(t *testing.T) {
		h := newHarness(t, false)
		h.svc.Workflow = ctxWorkflow{h.workflow}
		r := h.create(t, validInput())
		h.clock.Advance(time.Hour)
		got, err := h.svc.Get(done, r.ID)
		if err != nil {
			t.Fatalf("Get: %v", err)
		}
		if got.Status != approval.StatusExpired || !got.Delivered || len(h.workflow.Delivered()) != 1 {
			t.Errorf("got %s, delivered %v (%d deliveries); want expired and delivered once", got.Status, got.Delivered, len(h.workflow.Delivered()))
		}
	})
	t.Run("decision", func(t *testing.T) {
		h := newHarness(t, false)
		h.svc.Workflow = ctxWorkflow{h.workflow}
		r := h.create(t, validInput())
		got, err := h.svc.Decide(done, approval.DecideInput{Token: h.tokens(t, r)[0], Choice: approval.Approve})
		if err != nil {
			t.Fatalf("Decide: %v", err)
		}
		if got.Status != approval.StatusApproved || !got.Delivered || len(h.workflow.Delivered()) != 1 {
			t.Errorf("got %s, delivered %v (%d deliveries); want approved and delivered once", got.Status, got.Delivered, len(h.workflow.Delivered()))
		}
	})
}

// failingExpireStore cannot close requests (a full disk, a broken database).
type failingExpireStore struct {
	*memory.Store
	calls atomic.Int32
}

func (s *failingExpireStore) Expire(context.Context, string, time.Time) (*approval.Request, error) {
	s.calls.Add(1)
	return nil, errors.New("database or disk is full")
}

// Wait on a request past its expiry that cannot be closed looks again now and
// then, not in a busy loop (each turn logs an error and hits the store).
func TestWaitDoesNotSpinWhenExpiryFails(t *testing.T) {
	h := newHarness(t, false)
	r := h.create(t, validInput())
	store := &failingExpireStore{Store: h.store}
	h.svc.Store = store
	h.clock.Advance(2 * time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	got, err := h.svc.Wait(ctx, r.ID)
	if !errors.Is(err, context.DeadlineExceeded) || got == nil || got.Status != approval.StatusPending {
		t.Fatalf("Wait: got %v, %v; want the pending request and the deadline", got, err)
	}
	if n := store.calls.Load(); n > 10 {
		t.Errorf("Wait tried to close the request %d times in 300 ms, want a few", n)
	}
}

// task is one Step Functions task that two processes may send an outcome to:
// while down, sends fail and leave it open; the first send that reaches it
// closes it, and every later send finds it closed (ErrWorkflowGone). If hold
// is set, the closing send signals sending and waits for hold to close before
// it returns, as a slow SendTaskSuccess would.
type task struct {
	mu      sync.Mutex
	down    bool
	closed  []approval.Result // outcomes the task accepted: at most one
	sends   int               // sends that reached the task, accepted or not
	hold    chan struct{}
	sending chan struct{}
}

func (w *task) Deliver(_ context.Context, r *approval.Request) error {
	w.mu.Lock()
	if w.down {
		w.mu.Unlock()
		return errors.New("send task success: connection reset")
	}
	w.sends++
	if len(w.closed) > 0 {
		w.mu.Unlock()
		return fmt.Errorf("send task success: task timed out: %w", approval.ErrWorkflowGone)
	}
	w.closed = append(w.closed, r.Result())
	hold, sending := w.hold, w.sending
	w.mu.Unlock()
	if hold != nil {
		close(sending)
		<-hold
	}
	return nil
}

func (w *task) setDown(down bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down = down
}

func (w *task) report() (closed []approval.Result, sends int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]approval.Result(nil), w.closed...), w.sends
}

// otherProcess is a second Service on the same store and task, as another
// Lambda or bot instance would be.
func otherProcess(h *harness, w approval.Workflow) *approval.Service {
	return &approval.Service{
		Store: h.store, Pages: h.pages, Renderer: renderer{}, Workflow: w,
		DecideURL: "http://127.0.0.1:8080/decide", Now: h.clock.Now,
	}
}

// decidedUndelivered approves a new request while the task is down, so that
// its outcome is left undelivered, and moves the clock past RedeliverGrace.
func decidedUndelivered(t *testing.T, h *harness, w *task) (*approval.Request, []string) {
	t.Helper()
	h.svc.Workflow = w
	r := h.create(t, validInput())
	toks := h.tokens(t, r)
	w.setDown(true)
	got, err := h.svc.Decide(t.Context(), approval.DecideInput{Token: toks[0], Choice: approval.Approve})
	if err != nil || got.Status != approval.StatusApproved || got.Delivered {
		t.Fatalf("Decide with the task down: got %+v, %v; want approved, undelivered", got, err)
	}
	w.setDown(false)
	h.clock.Advance(approval.RedeliverGrace + time.Second)
	return r, toks
}

// wantApprovedOnce checks that the task accepted the approval in exactly one
// send and that the request stands approved and delivered.
func wantApprovedOnce(t *testing.T, h *harness, w *task, r *approval.Request) {
	t.Helper()
	closed, sends := w.report()
	if sends != 1 || len(closed) != 1 || closed[0].Decision != "approved" {
		t.Errorf("task: %d sends, accepted %+v; want one send, of the approval", sends, closed)
	}
	if got := h.get(t, r.ID); got.Status != approval.StatusApproved || !got.Delivered || got.Decision == nil {
		t.Errorf("stored request: status %q, delivered %v, decision %+v; want approved, delivered, decision kept", got.Status, got.Delivered, got.Decision)
	}
}

// Two processes take over the same undelivered outcome at once (a sweep and a
// redelivery loop, or a sweep and a later click): while the first is sending
// it, the second must not send it too, which would find the task closed by the
// first and flip the approval to expired.
func TestTwoProcessesDeliverAnOutcomeOnce(t *testing.T) {
	tests := []struct {
		name string
		// second is the other process's attempt, made while the first one's
		// send is in flight.
		second func(t *testing.T, other *approval.Service, toks []string)
	}{
		{"redeliver", func(t *testing.T, other *approval.Service, _ []string) {
			if left, err := other.Redeliver(t.Context()); err != nil || left != 1 {
				t.Errorf("second Redeliver while the first sends: got %d left, %v; want 1 (left to the first)", left, err)
			}
		}},
		{"later decide", func(t *testing.T, other *approval.Service, toks []string) {
			got, err := other.Decide(t.Context(), approval.DecideInput{Token: toks[1], Choice: approval.Reject})
			if !errors.Is(err, approval.ErrAlreadyDecided) || got == nil || got.Status != approval.StatusApproved {
				t.Errorf("later Decide while the first sends: got %+v, %v; want the approval, ErrAlreadyDecided", got, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, false)
			w := &task{}
			r, toks := decidedUndelivered(t, h, w)
			w.hold, w.sending = make(chan struct{}), make(chan struct{})

			first := make(chan error, 1)
			go func() {
				left, err := h.svc.Redeliver(context.WithoutCancel(t.Context()))
				if err == nil && left != 0 {
					err = fmt.Errorf("%d left, want 0", left)
				}
				first <- err
			}()
			select {
			case <-w.sending:
			case err := <-first:
				t.Fatalf("first Redeliver returned before sending: %v", err)
			}
			tt.second(t, otherProcess(h, w), toks)
			close(w.hold)
			if err := <-first; err != nil {
				t.Errorf("first Redeliver: %v", err)
			}
			wantApprovedOnce(t, h, w, r)

			// Nothing is left for anyone to send.
			if left, err := otherProcess(h, w).Redeliver(t.Context()); err != nil || left != 0 {
				t.Errorf("Redeliver afterwards: got %d left, %v; want 0", left, err)
			}
			if _, sends := w.report(); sends != 1 {
				t.Errorf("task: %d sends after a last Redeliver, want 1", sends)
			}
		})
	}
}

// The same race left to the scheduler: two processes, each redelivering from
// several goroutines at once.
func TestTwoProcessesRedeliverConcurrently(t *testing.T) {
	h := newHarness(t, false)
	w := &task{}
	r, _ := decidedUndelivered(t, h, w)
	procs := []*approval.Service{h.svc, otherProcess(h, w)}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 10 {
		svc := procs[i%2]
		wg.Go(func() {
			<-start
			if _, err := svc.Redeliver(context.WithoutCancel(t.Context())); err != nil {
				t.Errorf("Redeliver: %v", err)
			}
		})
	}
	close(start)
	wg.Wait()
	wantApprovedOnce(t, h, w, r)
}

// A lease another process holds keeps this one from sending until it runs
// out; a send that failed gives its lease up, so that the next attempt need
// not wait for it.
func TestDeliveryLease(t *testing.T) {
	h := newHarness(t, false)
	w := &task{}
	r, _ := decidedUndelivered(t, h, w)

	// The failed send in Decide gave its lease up: another process may take it.
	now := h.clock.Now()
	if err := h.store.LeaseDelivery(t.Context(), r.ID, now, now.Add(approval.DeliveryLease)); err != nil {
		t.Fatalf("LeaseDelivery after a failed send: %v, want the lease free", err)
	}
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 1 {
		t.Errorf("Redeliver while another process holds the lease: got %d left, %v; want 1", left, err)
	}
	if _, sends := w.report(); sends != 0 {
		t.Errorf("task: %d sends while another process holds the lease, want 0", sends)
	}
	h.clock.Advance(approval.DeliveryLease)
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 0 {
		t.Errorf("Redeliver once the lease ran out: got %d left, %v; want 0", left, err)
	}
	wantApprovedOnce(t, h, w, r)
}

// leaseFailingStore cannot take delivery leases (a throttled table).
type leaseFailingStore struct{ *memory.Store }

func (leaseFailingStore) LeaseDelivery(context.Context, string, time.Time, time.Time) error {
	return errors.New("provisioned throughput exceeded")
}

// Without the lease nothing is sent: the outcome waits for a later attempt.
func TestDeliveryLeaseErrorSendsNothing(t *testing.T) {
	h := newHarness(t, false)
	w := &task{}
	r, _ := decidedUndelivered(t, h, w)
	h.svc.Store = leaseFailingStore{h.store}
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 1 {
		t.Errorf("Redeliver without a lease: got %d left, %v; want 1", left, err)
	}
	if _, sends := w.report(); sends != 0 {
		t.Errorf("task: %d sends without a lease, want 0", sends)
	}
	h.svc.Store = h.store
	if left, err := h.svc.Redeliver(t.Context()); err != nil || left != 0 {
		t.Errorf("Redeliver with the store back: got %d left, %v; want 0", left, err)
	}
	wantApprovedOnce(t, h, w, r)
}

func TestDecisionBeforeChatMessageStoredUpdatesIt(t *testing.T) {
	h := newHarness(t, true)
	// The decision lands while the chat message is being posted, before its
	// place is stored: finishing the request cannot update it then.
	h.chat.onPost = func(r *approval.Request) {
		tok := h.token(t, r.Recipients[0])
		if _, err := h.svc.Decide(context.Background(), approval.DecideInput{Token: tok, Choice: approval.Approve}); err != nil {
			t.Errorf("Decide during Post: %v", err)
		}
	}
	r := h.create(t, validInput())
	h.chat.mu.Lock()
	defer h.chat.mu.Unlock()
	if want := []approval.Status{approval.StatusApproved}; !slices.Equal(h.chat.updates, want) {
		t.Errorf("chat updates: got %v, want %v", h.chat.updates, want)
	}
	if got := h.get(t, r.ID); got.ChatMessage.TS == "" {
		t.Errorf("chat message place not stored")
	}
}
