package pages

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/local"
	"approvalbot/internal/testing/mailtest"
)

// skipBraces skips inputs holding "{{", which checkHTML takes for a template
// action left in the output.
func skipBraces(t *testing.T, in ...string) {
	for _, s := range in {
		if strings.Contains(s, "{{") {
			t.Skip()
		}
	}
}

// fuzzRequest is fixedRequest with the texts people write replaced by the
// fuzzer's, and one vote carrying comment.
func fuzzRequest(title, details, requester, label, path, comment string) *approval.Request {
	r := fixedRequest()
	r.Title, r.Details, r.Requester = title, details, requester
	r.Links = []approval.Link{{Label: label, URL: "https://example.com/" + path}, {URL: "https://example.com/x?" + path}}
	r.Rule = approval.Rule{Policy: approval.PolicyQuorum(2)}
	r.Votes = []approval.Vote{{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, Comment: comment, At: created.Add(time.Minute)}}
	return r
}

var fuzzSeeds = [][6]string{
	{"Deploy v1.2 to prod", "Release notes:\n- faster", "ci@example.com", "Runbook", "runbooks/deploy", "ship it"},
	{"<script>alert(1)</script>", "</textarea><b>x</b>", "\"><img src=x onerror=alert(1)>", "</a><a href=javascript:alert(1)>", "a\"onmouseover=\"x", "</p><iframe>"},
	{"Approve \u202egnp.exe", "\x00\x1b[2J\a", "ci\u009b", "\u2066x", "%00%0d%0a", "line\r\nline"},
	{"{.Token}", "]]><!--", "&amp;&lt;", "'';!--\"<XSS>=&{()}", "?a=1&b=<2>", "😀\U0010ffff"},
	{"", "", "", "", "", ""},
}

// FuzzPage renders the one-time page, the confirmation step and a result
// page with the fuzzer's texts: each must stay a well-formed document that
// loads nothing, runs no injected script and links to http(s) only (the
// checks of checkHTML).
func FuzzPage(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, title, details, requester, label, path, comment string) {
		skipBraces(t, title, details, requester, label, path, comment)
		r := fuzzRequest(title, details, requester, label, path, comment)
		page, err := Renderer{}.Page(approval.PageView{Request: r, Recipient: r.Recipients[0], Token: testToken, DecideURL: "https://cb.example.com/decide"})
		if err != nil {
			t.Fatalf("Page: %v", err)
		}
		d := checkHTML(t, "page", page, true)
		// The vote's form and the "Delegate to…" form, both to the callback.
		if len(d.scripts) != 1 || len(d.actions) != 2 || d.actions[0] != "https://cb.example.com/decide" || d.actions[1] != "https://cb.example.com/delegate" {
			t.Fatalf("page: %d scripts, form actions %q; want the page's own script and its two forms", len(d.scripts), d.actions)
		}
		var buf bytes.Buffer
		if err := RenderConfirm(&buf, Confirm{Request: r, Token: testToken, Choice: approval.Reject, Comment: comment,
			DecideURL: "https://cb.example.com/decide", Recipient: r.Recipients[0], BackURL: testPageURL}); err != nil {
			t.Fatalf("RenderConfirm: %v", err)
		}
		checkHTML(t, "confirm", buf.Bytes(), true)
		buf.Reset()
		if err := RenderResult(&buf, Result{Kind: ResultAlreadyDecided, Request: closed(r), Message: details}); err != nil {
			t.Fatalf("RenderResult: %v", err)
		}
		checkHTML(t, "result", buf.Bytes(), true)
	})
}

// FuzzEmail renders the email with the fuzzer's texts: its subject stays one
// line, its HTML a well-formed document, and the message composed from it
// reads back (as a mail client reads it) with the same subject and bodies.
func FuzzEmail(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s[0], s[1], s[2], s[3], s[4], s[5])
	}
	f.Fuzz(func(t *testing.T, title, details, requester, label, path, comment string) {
		skipBraces(t, title, details, requester, label, path, comment)
		r := fuzzRequest(title, details, requester, label, path, comment)
		m, err := Renderer{}.Email(approval.EmailView{Request: r, Recipient: r.Recipients[0], PageURL: testPageURL})
		if err != nil {
			t.Fatalf("Email: %v", err)
		}
		if strings.ContainsAny(m.Subject, "\r\n") {
			t.Fatalf("subject %q spans lines", m.Subject)
		}
		checkHTML(t, "email", []byte(m.HTML), false)
		raw, _, err := local.Compose("Approvals <approvals@example.com>", m, created)
		if err != nil {
			t.Fatalf("Compose: %v", err)
		}
		head, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
		for _, line := range bytes.Split(head, []byte("\r\n")) {
			if len(line) > 998 {
				t.Fatalf("header line of %d bytes (RFC 5322 allows 998): %.80q…", len(line), line)
			}
		}
		got, err := mailtest.Parse(raw)
		if err != nil {
			t.Fatalf("Parse: %v\n%s", err, raw)
		}
		lf := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n") }
		// A header's value is read without its surrounding white space.
		if got.Subject != strings.TrimSpace(m.Subject) || lf(got.Text) != lf(m.Text) || lf(got.HTML) != lf(m.HTML) || got.To != m.To {
			t.Fatalf("the composed message reads back differently:\nsubject %q\n   want %q\ntext equal %v, html equal %v, to %q",
				got.Subject, m.Subject, lf(got.Text) == lf(m.Text), lf(got.HTML) == lf(m.HTML), got.To)
		}
	})
}
