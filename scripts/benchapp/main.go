// Command benchapp measures the embedded approvalbot's speed and memory: it
// starts the real bot (the binary built from ./bot) as a child process on a free
// 127.0.0.1 port over a temporary data folder, drives it over loopback HTTP the
// way pipelines and people do, and prints latency percentiles, throughput, the
// bot's CPU time per call (on Linux; the measure to compare builds by on a
// machine shared with other work, where throughput varies with the load), the
// outcome of a contention round, the process's peak resident memory and the
// SQLite file size per request. Every loop is bounded in count and in time.
// scripts/bench builds the bot and runs it; "benchapp -h" lists the flags.
//
// Phases:
//  1. create: n requests through POST /api/requests, c at a time (the bot
//     answers once a request is stored and sends its emails in the
//     background; the report says how long the last ones took to arrive);
//  2. decide: for each, the page link from the outbox .eml, GET the page, POST
//     approve with confirmed=1 to /decide;
//  3. contention: k requests, each hit by m concurrent POSTs spread over all its
//     tokens (approve and reject alternating): exactly one must win per request,
//     the rest get 409, none a 5xx;
//  4. list: every page of GET /api/requests?status=pending&limit=100 with p
//     requests pending;
//  5. memory: VmHWM and VmRSS of the bot, the database size.
//
// It exits 1 when a call failed or the contention round broke a rule, 2 on bad
// usage.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"approvalbot/internal/cmdmain"
	"approvalbot/internal/testing/botproc"
)

func main() { cmdmain.Main("benchapp", run) }

// config is what the flags set.
type config struct {
	Bot           string        `json:"-"`
	N             int           `json:"n"`
	C             int           `json:"c"`
	Approvers     int           `json:"approvers"`
	K             int           `json:"contentionRequests"`
	M             int           `json:"contentionPosts"`
	KApprovers    int           `json:"contentionApprovers"`
	P             int           `json:"pending"`
	Lists         int           `json:"lists"`
	Timeout       time.Duration `json:"-"`
	LogLevel      string        `json:"logLevel"`
	JSON          bool          `json:"-"`
	Keep          bool          `json:"-"`
	TimeoutString string        `json:"timeout"`
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("benchapp", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.Bot, "bot", "", "the bot binary (default: go build ./bot into the temporary folder; run inside the repository)")
	fs.IntVar(&c.N, "n", 500, "requests created, then decided through their pages")
	fs.IntVar(&c.C, "c", 16, "concurrent clients")
	fs.IntVar(&c.Approvers, "approvers", 1, "email approvers per request (one email each)")
	fs.IntVar(&c.K, "k", 50, "contention round: requests")
	fs.IntVar(&c.M, "m", 8, "contention round: concurrent POSTs per request, over all its tokens")
	fs.IntVar(&c.KApprovers, "k-approvers", 3, "contention round: approvers (tokens) per request")
	fs.IntVar(&c.P, "p", 200, "requests left pending for the list phase")
	fs.IntVar(&c.Lists, "lists", 50, "listings of every pending request (each pages through GET /api/requests?status=pending), one at a time")
	fs.DurationVar(&c.Timeout, "timeout", 2*time.Minute, "stop everything after this long")
	fs.StringVar(&c.LogLevel, "log-level", "info", "the bot's APPROVALBOT_LOG_LEVEL (its log goes to a file)")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON")
	fs.BoolVar(&c.Keep, "keep", false, "keep the data folder (database, pages, outbox, bot log)")
	if err := cmdmain.Parse(fs, args); err != nil {
		return c, err
	}
	for _, b := range []struct {
		name     string
		v, lo, h int
	}{
		{"-n", c.N, 1, 100_000}, {"-c", c.C, 1, 256}, {"-approvers", c.Approvers, 1, 20},
		{"-k", c.K, 0, 10_000}, {"-m", c.M, 2, 64}, {"-k-approvers", c.KApprovers, 1, 20},
		{"-p", c.P, 0, 10_000}, {"-lists", c.Lists, 0, 10_000},
	} {
		if b.v < b.lo || b.v > b.h {
			return c, cmdmain.UsageError{Err: fmt.Errorf("%s %d: want %d to %d", b.name, b.v, b.lo, b.h)}
		}
	}
	if c.Timeout <= 0 || c.Timeout > 30*time.Minute {
		return c, cmdmain.UsageError{Err: fmt.Errorf("-timeout %s: want more than 0 and at most 30m", c.Timeout)}
	}
	c.TimeoutString = c.Timeout.String()
	return c, nil
}

// Report is everything measured, as printed with -json.
type Report struct {
	Machine    Machine    `json:"machine"`
	Config     config     `json:"config"`
	Phases     []Latency  `json:"phases"`
	Contention Contention `json:"contention"`
	List       ListResult `json:"list"`
	Memory     Memory     `json:"memory"`
	// MailDrain is how long the last emails of the create phase took to
	// reach the outbox after its last 201 (they are sent in the background).
	MailDrain Millis   `json:"mailDrainMs"`
	Seconds   float64  `json:"seconds"`
	Problems  []string `json:"problems"` // empty when every call went as expected
}

// Machine is where the numbers were taken.
type Machine struct {
	OS   string `json:"os"`
	Arch string `json:"arch"`
	CPUs int    `json:"cpus"`
	Go   string `json:"go"`
}

// Contention is the outcome of the contention round.
type Contention struct {
	Requests      int            `json:"requests"`
	PostsEach     int            `json:"postsEach"`
	DecidedOnce   int            `json:"decidedOnce"`  // exactly one 200 and the stored decision matches it
	ServerErrors  int            `json:"serverErrors"` // 5xx answers
	Statuses      map[string]int `json:"statuses"`     // answers by HTTP status ("error" for failed calls)
	Violations    int            `json:"violations"`   // requests that broke a rule
	ViolationList []string       `json:"violationList,omitempty"`
}

// ListResult describes the list phase.
type ListResult struct {
	Pending int `json:"pending"` // requests each listing held
	Pages   int `json:"pages"`   // calls one listing took
	Bytes   int `json:"bytes"`   // size of one listing, all pages
}

// Memory is the bot's memory and disk use.
type Memory struct {
	IdleRSS       int64   `json:"idleRSSBytes"`      // VmRSS right after start
	PeakRSS       int64   `json:"peakRSSBytes"`      // VmHWM after the last phase
	EndRSS        int64   `json:"endRSSBytes"`       // VmRSS after the last phase
	Requests      int     `json:"requests"`          // requests in the database
	DBBytes       int64   `json:"dbBytes"`           // approvalbot.db after a clean shutdown
	WALBytes      int64   `json:"walBytes"`          // approvalbot.db-wal before shutdown
	DBPerRequest  float64 `json:"dbBytesPerRequest"` // DBBytes / Requests
	OutboxPerMail float64 `json:"outboxBytesPerEmail"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err // -h: flag.ErrHelp, which cmdmain ends with exit 0
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	tmp, err := os.MkdirTemp("", "approvalbot-bench-")
	if err != nil {
		return err
	}
	keep := cfg.Keep
	defer func() {
		if keep {
			fmt.Fprintln(stderr, "benchapp: data folder kept:", tmp)
			return
		}
		os.RemoveAll(tmp)
	}()
	if cfg.Bot == "" {
		if cfg.Bot, err = botproc.Build(ctx, tmp); err != nil {
			return fmt.Errorf("build the bot (run inside the repository, or pass -bot): %w", err)
		}
	}

	rep := &Report{
		Machine:  Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Go: runtime.Version()},
		Config:   cfg,
		Problems: []string{},
	}
	start := time.Now()
	data := filepath.Join(tmp, "data")
	logPath := filepath.Join(tmp, "bot.log")
	b, err := startBot(ctx, cfg.Bot, data, logPath, cfg.LogLevel)
	if err != nil {
		keep = true
		return err
	}
	_, rep.Memory.IdleRSS, _ = b.Memory()
	cl, err := newClient(b.URL(), cfg.C+cfg.M)
	if err != nil {
		b.Stop()
		return err
	}
	r := &runner{cfg: cfg, c: cl, bot: b, data: data, rep: rep}
	r.phases(ctx)
	if ctx.Err() != nil {
		rep.Problems = append(rep.Problems, fmt.Sprintf("stopped early: %v (-timeout %s)", context.Cause(ctx), cfg.Timeout))
	}

	rep.Memory.PeakRSS, rep.Memory.EndRSS, _ = b.Memory()
	rep.Memory.WALBytes = fileSize(filepath.Join(data, "approvalbot.db-wal"))
	if err := b.Stop(); err != nil {
		rep.Problems = append(rep.Problems, err.Error())
	}
	rep.Memory.Requests = r.created
	rep.Memory.DBBytes = fileSize(filepath.Join(data, "approvalbot.db"))
	if r.created > 0 {
		rep.Memory.DBPerRequest = float64(rep.Memory.DBBytes) / float64(r.created)
	}
	if n, size := dirSize(filepath.Join(data, "outbox")); n > 0 {
		rep.Memory.OutboxPerMail = float64(size) / float64(n)
	}
	rep.Seconds = time.Since(start).Seconds()

	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReport(stdout, rep)
	}
	if len(rep.Problems) > 0 {
		keep = true
		for _, p := range rep.Problems {
			fmt.Fprintln(stderr, "benchapp: problem:", p)
		}
		return fmt.Errorf("%d problem(s); the bot's log is in %s", len(rep.Problems), logPath)
	}
	return nil
}

// dirSize counts the regular files in dir and their total size.
func dirSize(dir string) (n int, size int64) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n++
			size += fi.Size()
		}
	}
	return n, size
}

// runner runs the phases against one bot.
type runner struct {
	cfg     config
	c       *client
	bot     *botproc.Proc
	data    string // the bot's data folder
	rep     *Report
	created int // requests created
	decided int // requests decided
}

func (r *runner) problem(format string, args ...any) {
	r.rep.Problems = append(r.rep.Problems, fmt.Sprintf(format, args...))
}

// cpuMark is the bot's CPU time at the start of a phase; ok is false where
// it cannot be read.
type cpuMark struct {
	at time.Duration
	ok bool
}

func (r *runner) cpuMark() cpuMark {
	at, ok := r.bot.CPU()
	return cpuMark{at, ok}
}

// cpuSince sets the last phase's BotCPU: the bot's CPU time since m over
// the phase's successful calls.
func (r *runner) cpuSince(m cpuMark) {
	now, ok := r.bot.CPU()
	p := &r.rep.Phases[len(r.rep.Phases)-1]
	if ok && m.ok && p.Ops > 0 {
		p.BotCPU = ms(now-m.at) / Millis(p.Ops)
	}
}

// report adds a phase's numbers, and its failures as problems.
func (r *runner) report(name, call string, t *timings, errs *problems, wall time.Duration) {
	r.rep.Phases = append(r.rep.Phases, summarize(name, call, t.succeeded(), errs.n(), wall))
	if errs.n() > 0 {
		r.problem("%s: %d call(s) failed, first: %s", name, errs.n(), strings.Join(errs.first, " | "))
	}
}

func (r *runner) phases(ctx context.Context) {
	outbox := filepath.Join(r.data, "outbox")
	cfg := r.cfg

	// 1. create
	errs := &problems{}
	cpu := r.cpuMark()
	ids, t, wall := r.c.createBatch(ctx, "r", cfg.N, cfg.Approvers, cfg.C, errs)
	r.created += len(t.succeeded())
	r.report("create", "POST /api/requests", t, errs, wall)
	r.cpuSince(cpu)
	if ctx.Err() != nil {
		return
	}

	// The emails go out in the background, right after each 201.
	mailWait, err := waitMail(ctx, outbox, len(t.succeeded())*cfg.Approvers)
	if err != nil {
		r.problem("%v", err)
		return
	}
	r.rep.MailDrain = ms(mailWait)

	// 2. open the page from the email, decide
	links, err := outboxLinks(outbox)
	if err != nil {
		r.problem("%v", err)
		return
	}
	pageT, decideT := newTimings(cfg.N), newTimings(cfg.N)
	pageErrs, decideErrs := &problems{}, &problems{}
	cpu = r.cpuMark()
	wall = parallel(ctx, cfg.N, cfg.C, func(i int) {
		if ids[i] == "" {
			return
		}
		link, ok := links[approver("r", i, 0)]
		if !ok {
			pageErrs.add(fmt.Errorf("no email to %s in the outbox", approver("r", i, 0)))
			return
		}
		token, d, err := r.c.openPage(ctx, link)
		if err != nil {
			pageErrs.add(err)
			return
		}
		pageT.set(i, d)
		res, err := r.c.decide(ctx, token, "approve")
		if err := expect(res, err, http.StatusOK, "decide"); err != nil {
			decideErrs.add(err)
			return
		}
		decideT.set(i, res.dur)
	})
	r.decided += len(decideT.succeeded())
	r.report("page", "GET /p/{page}", pageT, pageErrs, wall)
	r.report("decide", "POST /decide confirmed=1", decideT, decideErrs, wall)
	r.cpuSince(cpu)
	if ctx.Err() != nil {
		return
	}

	// 3. contention
	if cfg.K > 0 {
		r.contention(ctx, outbox)
		if ctx.Err() != nil {
			return
		}
	}

	// 4. list with p pending
	errs = &problems{}
	_, t, _ = r.c.createBatch(ctx, "p", cfg.P, 1, cfg.C, errs)
	r.created += len(t.succeeded())
	if errs.n() > 0 {
		r.problem("list setup: %d create(s) failed, first: %s", errs.n(), strings.Join(errs.first, " | "))
	}
	want := r.created - r.decided
	r.rep.List.Pending = want
	errs, t = &problems{}, newTimings(cfg.Lists)
	cpu = r.cpuMark()
	start := time.Now()
	for i := range cfg.Lists {
		if ctx.Err() != nil {
			break
		}
		n, calls, size, d, err := r.c.listPending(ctx, listLimit)
		if err != nil {
			errs.add(err)
			continue
		}
		if n != want {
			errs.add(fmt.Errorf("list: %d pending requests, want %d", n, want))
			continue
		}
		r.rep.List.Bytes, r.rep.List.Pages = size, calls
		t.set(i, d)
	}
	r.report("list", fmt.Sprintf("GET /api/requests?status=pending&limit=%d, every page (%d)", listLimit, want), t, errs, time.Since(start))
	r.cpuSince(cpu)
}

// listLimit is the page size of the list phase.
const listLimit = 100

// contention creates k requests with several tokens each and hits each with m
// concurrent decisions spread over its tokens.
func (r *runner) contention(ctx context.Context, outbox string) {
	cfg := r.cfg
	res := &r.rep.Contention
	res.Requests, res.PostsEach, res.Statuses = cfg.K, cfg.M, map[string]int{}
	violation := func(format string, args ...any) {
		res.Violations++
		if len(res.ViolationList) < 10 {
			res.ViolationList = append(res.ViolationList, fmt.Sprintf(format, args...))
		}
	}

	errs := &problems{}
	ids, t, _ := r.c.createBatch(ctx, "k", cfg.K, cfg.KApprovers, cfg.C, errs)
	r.created += len(t.succeeded())
	if errs.n() > 0 {
		r.problem("contention setup: %d create(s) failed, first: %s", errs.n(), strings.Join(errs.first, " | "))
	}
	if _, err := waitMail(ctx, outbox, (r.created-len(t.succeeded()))*cfg.Approvers+len(t.succeeded())*cfg.KApprovers); err != nil {
		r.problem("contention setup: %v", err)
		return
	}
	links, err := outboxLinks(outbox)
	if err != nil {
		r.problem("%v", err)
		return
	}
	tokens := make([][]string, cfg.K)
	for i := range tokens {
		tokens[i] = make([]string, cfg.KApprovers)
	}
	parallel(ctx, cfg.K*cfg.KApprovers, cfg.C, func(x int) {
		i, j := x/cfg.KApprovers, x%cfg.KApprovers
		if ids[i] == "" {
			return
		}
		link, ok := links[approver("k", i, j)]
		if !ok {
			errs.add(fmt.Errorf("no email to %s in the outbox", approver("k", i, j)))
			return
		}
		tok, _, err := r.c.openPage(ctx, link)
		if err != nil {
			errs.add(err)
			return
		}
		tokens[i][j] = tok
	})

	var mu sync.Mutex // guards res
	postT := newTimings(cfg.K * cfg.M)
	wall := parallel(ctx, cfg.K, max(1, cfg.C/cfg.M), func(i int) {
		if ids[i] == "" || slices.Contains(tokens[i], "") {
			return
		}
		type attempt struct {
			status int
			choice string
			by     string
		}
		got := make([]attempt, cfg.M)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for j := range cfg.M {
			wg.Go(func() {
				a := attempt{choice: "approve", by: approver("k", i, j%cfg.KApprovers)}
				if j%2 == 1 {
					a.choice = "reject"
				}
				<-start
				cl, err := r.c.decide(ctx, tokens[i][j%cfg.KApprovers], a.choice)
				if err == nil {
					a.status = cl.status
					postT.set(i*cfg.M+j, cl.dur)
				}
				got[j] = a
			})
		}
		close(start)
		wg.Wait()

		var wins []attempt
		mu.Lock()
		defer mu.Unlock()
		for _, a := range got {
			key := fmt.Sprint(a.status)
			switch {
			case a.status == 0:
				key = "error"
			case a.status >= 500:
				res.ServerErrors++
			case a.status == http.StatusOK:
				wins = append(wins, a)
			}
			res.Statuses[key]++
		}
		if len(wins) > 0 {
			r.decided++
		}
		bad := len(wins) != 1
		for _, a := range got {
			if a.status != http.StatusOK && a.status != http.StatusConflict {
				bad = true
			}
		}
		if bad {
			violation("request %d: %d winner(s), statuses %v", i, len(wins), got)
			return
		}
		stored, err := r.c.get(ctx, ids[i])
		wantStatus := map[string]string{"approve": "approved", "reject": "rejected"}[wins[0].choice]
		switch {
		case err != nil:
			violation("request %d: %v", i, err)
		case stored.Status != wantStatus || stored.Decision == nil || stored.Decision.By != wins[0].by:
			violation("request %d: stored %s by %+v, but %s by %s won", i, stored.Status, stored.Decision, wins[0].choice, wins[0].by)
		default:
			res.DecidedOnce++
		}
	})
	if errs.n() > 0 {
		r.problem("contention setup: %d call(s) failed, first: %s", errs.n(), strings.Join(errs.first, " | "))
	}
	r.rep.Phases = append(r.rep.Phases, summarize("contend", fmt.Sprintf("POST /decide (%d requests x %d)", cfg.K, cfg.M), postT.succeeded(), res.Statuses["error"], wall))
	if res.Violations > 0 || res.ServerErrors > 0 || res.DecidedOnce != cfg.K {
		r.problem("contention: %d of %d requests decided exactly once, %d violation(s), %d 5xx: %s",
			res.DecidedOnce, cfg.K, res.Violations, res.ServerErrors, strings.Join(res.ViolationList, " | "))
	}
}

// printReport writes the compact table.
func printReport(w io.Writer, rep *Report) {
	c := rep.Config
	fmt.Fprintf(w, "approvalbot bench: %s/%s, %d CPUs, %s; -n %d -c %d -approvers %d -k %d -m %d -k-approvers %d -p %d -lists %d\n\n",
		rep.Machine.OS, rep.Machine.Arch, rep.Machine.CPUs, rep.Machine.Go, c.N, c.C, c.Approvers, c.K, c.M, c.KApprovers, c.P, c.Lists)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	width := len("phase")
	for _, p := range rep.Phases {
		width = max(width, len(p.Name)+1+len(p.Call))
	}
	fmt.Fprintf(tw, "%-*s\tok\terrors\tops/s\tp50 ms\tp95 ms\tp99 ms\tmax ms\tbot cpu ms/op\t\n", width, "phase")
	for _, p := range rep.Phases {
		cpu := "-"
		if p.BotCPU > 0 {
			cpu = fmt.Sprintf("%.2f", float64(p.BotCPU))
		}
		fmt.Fprintf(tw, "%-*s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", width, p.Name+" "+p.Call, p.Ops, p.Errors, p.PerSec, p.P50, p.P95, p.P99, p.Max, cpu)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nmail:       the create phase's last emails reached the outbox %s ms after its last answer\n", rep.MailDrain)
	k := rep.Contention
	if k.Requests > 0 {
		fmt.Fprintf(w, "\ncontention: %d of %d requests decided exactly once (%d POSTs each), answers %v, 5xx %d, violations %d\n",
			k.DecidedOnce, k.Requests, k.PostsEach, k.Statuses, k.ServerErrors, k.Violations)
	}
	if rep.List.Pending > 0 {
		fmt.Fprintf(w, "list:       %d pending requests in %d pages, %s in all\n", rep.List.Pending, rep.List.Pages, bytesString(float64(rep.List.Bytes)))
	}
	m := rep.Memory
	fmt.Fprintf(w, "memory:     peak RSS (VmHWM) %s, RSS idle %s, at end %s\n",
		bytesString(float64(m.PeakRSS)), bytesString(float64(m.IdleRSS)), bytesString(float64(m.EndRSS)))
	fmt.Fprintf(w, "disk:       SQLite %s for %d requests = %s per request (WAL before shutdown %s); %s per outbox email\n",
		bytesString(float64(m.DBBytes)), m.Requests, bytesString(m.DBPerRequest), bytesString(float64(m.WALBytes)), bytesString(m.OutboxPerMail))
	fmt.Fprintf(w, "total:      %.1f s\n", rep.Seconds)
}

func bytesString(b float64) string {
	switch {
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", b)
	}
}
