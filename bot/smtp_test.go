package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/textproto"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"approvalbot/bot/approval"
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
	r := s.create(`{"title":"By SMTP","approvers":["a@example.com","b@example.com"],"timeoutSeconds":600}`)
	s.idle() // the emails are sent right after the answer, in the background
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
	for _, n := range s.get(r.ID).Notifications {
		if n.State != "sent" || n.Channel != "email" {
			t.Errorf("notification %+v, want sent by email", n)
		}
	}
}

// TestEveryEmailFailing (issue 9): with the SMTP server down every email
// fails; each is retried with backoff, and once all are given up the request
// closes as canceled with the reason notification_failed. A client waiting
// with --wait returns then, with exit code 1 and the reason, instead of
// waiting out the request's timeout, and the webhook hears of it.
func TestEveryEmailFailing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close() // nothing listens there: every connection is refused
	hook := newWebhook(t)
	clock := &fakeClock{now: time.Now()}
	s := startServer(t, t.TempDir(), func(m *Main) {
		m.Now = clock.Now
		m.SMTP.Addr = down
	})

	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"bot", "request", "--server", s.url, "--title", "Deploy", "--timeout", "1h",
			"--approver", "a@example.com", "--approver", "b@example.com", "--webhook", hook.srv.URL, "--wait"}, env(nil), out, io.Discard)
	}()
	idLine := regexp.MustCompile(`id:\s+([a-z2-7]{16})`)
	eventually(t, "the client to print the id", func() bool { return idLine.MatchString(out.String()) })
	id := idLine.FindStringSubmatch(out.String())[1]

	// The sweep retries the emails on the core's schedule (1 s, 2 s, 4 s ...
	// at most 64 s before the last of approval.MaxAttempts): the clock moves
	// on past each retry time, well within the request's hour.
	sweeps := 0
	for ; sweeps < 3*approval.MaxAttempts; sweeps++ {
		s.idle()
		r := s.get(id)
		if r.Status != "pending" {
			break
		}
		for _, n := range r.Notifications {
			if n.State == "sent" {
				t.Fatalf("notification %+v is sent although SMTP is down", n)
			}
		}
		s.sweep(clock, 65*time.Second)
	}
	closedAt := time.Now()
	r := s.get(id)
	if r.Status != "canceled" || r.Reason != "notification_failed" || r.Decision != nil {
		t.Fatalf("after %d sweeps the request is %s (reason %q), want canceled with reason notification_failed", sweeps, r.Status, r.Reason)
	}
	if sweeps != approval.MaxAttempts-1 {
		t.Errorf("closed after %d sweeps, want %d (every email tried %d times)", sweeps, approval.MaxAttempts-1, approval.MaxAttempts)
	}
	if len(r.Notifications) != 2 {
		t.Errorf("notifications %+v, want one for each approver", r.Notifications)
	}
	for _, n := range r.Notifications {
		if n.State != "failed" || n.Channel != "email" || !strings.Contains(n.Error, down) {
			t.Errorf("notification %+v, want failed by email with the SMTP error", n)
		}
	}

	select {
	case err := <-done:
		if code := exitCode(err, io.Discard); code != exitNotOK {
			t.Errorf("request --wait: exit %d (%v), want 1", code, err)
		}
		t.Logf("the waiting client returned %s after the request closed", time.Since(closedAt))
	case <-time.After(20 * time.Second):
		t.Fatal("the waiting client did not return after the request was canceled")
	}
	for _, want := range []string{"status:     canceled", "reason:     notification_failed (no approver could be reached)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
	}
	var got bytes.Buffer
	if err := run(context.Background(), []string{"bot", "get", id, "--server", s.url}, env(nil), &got, io.Discard); exitCode(err, io.Discard) != 0 {
		t.Errorf("bot get: %v", err)
	}
	for _, want := range []string{"notify:     email to a@example.com: failed (smtp " + down, "reason:     notification_failed"} {
		if !strings.Contains(got.String(), want) {
			t.Errorf("bot get lacks %q:\n%s", want, got.String())
		}
	}
	eventually(t, "the webhook", func() bool { return len(hook.results()) == 1 })
	if got := hook.results()[0]; got.RequestID != id || got.Decision != "canceled" || got.Reason != "notification_failed" {
		t.Errorf("webhook got %+v, want canceled with reason notification_failed", got)
	}
}
