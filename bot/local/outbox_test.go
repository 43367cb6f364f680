package local

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
)

var testMail = approval.Email{
	To:      "alice@example.com",
	Subject: "Approval needed: Déploiement v1.2",
	Text:    "Please decide.\nOpen http://127.0.0.1:8080/p/abcdefghijklmnopqrstuv\n" + strings.Repeat("long line ", 20),
	HTML:    `<p>Please decide: <a href="http://127.0.0.1:8080/p/abcdefghijklmnopqrstuv">open</a></p>`,
}

// parsedMail is what a mail client sees in a message.
type parsedMail struct {
	From, To, Subject string
	Text, HTML        string
}

// readMail parses an RFC 5322 multipart/alternative message.
func readMail(t *testing.T, raw []byte) (parsedMail, mail.Header) {
	t.Helper()
	if strings.Contains(strings.ReplaceAll(string(raw), "\r\n", ""), "\n") {
		t.Errorf("message has a bare LF line ending")
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("not an RFC 5322 message: %v", err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject: %v", err)
	}
	got := parsedMail{From: msg.Header.Get("From"), To: msg.Header.Get("To"), Subject: subject}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("Content-Type = %q, want multipart/alternative", msg.Header.Get("Content-Type"))
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("part: %v", err)
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part Content-Transfer-Encoding = %q, want quoted-printable", cte)
		}
		b, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatalf("part body: %v", err)
		}
		body := strings.ReplaceAll(string(b), "\r\n", "\n")
		switch p.Header.Get("Content-Type") {
		case "text/plain; charset=utf-8":
			got.Text = body
		case "text/html; charset=utf-8":
			got.HTML = body
		default:
			t.Errorf("unexpected part %q", p.Header.Get("Content-Type"))
		}
	}
	return got, msg.Header
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	o, err := NewOutbox(dir, "Approval Bot <bot@example.org>", func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for range 2 {
		if err := o.Send(ctx, testMail); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 2 {
		t.Fatalf("outbox holds %d .eml files, want 2", len(files))
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("outbox holds %d entries, want only the 2 messages", len(entries))
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	got, h := readMail(t, raw)
	want := parsedMail{
		From:    `"Approval Bot" <bot@example.org>`,
		To:      "<alice@example.com>",
		Subject: testMail.Subject,
		Text:    testMail.Text,
		HTML:    testMail.HTML,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message (-want +got):\n%s", diff)
	}
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date = %v (%v), want %v", d, err, now)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.org>") {
		t.Errorf("Message-ID = %q, want <...@example.org>", id)
	}
	if got := h.Get("MIME-Version"); got != "1.0" {
		t.Errorf("MIME-Version = %q, want 1.0", got)
	}
	for _, line := range strings.Split(string(raw), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line of %d characters exceeds RFC 5322's 998", len(line))
		}
	}
}

func TestComposeRefusesBadInput(t *testing.T) {
	now := time.Now()
	for name, tc := range map[string]struct {
		from string
		m    approval.Email
	}{
		"bad sender":      {"not an address", testMail},
		"bad recipient":   {DefaultFrom, approval.Email{To: "nobody", Subject: "x"}},
		"header injected": {DefaultFrom, approval.Email{To: "a@example.com", Subject: "x\r\nBcc: eve@example.com"}},
	} {
		if _, _, err := Compose(tc.from, tc.m, now); err == nil {
			t.Errorf("%s: Compose succeeded, want an error", name)
		}
	}
}

// A long subject in a non-Latin script is folded into lines a mail server
// accepts (RFC 5322: at most 998 characters; one encoded word a line here) and
// reads back whole.
func TestComposeFoldsLongSubjects(t *testing.T) {
	for _, subject := range []string{
		"Approval needed: " + strings.Repeat("本番環境へのデプロイ", 20),
		"Approval needed: " + strings.Repeat("🚀 déploiement ", 30),
		"Approval needed: " + strings.Repeat("deploy ", 28),
	} {
		subject = strings.TrimSpace(subject)
		m := testMail
		m.Subject = subject
		raw, _, err := Compose(DefaultFrom, m, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		head, _, _ := strings.Cut(string(raw), "\r\n\r\n")
		for _, line := range strings.Split(head, "\r\n") {
			if len(line) > 100 && strings.Contains(line, "?=") {
				t.Errorf("header line of %d characters, want one encoded word a line: %.100q", len(line), line)
			}
			if len(line) > 998 {
				t.Errorf("header line of %d characters exceeds RFC 5322's 998", len(line))
			}
		}
		got, _ := readMail(t, raw)
		if got.Subject != subject {
			t.Errorf("subject read back as %q, want %q", got.Subject, subject)
		}
	}
}
