package client_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
	"approvalbot/bot/client"
	"approvalbot/bot/web"
)

func TestCreateGet(t *testing.T) {
	b := newBot("")
	defer b.Close()
	c := client.New(b.URL+"/", "")
	ctx := context.Background()
	in := client.NewRequest{
		Title: "Deploy v1.2", Details: "to prod", Requester: "ci",
		Groups: []client.Group{
			{Name: "eng", Approvers: []string{"alice@example.com", "bob@example.com"}, Min: 2},
			{Name: "security", Approvers: []string{"sec@example.com"}, Min: 1},
		},
		RejectPolicy: "impossible", Timeout: time.Hour,
		Links: []client.Link{{Label: "diff", URL: "https://example.com/diff"}},
	}
	r, err := c.Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID == "" || r.Status != client.StatusPending || r.Requester != "ci" || r.RejectPolicy != "impossible" ||
		!cmp.Equal(r.Groups, in.Groups) || !cmp.Equal(r.Links, in.Links) || r.ExpiresAt.Sub(r.CreatedAt) != time.Hour {
		t.Errorf("created %+v, want the request as asked", r)
	}
	if r.Progress.Required != 3 || r.Progress.Needed != 3 {
		t.Errorf("progress %+v, want 3 approvals needed", r.Progress)
	}
	if err := b.vote(r.ID, "alice@example.com", approval.Approve, "lgtm"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != client.StatusPending || len(got.Votes) != 1 || got.Votes[0].By != "alice@example.com" || got.Votes[0].Comment != "lgtm" || got.Progress.Needed != 2 {
		t.Errorf("after one vote: %+v, want pending with alice's vote and 2 needed", got)
	}
	if client.Closed(got) || client.Approved(got) {
		t.Errorf("Closed or Approved of a pending request")
	}
}

func TestErrors(t *testing.T) {
	b := newBot("s3cret")
	defer b.Close()
	ctx := context.Background()
	c := client.New(b.URL, "s3cret")

	_, err := c.Create(ctx, client.NewRequest{Approvers: []string{"a@example.com"}})
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, client.ErrInvalid) || e.Field != "title" || e.StatusCode != http.StatusBadRequest || e.Message == "" {
		t.Errorf("create without a title: %v (%+v), want ErrInvalid on title", err, e)
	}
	_, err = c.Create(ctx, client.NewRequest{Title: "T", Approvers: []string{"a@example.com"}, Timeout: 1500 * time.Millisecond})
	if !errors.As(err, &e) || !errors.Is(err, client.ErrInvalid) || e.Field != "timeoutSeconds" || e.StatusCode != 0 {
		t.Errorf("a timeout of 1.5s: %v, want ErrInvalid on timeoutSeconds before sending", err)
	}
	if _, err := c.Get(ctx, "abcdefghijklmnop"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("get unknown: %v, want ErrNotFound", err)
	}
	if _, err := c.Cancel(ctx, "abcdefghijklmnop", client.CancelInput{}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("cancel unknown: %v, want ErrNotFound", err)
	}
	if _, err := c.Get(ctx, ""); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("get with no id: %v, want ErrInvalid", err)
	}
	for _, token := range []string{"", "wrong"} {
		_, err := client.New(b.URL, token).List(ctx, client.ListOptions{})
		if !errors.Is(err, client.ErrUnauthorized) || errors.Is(err, client.ErrInvalid) {
			t.Errorf("token %q: %v, want ErrUnauthorized", token, err)
		}
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	_, err = client.New(closed, "").Get(ctx, "abcdefghijklmnop")
	if !errors.Is(err, client.ErrUnreachable) || !strings.Contains(err.Error(), closed) {
		t.Errorf("closed port: %v, want ErrUnreachable naming the server", err)
	}
	if _, err := client.New("127.0.0.1:8080", "").Get(ctx, "abcdefghijklmnop"); !errors.Is(err, client.ErrInvalid) || !strings.Contains(err.Error(), "http") {
		t.Errorf("a server without a scheme: %v, want ErrInvalid saying it wants an http URL", err)
	}
}

func TestCancel(t *testing.T) {
	b := newBot("")
	defer b.Close()
	c := client.New(b.URL, "")
	ctx := context.Background()
	r, err := c.Create(ctx, client.NewRequest{Title: "T", Approvers: []string{"a@example.com"}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Cancel(ctx, r.ID, client.CancelInput{Reason: "superseded by v1.3", By: "release-bot"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != client.StatusCanceled || got.Canceled == nil || got.Canceled.By != "release-bot" || got.Canceled.Reason != "superseded by v1.3" {
		t.Errorf("canceled: %+v, want canceled by release-bot with the reason", got)
	}
	_, err = c.Cancel(ctx, r.ID, client.CancelInput{})
	var e *client.Error
	if !errors.Is(err, client.ErrClosed) || !errors.As(err, &e) || !strings.Contains(e.Message, "already canceled") {
		t.Errorf("second cancel: %v, want ErrClosed saying already canceled", err)
	}
	if err := b.vote(r.ID, "a@example.com", approval.Approve, ""); err == nil {
		t.Errorf("a vote on a canceled request was taken")
	}
	if w, err := c.Wait(ctx, r.ID); err != nil || w.Status != client.StatusCanceled {
		t.Errorf("Wait on a canceled request: %v, %v; want it at once, canceled", w, err)
	}
}

// List pages through the pending requests, newest first, with the cursor.
func TestList(t *testing.T) {
	b := newBot("")
	defer b.Close()
	var clock atomic.Int64 // each reading a millisecond later: distinct creation times, the listing's order
	clock.Store(time.Now().UnixMilli())
	b.svc.Now = func() time.Time { return time.UnixMilli(clock.Add(1)) }
	c := client.New(b.URL, "")
	ctx := context.Background()
	var ids []string
	for _, title := range []string{"one", "two", "three"} {
		r, err := c.Create(ctx, client.NewRequest{Title: title, Approvers: []string{"a@example.com"}, Timeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		ids = append([]string{r.ID}, ids...)
	}
	var got []string
	opts := client.ListOptions{Limit: 2}
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("the cursor does not end")
		}
		p, err := c.List(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Requests) > 2 {
			t.Errorf("a page of %d with limit 2", len(p.Requests))
		}
		for _, r := range p.Requests {
			got = append(got, r.ID)
		}
		if p.NextCursor == "" {
			break
		}
		opts.Cursor = p.NextCursor
	}
	if diff := cmp.Diff(ids, got); diff != "" {
		t.Errorf("listed (-want +got):\n%s", diff)
	}
	if _, err := c.List(ctx, client.ListOptions{Limit: -1}); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("limit -1: %v, want ErrInvalid", err)
	}
	if _, err := c.List(ctx, client.ListOptions{Limit: 1000}); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("limit 1000: %v, want the server's ErrInvalid", err)
	}
}

// List passes its filters on: approver, requester and creation time.
func TestListFilters(t *testing.T) {
	b := newBot("")
	defer b.Close()
	base := time.Now().UTC().Truncate(time.Millisecond)
	var clock atomic.Int64 // each request a minute after the one before
	b.svc.Now = func() time.Time { return base.Add(time.Duration(clock.Load()) * time.Minute) }
	c := client.New(b.URL, "")
	ctx := context.Background()
	byTitle := map[string]string{}
	for i, in := range []client.NewRequest{
		{Title: "alice asks bob", Requester: "alice@example.com", Approvers: []string{"bob@example.com"}},
		{Title: "carol asks bob", Requester: "carol@example.com", Approvers: []string{"bob@example.com"}},
		{Title: "alice asks dan", Requester: "alice@example.com", Approvers: []string{"dan@example.com"}},
	} {
		clock.Store(int64(i))
		in.Timeout = time.Hour
		r, err := c.Create(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		byTitle[r.ID] = r.Title
	}
	for _, tc := range []struct {
		name string
		opts client.ListOptions
		want []string
	}{
		{"approver", client.ListOptions{Approver: "bob@example.com"}, []string{"carol asks bob", "alice asks bob"}},
		{"requester", client.ListOptions{Requester: "alice@example.com"}, []string{"alice asks dan", "alice asks bob"}},
		{"since", client.ListOptions{Since: base.Add(time.Minute)}, []string{"alice asks dan", "carol asks bob"}},
		{"until", client.ListOptions{Until: base.Add(time.Minute)}, []string{"alice asks bob"}},
		{"both", client.ListOptions{Approver: "bob@example.com", Requester: "alice@example.com"}, []string{"alice asks bob"}},
	} {
		p, err := c.List(ctx, tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var got []string
		for _, r := range p.Requests {
			got = append(got, byTitle[r.ID])
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: listed (-want +got):\n%s", tc.name, diff)
		}
	}
}

// Wait returns the outcome with every vote once the rule is met.
func TestWait(t *testing.T) {
	b := newBot("")
	defer b.Close()
	c := client.New(b.URL, "")
	ctx := context.Background()
	r, err := c.Create(ctx, client.NewRequest{Title: "T", Approvers: []string{"a@example.com", "b@example.com"}, Policy: "all", Requester: "ci", Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan *client.Request, 1)
	go func() {
		r, err := c.Wait(ctx, r.ID)
		if err != nil {
			t.Error(err)
		}
		done <- r
	}()
	for _, a := range []string{"a@example.com", "b@example.com"} {
		if err := b.vote(r.ID, a, approval.Approve, "ok"); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case got := <-done:
		if got == nil || got.Status != client.StatusApproved || len(got.Votes) != 2 || got.Decision == nil || got.Decision.By != "b@example.com" {
			t.Errorf("waited: %+v, want approved with both votes, decided by b", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Wait did not return after the decision")
	}
}

// Wait ends with its context, the request still open; Poll answers with the
// request as it stands after the wait.
func TestWaitEndsWithContext(t *testing.T) {
	b := newBot("", func(cfg *web.Config) { cfg.MaxWait = 20 * time.Millisecond })
	defer b.Close()
	c := client.New(b.URL, "")
	r, err := c.Create(context.Background(), client.NewRequest{Title: "T", Approvers: []string{"a@example.com"}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := c.Poll(context.Background(), r.ID, time.Hour); err != nil || p.Status != client.StatusPending {
		t.Errorf("Poll past the server's cap: %v, %v; want the pending request", p, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Wait(ctx, r.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Wait past its context: %v, want DeadlineExceeded", err)
	}
}

// Wait rides out a server that fails for a while (a restart), and gives up on
// one that fails for longer than RetryFor.
func TestWaitRetries(t *testing.T) {
	b := newBot("")
	defer b.Close()
	var failures atomic.Int32
	failures.Store(2)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" && failures.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			io.WriteString(w, `{"error":"restarting"}`)
			return
		}
		b.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	c := client.New(front.URL, "")
	c.RetryDelay = time.Millisecond
	ctx := context.Background()
	r, err := c.Create(ctx, client.NewRequest{Title: "T", Approvers: []string{"a@example.com"}, Timeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.vote(r.ID, "a@example.com", approval.Reject, "no"); err != nil {
		t.Fatal(err)
	}
	got, err := c.Wait(ctx, r.ID)
	if err != nil || got.Status != client.StatusRejected {
		t.Errorf("Wait through two failures: %v, %v; want rejected", got, err)
	}

	failures.Store(1 << 20)
	c.RetryFor = 20 * time.Millisecond
	_, err = c.Wait(ctx, r.ID)
	var e *client.Error
	if !errors.As(err, &e) || e.StatusCode != http.StatusBadGateway || !e.Temporary() {
		t.Errorf("Wait on a server that keeps failing: %v, want its 502 after RetryFor", err)
	}
}
