package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"approvalbot/internal/testing/mailtest"
)

// client calls the bot over loopback HTTP.
type client struct {
	base string // http://127.0.0.1:port
	host string // 127.0.0.1:port; page links must point here
	hc   *http.Client
}

func newClient(base string, conns int) (*client, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("bot URL: %w", err)
	}
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     30 * time.Second,
	}
	return &client{base: base, host: u.Host, hc: &http.Client{
		Transport: tr,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}, nil
}

// call is one HTTP exchange: its status, body and duration (until the body
// was read).
type call struct {
	status int
	body   []byte
	dur    time.Duration
}

// do sends one request to target (a path on the bot, or an absolute URL that
// must point at the bot).
func (c *client) do(ctx context.Context, method, target, ctype string, body []byte) (call, error) {
	if strings.HasPrefix(target, "/") {
		target = c.base + target
	} else if u, err := url.Parse(target); err != nil || u.Host != c.host {
		return call{}, fmt.Errorf("refusing %s: not the bot's address %s", target, c.host)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return call{}, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		return call{}, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return call{}, fmt.Errorf("%s %s: read body: %w", method, req.URL.Path, err)
	}
	return call{status: resp.StatusCode, body: b, dur: time.Since(start)}, nil
}

// expect checks the status of a call.
func expect(cl call, err error, want int, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if cl.status != want {
		return fmt.Errorf("%s: status %d, want %d: %.200s", what, cl.status, want, cl.body)
	}
	return nil
}

// problems counts failed calls and keeps the first few messages.
type problems struct {
	mu    sync.Mutex
	count int
	first []string
}

func (p *problems) add(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if len(p.first) < 5 {
		p.first = append(p.first, err.Error())
	}
}

func (p *problems) n() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

// parallel runs f(i) for every i in [0, n) on c workers, starting no new call
// once ctx is done, and returns the wall time.
func parallel(ctx context.Context, n, c int, f func(i int)) time.Duration {
	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(c, n) {
		wg.Go(func() {
			for i := range jobs {
				f(i)
			}
		})
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return time.Since(start)
}

// timings records one duration per index, and which succeeded.
type timings struct {
	d  []time.Duration
	ok []bool
}

func newTimings(n int) *timings { return &timings{d: make([]time.Duration, n), ok: make([]bool, n)} }

func (t *timings) set(i int, d time.Duration) { t.d[i], t.ok[i] = d, true }

func (t *timings) succeeded() []time.Duration {
	var out []time.Duration
	for i, ok := range t.ok {
		if ok {
			out = append(out, t.d[i])
		}
	}
	return out
}

// approver is the address of approver j of request i of a batch.
func approver(batch string, i, j int) string {
	return fmt.Sprintf("%s%d-%d@bench.example", batch, i, j)
}

// createBody is the JSON of POST /api/requests.
type createBody struct {
	Title          string   `json:"title"`
	Details        string   `json:"details"`
	Approvers      []string `json:"approvers"`
	Requester      string   `json:"requester"`
	TimeoutSeconds int      `json:"timeoutSeconds"`
}

// requestJSON is the part of the API's request the benchmark reads.
type requestJSON struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Decision *struct {
		Decision string `json:"decision"`
		By       string `json:"by"`
	} `json:"decision"`
}

// createBatch creates n requests with the given number of approvers each,
// c at a time, and returns their ids (empty where creation failed) and timings.
func (c *client) createBatch(ctx context.Context, batch string, n, approvers, conc int, errs *problems) ([]string, *timings, time.Duration) {
	ids := make([]string, n)
	t := newTimings(n)
	wall := parallel(ctx, n, conc, func(i int) {
		body := createBody{
			Title:          fmt.Sprintf("Bench %s%d: deploy v1.%d to staging", batch, i, i),
			Details:        "Release notes: a benchmark request with a paragraph of details, as a pipeline would send.",
			Requester:      "bench",
			TimeoutSeconds: 3600,
		}
		for j := range approvers {
			body.Approvers = append(body.Approvers, approver(batch, i, j))
		}
		raw, _ := json.Marshal(body)
		cl, err := c.do(ctx, "POST", "/api/requests", "application/json", raw)
		if err := expect(cl, err, http.StatusCreated, "create"); err != nil {
			errs.add(err)
			return
		}
		var r requestJSON
		if err := json.Unmarshal(cl.body, &r); err != nil || r.ID == "" || r.Status != "pending" {
			errs.add(fmt.Errorf("create: unexpected answer %.200s", cl.body))
			return
		}
		ids[i] = r.ID
		t.set(i, cl.dur)
	})
	return ids, t, wall
}

var tokenField = regexp.MustCompile(`name="token" value="([A-Za-z0-9_.-]+)"`)

// openPage GETs a one-time page and returns the token in its form.
func (c *client) openPage(ctx context.Context, link string) (string, time.Duration, error) {
	cl, err := c.do(ctx, "GET", link, "", nil)
	if err := expect(cl, err, http.StatusOK, "open page"); err != nil {
		return "", 0, err
	}
	m := tokenField.FindSubmatch(cl.body)
	if m == nil {
		return "", 0, errors.New("open page: the page has no token field")
	}
	return string(m[1]), cl.dur, nil
}

// decide POSTs the page's form, confirmed, as its script does.
func (c *client) decide(ctx context.Context, token, choice string) (call, error) {
	form := url.Values{"token": {token}, "decision": {choice}, "comment": {"bench"}, "confirmed": {"1"}}
	return c.do(ctx, "POST", "/decide", "application/x-www-form-urlencoded", []byte(form.Encode()))
}

// get reads one request through the API.
func (c *client) get(ctx context.Context, id string) (requestJSON, error) {
	var r requestJSON
	cl, err := c.do(ctx, "GET", "/api/requests/"+url.PathEscape(id), "", nil)
	if err := expect(cl, err, http.StatusOK, "get request"); err != nil {
		return r, err
	}
	if err := json.Unmarshal(cl.body, &r); err != nil {
		return r, fmt.Errorf("get request: %w", err)
	}
	return r, nil
}

// waitMail waits until the outbox holds at least want messages: the bot
// answers a create once the request is stored, and sends its emails right
// after, in the background. It returns how long it waited.
func waitMail(ctx context.Context, dir string, want int) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil {
			return 0, fmt.Errorf("outbox: %w", err)
		}
		if len(files) >= want {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("outbox: %d of %d emails after %s", len(files), want, time.Since(start).Round(time.Millisecond))
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// pendingPage is the part of a page of GET /api/requests the benchmark reads.
type pendingPage struct {
	Requests   []requestJSON `json:"requests"`
	NextCursor string        `json:"nextCursor"`
}

// listPending reads every pending request through the paged list, limit at a
// time, and returns how many there are, the calls it took, the bytes read and
// the time.
func (c *client) listPending(ctx context.Context, limit int) (n, calls, size int, d time.Duration, err error) {
	cursor := ""
	for {
		target := fmt.Sprintf("/api/requests?status=pending&limit=%d", limit)
		if cursor != "" {
			target += "&cursor=" + url.QueryEscape(cursor)
		}
		res, err := c.do(ctx, "GET", target, "", nil)
		if err := expect(res, err, http.StatusOK, "list"); err != nil {
			return n, calls, size, d, err
		}
		calls++
		size += len(res.body)
		d += res.dur
		var page pendingPage
		if err := json.Unmarshal(res.body, &page); err != nil {
			return n, calls, size, d, fmt.Errorf("list: %w", err)
		}
		n += len(page.Requests)
		if page.NextCursor == "" || len(page.Requests) == 0 {
			return n, calls, size, d, nil
		}
		if calls > 10_000 {
			return n, calls, size, d, errors.New("list: more than 10000 pages")
		}
		cursor = page.NextCursor
	}
}

var pageLink = regexp.MustCompile(`https?://[^\s"<>]+/p/[A-Za-z0-9_-]+`)

// outboxLinks reads every .eml in the outbox as a mail client would and returns
// the page link of each, by recipient address.
func outboxLinks(dir string) (map[string]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	links := make(map[string]string, len(files))
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("outbox: %w", err)
		}
		to, link, err := mailLink(raw)
		if err != nil {
			return nil, fmt.Errorf("outbox %s: %w", filepath.Base(f), err)
		}
		links[to] = link
	}
	return links, nil
}

// mailLink returns the recipient of an email and the page link in its text part.
func mailLink(raw []byte) (to, link string, err error) {
	m, err := mailtest.Parse(raw)
	if err != nil {
		return "", "", err
	}
	link = pageLink.FindString(m.Text)
	if link == "" {
		return "", "", errors.New("no page link in the text part")
	}
	return m.To, link, nil
}
