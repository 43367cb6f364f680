package pages

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// voidElements have no end tag.
var voidElements = map[string]bool{
	"area": true, "base": true, "br": true, "col": true, "embed": true, "hr": true,
	"img": true, "input": true, "link": true, "meta": true, "source": true, "track": true, "wbr": true,
}

// reporter is the part of *testing.T that checkHTML uses, so that a test can
// check the checker.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

// recorder is a reporter that remembers whether anything failed.
type recorder struct{ failed []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failed = append(r.failed, fmt.Sprintf(format, args...))
}

// parsedDoc is what checkHTML learned about a document.
type parsedDoc struct {
	metaCSP string
	styles  []string // contents of every <style>
	scripts []string // contents of every <script>
	actions []string // every form action
}

// checkHTML fails t unless body is a well-formed HTML document, stricter than
// what browsers accept: a doctype first, every non-void element explicitly
// closed in order, no duplicate attribute or id, every id reference resolved, no
// inline event handler, no external resource (no src attribute, no <link>, no
// <img>, no <iframe>/<object>/<embed>), links to http(s) only. Pages served to a
// browser (web) also carry no style attribute (the CSP forbids them) and the
// meta tags every page needs.
func checkHTML(t reporter, name string, body []byte, web bool) parsedDoc {
	t.Helper()
	var (
		d       parsedDoc
		stack   []string
		ids     = map[string]bool{}
		refs    []string
		metas   = map[string]string{}
		title   strings.Builder
		inTitle bool
		lang    string
		first   = true
	)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf("%s: "+format, append([]any{name}, args...)...)
	}
	z := html.NewTokenizer(bytes.NewReader(body))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			if err := z.Err(); !errors.Is(err, io.EOF) {
				fail("tokenizer error: %v", err)
			}
			break
		}
		tok := z.Token()
		if first && !(tt == html.TextToken && strings.TrimSpace(tok.Data) == "") {
			if tt != html.DoctypeToken || !strings.EqualFold(tok.Data, "html") {
				fail("document does not start with <!doctype html>")
			}
			first = false
		}
		switch tt {
		case html.StartTagToken, html.SelfClosingTagToken:
			if tt == html.SelfClosingTagToken && !voidElements[tok.Data] {
				fail("<%s/> is not a void element and cannot self-close", tok.Data)
			}
			seen := map[string]bool{}
			attr := map[string]string{}
			for _, a := range tok.Attr {
				if seen[a.Key] {
					fail("<%s> repeats attribute %s", tok.Data, a.Key)
				}
				seen[a.Key] = true
				attr[a.Key] = a.Val
				switch {
				case strings.HasPrefix(a.Key, "on"):
					fail("<%s> has an inline event handler %s", tok.Data, a.Key)
				case a.Key == "src" || a.Key == "srcset" || a.Key == "poster" || a.Key == "background":
					fail("<%s> loads a resource: %s=%q", tok.Data, a.Key, a.Val)
				case a.Key == "style" && web:
					fail("<%s> has a style attribute, which the CSP blocks", tok.Data)
				case a.Key == "id":
					if ids[a.Val] {
						fail("duplicate id %q", a.Val)
					}
					ids[a.Val] = true
				case a.Key == "for":
					refs = append(refs, a.Val)
				case a.Key == "aria-labelledby" || a.Key == "aria-describedby" || a.Key == "aria-controls":
					refs = append(refs, strings.Fields(a.Val)...)
				}
			}
			switch tok.Data {
			case "link", "img", "iframe", "object", "embed", "frame", "video", "audio", "source", "base":
				fail("<%s> is not allowed: pages load nothing", tok.Data)
			case "a":
				if h, ok := attr["href"]; !ok || !(strings.HasPrefix(h, "https://") || strings.HasPrefix(h, "http://")) {
					fail("<a href=%q> is not an http(s) link", h)
				}
			case "form":
				d.actions = append(d.actions, attr["action"])
				if !strings.EqualFold(attr["method"], "post") {
					fail("<form> method is %q, want post", attr["method"])
				}
			case "meta":
				switch {
				case attr["http-equiv"] != "":
					metas[strings.ToLower(attr["http-equiv"])] = attr["content"]
				case attr["name"] != "":
					metas[attr["name"]] = attr["content"]
				case attr["charset"] != "":
					metas["charset"] = attr["charset"]
				}
			case "html":
				lang = attr["lang"]
			case "title":
				inTitle = true
			case "script", "style":
				// Raw text: the tokenizer returns the whole content as one token.
				if z.Next() == html.TextToken {
					content := string(z.Text())
					if tok.Data == "script" {
						d.scripts = append(d.scripts, content)
					} else {
						d.styles = append(d.styles, content)
					}
					if z.Next() != html.EndTagToken {
						fail("<%s> not closed", tok.Data)
						continue
					}
				}
				// The end tag was consumed: nothing to push.
				continue
			}
			if tt == html.StartTagToken && !voidElements[tok.Data] {
				stack = append(stack, tok.Data)
			}
		case html.EndTagToken:
			if voidElements[tok.Data] {
				fail("end tag </%s> for a void element", tok.Data)
				continue
			}
			if len(stack) == 0 || stack[len(stack)-1] != tok.Data {
				fail("</%s> does not close the open element (open: %v)", tok.Data, stack)
				continue
			}
			stack = stack[:len(stack)-1]
			if tok.Data == "title" {
				inTitle = false
			}
		case html.TextToken:
			if inTitle {
				title.WriteString(tok.Data)
			}
			if strings.Contains(tok.Data, "{{") {
				fail("template action left in the output: %q", tok.Data)
			}
		}
	}
	if len(stack) != 0 {
		fail("elements never closed: %v", stack)
	}
	for _, ref := range refs {
		if !ids[ref] {
			fail("reference to missing id %q", ref)
		}
	}
	if lang != "en" {
		fail(`<html lang=%q>, want "en"`, lang)
	}
	if strings.TrimSpace(title.String()) == "" {
		fail("empty <title>")
	}
	if !strings.EqualFold(metas["charset"], "utf-8") {
		fail("no <meta charset=utf-8>")
	}
	if !strings.Contains(metas["viewport"], "width=device-width") {
		fail("no viewport meta")
	}
	if web {
		if metas["referrer"] != "no-referrer" {
			fail(`no <meta name="referrer" content="no-referrer">`)
		}
		if !strings.Contains(metas["robots"], "noindex") {
			fail("no robots noindex meta")
		}
		d.metaCSP = metas["content-security-policy"]
		if d.metaCSP == "" {
			fail("no CSP meta tag")
		}
	}
	return d
}

func TestWellFormedHTML(t *testing.T) {
	for _, o := range allOutputs(t) {
		if !o.html {
			continue
		}
		d := checkHTML(t, o.name, o.body, o.web)
		switch {
		case strings.HasPrefix(o.name, "page"):
			// The vote, and the "Delegate to…" form beside it where the
			// holder may hand their vote on.
			want := []string{testDecideURL, testDelegateURL}
			if o.name == "page-slack" || o.name == "page-no-delegation" {
				want = want[:1]
			}
			if !slices.Equal(d.actions, want) {
				t.Errorf("%s: form actions %q, want exactly %q", o.name, d.actions, want)
			}
		case strings.HasPrefix(o.name, "confirm"):
			if len(d.actions) != 1 || d.actions[0] != testDecideURL {
				t.Errorf("%s: form actions %q, want exactly [%q]", o.name, d.actions, testDecideURL)
			}
		default:
			if len(d.actions) != 0 {
				t.Errorf("%s: has forms %q, want none", o.name, d.actions)
			}
		}
	}
}

// TestCheckHTMLCatchesErrors shows that the checker fails on what it must catch.
func TestCheckHTMLCatchesErrors(t *testing.T) {
	const head = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>x</title></head><body>`
	for _, tc := range []struct{ name, body string }{
		{"unclosed", head + `<div><p>text</div></body></html>`},
		{"misnested", head + `<b><i>x</b></i></body></html>`},
		{"external script", head + `<script src="https://cdn.example.com/x.js"></script></body></html>`},
		{"stylesheet link", head + `<link rel="stylesheet" href="/x.css"></body></html>`},
		{"image", head + `<img alt="" src="data:,"></body></html>`},
		{"inline handler", head + `<button onclick="go()">x</button></body></html>`},
		{"duplicate id", head + `<p id="a"></p><p id="a"></p></body></html>`},
		{"dangling label", head + `<label for="nope">x</label></body></html>`},
		{"no doctype", `<html lang="en"><head><meta charset="utf-8"><title>x</title></head><body></body></html>`},
		{"javascript link", head + `<a href="javascript:alert(1)">x</a></body></html>`},
		{"get form", head + `<form action="https://x.example/"></form></body></html>`},
	} {
		rec := &recorder{}
		checkHTML(rec, tc.name, []byte(tc.body), false)
		if len(rec.failed) == 0 {
			t.Errorf("checkHTML accepted %s: %s", tc.name, tc.body)
		}
	}
}

func hashOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// directives splits a policy into directive name -> source list.
func directives(policy string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(policy, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[f[0]] = f[1:]
		}
	}
	return out
}

func TestCSPHashesMatchInlineContent(t *testing.T) {
	for _, o := range allOutputs(t) {
		if !o.web {
			continue
		}
		d := checkHTML(t, o.name, o.body, true)
		csp := directives(d.metaCSP)
		if got := csp["default-src"]; len(got) != 1 || got[0] != "'none'" {
			t.Errorf("%s: default-src %v, want 'none'", o.name, got)
		}
		if got := csp["base-uri"]; len(got) != 1 || got[0] != "'none'" {
			t.Errorf("%s: base-uri %v, want 'none'", o.name, got)
		}
		if _, ok := csp["frame-ancestors"]; ok {
			t.Errorf("%s: frame-ancestors in a meta CSP is ignored by browsers (and logs an error)", o.name)
		}
		if len(d.styles) != 1 {
			t.Errorf("%s: %d <style> elements, want 1", o.name, len(d.styles))
		}
		for _, s := range d.styles {
			if got := csp["style-src"]; len(got) != 1 || got[0] != hashOf(s) {
				t.Errorf("%s: style-src %v does not allow exactly the inline style %s", o.name, got, hashOf(s))
			}
		}
		wantScripts := 0
		if strings.HasPrefix(o.name, "page") {
			wantScripts = 1
		}
		if len(d.scripts) != wantScripts {
			t.Errorf("%s: %d <script> elements, want %d", o.name, len(d.scripts), wantScripts)
		}
		for _, s := range d.scripts {
			if got := csp["script-src"]; len(got) != 1 || got[0] != hashOf(s) {
				t.Errorf("%s: script-src %v does not allow exactly the inline script %s", o.name, got, hashOf(s))
			}
		}
		if len(d.scripts) == 0 {
			if got, ok := csp["script-src"]; ok {
				t.Errorf("%s: script-src %v on a page without script", o.name, got)
			}
		}
		wantAction := "'none'"
		if strings.HasPrefix(o.name, "page") || strings.HasPrefix(o.name, "confirm") {
			wantAction = "https://cb.example.com"
		}
		if got := csp["form-action"]; len(got) != 1 || got[0] != wantAction {
			t.Errorf("%s: form-action %v, want %s", o.name, got, wantAction)
		}
		// The header policies are the meta policies plus frame-ancestors.
		var header string
		switch {
		case strings.HasPrefix(o.name, "page"):
			header = PageCSP(testDecideURL)
		case strings.HasPrefix(o.name, "confirm"):
			header = ResultCSP(testDecideURL)
		default:
			header = ResultCSP("")
		}
		if want := d.metaCSP + "; frame-ancestors 'none'"; header != want {
			t.Errorf("%s: header CSP\n %q\nwant\n %q", o.name, header, want)
		}
	}
}

func TestFormOrigin(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://cb.example.com/decide", "https://cb.example.com"},
		{"http://127.0.0.1:8080/decide", "http://127.0.0.1:8080"},
		{"https://abc.lambda-url.eu-west-1.on.aws/", "https://abc.lambda-url.eu-west-1.on.aws"},
		{"/decide", "'self'"},
		{"", "'none'"},
		{"//evil.example.com/x", "'none'"},
		{"javascript:alert(1)", "'none'"},
		{"https://user:pw@cb.example.com/decide", "'none'"},
		{"https://cb.example.com;script-src */", "'none'"},
	} {
		if got := formOrigin(tc.in); got != tc.want {
			t.Errorf("formOrigin(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
