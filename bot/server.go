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
	"strings"
	"sync"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/local"
	"approvalbot/bot/slackapp"
	"approvalbot/bot/sqlite"
	"approvalbot/bot/web"
	"approvalbot/pages"
)

// Defaults of the server.
const (
	defaultAddr         = "127.0.0.1:8080"
	defaultData         = ".approvalbot"
	defaultExpireEvery  = 15 * time.Second
	defaultRedeliverMin = 5 * time.Second
	defaultRedeliverMax = 5 * time.Minute
	shutdownGrace       = 10 * time.Second
)

// Main is the embedded server: its configuration, and once started, what it
// runs. main and the end-to-end tests both use it.
type Main struct {
	Addr     string // listen address
	DataDir  string // data folder: database, pages, outbox
	BaseURL  string // address in links; empty means "http://" + the listen address
	APIToken string // bearer token required on /api; empty means none

	SMTP          local.SMTPConfig // SMTP.Addr empty: write mail to the outbox
	MailFrom      string
	WebhookSecret string          // signs webhook bodies when set
	Slack         slackapp.Config // Slack, when enabled

	Now          func() time.Time // clock; nil means time.Now
	ExpireEvery  time.Duration    // how often due requests are closed
	RedeliverMin time.Duration    // first retry delay of undelivered outcomes
	RedeliverMax time.Duration    // cap of the retry delay

	Log    *slog.Logger
	Stdout io.Writer

	// Set by Start.
	url     string
	service *approval.Service
	store   *sqlite.Store
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
	m.MailFrom = strings.TrimSpace(getenv("APPROVALBOT_MAIL_FROM"))
	m.SMTP = local.SMTPConfig{
		Addr:     strings.TrimSpace(getenv("APPROVALBOT_SMTP_ADDR")),
		User:     getenv("APPROVALBOT_SMTP_USER"),
		Password: getenv("APPROVALBOT_SMTP_PASSWORD"),
		From:     m.MailFrom,
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
	return m, nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := strings.TrimSpace(getenv(key)); v != "" {
		return v
	}
	return def
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

// Start opens the data folder and the database, listens, and serves in the
// background along with the expiry and redelivery loops.
func (m *Main) Start(ctx context.Context) (err error) {
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	if m.ExpireEvery <= 0 {
		m.ExpireEvery = defaultExpireEvery
	}
	if m.RedeliverMin <= 0 {
		m.RedeliverMin = defaultRedeliverMin
	}
	if m.RedeliverMax < m.RedeliverMin {
		m.RedeliverMax = max(defaultRedeliverMax, m.RedeliverMin)
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

	ln, err := net.Listen("tcp", m.Addr)
	if err != nil {
		return &exitError{code: exitNotOK, err: fmt.Errorf("listen on %s: %w", m.Addr, err)}
	}
	defer func() {
		if err != nil {
			ln.Close()
		}
	}()
	m.url = strings.TrimRight(m.BaseURL, "/")
	if m.url == "" {
		m.url = "http://" + linkHost(ln.Addr())
	} else if u, perr := url.Parse(m.url); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return usageErr("base URL %q is not an absolute http(s) URL without user, query or fragment", m.BaseURL)
	}

	m.store, err = sqlite.Open(ctx, filepath.Join(m.DataDir, "approvalbot.db"))
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			m.store.Close()
		}
	}()
	pg, err := local.NewPages(filepath.Join(m.DataDir, "pages"), m.url)
	if err != nil {
		return err
	}
	var mailer approval.Mailer
	mailDesc := ""
	if m.SMTP.Addr != "" {
		smtp, err := local.NewSMTP(m.SMTP, m.Now)
		if err != nil {
			return usageErr("APPROVALBOT_SMTP_ADDR: %v", err)
		}
		mailer, mailDesc = smtp, "mail:      SMTP via "+m.SMTP.Addr
	} else {
		outbox, err := local.NewOutbox(filepath.Join(m.DataDir, "outbox"), m.MailFrom, m.Now)
		if err != nil {
			return err
		}
		mailer, mailDesc = outbox, "outbox:    "+outbox.Dir()+" (set APPROVALBOT_SMTP_ADDR to send mail)"
	}
	m.service = &approval.Service{
		Store:     m.store,
		Pages:     pg,
		Renderer:  pages.Renderer{},
		Mailer:    mailer,
		Workflow:  local.NewWebhook(nil, m.WebhookSecret),
		DecideURL: m.url + "/decide",
		Now:       m.Now,
		Log:       m.Log,
	}
	cfg := web.Config{
		Service:  m.service,
		Pages:    pg,
		PageURL:  pg.URL,
		APIToken: m.APIToken,
		Log:      m.Log,
	}

	ctx, m.cancel = context.WithCancel(context.WithoutCancel(ctx))
	slackDesc := "slack:     off (set SLACK_BOT_TOKEN to post requests to Slack)"
	if m.Slack.Enabled() {
		client := slackapp.NewClient(m.Slack)
		m.service.Chat = slackapp.NewChat(client)
		m.service.DefaultSlackChannel = m.Slack.DefaultChannel
		app := slackapp.NewApp(m.service, client, pg.URL, m.Log)
		if m.Slack.SocketMode() {
			slackDesc = "slack:     Socket Mode"
			m.wg.Go(func() {
				if err := app.RunSocketMode(ctx, client); err != nil && ctx.Err() == nil {
					m.Log.Error("slack socket mode stopped", "err", err)
				}
			})
		} else {
			slackDesc = "slack:     " + m.url + "/slack/commands and /slack/interactions"
			cfg.Slack = slackapp.NewHandler(app, m.Slack.SigningSecret)
		}
	}

	m.srv = &http.Server{
		Handler:           web.New(cfg),
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
	m.wg.Go(func() { m.expireLoop(ctx) })
	m.wg.Go(func() { m.redeliverLoop(ctx) })

	out := m.stdout()
	fmt.Fprintf(out, "approvalbot listening on %s\n", ln.Addr())
	fmt.Fprintf(out, "links:     %s\n", m.url)
	if m.BaseURL == "" && linkHost(ln.Addr()) != ln.Addr().String() {
		fmt.Fprintln(out, "           (listening on all interfaces: set -base-url to the address people open)")
	}
	fmt.Fprintf(out, "data:      %s\n", m.DataDir)
	fmt.Fprintln(out, mailDesc)
	fmt.Fprintln(out, slackDesc)
	if m.APIToken == "" {
		fmt.Fprintln(out, "api:       open to anyone who can reach it (set APPROVALBOT_API_TOKEN to require a token)")
	}
	m.Log.Info("started", "addr", ln.Addr().String(), "base_url", m.url, "data", m.DataDir)
	return nil
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
// period), stops the loops and closes the database.
func (m *Main) Close() error {
	if m.srv == nil {
		return nil
	}
	m.cancel() // ends long polls and the loops
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	err := m.srv.Shutdown(ctx)
	m.wg.Wait()
	if cerr := m.store.Close(); err == nil {
		err = cerr
	}
	m.srv = nil
	return err
}

// expireLoop closes the requests past their expiry, so that their pages go and
// their webhooks hear of it even if nobody opens them.
func (m *Main) expireLoop(ctx context.Context) {
	t := time.NewTicker(m.ExpireEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.service.ExpireDue(ctx); err != nil && ctx.Err() == nil {
			m.Log.Error("expire due requests", "err", err)
		}
	}
}

// redeliverLoop retries undelivered outcomes (webhooks that were down): every
// RedeliverMin while all is delivered, backing off exponentially up to
// RedeliverMax while something is not. The undelivered flag is in the database,
// so retries go on after a restart.
func (m *Main) redeliverLoop(ctx context.Context) {
	wait := m.RedeliverMin
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		left, err := m.service.Redeliver(ctx)
		if err != nil && ctx.Err() == nil {
			m.Log.Error("redeliver outcomes", "err", err)
		}
		if err != nil || left > 0 {
			wait = min(wait*2, m.RedeliverMax)
		} else {
			wait = m.RedeliverMin
		}
	}
}
