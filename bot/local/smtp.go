package local

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// SMTPConfig says how to reach the mail server.
type SMTPConfig struct {
	Addr     string // host:port; port 465 means TLS from the first byte
	User     string // empty: no authentication
	Password string
	From     string // sender address; empty means DefaultFrom
	// TLS is the TLS configuration for STARTTLS and port 465; nil means the
	// system roots and the host of Addr as server name.
	TLS *tls.Config
	// Timeout bounds one whole delivery; zero means 30 seconds.
	Timeout time.Duration
	// Insecure allows sending in clear text to a server other than
	// localhost that offers no STARTTLS (APPROVALBOT_SMTP_INSECURE=1). The
	// messages carry one-time links that vote: by default such a server is
	// refused.
	Insecure bool
}

// SMTP is a mailer that sends each message over SMTP. It upgrades the connection
// with STARTTLS whenever the server offers it, and refuses to send in clear
// text to any server but localhost (127.0.0.0/8, ::1, "localhost") unless
// SMTPConfig.Insecure says so: the messages hold one-time links that vote.
// Port 465 is TLS from the first byte. It authenticates (PLAIN) when a user is
// set, which net/smtp allows only over TLS or to localhost.
type SMTP struct {
	cfg  SMTPConfig
	host string
	now  func() time.Time
	// dial connects to the server; nil means net.Dialer (tests reach a
	// server under another name through it).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

var _ approval.Mailer = (*SMTP)(nil)

// NewSMTP checks cfg and returns the mailer. now is the clock; nil means time.Now.
func NewSMTP(cfg SMTPConfig, now func() time.Time) (*SMTP, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("SMTP address %q: want host:port", cfg.Addr)
	}
	if cfg.From == "" {
		cfg.From = DefaultFrom
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("sender address %q: %w", cfg.From, err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	if now == nil {
		now = time.Now
	}
	return &SMTP{cfg: cfg, host: host, now: now}, nil
}

// Send delivers m through the configured server.
func (s *SMTP) Send(ctx context.Context, m approval.Email) error {
	if err := s.send(ctx, m); err != nil {
		return fmt.Errorf("smtp %s: %w", s.cfg.Addr, err)
	}
	return nil
}

func (s *SMTP) send(ctx context.Context, m approval.Email) error {
	msg, _, err := Compose(s.cfg.From, m, s.now())
	if err != nil {
		return err
	}
	from, _ := mail.ParseAddress(s.cfg.From)
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return fmt.Errorf("recipient: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	tlsConf := s.tlsConfig()
	dial := s.dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	_, port, _ := net.SplitHostPort(s.cfg.Addr)
	encrypted := port == "465"
	if encrypted {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			conn.Close()
			return fmt.Errorf("tls: %w", err)
		}
		conn = tc
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok && !encrypted {
		if err := c.StartTLS(tlsConf); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
		encrypted = true
	}
	if !encrypted && !s.cfg.Insecure && !isLocalhost(s.host) {
		return errors.New("the server offers no STARTTLS: refusing to send one-time links in clear text (use a server with STARTTLS or port 465, or set APPROVALBOT_SMTP_INSECURE=1)")
	}
	if s.cfg.User != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("a user is configured but the server offers no AUTH")
		}
		if err := c.Auth(smtp.PlainAuth("", s.cfg.User, s.cfg.Password, s.host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(from.Address); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	if err := c.Rcpt(to.Address); err != nil {
		return fmt.Errorf("rcpt to: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("quit: %w", err)
	}
	return nil
}

// isLocalhost reports whether host names this machine: "localhost" or a
// loopback address.
func isLocalhost(host string) bool {
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *SMTP) tlsConfig() *tls.Config {
	if s.cfg.TLS != nil {
		return s.cfg.TLS
	}
	return &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
}
