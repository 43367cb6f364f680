package approval

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxAddress is the longest approver address: RFC 5321 limits a path to 256
// octets, the angle brackets included.
const MaxAddress = 254

// MaxURL is the longest link or webhook URL.
const MaxURL = 2000

// CheckText refuses text that would not show people what it says: invalid
// UTF-8, control characters (NUL, ESC, BEL, DEL, C1 controls…; line breaks
// and tabs are allowed when multiline is true) and the bidirectional
// embeddings, overrides and isolates U+202A..U+202E and U+2066..U+2069, which
// reorder what follows them ("Approve \u202egnp.exe" shows as "Approve
// exe.png"). Its error is a *ValidationError naming field, whose message names
// the character and where it is.
func CheckText(field, s string, multiline bool) error {
	return checkText(field, field, s, multiline)
}

// checkText is CheckText, its message calling the text noun.
func checkText(field, noun, s string, multiline bool) error {
	if !utf8.ValidString(s) {
		return Invalidf(field, "%s must be valid UTF-8", noun)
	}
	pos := 0
	for _, r := range s {
		pos++
		switch {
		case multiline && (r == '\n' || r == '\r' || r == '\t' || r == '\u2028' || r == '\u2029'):
		case r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '\u2028' || r == '\u2029':
			what := "control characters"
			if !multiline && (r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029') {
				what = "line breaks"
			}
			return Invalidf(field, "%s must not contain %s (%s at character %d)", noun, what, codePoint(r), pos)
		case bidiControl(r):
			return Invalidf(field, "%s must not contain bidirectional control characters, which make text show differently from what it says (%s at character %d)", noun, codePoint(r), pos)
		}
	}
	return nil
}

// bidiControl reports whether r is a bidirectional embedding, override or
// isolate (or the pop that ends one).
func bidiControl(r rune) bool {
	return (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069')
}

func codePoint(r rune) string { return fmt.Sprintf("U+%04X", r) }

// checkAddress refuses an approver address longer than MaxAddress or holding
// characters CheckText refuses.
func checkAddress(field, a string) error {
	if len(a) > MaxAddress {
		return Invalidf(field, "approver %q is longer than %d characters", truncateRunes(a, 40)+"…", MaxAddress)
	}
	return checkText(field, "approver", a, false)
}

// checkURLText refuses a URL holding white space, control or bidirectional
// control characters, or the characters < > " that no URL holds unencoded
// (RFC 3986) and that chat markup and HTML read as delimiters.
func checkURLText(field, raw string) error {
	if err := CheckText(field, raw, false); err != nil {
		return err
	}
	for _, r := range raw {
		switch {
		case unicode.IsSpace(r):
			return Invalidf(field, "%s: a URL must not contain spaces (percent-encode them as %%20)", field)
		case r == '<' || r == '>' || r == '"':
			return Invalidf(field, "%s: a URL must not contain %c unencoded (percent-encode it as %%%02X)", field, r, r)
		}
	}
	return nil
}

// checkTexts checks the texts of a request that people read: title,
// details, requester, and the links' labels and URLs.
func checkTexts(r *Request, links []Link) error {
	for _, f := range []struct {
		name, text string
		multiline  bool
	}{
		{"title", r.Title, false},
		{"details", r.Details, true},
		{"requester", r.Requester, false},
	} {
		if err := CheckText(f.name, f.text, f.multiline); err != nil {
			return err
		}
	}
	for _, l := range links {
		if err := checkText("links", "link label", strings.TrimSpace(l.Label), false); err != nil {
			return err
		}
		if err := checkURLText("links", strings.TrimSpace(l.URL)); err != nil {
			return err
		}
	}
	if r.WebhookURL != "" {
		return checkURLText("webhookURL", r.WebhookURL)
	}
	return nil
}

// truncateRunes returns the first n characters of s.
func truncateRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}
