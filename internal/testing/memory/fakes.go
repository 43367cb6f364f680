package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"approvalbot/bot/approval"
)

// Pages is an approval.Pages that keeps pages in a map.
type Pages struct {
	base  string
	mu    sync.Mutex
	pages map[string][]byte
}

var _ approval.Pages = (*Pages)(nil)

// NewPages returns an empty page host whose URLs are baseURL + "/p/" + key.
func NewPages(baseURL string) *Pages {
	return &Pages{base: strings.TrimRight(baseURL, "/"), pages: map[string][]byte{}}
}

// Put stores a copy of html under key.
func (p *Pages) Put(_ context.Context, key string, html []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pages[key] = slices.Clone(html)
	return nil
}

// Delete removes the pages under keys.
func (p *Pages) Delete(_ context.Context, keys []string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range keys {
		delete(p.pages, k)
	}
	return nil
}

// URL is where the page under key is served.
func (p *Pages) URL(key string) string { return p.base + "/p/" + key }

// Get returns a copy of the page stored under key and whether there is one.
func (p *Pages) Get(key string) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	html, ok := p.pages[key]
	return slices.Clone(html), ok
}

// Keys returns the keys of every stored page, sorted.
func (p *Pages) Keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	keys := make([]string, 0, len(p.pages))
	for k := range p.pages {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Mailer is an approval.Mailer that records what it sends.
type Mailer struct {
	mu   sync.Mutex
	sent []approval.Email
	err  error
}

var _ approval.Mailer = (*Mailer)(nil)

// NewMailer returns a mailer that has sent nothing.
func NewMailer() *Mailer { return &Mailer{} }

// Send records m, or returns the error set with SetErr.
func (m *Mailer) Send(_ context.Context, e approval.Email) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return fmt.Errorf("send email: %w", m.err)
	}
	m.sent = append(m.sent, e)
	return nil
}

// SetErr makes every later Send fail with err; nil makes it succeed again.
func (m *Mailer) SetErr(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

// Sent returns the emails sent so far, in order.
func (m *Mailer) Sent() []approval.Email {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.sent)
}

// Workflow is an approval.Workflow that records the outcomes delivered to it.
type Workflow struct {
	mu        sync.Mutex
	delivered []approval.Result
	attempts  int
	err       error
}

var _ approval.Workflow = (*Workflow)(nil)

// NewWorkflow returns a workflow that has received nothing.
func NewWorkflow() *Workflow { return &Workflow{} }

// Deliver records r's outcome, or returns the error set with SetErr (which may
// wrap approval.ErrWorkflowGone) without recording it.
func (w *Workflow) Deliver(_ context.Context, r *approval.Request) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts++
	if w.err != nil {
		return fmt.Errorf("deliver %s: %w", r.ID, w.err)
	}
	w.delivered = append(w.delivered, r.Result())
	return nil
}

// SetErr makes every later Deliver fail with err; nil makes it succeed again.
func (w *Workflow) SetErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

// Delivered returns the outcomes delivered so far, in order.
func (w *Workflow) Delivered() []approval.Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.delivered)
}

// Attempts returns how many times Deliver was called, failed calls included.
func (w *Workflow) Attempts() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.attempts
}
