package main

import (
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpSink is a minimal SMTP server on 127.0.0.1 that keeps every message.
type smtpSink struct {
	addr string
	mu   sync.Mutex
	msgs []string
}

func newSMTPSink(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &smtpSink{addr: ln.Addr().String()}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *smtpSink) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	tp.PrintfLine("220 sink")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		switch cmd, _, _ := strings.Cut(line, " "); strings.ToUpper(cmd) {
		case "EHLO", "HELO":
			tp.PrintfLine("250 sink")
		case "DATA":
			tp.PrintfLine("354 go on")
			b, _ := io.ReadAll(tp.DotReader())
			s.mu.Lock()
			s.msgs = append(s.msgs, string(b))
			s.mu.Unlock()
			tp.PrintfLine("250 ok")
		case "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("250 ok")
		}
	}
}

func (s *smtpSink) messages() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...)
}

// TestSMTPInsteadOfOutbox: with APPROVALBOT_SMTP_ADDR the emails go to the SMTP
// server, from APPROVALBOT_MAIL_FROM, and the outbox stays empty.
func TestSMTPInsteadOfOutbox(t *testing.T) {
	sink := newSMTPSink(t)
	data := t.TempDir()
	m, err := newMain([]string{"-addr", "127.0.0.1:0", "-data", data}, env(map[string]string{
		"APPROVALBOT_SMTP_ADDR": sink.addr, "APPROVALBOT_MAIL_FROM": "Approvals <approvals@example.org>",
	}), io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	s := &server{t: t, m: m, url: m.URL(), data: data}
	s.create(`{"title":"By SMTP","approvers":["a@example.com","b@example.com"],"timeoutSeconds":600}`)
	msgs := sink.messages()
	if len(msgs) != 2 {
		t.Fatalf("the SMTP server got %d messages, want 2", len(msgs))
	}
	for _, msg := range msgs {
		if !strings.Contains(msg, "From: \"Approvals\" <approvals@example.org>") || !strings.Contains(msg, s.url+"/p/") {
			t.Errorf("message lacks the sender or the page link:\n%s", msg)
		}
	}
	if links := outboxLinks(t, data); len(links) != 0 {
		t.Errorf("the outbox holds %d messages, want none", len(links))
	}
}
