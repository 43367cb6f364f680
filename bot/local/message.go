package local

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"approvalbot/bot/approval"
)

// DefaultFrom is the sender address when none is configured.
const DefaultFrom = "approvalbot@localhost"

// Compose renders m as an RFC 5322 message: headers, then a multipart/alternative
// body with a text part and an HTML part, both quoted-printable UTF-8. It returns
// the message and its Message-ID.
func Compose(from string, m approval.Email, now time.Time) (msg []byte, messageID string, err error) {
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return nil, "", fmt.Errorf("compose mail: sender %q: %w", from, err)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, "", fmt.Errorf("compose mail: recipient: %w", err)
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return nil, "", fmt.Errorf("compose mail: subject has a line break")
	}
	domain := sender.Address[strings.LastIndexByte(sender.Address, '@')+1:]
	messageID = "<" + randomHex(16) + "@" + domain + ">"

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ typ, content string }{
		{"text/plain; charset=utf-8", m.Text},
		{"text/html; charset=utf-8", m.HTML},
	} {
		pw, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.typ},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, "", fmt.Errorf("compose mail: %w", err)
		}
		qp := quotedprintable.NewWriter(pw)
		if _, err := qp.Write([]byte(crlf(part.content))); err != nil {
			return nil, "", fmt.Errorf("compose mail: %w", err)
		}
		if err := qp.Close(); err != nil {
			return nil, "", fmt.Errorf("compose mail: %w", err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", fmt.Errorf("compose mail: %w", err)
	}

	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", sender.String())
	header("To", to.String())
	header("Subject", foldWords(mime.QEncoding.Encode("utf-8", m.Subject)))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID)
	header("MIME-Version", "1.0")
	header("Content-Type", `multipart/alternative; boundary="`+mw.Boundary()+`"`)
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), messageID, nil
}

// foldWords puts each encoded word of an RFC 2047 header value (which
// mime.WordEncoder joins with single spaces) on a line of its own: a long
// non-ASCII subject would otherwise be one line longer than the 998 characters
// RFC 5322 allows. Unfolding gives back the same value.
func foldWords(v string) string { return strings.ReplaceAll(v, "?= =?", "?=\r\n =?") }

// crlf turns every line ending into CRLF, as RFC 5322 requires.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
