package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/sqlite"
	"approvalbot/internal/testing/memory"

	"github.com/google/go-cmp/cmp"
)

// oldRequest is a request as the first version wrote it: one row, and one
// token row per recipient, whose raw token is a bare secret.
type oldRequest struct {
	id, webhook, slackChannel, chatTS string
	approvers                         []string
	created, expires                  time.Time
	recipients                        []approval.Recipient
	raw                               map[string]string // recipient address → raw token
}

// newOldRequest makes a first-version request with an email recipient per
// email approver and, when slackChannel is set, one for the whole channel.
func newOldRequest(created time.Time, approvers []string, slackChannel string) *oldRequest {
	o := &oldRequest{
		id: approval.NewID(), webhook: "https://hooks.example.com/x", slackChannel: slackChannel,
		approvers: approvers, created: created, expires: created.Add(time.Hour), raw: map[string]string{},
	}
	add := func(addr string, c approval.Channel) {
		raw, hash := approval.NewToken()
		o.raw[addr] = raw
		o.recipients = append(o.recipients, approval.Recipient{Address: addr, Channel: c, TokenHash: hash, PageKey: approval.NewPageKey()})
	}
	for _, a := range approvers {
		if !approval.IsSlackUserID(a) {
			add(a, approval.ChannelEmail)
		}
	}
	if slackChannel != "" {
		add(slackChannel, approval.ChannelSlack)
		o.chatTS = "1700000000.000100"
	}
	return o
}

// insert writes o as the first version's CreateRequest did.
func (o *oldRequest) insert(t *testing.T, db *sql.DB) {
	t.Helper()
	type rcJSON struct {
		Address   string `json:"address"`
		Channel   string `json:"channel"`
		TokenHash string `json:"tokenHash"`
		PageKey   string `json:"pageKey"`
	}
	var rcs []rcJSON
	for _, rc := range o.recipients {
		rcs = append(rcs, rcJSON{rc.Address, string(rc.Channel), rc.TokenHash, rc.PageKey})
	}
	rcsJS, _ := json.Marshal(rcs)
	appJS, _ := json.Marshal(o.approvers)
	chatChannel := ""
	if o.chatTS != "" {
		chatChannel = o.slackChannel
	}
	_, err := db.Exec(`INSERT INTO requests (
		id, task_token, webhook_url, title, details, links, requester, approvers, policy,
		slack_channel, chat_channel, chat_ts, status, created_at, expires_at,
		decision_choice, decision_by, decision_channel, decision_comment, decision_at,
		delivered, recipients)
		VALUES (?, '', ?, 'Deploy', 'old details', '[{"label":"Diff","url":"https://git.example.com/d"}]', 'ci@example.com', ?, 'any',
		?, ?, ?, 'pending', ?, ?, NULL, NULL, NULL, NULL, NULL, 0, ?)`,
		o.id, o.webhook, string(appJS), o.slackChannel, chatChannel, o.chatTS, o.created.UnixMilli(), o.expires.UnixMilli(), string(rcsJS))
	if err != nil {
		t.Fatalf("insert first-version request: %v", err)
	}
	for _, rc := range o.recipients {
		_, err := db.Exec(`INSERT INTO tokens (hash, request_id, recipient, channel, page_key, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
			rc.TokenHash, o.id, rc.Address, string(rc.Channel), rc.PageKey, o.expires.UnixMilli())
		if err != nil {
			t.Fatalf("insert first-version token: %v", err)
		}
	}
}

// decide records a decision through recipient addr as the first version's
// Claim did.
func (o *oldRequest) decide(t *testing.T, db *sql.DB, addr string, c approval.Choice, at time.Time) {
	t.Helper()
	var hash string
	for _, rc := range o.recipients {
		if rc.Address == addr {
			hash = rc.TokenHash
		}
	}
	if _, err := db.Exec("UPDATE tokens SET used_at = ? WHERE hash = ?", at.UnixMilli(), hash); err != nil {
		t.Fatal(err)
	}
	_, err := db.Exec(`UPDATE requests SET status = ?, decision_choice = ?, decision_by = ?, decision_channel = 'email',
		decision_comment = 'old comment', decision_at = ? WHERE id = ?`, string(c.Status()), string(c), addr, at.UnixMilli(), o.id)
	if err != nil {
		t.Fatal(err)
	}
}

// want is o as version 2 reads it, before any write of version 2.
func (o *oldRequest) want() *approval.Request {
	r := &approval.Request{
		ID: o.id, WebhookURL: o.webhook, Title: "Deploy", Details: "old details",
		Links:     []approval.Link{{Label: "Diff", URL: "https://git.example.com/d"}},
		Requester: "ci@example.com", Approvers: o.approvers,
		Rule:         approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny},
		SlackChannel: o.slackChannel, Status: approval.StatusPending, CreatedAt: o.created, ExpiresAt: o.expires,
		Recipients: o.recipients,
	}
	if o.chatTS != "" {
		r.ChatMessage = approval.ChatMessage{Channel: o.slackChannel, TS: o.chatTS}
	}
	return r
}

// decided is o as version 2 reads it once decided by d, its outcome not
// delivered and its delivery leased until leaseUntil (zero: never leased).
func (o *oldRequest) decided(d approval.Decision, leaseUntil time.Time) *approval.Request {
	r := o.want()
	r.Status = d.Choice.Status()
	r.Decision = &d
	r.Votes = []approval.Vote{{By: d.By, Channel: d.Channel, Choice: d.Choice, Comment: d.Comment, At: d.At}}
	r.Effects = []approval.Effect{{Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 1, LeaseUntil: leaseUntil}}
	return r
}

// TestUpgradeFromFirstVersion builds a database as the first version left it
// (schema 1, then schema 2 with a delivery lease), opens it with this build,
// and checks that its requests read back as version 2 requests, that the old
// links still vote, and that the sweep delivers the outcomes left
// undelivered.
func TestUpgradeFromFirstVersion(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	base := storetest.Base
	clock := newClock(base.Add(15 * time.Minute))
	now := clock.Now()

	v1, err := sqlite.OpenAtVersion(ctx, path, 1)
	if err != nil {
		t.Fatalf("OpenAtVersion(1): %v", err)
	}
	v1.Close()
	db := rawDB(t, path)
	// Pending, with an email link and a Slack channel's link.
	pending := newOldRequest(base, []string{"alice@example.com", "U0BOB00001"}, "C0LEGACY01")
	// Pending, to be decided through the channel's link.
	byChannel := newOldRequest(base.Add(time.Second), []string{"alice@example.com"}, "C0LEGACY01")
	// Pending and past its expiry at now.
	expired := newOldRequest(base.Add(2*time.Second), []string{"alice@example.com"}, "")
	expired.expires = base.Add(10 * time.Minute)
	// Decided, outcome never delivered, no lease taken (schema 1 had none).
	undelivered := newOldRequest(base.Add(3*time.Second), []string{"alice@example.com", "bob@example.com"}, "")
	// Decided and delivered.
	delivered := newOldRequest(base.Add(4*time.Second), []string{"alice@example.com"}, "")
	for _, o := range []*oldRequest{pending, byChannel, expired, undelivered, delivered} {
		o.insert(t, db)
	}
	undelivered.decide(t, db, "bob@example.com", approval.Approve, base.Add(time.Minute))
	delivered.decide(t, db, "alice@example.com", approval.Reject, base.Add(time.Minute))
	if _, err := db.Exec("UPDATE requests SET delivered = 1 WHERE id = ?", delivered.id); err != nil {
		t.Fatal(err)
	}
	db.Close()

	// Schema 2: a decided request whose delivery is leased until 20 minutes.
	v2, err := sqlite.OpenAtVersion(ctx, path, 2)
	if err != nil {
		t.Fatalf("OpenAtVersion(2): %v", err)
	}
	v2.Close()
	db = rawDB(t, path)
	leased := newOldRequest(base.Add(5*time.Second), []string{"carol@example.com"}, "")
	leased.insert(t, db)
	leased.decide(t, db, "carol@example.com", approval.Reject, base.Add(2*time.Minute))
	leaseEnd := base.Add(20 * time.Minute)
	if _, err := db.Exec("UPDATE requests SET delivery_lease_until = ? WHERE id = ?", leaseEnd.UnixMilli(), leased.id); err != nil {
		t.Fatal(err)
	}
	db.Close()

	s := open(t, path)
	if v, err := s.SchemaVersion(ctx); err != nil || v != sqlite.SchemaLatest {
		t.Fatalf("SchemaVersion after upgrading: got %d, %v; want %d", v, err, sqlite.SchemaLatest)
	}

	// The migration set the due index.
	db = rawDB(t, path)
	wantDue := map[string]sql.NullInt64{
		pending.id:     {Int64: pending.expires.UnixMilli(), Valid: true},
		byChannel.id:   {Int64: byChannel.expires.UnixMilli(), Valid: true},
		expired.id:     {Int64: expired.expires.UnixMilli(), Valid: true},
		undelivered.id: {Int64: undelivered.created.UnixMilli(), Valid: true},
		delivered.id:   {},
		leased.id:      {Int64: leaseEnd.UnixMilli(), Valid: true},
	}
	for id, want := range wantDue {
		var got sql.NullInt64
		if err := db.QueryRow("SELECT due_at FROM requests WHERE id = ?", id).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("due_at of %s after the migration: got %v, want %v", id, got, want)
		}
	}

	// Old rows read back as version 2 requests.
	wantUndelivered := undelivered.decided(approval.Decision{
		Choice: approval.Approve, By: "bob@example.com", Channel: approval.ChannelEmail, Comment: "old comment", At: base.Add(time.Minute),
	}, time.Time{})
	wantLeased := leased.decided(approval.Decision{
		Choice: approval.Reject, By: "carol@example.com", Channel: approval.ChannelEmail, Comment: "old comment", At: base.Add(2 * time.Minute),
	}, leaseEnd)
	for _, want := range []*approval.Request{pending.want(), wantUndelivered, wantLeased} {
		got, err := s.GetRequest(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetRequest after upgrading: %v", err)
		}
		if diff := cmp.Diff(want, got, storetest.CmpOptions); diff != "" {
			t.Errorf("request of the first version after upgrading (-want +got):\n%s", diff)
		}
	}
	if got, err := s.GetRequest(ctx, delivered.id); err != nil || !got.Delivered() || len(got.Effects) != 0 {
		t.Errorf("delivered first-version request: %+v, %v; want delivered, no effect", got, err)
	}
	if id, err := s.LegacyToken(ctx, approval.HashToken(pending.raw["alice@example.com"])); err != nil || id != pending.id {
		t.Errorf("LegacyToken of an old link: %q, %v; want %s", id, err, pending.id)
	}

	// The due index lists what the sweep must do, earliest first: the
	// delivery never leased, then the expiry; the lease still runs.
	due, err := s.ListDue(ctx, now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{undelivered.id, expired.id}, ids(due)); diff != "" {
		t.Errorf("ListDue at now (-want +got):\n%s", diff)
	}

	// The first version's page files, imported, are served while their
	// request is pending.
	pages := sqlite.NewPages(s, "http://127.0.0.1:8080")
	for _, o := range []*oldRequest{pending, delivered} {
		for _, rc := range o.recipients {
			if err := pages.Import(ctx, o.id, rc.PageKey, []byte(o.raw[rc.Address])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if page, err := pages.Get(ctx, pending.recipients[0].PageKey); err != nil || string(page) != pending.raw["alice@example.com"] {
		t.Errorf("imported page of a pending request: %q, %v; want it served", page, err)
	}
	if _, err := pages.Get(ctx, delivered.recipients[0].PageKey); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("imported page of a decided request: got %v, want ErrNotFound", err)
	}

	workflow := memory.NewWorkflow()
	svc := &approval.Service{
		Store: s, Pages: pages, Renderer: renderer{}, Workflow: workflow,
		DecideURL: "http://127.0.0.1:8080/decide", Now: clock.Now,
	}
	t.Cleanup(func() { svc.Idle(context.Background()) })

	// The old email link votes, and under "any" its approval decides.
	if _, err := svc.Lookup(ctx, pending.raw["alice@example.com"]); err != nil {
		t.Errorf("Lookup of an old link: %v", err)
	}
	got, err := svc.Decide(ctx, approval.DecideInput{Token: pending.raw["alice@example.com"], Choice: approval.Approve, Comment: "ok"})
	if err != nil {
		t.Fatalf("Decide with an old link: %v", err)
	}
	if got.Status != approval.StatusApproved || got.Decision == nil || got.Decision.By != "alice@example.com" || got.Version != 1 {
		t.Errorf("after the old link's approval: %s, decision %+v, version %d; want approved by alice at version 1", got.Status, got.Decision, got.Version)
	}
	// The old channel link still decides alone, as the channel.
	got, err = svc.Decide(ctx, approval.DecideInput{Token: byChannel.raw["C0LEGACY01"], Choice: approval.Reject})
	if err != nil {
		t.Fatalf("Decide with an old channel link: %v", err)
	}
	if got.Status != approval.StatusRejected || got.Decision == nil || got.Decision.By != "Slack channel C0LEGACY01" {
		t.Errorf("after the old channel link's reject: %s, decision %+v; want rejected by the channel", got.Status, got.Decision)
	}
	if err := svc.Idle(ctx); err != nil {
		t.Fatal(err)
	}

	// The sweep delivers the outcome left undelivered and closes the expired
	// request; later, once its lease lapsed, the leased outcome too.
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatalf("Sweep: %v", err)
	}
	clock.Set(leaseEnd.Add(time.Second))
	if _, err := svc.Sweep(ctx); err != nil {
		t.Fatalf("Sweep after the lease: %v", err)
	}
	if err := svc.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]string{}
	for _, res := range workflow.Delivered() {
		if _, twice := outcomes[res.RequestID]; twice {
			t.Errorf("outcome of %s delivered twice", res.RequestID)
		}
		outcomes[res.RequestID] = res.Decision
	}
	wantOutcomes := map[string]string{
		pending.id: "approved", byChannel.id: "rejected", expired.id: "expired", undelivered.id: "approved", leased.id: "rejected",
	}
	if diff := cmp.Diff(wantOutcomes, outcomes); diff != "" {
		t.Errorf("outcomes delivered (-want +got):\n%s", diff)
	}
	for id := range wantOutcomes {
		r, err := s.GetRequest(ctx, id)
		if err != nil || !r.Delivered() || r.Version < 1 {
			t.Errorf("request %s after the sweep: %+v, %v; want delivered and rewritten", id, r, err)
		}
	}
	_, err = svc.Decide(ctx, approval.DecideInput{Token: undelivered.raw["alice@example.com"], Choice: approval.Reject})
	if !errors.Is(err, approval.ErrAlreadyDecided) {
		t.Errorf("Decide with an old link of a decided request: got %v, want ErrAlreadyDecided", err)
	}
	for _, rc := range pending.recipients {
		if _, err := pages.Get(ctx, rc.PageKey); !errors.Is(err, approval.ErrNotFound) {
			t.Errorf("imported page after its request closed: got %v, want ErrNotFound", err)
		}
	}
	if due, err := s.ListDue(ctx, clock.Now().Add(24*time.Hour), 10); err != nil || len(due) != 0 {
		t.Errorf("ListDue after the sweep: %v, %v; want nothing", ids(due), err)
	}
	var oldRows int
	if err := db.QueryRow("SELECT count(*) FROM requests WHERE doc IS NULL").Scan(&oldRows); err != nil || oldRows != 1 {
		t.Errorf("rows left in the first version's form: %d, %v; want 1 (the delivered one, never written since)", oldRows, err)
	}

	// Reopening changes nothing.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	r, err := s.GetRequest(ctx, undelivered.id)
	if err != nil || !r.Delivered() || r.Status != approval.StatusApproved || !slices.ContainsFunc(r.Effects, func(e approval.Effect) bool {
		return e.Kind == approval.EffectDeliver && e.State == approval.EffectDone && e.Attempts == 2
	}) {
		t.Errorf("after reopening: %+v, %v; want approved, delivered on the second attempt", r, err)
	}
}

func ids(rs []*approval.Request) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}
