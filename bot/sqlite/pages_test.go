package sqlite_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/sqlite"
	"approvalbot/internal/testing/memory"
)

func wantPage(t *testing.T, p *sqlite.Pages, key, want string) {
	t.Helper()
	got, err := p.Get(t.Context(), key)
	if err != nil || string(got) != want {
		t.Errorf("Get(%s): %q, %v; want %q", key, got, err, want)
	}
}

func wantNoPage(t *testing.T, p *sqlite.Pages, key, why string) {
	t.Helper()
	if got, err := p.Get(t.Context(), key); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Get of %s: %q, %v; want ErrNotFound", why, got, err)
	}
}

// pendingWithPages returns a pending request whose recipients hold fresh page
// keys.
func pendingWithPages(created time.Time) *approval.Request {
	r := storetest.Fixture(created)
	r.Effects, r.Votes = nil, nil
	return r
}

// TestPagesServedWhilePending: a page is served only while its request is
// pending and unexpired.
func TestPagesServedWhilePending(t *testing.T) {
	ctx := t.Context()
	s := open(t, ":memory:")
	p := sqlite.NewPages(s, "http://x")
	clk := &clock{}
	clk.Set(storetest.Base)
	p.Now = clk.Now
	r, closed := pendingWithPages(storetest.Base), pendingWithPages(storetest.Base)
	for _, x := range []*approval.Request{r, closed} {
		for _, rc := range x.Recipients {
			if err := p.Put(ctx, rc.PageKey, []byte(rc.Address)); err != nil {
				t.Fatal(err)
			}
		}
		create(t, s, x)
	}
	update(t, s, storetest.Closed(closed, storetest.Base))
	wantPage(t, p, r.Recipients[0].PageKey, "alice@example.com")
	wantNoPage(t, p, closed.Recipients[0].PageKey, "a page of a closed request")
	clk.Set(r.ExpiresAt)
	wantNoPage(t, p, r.Recipients[0].PageKey, "a page of an expired request")
}

func TestPagesURL(t *testing.T) {
	p := sqlite.NewPages(open(t, ":memory:"), "http://127.0.0.1:8080/")
	key := approval.NewPageKey()
	if got, want := p.URL(key), "http://127.0.0.1:8080/p/"+key; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
}

func TestPagesServedOnlyWhilePending(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	p := sqlite.NewPages(s, "http://127.0.0.1:8080")
	r := pendingWithPages(storetest.Base)
	key, other := r.Recipients[0].PageKey, r.Recipients[1].PageKey

	// Put before the request is stored, as Service.Create does: not served.
	if err := p.Put(ctx, key, []byte("<p>one</p>")); err != nil {
		t.Fatal(err)
	}
	wantNoPage(t, p, key, "a page whose request is not stored")

	// Stored: served, and a later Put replaces it.
	create(t, s, r)
	wantPage(t, p, key, "<p>one</p>")
	if err := p.Put(ctx, key, []byte("<p>two</p>")); err != nil {
		t.Fatal(err)
	}
	wantPage(t, p, key, "<p>two</p>")
	wantNoPage(t, p, other, "a page never put")

	// A page put for a recipient added later (a personal link), published
	// by the write that adds the recipient.
	late := approval.Recipient{Address: "U0LATE0001", Channel: approval.ChannelSlack, TokenHash: approval.HashToken("x"), PageKey: approval.NewPageKey()}
	if err := p.Put(ctx, late.PageKey, []byte("<p>late</p>")); err != nil {
		t.Fatal(err)
	}
	wantNoPage(t, p, late.PageKey, "a page whose recipient is not stored yet")
	r.Recipients = append(r.Recipients, late)
	update(t, s, r)
	wantPage(t, p, late.PageKey, "<p>late</p>")

	// Closed: no page is served, even before the pages are deleted.
	closed := storetest.Closed(r, storetest.Base.Add(time.Minute))
	update(t, s, closed)
	wantNoPage(t, p, key, "a page of a closed request")
	wantNoPage(t, p, late.PageKey, "a page of a closed request")

	if err := p.Delete(ctx, []string{key, approval.NewPageKey(), "../../etc/passwd"}); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if err := p.Delete(ctx, nil); err != nil {
		t.Errorf("Delete of no key: %v", err)
	}
}

func TestPagesDeleteAndReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "approvalbot.db")
	s := open(t, path)
	p := sqlite.NewPages(s, "http://x")
	r := pendingWithPages(storetest.Base)
	for _, rc := range r.Recipients {
		if err := p.Put(ctx, rc.PageKey, []byte(rc.Address)); err != nil {
			t.Fatal(err)
		}
	}
	create(t, s, r)
	if err := p.Delete(ctx, []string{r.Recipients[0].PageKey, r.Recipients[1].PageKey}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	p = sqlite.NewPages(open(t, path), "http://x")
	wantNoPage(t, p, r.Recipients[0].PageKey, "a deleted page")
	wantNoPage(t, p, r.Recipients[1].PageKey, "a deleted page")
	wantPage(t, p, r.Recipients[2].PageKey, r.Recipients[2].Address)
}

func TestPagesRejectBadKeys(t *testing.T) {
	p := sqlite.NewPages(open(t, ":memory:"), "http://x")
	for _, key := range []string{"", "short", "../secret", "..%2fsecret", "a/b/cdefghijklmnopq", "abcdefghijklmnop.html", "abcdefghijklmnop qr"} {
		wantNoPage(t, p, key, "a malformed key")
		if err := p.Put(t.Context(), key, []byte("x")); err == nil {
			t.Errorf("Put(%q) succeeded, want an error", key)
		}
	}
}

// TestPagesPrune: pages that cannot be served (never linked to a stored
// request, or of a closed one) and are older than the cut-off are deleted;
// the pages of pending requests and recent pages stay.
func TestPagesPrune(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	p := sqlite.NewPages(s, "http://x")
	clk := newClock(storetest.Base)
	p.Now = clk.Now

	live := pendingWithPages(storetest.Base)
	closed := pendingWithPages(storetest.Base)
	orphan, recent := approval.NewPageKey(), approval.NewPageKey()
	for _, k := range []string{live.Recipients[0].PageKey, closed.Recipients[0].PageKey, orphan} {
		if err := p.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	live.ExpiresAt = storetest.Base.Add(3 * time.Hour)
	create(t, s, live)
	create(t, s, closed)
	update(t, s, storetest.Closed(closed, storetest.Base.Add(time.Minute)))
	clk.Set(storetest.Base.Add(time.Hour))
	if err := p.Put(ctx, recent, []byte("x")); err != nil {
		t.Fatal(err)
	}

	n, err := p.Prune(ctx, storetest.Base.Add(time.Minute))
	if err != nil || n != 2 {
		t.Errorf("Prune: deleted %d, %v; want 2 (the orphan and the closed request's page)", n, err)
	}
	wantPage(t, p, live.Recipients[0].PageKey, "x")
	if n, err := p.Prune(ctx, storetest.Base.Add(2*time.Hour)); err != nil || n != 1 {
		t.Errorf("Prune past the recent orphan: deleted %d, %v; want 1", n, err)
	}
	wantPage(t, p, live.Recipients[0].PageKey, "x")
}

// TestPagesThroughService runs the pages as the embedded mode will: the
// service publishes a page per email approver with the request, and once a
// vote closes it no page is served and none is left in the table.
func TestPagesThroughService(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	p := sqlite.NewPages(s, "http://127.0.0.1:8080")
	svc := &approval.Service{
		Store: s, Pages: p, Renderer: renderer{}, Mailer: memory.NewMailer(),
		DecideURL: "http://127.0.0.1:8080/decide", Now: newClock(storetest.Base).Now,
	}
	r, _, err := svc.Create(ctx, approval.NewRequest{Title: "Deploy", Approvers: emailApprovers(3), Policy: "quorum:2", Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	toks := map[string]string{}
	for _, rc := range r.Recipients {
		page, err := p.Page(ctx, rc.PageKey)
		if err != nil {
			t.Fatalf("page of %s: %v", rc.Address, err)
		}
		toks[rc.Address] = string(page)
	}
	if _, err := svc.Decide(ctx, approval.DecideInput{Token: toks["approver0@example.com"], Choice: approval.Approve}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	// The voter's page is no longer served; the others stay for their votes.
	wantNoPage(t, p, r.Recipients[0].PageKey, "the page of someone who voted")
	wantPage(t, p, r.Recipients[1].PageKey, toks["approver1@example.com"])
	if _, err := svc.Decide(ctx, approval.DecideInput{Token: toks["approver1@example.com"], Choice: approval.Approve}); err != nil {
		t.Fatal(err)
	}
	if err := svc.Idle(ctx); err != nil {
		t.Fatal(err)
	}
	for _, rc := range r.Recipients {
		wantNoPage(t, p, rc.PageKey, "a page of a closed request")
	}
	// The first voter's page was deleted with their vote; the close retired
	// the others, which Prune removes.
	if n, err := p.Prune(ctx, storetest.Base.Add(time.Hour)); err != nil || n != int64(len(r.Recipients)-1) {
		t.Errorf("Prune after the close: %d, %v; want the %d pages the close retired", n, err, len(r.Recipients)-1)
	}
}

// TestCreateWithPages: a request and its pages stored in one write are served
// at once; a request whose ID is taken stores neither, and the pages of the
// request that holds the ID stay as they were.
func TestCreateWithPages(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "approvalbot.db"))
	p := sqlite.NewPages(s, "http://127.0.0.1:8080")
	if !p.InStore(s) || p.InStore(memory.NewStore()) || p.InStore(open(t, ":memory:")) {
		t.Errorf("InStore is true only for the store the pages live in")
	}
	r := pendingWithPages(storetest.Base)
	pages := map[string][]byte{}
	for _, rc := range r.Recipients {
		pages[rc.PageKey] = []byte("<p>" + rc.Address + "</p>")
	}
	if err := p.CreateWithPages(ctx, r, pages); err != nil {
		t.Fatal(err)
	}
	if r.Version != 1 {
		t.Errorf("Version = %d after CreateWithPages, want 1", r.Version)
	}
	for _, rc := range r.Recipients {
		wantPage(t, p, rc.PageKey, "<p>"+rc.Address+"</p>")
	}
	got, err := s.GetRequest(ctx, r.ID)
	if err != nil || got.Title != r.Title {
		t.Fatalf("GetRequest = %v, %v; want the request stored", got, err)
	}

	again := pendingWithPages(storetest.Base)
	again.ID = r.ID
	stray := approval.NewPageKey()
	err = p.CreateWithPages(ctx, again, map[string][]byte{stray: []byte("stray"), r.Recipients[0].PageKey: []byte("overwritten")})
	if !errors.Is(err, approval.ErrConflict) {
		t.Errorf("CreateWithPages of a taken ID: %v, want ErrConflict", err)
	}
	wantNoPage(t, p, stray, "a page of a request that was not stored")
	wantPage(t, p, r.Recipients[0].PageKey, "<p>"+r.Recipients[0].Address+"</p>")
	if err := p.CreateWithPages(ctx, pendingWithPages(storetest.Base), map[string][]byte{"../bad": nil}); err == nil {
		t.Errorf("CreateWithPages with a bad page key succeeded, want an error")
	}
}
