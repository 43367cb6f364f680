package approval_test

import (
	"context"
	"errors"
	"testing"

	"approvalbot/bot/approval"
	"approvalbot/internal/testing/memory"
)

// pagesInStore is a page host that keeps its pages in a store's database
// (approval.PagesWithRequest), over the memory fakes: CreateWithPages stores
// the request and then the pages, and counts its calls.
type pagesInStore struct {
	*memory.Pages
	store   approval.Store
	creates int
	fail    error // returned by CreateWithPages, which then stores nothing
}

func (p *pagesInStore) InStore(st approval.Store) bool { return st == p.store }

func (p *pagesInStore) CreateWithPages(ctx context.Context, r *approval.Request, pages map[string][]byte) error {
	p.creates++
	if p.fail != nil {
		return p.fail
	}
	if err := p.store.CreateRequest(ctx, r); err != nil {
		return err
	}
	for key, html := range pages {
		if err := p.Pages.Put(ctx, key, html); err != nil {
			return err
		}
	}
	return nil
}

// A page host that keeps its pages with the requests gets the request and
// its pages in one call; one over another store gets them as any host does.
func TestCreateWithPagesInStore(t *testing.T) {
	for _, same := range []bool{true, false} {
		h := newHarness(t, false)
		p := &pagesInStore{Pages: h.pages, store: h.store}
		if !same {
			p.store = memory.NewStore()
		}
		h.svc.Pages = p
		r := h.create(t, validInput())
		if want := map[bool]int{true: 1, false: 0}[same]; p.creates != want {
			t.Errorf("same store %v: %d calls of CreateWithPages, want %d", same, p.creates, want)
		}
		for _, rc := range r.Recipients {
			if _, ok := h.pages.Get(rc.PageKey); !ok {
				t.Errorf("same store %v: no page for %s", same, rc.Address)
			}
		}
		if got := h.get(t, r.ID); len(got.Recipients) != 2 || len(h.mail.Sent()) != 2 {
			t.Errorf("same store %v: stored with %d recipients, %d emails sent; want 2, 2", same, len(got.Recipients), len(h.mail.Sent()))
		}
	}

	h := newHarness(t, false)
	p := &pagesInStore{Pages: h.pages, store: h.store, fail: errors.New("disk full")}
	h.svc.Pages = p
	if _, _, err := h.svc.Create(t.Context(), validInput()); err == nil {
		t.Fatal("Create when the write failed: nil error, want one")
	}
	if keys := h.pages.Keys(); len(keys) != 0 || len(h.mail.Sent()) != 0 {
		t.Errorf("a failed creation left %d pages and sent %d emails, want none", len(keys), len(h.mail.Sent()))
	}
}
