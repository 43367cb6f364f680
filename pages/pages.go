// Package pages renders everything a person reads: the one-time decision page,
// the result pages, the no-JavaScript confirmation step and the email bodies. The
// templates are embedded; the functions are typed. Wherever a request is shown,
// its rule is said in words, and its progress and votes are listed.
//
// Every page is self-contained: one inline <style> (and, on the one-time page, one
// inline <script>) allowed by their SHA-256 hashes in the Content-Security-Policy,
// no external resource, no inline event handler and no style attribute.
package pages

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/url"
	"strings"
	ttemplate "text/template"
	"time"
	"unicode"

	"approvalbot/bot/approval"
)

// ResultKind names one of the result pages.
type ResultKind string

// The result pages.
const (
	ResultApproved       ResultKind = "approved"        // this vote approved the request
	ResultRejected       ResultKind = "rejected"        // this vote rejected the request
	ResultRecorded       ResultKind = "recorded"        // this vote is recorded; the request still waits for others
	ResultAlreadyVoted   ResultKind = "already-voted"   // this person voted before: "You already approved at T"
	ResultAlreadyDecided ResultKind = "already-decided" // closed before: "already decided by X at T"
	ResultSelfApproval   ResultKind = "self-approval"   // the requester may not approve their own request
	ResultNotApprover    ResultKind = "not-approver"    // the person is not an approver of the request
	ResultExpired        ResultKind = "expired"         // the request or link expired, or the request was closed without a decision
	ResultGone           ResultKind = "gone"            // decided, but the workflow no longer waits
	ResultNotFound       ResultKind = "not-found"       // unknown or used link
	ResultInvalid        ResultKind = "invalid"         // bad input: Message says what
	ResultBusy           ResultKind = "busy"            // too many concurrent changes: nothing recorded, try again
	ResultError          ResultKind = "error"           // something failed on our side
	ResultDelegated      ResultKind = "delegated"       // this person handed their vote on just now
	ResultDelegatedAway  ResultKind = "delegated-away"  // this person handed their vote on before: nothing recorded
)

// ResultKinds lists every result page, in a stable order.
var ResultKinds = []ResultKind{
	ResultApproved, ResultRejected, ResultRecorded, ResultAlreadyVoted, ResultAlreadyDecided,
	ResultSelfApproval, ResultNotApprover, ResultExpired, ResultGone, ResultNotFound,
	ResultInvalid, ResultBusy, ResultError, ResultDelegated, ResultDelegatedAway,
}

// Result is the data of a result page. Request may be nil (not found, invalid,
// error).
type Result struct {
	Kind    ResultKind
	Request *approval.Request
	// Vote is the vote of the person who sees the page, when they have cast
	// one: the one just recorded, or (ResultAlreadyVoted) their earlier one.
	Vote *approval.Vote
	// BackURL, when set, is the person's one-time page, offered where they
	// may still act on it (ResultSelfApproval: they may still reject).
	BackURL string
	Message string // for ResultInvalid: the validation message, shown as is
	// Delegation is how the person who sees the page handed their vote on
	// (ResultDelegated, ResultDelegatedAway).
	Delegation *approval.Delegation
}

// Confirm is the data of the server-side confirmation step used when the page was
// submitted without JavaScript.
type Confirm struct {
	Request   *approval.Request
	Token     string
	Choice    approval.Choice
	Comment   string
	DecideURL string
	// BackURL, when set, is where the Cancel link leads (the one-time page).
	// Without it the page tells the person to go back or close it.
	BackURL string
	// Recipient is the holder of the token, when known: it words what
	// confirming does.
	Recipient approval.Recipient
}

// confirmView is the data of the confirmation step.
type confirmView struct {
	Confirm
	Progress    *progressView
	Consequence string
}

// Renderer implements approval.Renderer.
type Renderer struct{}

var _ approval.Renderer = (*Renderer)(nil)

//go:embed templates
var files embed.FS

// The inline stylesheet and script, and the CSP source expressions that allow
// exactly them.
var (
	styleCSS   = mustRead("templates/style.css")
	pageJS     = mustRead("templates/page.js")
	styleHash  = cspHash(styleCSS)
	scriptHash = cspHash(pageJS)
)

// The parsed templates, one set per page so that each can define "content".
var (
	pageTmpl    = parsePage("page.html")
	resultTmpl  = parsePage("result.html")
	confirmTmpl = parsePage("confirm.html")
	emailHTML   = template.Must(template.New("").Funcs(funcs).ParseFS(files, "templates/email.html"))
	emailText   = ttemplate.Must(ttemplate.New("email.txt").Funcs(ttemplate.FuncMap(funcs)).ParseFS(files, "templates/email.txt"))
)

func mustRead(name string) string {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(fmt.Sprintf("pages: embedded %s missing: %v", name, err))
	}
	return string(b)
}

func parsePage(name string) *template.Template {
	return template.Must(template.New(name).Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name))
}

// cspHash is the CSP source expression allowing an inline element whose content
// is exactly s.
func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

var funcs = template.FuncMap{
	"css":          func() template.CSS { return template.CSS(styleCSS) },
	"js":           func() template.JS { return template.JS(pageJS) },
	"utc":          formatTime,
	"iso":          func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":         func(s []string) string { return strings.Join(s, ", ") },
	"maxComment":   func() int { return approval.MaxComment },
	"choiceLabel":  choiceLabel,
	"lower":        strings.ToLower,
	"decided":      decided,
	"channel":      channelName,
	"asker":        asker,
	"isSlackUser":  approval.IsSlackUserID,
	"rule":         func(r *approval.Request) string { return r.Rule.Describe(len(r.Approvers)) },
	"selfExcluded": selfExcluded,
	"lowerFirst":   lowerFirst,
	"onTimeout":    onTimeoutText,
	"escalation":   escalationText,
	"decidedBy":    decidedByText,
	"canceledText": canceledText,
}

// lowerFirst writes s with its first letter in lower case, to continue a
// sentence.
func lowerFirst(s string) string {
	for i, c := range s {
		return string(unicode.ToLower(c)) + s[i+len(string(c)):]
	}
	return s
}

// asker names who to turn to about r: its requester, or "the person who sent
// the request" when r is nil or names no requester.
func asker(r *approval.Request) string {
	if r == nil || r.Requester == "" || r.Requester == approval.DefaultRequester {
		return "the person who sent the request"
	}
	return r.Requester
}

// formatTime writes t the way every page and email shows a time:
// "Wed 25 Nov 2026, 14:22 UTC".
func formatTime(t time.Time) string { return t.UTC().Format("Mon 2 Jan 2006, 15:04 MST") }

func choiceLabel(c approval.Choice) string {
	if c == approval.Reject {
		return "Reject"
	}
	return "Approve"
}

func decided(c approval.Choice) string {
	if c == approval.Reject {
		return "rejected"
	}
	return "approved"
}

func channelName(c approval.Channel) string {
	switch c {
	case approval.ChannelEmail:
		return "the emailed link"
	case approval.ChannelSlack:
		return "Slack"
	}
	return string(c)
}

// doc is what the layout needs around a page's content.
type doc struct {
	Title  string
	CSP    string // the meta tag's policy
	Script bool   // include the page script
	V      any    // the content's data
}

func render(w io.Writer, t *template.Template, d doc) error {
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", d); err != nil {
		return err
	}
	_, err := buf.WriteTo(w)
	return err
}

// pageView is the data of the one-time page.
type pageView struct {
	approval.PageView
	Progress *progressView
	// Self is set when the page's holder asked for the approval and may not
	// approve it: the page offers only Reject.
	Self bool
	// Consequence says what confirming a vote does.
	Consequence string
	// The hand-offs of the page's holder (lifecycle.go).
	handoff
}

// snapshot marks p as shown on a page made once and served unchanged: its
// votes are those cast before the page was made.
func snapshot(p *progressView) *progressView {
	p.Snapshot = true
	return p
}

// Page renders a recipient's one-time page. It shows the request's rule and
// the votes cast before the page was made.
func (Renderer) Page(v approval.PageView) ([]byte, error) {
	if v.Request == nil {
		return nil, errors.New("render page: no request")
	}
	if v.Token == "" || v.DecideURL == "" {
		return nil, errors.New("render page: token and decide URL are required")
	}
	var buf bytes.Buffer
	err := render(&buf, pageTmpl, doc{
		Title:  "Approval request: " + v.Request.Title,
		CSP:    metaPageCSP(v.DecideURL),
		Script: true,
		V: pageView{
			PageView:    v,
			Progress:    snapshot(progressOf(v.Request)),
			Self:        isSelf(v.Request, v.Recipient),
			Consequence: consequence(v.Request, v.Recipient),
			handoff:     handoffOf(v.Request, v.Recipient, v.DecideURL),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("render page: %w", err)
	}
	return buf.Bytes(), nil
}

// emailView is the data of both email bodies.
type emailView struct {
	approval.EmailView
	Subject string
	Asker   string // who asks, or empty when unknown
	Within  string // how long the link works, from the moment it was sent
	Rule    string // the request's rule in words
	// Self is set when the recipient asked for the approval and may not
	// approve it.
	Self bool
	// The hand-offs of the recipient (lifecycle.go).
	handoff
}

// Email renders an approver's email.
func (Renderer) Email(v approval.EmailView) (approval.Email, error) {
	if v.Request == nil {
		return approval.Email{}, errors.New("render email: no request")
	}
	r := v.Request
	ev := emailView{
		EmailView: v,
		Subject:   EmailSubject(r),
		Within:    humanDuration(r.ExpiresAt.Sub(r.CreatedAt)),
		Rule:      r.Rule.Describe(len(r.Approvers)),
		Self:      isSelf(r, v.Recipient),
		handoff:   handoffOf(r, v.Recipient, ""),
	}
	if v.Reminder {
		ev.Subject = "Reminder: " + ev.Subject
		ev.Within = humanDuration(max(r.ExpiresAt.Sub(r.RemindedAt), 0))
	}
	if r.Requester != approval.DefaultRequester {
		ev.Asker = r.Requester
	}
	var text, html bytes.Buffer
	if err := emailText.Execute(&text, ev); err != nil {
		return approval.Email{}, fmt.Errorf("render email text: %w", err)
	}
	if err := emailHTML.ExecuteTemplate(&html, "email", ev); err != nil {
		return approval.Email{}, fmt.Errorf("render email html: %w", err)
	}
	return approval.Email{
		To:      v.Recipient.Address,
		Subject: ev.Subject,
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}

// EmailSubject is the subject of the email asking for a decision on r: the
// title on one line, without control characters.
func EmailSubject(r *approval.Request) string {
	title := strings.Join(strings.FieldsFunc(r.Title, func(c rune) bool {
		return unicode.IsSpace(c) || unicode.IsControl(c)
	}), " ")
	return "Approval needed: " + title
}

// humanDuration says how long d is in words: "45 minutes", "1 hour 30 minutes",
// "3 days 4 hours".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Minute)
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	mins := int64(d / time.Minute)
	switch {
	case mins < 60:
		return unit(mins, "minute")
	case mins < 48*60:
		s := unit(mins/60, "hour")
		if m := mins % 60; m != 0 {
			s += " " + unit(m, "minute")
		}
		return s
	}
	hours := mins / 60
	s := unit(hours/24, "day")
	if h := hours % 24; h != 0 {
		s += " " + unit(h, "hour")
	}
	return s
}

// resultView is the data of a result page.
type resultView struct {
	Result
	Badge, Tone, Heading string
	Progress             *progressView
	// Alone is set when one vote decided the request (no rule of several).
	Alone bool
	// MoreNeeded says how many more approvals the request needs.
	MoreNeeded string
	// NoNotice is set when the request closed because no approver could be
	// reached.
	NoNotice bool
}

var resultText = map[ResultKind]struct{ badge, tone, heading string }{
	ResultApproved:       {"Approved", "approved", "Approved"},
	ResultRejected:       {"Rejected", "rejected", "Rejected"},
	ResultRecorded:       {"Vote recorded", "approved", "Your approval is recorded"},
	ResultAlreadyVoted:   {"Already voted", "neutral", "You have already voted on this request"},
	ResultAlreadyDecided: {"Already decided", "neutral", "This request was already decided"},
	ResultSelfApproval:   {"Not allowed", "warning", "You cannot approve your own request"},
	ResultNotApprover:    {"Not allowed", "warning", "You are not an approver of this request"},
	ResultExpired:        {"Expired", "warning", "This request has expired"},
	ResultGone:           {"No longer waiting", "warning", "This request is no longer waiting"},
	ResultNotFound:       {"Link not valid", "neutral", "This link is no longer valid"},
	ResultInvalid:        {"Not sent", "warning", "Something in the form is not right"},
	ResultBusy:           {"Not recorded", "warning", "Your vote could not be recorded yet"},
	ResultError:          {"Error", "warning", "Something went wrong"},
	ResultDelegated:      {"Handed on", "neutral", "Your vote is handed on"},
	ResultDelegatedAway:  {"Handed on", "neutral", "You handed your vote to someone else"},
}

// RenderResult writes a result page. Wherever it has the request, it shows its
// rule, its progress and its votes.
func RenderResult(w io.Writer, v Result) error {
	txt, ok := resultText[v.Kind]
	if !ok {
		v = Result{Kind: ResultError}
		txt = resultText[ResultError]
	}
	rv := resultView{Result: v, Progress: progressOf(v.Request)}
	switch r := v.Request; {
	case v.Kind == ResultRecorded && v.Vote != nil && v.Vote.Choice == approval.Reject:
		txt.tone, txt.heading = "rejected", "Your rejection is recorded"
	case v.Kind == ResultExpired && r != nil && r.Status == approval.StatusCanceled && r.Reason == approval.ReasonNotificationFailed:
		txt.badge, txt.heading = "Closed", "This request was closed"
		rv.NoNotice = true
	case v.Kind == ResultExpired && r != nil && r.Status == approval.StatusCanceled:
		txt.badge, txt.heading = "Withdrawn", "This request was withdrawn"
	case v.Kind == ResultAlreadyDecided && r != nil && r.Decision.ByTimeout():
		txt.heading = "This request was decided at its expiry"
	}
	if r := v.Request; r != nil {
		rv.Alone = decidesAlone(r)
		rv.MoreNeeded = moreNeeded(r)
	}
	rv.Badge, rv.Tone, rv.Heading = txt.badge, txt.tone, txt.heading
	title := txt.heading
	if v.Request != nil {
		title += ": " + v.Request.Title
	}
	err := render(w, resultTmpl, doc{
		Title: title,
		CSP:   metaResultCSP(""),
		V:     rv,
	})
	if err != nil {
		return fmt.Errorf("render result %s: %w", v.Kind, err)
	}
	return nil
}

// RenderConfirm writes the no-JavaScript confirmation page.
func RenderConfirm(w io.Writer, v Confirm) error {
	if v.Request == nil {
		return errors.New("render confirm: no request")
	}
	if v.Choice != approval.Approve && v.Choice != approval.Reject {
		return fmt.Errorf("render confirm: unknown choice %q", v.Choice)
	}
	err := render(w, confirmTmpl, doc{
		Title: choiceLabel(v.Choice) + " “" + v.Request.Title + "”?",
		CSP:   metaResultCSP(v.DecideURL),
		V: confirmView{
			Confirm:     v,
			Progress:    progressOf(v.Request),
			Consequence: consequence(v.Request, v.Recipient),
		},
	})
	if err != nil {
		return fmt.Errorf("render confirm: %w", err)
	}
	return nil
}

// formOrigin is the CSP source expression for the origin of decideURL: its
// scheme and host for an absolute http(s) URL, 'self' for a path, and 'none'
// for anything else.
func formOrigin(decideURL string) string {
	u, err := url.Parse(decideURL)
	switch {
	case err != nil || decideURL == "":
		return "'none'"
	case u.Scheme == "" && u.Host == "" && strings.HasPrefix(u.Path, "/") && !strings.HasPrefix(decideURL, "//"):
		return "'self'"
	case (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && !strings.ContainsAny(u.Host, " ;,'\"") && u.User == nil:
		return u.Scheme + "://" + u.Host
	}
	return "'none'"
}

// metaPageCSP is the one-time page's policy as set in its meta tag, where
// frame-ancestors is not allowed.
func metaPageCSP(decideURL string) string {
	return "default-src 'none'; style-src " + styleHash + "; script-src " + scriptHash +
		"; form-action " + formOrigin(decideURL) + "; base-uri 'none'"
}

// metaResultCSP is the result and confirmation pages' policy as set in their
// meta tag; an empty decideURL allows no form at all.
func metaResultCSP(decideURL string) string {
	return "default-src 'none'; style-src " + styleHash +
		"; form-action " + formOrigin(decideURL) + "; base-uri 'none'"
}

// ResultCSP is the Content-Security-Policy for result and confirmation pages,
// whose only form posts back to decideURL. It is meant for the response header
// (it includes frame-ancestors, which a meta tag cannot carry).
func ResultCSP(decideURL string) string {
	return metaResultCSP(decideURL) + "; frame-ancestors 'none'"
}

// PageCSP is the Content-Security-Policy of the one-time page (also set in the
// page itself as a meta tag, since S3 serves it without our headers). It is
// meant for the response header: the meta tag carries the same policy without
// frame-ancestors, which browsers ignore there.
func PageCSP(decideURL string) string {
	return metaPageCSP(decideURL) + "; frame-ancestors 'none'"
}
