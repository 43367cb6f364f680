package local

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeSMTP is a one-message SMTP server on 127.0.0.1 that records what it got.
type fakeSMTP struct {
	addr string
	tls  *tls.Config // nil: no STARTTLS offered
	auth bool        // offer AUTH PLAIN
	done chan smtpSession
}

type smtpSession struct {
	TLS      bool
	Auth     string // decoded PLAIN credentials, "\x00user\x00password"
	From, To string
	Data     string
}

func startFakeSMTP(t *testing.T, tlsConf *tls.Config, auth bool) *fakeSMTP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeSMTP{addr: ln.Addr().String(), tls: tlsConf, auth: auth, done: make(chan smtpSession, 1)}
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		f.done <- f.serve(conn)
	}()
	return f
}

func (f *fakeSMTP) serve(conn net.Conn) smtpSession {
	var s smtpSession
	tp := textproto.NewConn(conn)
	tp.PrintfLine("220 fake ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return s
		}
		cmd, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(cmd) {
		case "EHLO", "HELO":
			var ext []string
			if f.tls != nil && !s.TLS {
				ext = append(ext, "STARTTLS")
			}
			if f.auth {
				ext = append(ext, "AUTH PLAIN")
			}
			tp.PrintfLine("250-fake")
			for _, e := range ext {
				tp.PrintfLine("250-%s", e)
			}
			tp.PrintfLine("250 HELP")
		case "STARTTLS":
			tp.PrintfLine("220 go ahead")
			tc := tls.Server(conn, f.tls)
			if err := tc.Handshake(); err != nil {
				return s
			}
			conn, s.TLS = tc, true
			tp = textproto.NewConn(tc)
		case "AUTH":
			_, cred, _ := strings.Cut(arg, " ")
			b, _ := base64.StdEncoding.DecodeString(cred)
			s.Auth = string(b)
			tp.PrintfLine("235 ok")
		case "MAIL":
			s.From = arg
			tp.PrintfLine("250 ok")
		case "RCPT":
			s.To = arg
			tp.PrintfLine("250 ok")
		case "DATA":
			tp.PrintfLine("354 go on")
			b, _ := io.ReadAll(tp.DotReader())
			s.Data = string(b)
			tp.PrintfLine("250 queued")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return s
		default:
			tp.PrintfLine("502 unknown")
		}
	}
}

func (f *fakeSMTP) session(t *testing.T) smtpSession {
	t.Helper()
	select {
	case s := <-f.done:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the fake SMTP server got no session")
		return smtpSession{}
	}
}

func TestSMTPPlain(t *testing.T) {
	f := startFakeSMTP(t, nil, false)
	m, err := NewSMTP(SMTPConfig{Addr: f.addr, From: "bot@example.org"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), testMail); err != nil {
		t.Fatalf("Send: %v", err)
	}
	s := f.session(t)
	if got, want := []string{s.From, s.To}, []string{"FROM:<bot@example.org>", "TO:<alice@example.com>"}; !cmp.Equal(got, want) {
		t.Errorf("envelope = %q, want %q", got, want)
	}
	got, _ := readMail(t, []byte(strings.ReplaceAll(s.Data, "\n", "\r\n")))
	if got.Text != testMail.Text || got.HTML != testMail.HTML {
		t.Errorf("message bodies differ from what was sent:\n%+v", got)
	}
}

func TestSMTPStartTLSAndAuth(t *testing.T) {
	// httptest's TLS server carries a certificate for 127.0.0.1 and example.com.
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())

	f := startFakeSMTP(t, ts.TLS, true)
	m, err := NewSMTP(SMTPConfig{
		Addr: f.addr, User: "bot", Password: "pw", From: "bot@example.org",
		TLS: &tls.Config{RootCAs: roots, ServerName: "example.com"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), testMail); err != nil {
		t.Fatalf("Send: %v", err)
	}
	s := f.session(t)
	if !s.TLS {
		t.Error("the session was not upgraded with STARTTLS")
	}
	if got, want := s.Auth, "\x00bot\x00pw"; got != want {
		t.Errorf("AUTH PLAIN credentials = %q, want %q", got, want)
	}
	if s.Data == "" {
		t.Error("no message data")
	}
}

func TestSMTPUserWithoutAuthOffered(t *testing.T) {
	f := startFakeSMTP(t, nil, false)
	m, err := NewSMTP(SMTPConfig{Addr: f.addr, User: "bot", Password: "pw"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(context.Background(), testMail)
	if err == nil || strings.Contains(err.Error(), "pw") {
		t.Errorf("Send = %v, want an error that does not show the password", err)
	}
}

func TestNewSMTPChecksConfig(t *testing.T) {
	for _, cfg := range []SMTPConfig{{Addr: "no-port"}, {Addr: "mail:25", From: "not an address"}} {
		if _, err := NewSMTP(cfg, nil); err == nil {
			t.Errorf("NewSMTP(%+v) succeeded, want an error", cfg)
		}
	}
}

// A server other than localhost that offers no STARTTLS gets nothing: the
// messages carry one-time links that vote. APPROVALBOT_SMTP_INSECURE=1
// (Insecure) allows it.
func TestSMTPRequiresTLSExceptToLocalhost(t *testing.T) {
	for _, tc := range []struct {
		name     string
		addr     string
		insecure bool
		wantSent bool
	}{
		{"remote without STARTTLS", "mail.example.com:25", false, false},
		{"remote IP without STARTTLS", "192.0.2.25:587", false, false},
		{"remote, insecure allowed", "mail.example.com:25", true, true},
		{"localhost", "localhost:25", false, true},
		{"loopback IPv6", "[::1]:25", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startFakeSMTP(t, nil, false)
			m, err := NewSMTP(SMTPConfig{Addr: tc.addr, From: "bot@example.org", Insecure: tc.insecure}, nil)
			if err != nil {
				t.Fatal(err)
			}
			m.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, f.addr) // the name is what counts
			}
			err = m.Send(context.Background(), testMail)
			s := f.session(t)
			if tc.wantSent {
				if err != nil || s.Data == "" {
					t.Errorf("Send: %v, data %d bytes; want the message sent", err, len(s.Data))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "APPROVALBOT_SMTP_INSECURE=1") {
				t.Errorf("Send: %v, want a refusal naming APPROVALBOT_SMTP_INSECURE=1", err)
			}
			if s.From != "" || s.Data != "" {
				t.Errorf("the server got MAIL %q and %d bytes of data, want nothing", s.From, len(s.Data))
			}
		})
	}
}

// Port 465 is TLS from the first byte.
func TestSMTPImplicitTLS(t *testing.T) {
	ts := httptest.NewTLSServer(http.NotFoundHandler())
	defer ts.Close()
	roots := x509.NewCertPool()
	roots.AddCert(ts.Certificate())
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ts.TLS)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f := &fakeSMTP{addr: ln.Addr().String(), done: make(chan smtpSession, 1)}
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		s := f.serve(conn)
		s.TLS = true
		f.done <- s
	}()
	m, err := NewSMTP(SMTPConfig{Addr: "mail.example.com:465", From: "bot@example.org", TLS: &tls.Config{RootCAs: roots, ServerName: "example.com"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, f.addr)
	}
	if err := m.Send(context.Background(), testMail); err != nil {
		t.Fatalf("Send over port 465: %v", err)
	}
	if s := f.session(t); s.Data == "" {
		t.Error("no message data over implicit TLS")
	}
}
