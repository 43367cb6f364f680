// Package mailtest reads mail back as a mail client would: tests and tools use
// it to check what the outbox or an SMTP server received.
package mailtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"

	"approvalbot/bot/approval"
)

// Parse reads a message as local.Compose writes it (or any single-part or
// multipart/alternative RFC 5322 message) back into an approval.Email: the
// recipient's bare address, the decoded subject, and the text and HTML bodies.
// Tests and tools use it to read the outbox as a mail client would.
func Parse(raw []byte) (approval.Email, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return approval.Email{}, fmt.Errorf("parse mail: %w", err)
	}
	to, err := mail.ParseAddress(msg.Header.Get("To"))
	if err != nil {
		return approval.Email{}, fmt.Errorf("parse mail: To: %w", err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return approval.Email{}, fmt.Errorf("parse mail: Subject: %w", err)
	}
	m := approval.Email{To: to.Address, Subject: subject}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		return approval.Email{}, fmt.Errorf("parse mail: Content-Type: %w", err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		body, err := decodePart(msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
		if err != nil {
			return approval.Email{}, fmt.Errorf("parse mail: %w", err)
		}
		return withBody(m, mt, body), nil
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			return m, nil
		}
		if err != nil {
			return approval.Email{}, fmt.Errorf("parse mail: part: %w", err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body, err := decodePart(p.Header.Get("Content-Transfer-Encoding"), p)
		if err != nil {
			return approval.Email{}, fmt.Errorf("parse mail: part %s: %w", ct, err)
		}
		m = withBody(m, ct, body)
	}
}

func decodePart(encoding string, r io.Reader) (string, error) {
	if strings.EqualFold(encoding, "quoted-printable") {
		r = quotedprintable.NewReader(r)
	}
	b, err := io.ReadAll(r)
	return strings.ReplaceAll(string(b), "\r\n", "\n"), err
}

func withBody(m approval.Email, contentType, body string) approval.Email {
	switch contentType {
	case "text/plain", "":
		m.Text = body
	case "text/html":
		m.HTML = body
	}
	return m
}
