package main

import (
	"io"
	"net"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServerConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want [3]string // addr, data, base URL
	}{
		{"defaults", nil, nil, [3]string{"127.0.0.1:8080", ".approvalbot", ""}},
		{"env", nil, map[string]string{"APPROVALBOT_ADDR": "127.0.0.1:9000", "APPROVALBOT_DATA": "/tmp/x", "APPROVALBOT_BASE_URL": "https://approvals.example.com"},
			[3]string{"127.0.0.1:9000", "/tmp/x", "https://approvals.example.com"}},
		{"flags win", []string{"-addr", "127.0.0.1:1", "-data", "d", "-base-url", "http://h"}, map[string]string{"APPROVALBOT_ADDR": "127.0.0.1:9000"},
			[3]string{"127.0.0.1:1", "d", "http://h"}},
	} {
		m, err := newMain(tc.args, env(tc.env), io.Discard, io.Discard)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if diff := cmp.Diff(tc.want, [3]string{m.Addr, m.DataDir, m.BaseURL}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	m, err := newMain(nil, env(map[string]string{
		"APPROVALBOT_SMTP_ADDR": "mail.example.com:587", "APPROVALBOT_SMTP_USER": "u", "APPROVALBOT_SMTP_PASSWORD": "p",
		"APPROVALBOT_MAIL_FROM": "bot@example.com", "APPROVALBOT_API_TOKEN": " tok ", "APPROVALBOT_WEBHOOK_SECRET": "s",
	}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{m.SMTP.Addr, m.SMTP.User, m.SMTP.Password, m.SMTP.From, m.MailFrom, m.APIToken, m.WebhookSecret}
	want := []string{"mail.example.com:587", "u", "p", "bot@example.com", "bot@example.com", "tok", "s"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("environment (-want +got):\n%s", diff)
	}
	if _, err := newMain(nil, env(map[string]string{"APPROVALBOT_LOG_LEVEL": "loud"}), io.Discard, io.Discard); exitCode(err, io.Discard) != exitUsage {
		t.Errorf("bad log level: %v, want a usage error", err)
	}
	if m.SMTP.Insecure {
		t.Error("SMTP insecure without APPROVALBOT_SMTP_INSECURE")
	}
	for v, want := range map[string]bool{"1": true, "0": false} {
		m, err := newMain(nil, env(map[string]string{"APPROVALBOT_SMTP_ADDR": "mail.example.com:25", "APPROVALBOT_SMTP_INSECURE": v}), io.Discard, io.Discard)
		if err != nil || m.SMTP.Insecure != want {
			t.Errorf("APPROVALBOT_SMTP_INSECURE=%s: insecure %v (%v), want %v", v, m != nil && m.SMTP.Insecure, err, want)
		}
	}
	if _, err := newMain(nil, env(map[string]string{"APPROVALBOT_SMTP_INSECURE": "yes"}), io.Discard, io.Discard); exitCode(err, io.Discard) != exitUsage {
		t.Errorf("APPROVALBOT_SMTP_INSECURE=yes: %v, want a usage error", err)
	}
}

func TestBadBaseURLRefused(t *testing.T) {
	for _, u := range []string{"approvals.example.com", "ftp://x", "http://h?x=1", "https://user:secret@approvals.example.com", "http://h/#frag"} {
		m, err := newMain([]string{"-addr", "127.0.0.1:0", "-data", t.TempDir(), "-base-url", u}, env(nil), io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		err = m.Start(t.Context())
		if err == nil {
			m.Close()
		}
		if got := exitCode(err, io.Discard); got != exitUsage || !strings.Contains(err.Error(), "base URL") {
			t.Errorf("-base-url %q: exit %d (%v), want 2 naming the base URL", u, got, err)
		}
	}
}

func TestLinkHost(t *testing.T) {
	for _, tc := range []struct {
		addr *net.TCPAddr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, "[::1]:8080"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "127.0.0.1:8080"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9}, "127.0.0.1:9"},
	} {
		if got := linkHost(tc.addr); got != tc.want {
			t.Errorf("linkHost(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// The server collects garbage at GOGC 200 unless GOGC says otherwise.
func TestServerGCPercent(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tc := range []struct {
		gogc string
		want int
	}{{"", defaultGCPercent}, {"50", 100}} {
		debug.SetGCPercent(100)
		if _, err := newMain(nil, env(map[string]string{"GOGC": tc.gogc}), io.Discard, io.Discard); err != nil {
			t.Fatal(err)
		}
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC %q: GC percent %d after newMain, want %d", tc.gogc, got, tc.want)
		}
	}
}
