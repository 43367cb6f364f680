package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"approvalbot/bot/approval"
	apiclient "approvalbot/bot/client"
	"approvalbot/bot/local"
	"approvalbot/bot/mcpserver"
	"approvalbot/bot/slackapp"
	"approvalbot/bot/sqlite"
	"approvalbot/bot/web"
	"approvalbot/pages"

	"github.com/slack-go/slack"
)

// Defaults of the server.
const (
	defaultAddr = "127.0.0.1:8080"
	defaultData = ".approvalbot"
	// defaultSweepEvery is how often the sweep asks the database what is due
	// (requests past their expiry, effects to retry or take over). A sweep
	// with nothing due is one read of an index, so it runs often enough to
	// keep to the effects' retry schedule (1 s, 2 s, 4 s ...).
	defaultSweepEvery = time.Second
	// defaultCheckpointEvery is how often the sweep writes a checkpoint of
	// the audit trail (when any trail grew).
	defaultCheckpointEvery = time.Minute
	shutdownGrace          = 10 * time.Second
	// defaultGCPercent is the garbage collector's GOGC when the environment
	// sets none. The server's live heap is small, so at Go's default (100)
	// it collects very often; at 200 a decision costs about a tenth less CPU
	// for some 15-20 MiB more peak RSS under load (scripts/bench).
	defaultGCPercent = 200
)

// Main is the embedded server: its configuration, and once started, what it
// runs. main and the end-to-end tests both use it.
type Main struct {
	Addr     string // listen address
	DataDir  string // data folder: database (with the pages), outbox
	BaseURL  string // address in links; empty means "http://" + the listen address
	APIToken string // bearer token required on /api (and /mcp); empty means none
	// APIName is who the API caller is, as cancellations and extensions
	// record it; empty means "api".
	APIName string
	// MCPRequester is recorded as the requester of the requests made through
	// /mcp; empty means mcpserver.DefaultRequester.
	MCPRequester string

	SMTP          local.SMTPConfig // SMTP.Addr empty: write mail to the outbox
	MailFrom      string
	WebhookSecret string          // signs webhook bodies when set
	Slack         slackapp.Config // Slack, when enabled

	Now func() time.Time // clock; nil means time.Now
	// SweepEvery is how often the sweep closes expired requests and retries
	// or takes over the effects that are due; zero means every second.
	SweepEvery time.Duration
	// CheckpointEvery is how often the sweep seals the audit trails that
	// grew into a checkpoint; zero means every minute.
	CheckpointEvery time.Duration

	Log    *slog.Logger
	Stdout io.Writer

	// Set by Start.
	url     string
	service *approval.Service
	store   *sqlite.Store
	pages   *sqlite.Pages
	legacy  *legacyPages  // nil when the data folder holds no page of the first version
	slack   *slack.Client // nil when Slack is off
	srv     *http.Server
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	serve   chan error
}

// newMain reads the server's flags and environment.
func newMain(args []string, getenv func(string) string, stdout, stderr io.Writer) (*Main, error) {
	fs := flag.NewFlagSet("approvalbot", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	m := &Main{Stdout: stdout}
	fs.StringVar(&m.Addr, "addr", envOr(getenv, "APPROVALBOT_ADDR", defaultAddr), "")
	fs.StringVar(&m.DataDir, "data", envOr(getenv, "APPROVALBOT_DATA", defaultData), "")
	fs.StringVar(&m.BaseURL, "base-url", getenv("APPROVALBOT_BASE_URL"), "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printHelp(stdout)
			return nil, &exitError{code: 0}
		}
		return nil, usageErr("%v (see -h)", err)
	}
	if fs.NArg() > 0 {
		return nil, usageErr("unknown command %q (see -h)", fs.Arg(0))
	}
	m.APIToken = strings.TrimSpace(getenv("APPROVALBOT_API_TOKEN"))
	m.MCPRequester = mcpRequester(getenv)
	m.APIName = strings.TrimSpace(getenv("APPROVALBOT_API_TOKEN_NAME"))
	m.MailFrom = strings.TrimSpace(getenv("APPROVALBOT_MAIL_FROM"))
	m.SMTP = local.SMTPConfig{
		Addr:     strings.TrimSpace(getenv("APPROVALBOT_SMTP_ADDR")),
		User:     getenv("APPROVALBOT_SMTP_USER"),
		Password: getenv("APPROVALBOT_SMTP_PASSWORD"),
		From:     m.MailFrom,
	}
	switch v := strings.TrimSpace(getenv("APPROVALBOT_SMTP_INSECURE")); v {
	case "", "0":
	case "1":
		m.SMTP.Insecure = true
	default:
		return nil, usageErr("APPROVALBOT_SMTP_INSECURE %q: want 1 (allow sending in clear text) or 0", v)
	}
	m.WebhookSecret = getenv("APPROVALBOT_WEBHOOK_SECRET")
	sc, err := slackapp.ConfigFromEnv(getenv)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	if sc.SecretARN != "" {
		return nil, usageErr("SLACK_SECRET_ARN is for the AWS Lambdas; set SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN) instead")
	}
	m.Slack = sc
	level := slog.LevelInfo
	if v := getenv("APPROVALBOT_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			return nil, usageErr("APPROVALBOT_LOG_LEVEL %q: want debug, info, warn or error", v)
		}
	}
	m.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	return m, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := strings.TrimSpace(getenv(key)); v != "" {
		return v
	}
	return def
}

func (m *Main) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// URL is the base URL the server is reached at, once started.
func (m *Main) URL() string { return m.url }

// Service is the approval service, once started.
func (m *Main) Service() *approval.Service { return m.service }

// Run starts the server and serves until ctx is done, then shuts down cleanly.
func (m *Main) Run(ctx context.Context) error {
	if err := m.Start(ctx); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-m.serve:
		m.Close()
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintln(m.stdout(), "approvalbot: shutting down")
	return m.Close()
}

func (m *Main) stdout() io.Writer {
	if m.Stdout == nil {
		return io.Discard
	}
	return m.Stdout
}

// Start opens the data folder and the database (which holds the one-time
// pages), removes what a crash left behind (pages of no request, temporary
// files, page files of the first version whose request is closed), listens,
// and serves in the background along with the sweep.
func (m *Main) Start(ctx context.Context) (err error) {
	if err := m.prepare(); err != nil {
		return err
	}
	ln, err := m.listen()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	if err := m.openStore(ctx); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.store.Close()
		}
	}()
	mailer, mailDesc, err := m.mailer()
	if err != nil {
		return err
	}
	if err := m.newService(mailer); err != nil {
		return err
	}
	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	handler, slackDesc := m.handler(ctx)
	m.serveOn(ctx, ln, handler)
	m.wg.Go(func() { m.sweepLoop(ctx) })
	m.printStarted(ln.Addr(), mailDesc, slackDesc)
	return nil
}

// prepare fills in the defaults and makes the data folder.
func (m *Main) prepare() (err error) {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if m.SweepEvery <= 0 {
		m.SweepEvery = defaultSweepEvery
	}
	if m.CheckpointEvery <= 0 {
		m.CheckpointEvery = defaultCheckpointEvery
	}
	if m.DataDir == "" {
		m.DataDir = defaultData
	}
	if m.DataDir, err = filepath.Abs(m.DataDir); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	return nil
}

// listen opens the listener and settles the links' base URL: the base URL
// given, or the address listened on.
func (m *Main) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", m.Addr)
	if err != nil {
		return nil, &exitError{code: exitNotOK, err: fmt.Errorf("listen on %s: %w", m.Addr, err)}
	}
	m.url = strings.TrimRight(m.BaseURL, "/")
	if m.url == "" {
		m.url = "http://" + linkHost(ln.Addr())
	} else if u, perr := url.Parse(m.url); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		ln.Close()
		return nil, usageErr("base URL %q is not an absolute http(s) URL without user, query or fragment", m.BaseURL)
	}
	return ln, nil
}

// openStore opens the database and its pages, and removes what an earlier
// run left behind: pages of no request or of a closed one, page files of the
// first version whose request is closed. The store is closed again on error.
func (m *Main) openStore(ctx context.Context) (err error) {
	m.store, err = sqlite.Open(ctx, filepath.Join(m.DataDir, "approvalbot.db"))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.store.Close()
		}
	}()
	m.pages = sqlite.NewPages(m.store, m.url)
	m.pages.Now = m.Now
	// Pages put before this start whose request was never stored (a
	// creation cut short by a crash) or is closed are never served; remove
	// them.
	pruned, err := m.pages.Prune(ctx, m.now())
	if err != nil {
		return err
	}
	if pruned > 0 {
		m.Log.Info("removed pages left by an earlier run", "pages", pruned)
	}
	m.legacy, err = openLegacyPages(ctx, filepath.Join(m.DataDir, "pages"), m.url, m.store, m.now(), m.Log)
	return err
}

// mailer is the SMTP mailer when an SMTP server is set, else the outbox, with
// the line that says so at start.
func (m *Main) mailer() (approval.Mailer, string, error) {
	if m.SMTP.Addr != "" {
		smtp, err := local.NewSMTP(m.SMTP, m.Now)
		if err != nil {
			return nil, "", usageErr("APPROVALBOT_SMTP_ADDR: %v", err)
		}
		desc := "mail:      SMTP via " + m.SMTP.Addr
		if m.SMTP.Insecure {
			desc += " (APPROVALBOT_SMTP_INSECURE: clear text allowed)"
		}
		return smtp, desc, nil
	}
	outbox, err := local.NewOutbox(filepath.Join(m.DataDir, "outbox"), m.MailFrom, m.Now)
	if err != nil {
		return nil, "", err
	}
	return outbox, "outbox:    " + outbox.Dir() + " (set APPROVALBOT_SMTP_ADDR to send mail)", nil
}

// newService builds the service over the store, the pages, mailer, the
// webhook workflow and, when it is on, Slack.
func (m *Main) newService(mailer approval.Mailer) (err error) {
	webhook := local.NewWebhook(nil, m.WebhookSecret)
	webhook.Now = m.Now
	var chat approval.Chat
	if m.Slack.Enabled() {
		m.slack = slackapp.NewClient(m.Slack)
		chat = slackapp.NewChat(m.slack)
	}
	m.service, err = approval.NewService(approval.Deps{
		Store:               m.store,
		Pages:               m.pages,
		Renderer:            pages.Renderer{},
		Mailer:              mailer,
		Chat:                chat,
		Workflow:            webhook,
		DecideURL:           m.url + "/decide",
		DefaultSlackChannel: m.Slack.DefaultChannel,
		Now:                 m.Now,
		Log:                 m.Log,
		// Sync stays false: an answer waits only for the vote to be stored;
		// emails, pages, Slack and webhooks finish in the background, and
		// Close waits for them (Service.Idle).
	})
	return err
}

// handler is the bot's HTTP surface: pages, /decide, /api, /mcp and, unless
// it runs over Socket Mode (started here, until ctx ends), /slack; with the
// line that says how Slack is reached.
func (m *Main) handler(ctx context.Context) (http.Handler, string) {
	cfg := web.Config{
		Service:  m.service,
		Pages:    pageSource{db: m.pages, legacy: m.legacy, now: m.now},
		PageURL:  m.pages.URL,
		APIToken: m.APIToken,
		APIName:  m.APIName,
		Log:      m.Log,
	}
	slackDesc := "slack:     off (set SLACK_BOT_TOKEN to post requests to Slack)"
	if m.slack != nil {
		app := slackapp.NewApp(m.service, m.slack, m.Log)
		if m.Slack.SocketMode() {
			slackDesc = "slack:     Socket Mode"
			m.wg.Go(func() {
				if err := app.RunSocketMode(ctx, m.slack); err != nil && ctx.Err() == nil {
					m.Log.Error("slack socket mode stopped", "err", err)
				}
			})
		} else {
			slackDesc = "slack:     " + m.url + "/slack/commands and /slack/interactions"
			cfg.Slack = slackapp.NewHandler(app, m.Slack.SigningSecret)
		}
	}

	// /mcp: the MCP tools, calling this bot's own API in memory, under its
	// own host name (without the path of a base URL behind a proxy).
	var handler http.Handler
	selfURL := m.url
	if u, perr := url.Parse(m.url); perr == nil {
		selfURL = u.Scheme + "://" + u.Host
	}
	self := apiclient.New(selfURL, m.APIToken, apiclient.WithHTTPClient(&http.Client{
		Transport: selfTransport(ctx, func() http.Handler { return handler }),
	}))
	cfg.MCP = mcpserver.NewHandler(mcpserver.Config{API: self, Requester: m.MCPRequester, Log: m.Log})
	handler = web.New(cfg)
	return handler, slackDesc
}

// serveOn serves handler on ln in the background; a failure of Serve reaches
// Wait.
func (m *Main) serveOn(ctx context.Context, ln net.Listener, handler http.Handler) {
	m.srv = &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      web.DefaultMaxWait + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	m.serve = make(chan error, 1)
	go func() {
		if err := m.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.serve <- err
		}
	}()
}

// printStarted tells the operator where the bot listens, where its links
// point, and where mail, Slack, the API and MCP stand.
func (m *Main) printStarted(addr net.Addr, mailDesc, slackDesc string) {
	out := m.stdout()
	fmt.Fprintf(out, "approvalbot listening on %s\n", addr)
	fmt.Fprintf(out, "links:     %s\n", m.url)
	if m.BaseURL == "" && linkHost(addr) != addr.String() {
		fmt.Fprintln(out, "           (listening on all interfaces: set -base-url to the address people open)")
	}
	fmt.Fprintf(out, "data:      %s\n", m.DataDir)
	fmt.Fprintln(out, mailDesc)
	fmt.Fprintln(out, slackDesc)
	if m.APIToken == "" {
		fmt.Fprintln(out, "api:       open to anyone who can reach it (set APPROVALBOT_API_TOKEN to require a token)")
	}
	fmt.Fprintf(out, "mcp:       %s/mcp (streamable HTTP; over stdio: go run ./bot mcp)\n", m.url)
	m.Log.Info("started", "addr", addr.String(), "base_url", m.url, "data", m.DataDir)
}

// linkHost is the host:port of links when no base URL is set: the listen
// address, with 127.0.0.1 for "all interfaces" (which is no address to open).
func linkHost(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok || !tcp.IP.IsUnspecified() {
		return a.String()
	}
	return net.JoinHostPort("127.0.0.1", fmt.Sprint(tcp.Port))
}

// Close stops serving (letting requests in flight finish, up to a grace
// period), stops the sweep, waits for the effects still running in the
// background (a webhook being called, an email being sent) to be done and
// recorded, and closes the database. Effects that outlast the grace period are
// taken over by the sweep after a restart.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	m.cancel() // ends long polls and the sweep
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	m.wg.Wait()
	if ierr := m.service.Idle(ctx); ierr != nil {
		m.Log.Warn("stopped before every effect was recorded; the sweep takes them over after a restart", "err", ierr)
	}
	if cerr := m.store.Close(); err == nil {
		err = cerr
	}
	m.srv = nil
	return err
}

// pruneEvery is how often the sweep loop also removes the pages no request
// will serve (see sqlite.Pages.Prune) and the page files of the first version
// whose request has closed.
const pruneEvery = 10 * time.Minute

// sweepLoop runs the sweep every SweepEvery: it closes the requests past their
// expiry (so that their pages go and their webhooks hear of it even if nobody
// opens them) and retries or takes over the effects that are due (a webhook
// that was down, an email that failed, the work of a process that stopped).
// Every CheckpointEvery it also writes a checkpoint of the audit trail.
// Everything due is in the database, so it goes on after a restart.
func (m *Main) sweepLoop(ctx context.Context) {
	t := time.NewTicker(m.SweepEvery)
	defer t.Stop()
	legacy := m.legacy
	pruned, checkpointed := time.Now(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, err := m.service.Sweep(ctx); err != nil && ctx.Err() == nil {
			m.Log.Error("sweep", "err", err)
		} else if st.Advanced > 0 {
			m.Log.Info("sweep: done", "expired", st.Expired, "advanced", st.Advanced, "undelivered", st.Left)
		}
		if time.Since(checkpointed) >= m.CheckpointEvery {
			checkpointed = time.Now()
			if _, err := m.service.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				m.Log.Error("audit checkpoint", "err", err)
			}
		}
		if time.Since(pruned) >= pruneEvery {
			pruned = time.Now()
			m.prune(ctx, &legacy)
		}
	}
}

// prune removes the pages that no request will serve any more.
func (m *Main) prune(ctx context.Context, legacy **legacyPages) {
	now := m.now()
	if n, err := m.pages.Prune(ctx, now.Add(-pruneEvery)); err != nil && ctx.Err() == nil {
		m.Log.Error("prune pages", "err", err)
	} else if n > 0 {
		m.Log.Info("removed pages no request serves", "pages", n)
	}
	if *legacy != nil {
		left, err := (*legacy).Prune(ctx, now)
		if err != nil && ctx.Err() == nil {
			m.Log.Error("prune pages of the first version", "err", err)
		}
		if !left {
			*legacy = nil
		}
	}
}
