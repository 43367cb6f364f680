package pages

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// Fixed values used by every test, so that the output is the same on every run.
const (
	testToken       = "TOKEN_0123456789abcdefghijklmnopqrstuvwxyzABCDE"
	testTaskToken   = "TASKTOKEN-must-never-be-rendered-9f8e7d"
	testDecideURL   = "https://cb.example.com/decide"
	testDelegateURL = "https://cb.example.com/delegate"
	testPageURL     = "https://pages.example.com/p/Zm9vYmFyYmF6cXV4cXV1eA"
	testPageKey     = "Zm9vYmFyYmF6cXV4cXV1eA"
)

var (
	created = time.Date(2026, 11, 25, 13, 22, 6, 0, time.UTC)
	expires = created.Add(time.Hour)
)

// fixedRequest is a pending request with every field a page shows, including
// a long unbroken URL and markup that must be escaped.
func fixedRequest() *approval.Request {
	return &approval.Request{
		ID:        "abcdefghijklmnop",
		TaskToken: testTaskToken,
		Title:     "Deploy v1.2 to prod",
		Details: "Release notes:\n- faster checkout\n- fixes <script>alert(1)</script> & more\n\n" +
			"Diff: https://git.example.com/acme/shop/compare/v1.1.0...v1.2.0?diff=split&w=1&very_long_parameter_name_that_never_breaks=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		Links: []approval.Link{
			{Label: "Runbook", URL: "https://wiki.example.com/runbooks/deploy"},
			{URL: "https://ci.example.com/builds/4711"},
		},
		Requester: "ci@example.com",
		Approvers: []string{"alice@example.com", "bob@example.com"},
		Rule:      approval.Rule{Policy: approval.PolicyAny, RejectPolicy: approval.RejectAny},
		Status:    approval.StatusPending,
		CreatedAt: created,
		ExpiresAt: expires,
		Recipients: []approval.Recipient{
			{Address: "alice@example.com", Channel: approval.ChannelEmail, TokenHash: approval.HashToken(testToken), PageKey: testPageKey},
		},
	}
}

func decidedRequest(c approval.Choice, comment string) *approval.Request {
	r := fixedRequest()
	r.Status = c.Status()
	at := created.Add(18 * time.Minute)
	r.Votes = []approval.Vote{{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: c, Comment: comment, At: at}}
	r.Decision = &approval.Decision{Choice: c, By: "bob@example.com", Channel: approval.ChannelEmail, Comment: comment, At: at}
	return r
}

// handoffRequest is fixedRequest approved unless someone objects at its
// expiry, escalated to dan after 30 minutes, and with bob's vote handed to
// carol.
func handoffRequest() *approval.Request {
	r := fixedRequest()
	r.OnTimeout = approval.TimeoutApprove
	r.Approvers = []string{"alice@example.com", "carol@example.com", "dan@example.com"}
	r.Escalation = &approval.Escalation{After: 30 * time.Minute, Approvers: []string{"dan@example.com"}, SlackChannel: "C0ESCALATE", At: created.Add(30 * time.Minute)}
	r.Delegations = []approval.Delegation{{From: "bob@example.com", To: "carol@example.com", At: created.Add(10 * time.Minute), Channel: approval.ChannelEmail}}
	r.RemindedAt = created.Add(45 * time.Minute)
	return r
}

// timeoutRequest is fixedRequest approved by its timeout rule.
func timeoutRequest() *approval.Request {
	r := fixedRequest()
	r.OnTimeout, r.Status = approval.TimeoutApprove, approval.StatusApproved
	r.Decision = &approval.Decision{Choice: approval.Approve, By: approval.DecidedByTimeout, At: r.ExpiresAt}
	return r
}

// canceledRequest is fixedRequest withdrawn by its requester.
func canceledRequest() *approval.Request {
	r := fixedRequest()
	r.Status, r.Reason = approval.StatusCanceled, approval.ReasonCanceled
	r.Canceled = &approval.Cancellation{By: "ci@example.com", Reason: "superseded by v1.3", At: created.Add(20 * time.Minute)}
	return r
}

// quorumRequest is fixedRequest under "quorum:2" of three approvers, with a
// vote of bob's and one of carol's (Slack) as given.
func quorumRequest(votes ...approval.Vote) *approval.Request {
	r := fixedRequest()
	r.Approvers = []string{"alice@example.com", "bob@example.com", "U0CAROL001"}
	r.Rule.Policy = approval.PolicyQuorum(2)
	r.Votes = votes
	return r
}

var (
	bobApproves   = approval.Vote{By: "bob@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, Comment: "Fine by me <b>now</b>", At: created.Add(5 * time.Minute)}
	aliceApproves = approval.Vote{By: "alice@example.com", Channel: approval.ChannelEmail, Choice: approval.Approve, At: created.Add(9 * time.Minute)}
	carolRejects  = approval.Vote{By: "U0CAROL001", Email: "carol@example.com", Channel: approval.ChannelSlack, Choice: approval.Reject, Comment: "Not during the freeze", At: created.Add(7 * time.Minute)}
)

// groupsRequest is fixedRequest with two groups (eng: alice or bob; security:
// sec), approved by bob for eng so far.
func groupsRequest() *approval.Request {
	r := fixedRequest()
	r.Approvers = []string{"alice@example.com", "bob@example.com", "sec@example.com"}
	r.Rule = approval.Rule{Groups: []approval.Group{
		{Name: "eng", Approvers: []string{"alice@example.com", "bob@example.com"}, Min: 1},
		{Name: "security", Approvers: []string{"sec@example.com"}, Min: 1},
	}}
	v := bobApproves
	v.Groups = []string{"eng"}
	r.Votes = []approval.Vote{v}
	return r
}

// selfRequest is fixedRequest asked by alice, one of its approvers: her own
// page offers only Reject.
func selfRequest() *approval.Request {
	r := fixedRequest()
	r.Requester = "Alice@example.com"
	return r
}

// closed returns r closed by its last vote.
func closed(r *approval.Request) *approval.Request {
	last := r.Votes[len(r.Votes)-1]
	r.Status = last.Choice.Status()
	r.Decision = &approval.Decision{Choice: last.Choice, By: last.By, Channel: last.Channel, Comment: last.Comment, At: last.At}
	return r
}

// output is one rendered page or email body, named after its golden file.
type output struct {
	name string
	html bool // an HTML document (else plain text)
	web  bool // served to a browser under our CSP (else an email body)
	body []byte
}

// allOutputs renders every page, result page and email from the fixed data.
func allOutputs(t *testing.T) []output {
	t.Helper()
	var outs []output
	page := func(name string, v approval.PageView) {
		b, err := Renderer{}.Page(v)
		if err != nil {
			t.Fatalf("Page(%s): %v", name, err)
		}
		outs = append(outs, output{name: name, html: true, web: true, body: b})
	}
	page("page", approval.PageView{Request: fixedRequest(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL})
	minimal := fixedRequest()
	minimal.Details, minimal.Links, minimal.Approvers, minimal.Requester = "", nil, []string{"alice@example.com"}, approval.DefaultRequester
	page("page-minimal", approval.PageView{Request: minimal, Recipient: minimal.Recipients[0], Token: testToken, DecideURL: testDecideURL})
	page("page-slack", approval.PageView{Request: fixedRequest(), Recipient: approval.Recipient{Address: "C0123ABCD", Channel: approval.ChannelSlack}, Token: testToken, DecideURL: testDecideURL})
	page("page-slack-personal", approval.PageView{Request: quorumRequest(bobApproves), Recipient: approval.Recipient{Address: "U0CAROL001", Channel: approval.ChannelSlack}, Token: testToken, DecideURL: testDecideURL})
	page("page-quorum", approval.PageView{Request: func() *approval.Request {
		r := quorumRequest(bobApproves, carolRejects)
		r.Rule.RejectPolicy = approval.RejectImpossible
		return r
	}(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL})
	page("page-groups", approval.PageView{Request: groupsRequest(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL})
	page("page-self", approval.PageView{Request: selfRequest(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL})
	page("page-handoffs", approval.PageView{Request: handoffRequest(), Recipient: approval.Recipient{Address: "carol@example.com", Channel: approval.ChannelEmail}, Token: testToken, DecideURL: testDecideURL})
	page("page-escalated", approval.PageView{Request: handoffRequest(), Recipient: approval.Recipient{Address: "dan@example.com", Channel: approval.ChannelEmail}, Token: testToken, DecideURL: testDecideURL})
	page("page-no-delegation", approval.PageView{Request: func() *approval.Request {
		r := fixedRequest()
		r.NoDelegation, r.OnTimeout = true, approval.TimeoutReject
		r.Escalation = &approval.Escalation{After: 30 * time.Minute, Approvers: []string{"dan@example.com"}, SlackChannel: "C0ESCALATE"}
		return r
	}(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL})

	results := map[ResultKind]Result{
		ResultApproved:       {Kind: ResultApproved, Request: decidedRequest(approval.Approve, "Looks good.\nShip it.")},
		ResultRejected:       {Kind: ResultRejected, Request: decidedRequest(approval.Reject, "")},
		ResultRecorded:       {Kind: ResultRecorded, Request: quorumRequest(bobApproves), Vote: &bobApproves},
		ResultAlreadyVoted:   {Kind: ResultAlreadyVoted, Request: quorumRequest(bobApproves), Vote: &bobApproves},
		ResultAlreadyDecided: {Kind: ResultAlreadyDecided, Request: decidedRequest(approval.Approve, "Fine by me")},
		ResultSelfApproval:   {Kind: ResultSelfApproval, Request: selfRequest(), BackURL: testPageURL},
		ResultNotApprover:    {Kind: ResultNotApprover, Request: fixedRequest()},
		ResultExpired:        {Kind: ResultExpired, Request: func() *approval.Request { r := fixedRequest(); r.Status = approval.StatusExpired; return r }()},
		ResultGone:           {Kind: ResultGone, Request: decidedRequest(approval.Approve, "")},
		ResultNotFound:       {Kind: ResultNotFound},
		ResultInvalid:        {Kind: ResultInvalid, Message: "comment is longer than 2000 characters"},
		ResultBusy:           {Kind: ResultBusy, Request: fixedRequest()},
		ResultError:          {Kind: ResultError},
		ResultDelegated:      {Kind: ResultDelegated, Request: handoffRequest(), Delegation: &handoffRequest().Delegations[0]},
		ResultDelegatedAway:  {Kind: ResultDelegatedAway, Request: handoffRequest(), Delegation: &handoffRequest().Delegations[0]},
	}
	result := func(name string, v Result) {
		var buf bytes.Buffer
		if err := RenderResult(&buf, v); err != nil {
			t.Fatalf("RenderResult(%s): %v", name, err)
		}
		outs = append(outs, output{name: name, html: true, web: true, body: buf.Bytes()})
	}
	for _, k := range ResultKinds {
		result("result-"+string(k), results[k])
	}
	carolLater := carolRejects
	carolLater.At = created.Add(20 * time.Minute)
	result("result-recorded-reject", Result{Kind: ResultRecorded, Request: func() *approval.Request {
		r := quorumRequest(bobApproves, carolLater)
		r.Rule.RejectPolicy = approval.RejectImpossible
		return r
	}(), Vote: &carolLater})
	result("result-recorded-groups", Result{Kind: ResultRecorded, Request: groupsRequest(), Vote: &groupsRequest().Votes[0]})
	result("result-approved-quorum", Result{Kind: ResultApproved, Request: closed(quorumRequest(bobApproves, aliceApproves)), Vote: &aliceApproves})
	result("result-already-decided-quorum", Result{Kind: ResultAlreadyDecided, Request: closed(quorumRequest(bobApproves, aliceApproves))})
	result("result-already-decided-timeout", Result{Kind: ResultAlreadyDecided, Request: timeoutRequest()})
	result("result-expired-canceled", Result{Kind: ResultExpired, Request: canceledRequest()})
	result("result-expired-unreachable", Result{Kind: ResultExpired, Request: func() *approval.Request {
		r := fixedRequest()
		r.Status, r.Reason = approval.StatusCanceled, approval.ReasonNotificationFailed
		return r
	}()})

	for name, v := range lateVisits() {
		var buf bytes.Buffer
		if err := RenderLate(&buf, v); err != nil {
			t.Fatalf("RenderLate(%s): %v", name, err)
		}
		outs = append(outs, output{name: "late-" + name, html: true, web: true, body: buf.Bytes()})
	}
	if b, err := (Renderer{}).Late(decidedRequest(approval.Approve, "Looks good.")); err != nil || !bytes.Contains(b, []byte("was approved by bob@example.com")) {
		t.Errorf("Renderer.Late: %v, %q; want the approved page", err, b)
	}

	var buf bytes.Buffer
	err := RenderConfirm(&buf, Confirm{Request: fixedRequest(), Token: testToken, Choice: approval.Approve, Comment: "Ship it <b>now</b>", DecideURL: testDecideURL, BackURL: testPageURL})
	if err != nil {
		t.Fatalf("RenderConfirm: %v", err)
	}
	outs = append(outs, output{name: "confirm-approve", html: true, web: true, body: buf.Bytes()})
	buf = bytes.Buffer{}
	if err := RenderConfirm(&buf, Confirm{Request: fixedRequest(), Token: testToken, Choice: approval.Reject, DecideURL: testDecideURL}); err != nil {
		t.Fatalf("RenderConfirm: %v", err)
	}
	outs = append(outs, output{name: "confirm-reject", html: true, web: true, body: buf.Bytes()})
	buf = bytes.Buffer{}
	if err := RenderConfirm(&buf, Confirm{Request: quorumRequest(bobApproves), Token: testToken, Choice: approval.Approve, DecideURL: testDecideURL, Recipient: fixedRequest().Recipients[0]}); err != nil {
		t.Fatalf("RenderConfirm: %v", err)
	}
	outs = append(outs, output{name: "confirm-quorum", html: true, web: true, body: buf.Bytes()})

	m, err := Renderer{}.Email(approval.EmailView{Request: fixedRequest(), Recipient: fixedRequest().Recipients[0], PageURL: testPageURL})
	if err != nil {
		t.Fatalf("Email: %v", err)
	}
	outs = append(outs,
		output{name: "email-text", body: []byte("To: " + m.To + "\nSubject: " + m.Subject + "\n\n" + m.Text)},
		output{name: "email-html", html: true, body: []byte(m.HTML)},
	)
	h := handoffRequest()
	m, err = Renderer{}.Email(approval.EmailView{Request: h, Recipient: approval.Recipient{Address: "carol@example.com", Channel: approval.ChannelEmail}, PageURL: testPageURL, Reminder: true})
	if err != nil {
		t.Fatalf("Email: %v", err)
	}
	outs = append(outs,
		output{name: "email-text-reminder", body: []byte("To: " + m.To + "\nSubject: " + m.Subject + "\n\n" + m.Text)},
		output{name: "email-html-reminder", html: true, body: []byte(m.HTML)},
	)
	m, err = Renderer{}.Email(approval.EmailView{Request: h, Recipient: approval.Recipient{Address: "dan@example.com", Channel: approval.ChannelEmail}, PageURL: testPageURL})
	if err != nil {
		t.Fatalf("Email: %v", err)
	}
	outs = append(outs, output{name: "email-text-escalated", body: []byte("To: " + m.To + "\nSubject: " + m.Subject + "\n\n" + m.Text)})
	g := groupsRequest()
	g.Votes, g.Requester = nil, "alice@example.com"
	m, err = Renderer{}.Email(approval.EmailView{Request: g, Recipient: g.Recipients[0], PageURL: testPageURL})
	if err != nil {
		t.Fatalf("Email: %v", err)
	}
	outs = append(outs,
		output{name: "email-text-groups", body: []byte("To: " + m.To + "\nSubject: " + m.Subject + "\n\n" + m.Text)},
		output{name: "email-html-groups", html: true, body: []byte(m.HTML)},
	)
	return outs
}

// lateVisits are the pages of a late visitor for every outcome, by name.
func lateVisits() map[string]Late {
	at := created.Add(30 * time.Minute)
	canceled := fixedRequest()
	canceled.Status, canceled.Reason = approval.StatusCanceled, approval.ReasonCanceled
	canceled.Canceled = &approval.Cancellation{By: "ci@example.com", Reason: "Superseded by <b>now</b> v1.3", At: at}
	unreachable := fixedRequest()
	unreachable.Status, unreachable.Reason = approval.StatusCanceled, approval.ReasonNotificationFailed
	expired := fixedRequest()
	expired.Status = approval.StatusExpired
	gone := decidedRequest(approval.Approve, "ok")
	gone.Status, gone.Reason = approval.StatusExpired, approval.ReasonWorkflowGone
	waiting := quorumRequest(bobApproves)
	return map[string]Late{
		"approved":        {Request: decidedRequest(approval.Approve, "Looks good.\nShip it.")},
		"rejected":        {Request: closed(quorumRequest(bobApproves, carolRejects))},
		"canceled":        {Request: canceled},
		"unreachable":     {Request: unreachable},
		"expired":         {Request: expired},
		"workflow-gone":   {Request: gone},
		"pending-voted":   {Request: waiting, Vote: &waiting.Votes[0]},
		"approved-quorum": {Request: closed(quorumRequest(bobApproves, aliceApproves))},
	}
}

// TestLateSaysWhatHappened: a late visitor learns the outcome, who decided
// or withdrew it and when, and the comment or reason; the page decides
// nothing.
func TestLateSaysWhatHappened(t *testing.T) {
	want := map[string][]string{
		"approved":      {"This request was approved", "was approved by bob@example.com at Wed 25 Nov 2026, 13:40 UTC", "Looks good."},
		"rejected":      {"This request was rejected", "was rejected by U0CAROL001 at Wed 25 Nov 2026, 13:29 UTC", "Not during the freeze"},
		"canceled":      {"This request was withdrawn", "withdrawn by ci@example.com at Wed 25 Nov 2026, 13:52 UTC", "Superseded by &lt;b&gt;now&lt;/b&gt; v1.3"},
		"unreachable":   {"This request was closed", "none of its approvers could be reached"},
		"expired":       {"This request has expired", "expired at Wed 25 Nov 2026, 14:22 UTC without a decision"},
		"workflow-gone": {"This request is closed", "had stopped waiting"},
		"pending-voted": {"still waiting for other approvers", "you approved it at Wed 25 Nov 2026, 13:27 UTC"},
	}
	for name, v := range lateVisits() {
		var buf bytes.Buffer
		if err := RenderLate(&buf, v); err != nil {
			t.Fatal(err)
		}
		body := buf.String()
		for _, w := range want[name] {
			if !strings.Contains(body, w) {
				t.Errorf("late page %s: does not say %q", name, w)
			}
		}
		for _, never := range []string{"<form", "<script", "<button", "name=\"token\""} {
			if strings.Contains(body, never) {
				t.Errorf("late page %s: holds %s", name, never)
			}
		}
		if !strings.Contains(body, "form-action &#39;none&#39;") {
			t.Errorf("late page %s: its policy allows a form", name)
		}
	}
}

func TestGolden(t *testing.T) {
	for _, o := range allOutputs(t) {
		t.Run(o.name, func(t *testing.T) {
			path := filepath.Join("testdata", o.name+".golden")
			if *update {
				if err := os.WriteFile(path, o.body, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./pages -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), string(o.body)); diff != "" {
				t.Errorf("%s differs from %s (-want +got; go test ./pages -update to accept):\n%s", o.name, path, diff)
			}
		})
	}
}

// TestEmbeddedFilesPresent checks that the embedded folder holds exactly the
// inline stylesheet and script, and that every templ file on disk has its
// generated Go beside it (scripts/templ-check checks that it is up to date).
func TestEmbeddedFilesPresent(t *testing.T) {
	want := []string{"page.js", "style.css"}
	var got []string
	err := fs.WalkDir(files, "templates", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			got = append(got, strings.TrimPrefix(path, "templates/"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("embedded files (-want +got):\n%s", diff)
	}
	// Every file on disk is embedded (nothing added without being listed).
	entries, err := os.ReadDir("templates")
	if err != nil {
		t.Fatal(err)
	}
	var onDisk []string
	for _, e := range entries {
		onDisk = append(onDisk, e.Name())
	}
	if diff := cmp.Diff(want, onDisk); diff != "" {
		t.Errorf("files in templates/ on disk (-want +got):\n%s", diff)
	}
	sources, err := filepath.Glob("*.templ")
	if err != nil {
		t.Fatal(err)
	}
	wantSources := []string{"confirm.templ", "email.templ", "late.templ", "layout.templ", "page.templ", "result.templ"}
	if diff := cmp.Diff(wantSources, sources); diff != "" {
		t.Errorf("templ files (-want +got):\n%s", diff)
	}
	for _, src := range sources {
		if _, err := os.Stat(strings.TrimSuffix(src, ".templ") + "_templ.go"); err != nil {
			t.Errorf("%s: no generated Go (run go tool templ generate in pages/): %v", src, err)
		}
	}
}

func TestSecretsStayInTheForm(t *testing.T) {
	for _, o := range allOutputs(t) {
		body := string(o.body)
		if strings.Contains(body, testTaskToken) {
			t.Errorf("%s: contains the task token", o.name)
		}
		wantTokens := 0
		if strings.HasPrefix(o.name, "page") || strings.HasPrefix(o.name, "confirm") {
			// Once in each form's hidden field (the vote, and the
			// "Delegate to…" form where there is one), nowhere else.
			field := `<input type="hidden" name="token" value="` + testToken + `">`
			wantTokens = strings.Count(body, field)
			if wantTokens == 0 || wantTokens != strings.Count(body, "<form ") {
				t.Errorf("%s: the token is in %d hidden form fields, want one in each of its %d forms", o.name, wantTokens, strings.Count(body, "<form "))
			}
		}
		if got := strings.Count(body, testToken); got != wantTokens {
			t.Errorf("%s: the token appears %d times, want %d", o.name, got, wantTokens)
		}
		if strings.Contains(body, approval.HashToken(testToken)) {
			t.Errorf("%s: contains the token hash", o.name)
		}
	}
}

func TestEscaping(t *testing.T) {
	for _, o := range allOutputs(t) {
		if !o.html {
			continue
		}
		if strings.Contains(string(o.body), "<script>alert(1)") || strings.Contains(string(o.body), "<b>now</b>") {
			t.Errorf("%s: request text was not escaped", o.name)
		}
	}
}

func TestEmail(t *testing.T) {
	r := fixedRequest()
	r.Title = "Deploy\r\nBcc: evil@example.com\tnow"
	m, err := Renderer{}.Email(approval.EmailView{Request: r, Recipient: r.Recipients[0], PageURL: testPageURL})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.Subject, "Approval needed: Deploy Bcc: evil@example.com now"; got != want {
		t.Errorf("Subject = %q, want %q", got, want)
	}
	if got, want := m.To, "alice@example.com"; got != want {
		t.Errorf("To = %q, want %q", got, want)
	}
	for part, body := range map[string]string{"text": m.Text, "html": m.HTML} {
		for _, want := range []string{testPageURL, "ci@example.com", "alice@example.com, bob@example.com", "Wed 25 Nov 2026, 14:22 UTC", "within 1 hour", "personal", "works once", "Opening it decides nothing", "faster checkout", "one approval from any approver approves"} {
			if !strings.Contains(body, want) {
				t.Errorf("%s part does not contain %q", part, want)
			}
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{time.Minute, "1 minute"},
		{59*time.Minute + 40*time.Second, "1 hour"},
		{45 * time.Minute, "45 minutes"},
		{90 * time.Minute, "1 hour 30 minutes"},
		{47 * time.Hour, "47 hours"},
		{48 * time.Hour, "2 days"},
		{30*24*time.Hour + 5*time.Hour, "30 days 5 hours"},
	} {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestResultWithoutRequest(t *testing.T) {
	// The web handler may not always have the request; no kind may fail for it.
	for _, k := range append(ResultKinds, "bogus") {
		var buf bytes.Buffer
		if err := RenderResult(&buf, Result{Kind: k}); err != nil {
			t.Errorf("RenderResult(%s, nil request): %v", k, err)
			continue
		}
		checkHTML(t, string(k), buf.Bytes(), true)
	}
}

func TestResultSaysWhatHappened(t *testing.T) {
	for _, tc := range []struct {
		v    Result
		want []string
	}{
		{Result{Kind: ResultApproved, Request: decidedRequest(approval.Approve, "ok")}, []string{"You approved", "Deploy v1.2 to prod", "has been told", "close this page"}},
		{Result{Kind: ResultRejected, Request: decidedRequest(approval.Reject, "")}, []string{"You rejected", "Deploy v1.2 to prod"}},
		{Result{Kind: ResultAlreadyDecided, Request: decidedRequest(approval.Reject, "no")}, []string{"already decided by bob@example.com at Wed 25 Nov 2026, 13:40 UTC", "rejected", "not recorded"}},
		{Result{Kind: ResultExpired, Request: fixedRequest()}, []string{"has expired", "expired at Wed 25 Nov 2026, 14:22 UTC", "ci@example.com"}},
		{Result{Kind: ResultExpired, Request: func() *approval.Request { r := fixedRequest(); r.Status = approval.StatusCanceled; return r }()}, []string{"withdrawn"}},
		{Result{Kind: ResultGone, Request: fixedRequest()}, []string{"no longer waiting", "timed out or was stopped"}},
		{Result{Kind: ResultNotFound}, []string{"This link is no longer valid"}},
		{Result{Kind: ResultRecorded, Request: quorumRequest(bobApproves), Vote: &bobApproves}, []string{"Your approval is recorded", "Your approval of <strong>Deploy v1.2 to prod</strong> is recorded. 1 more approval is needed.", "2 of 3 approvers must approve", "1 of 2 approvals", "bob@example.com", "Fine by me", "can still vote"}},
		{Result{Kind: ResultRecorded, Request: quorumRequest(carolRejects), Vote: &carolRejects}, []string{"Your rejection is recorded", "2 more approvals are needed", "U0CAROL001</strong> (carol@example.com)", "Not during the freeze", "through Slack"}},
		{Result{Kind: ResultRecorded, Request: groupsRequest(), Vote: &groupsRequest().Votes[0]}, []string{"1 more approval is needed: waiting for security (0 of 1)", "one approval from each group: eng, security", "for eng"}},
		{Result{Kind: ResultAlreadyVoted, Request: quorumRequest(bobApproves), Vote: &bobApproves}, []string{"You already approved at Wed 25 Nov 2026, 13:27 UTC", "not recorded"}},
		{Result{Kind: ResultAlreadyVoted}, []string{"You have already voted"}},
		{Result{Kind: ResultSelfApproval, Request: selfRequest(), BackURL: testPageURL}, []string{"You asked for this approval, so you cannot approve it; you may still reject it", `href="` + testPageURL + `"`, "Nothing was recorded"}},
		{Result{Kind: ResultNotApprover, Request: fixedRequest()}, []string{"not an approver", "Only the approvers", "Nothing was recorded"}},
		{Result{Kind: ResultBusy, Request: fixedRequest()}, []string{"could not be recorded", "send your answer again"}},
		{Result{Kind: ResultApproved, Request: closed(quorumRequest(bobApproves, aliceApproves))}, []string{"Your approval was the last one needed", "is approved (2 of 3 approvers must approve)", "2 of 2 approvals", "bob@example.com", "alice@example.com"}},
		{Result{Kind: ResultRejected, Request: func() *approval.Request {
			r := closed(quorumRequest(bobApproves, carolRejects))
			r.Rule.RejectPolicy = approval.RejectImpossible
			return r
		}()}, []string{"can no longer be met", "is rejected"}},
		{Result{Kind: ResultAlreadyDecided, Request: closed(quorumRequest(bobApproves, aliceApproves))}, []string{"already decided by alice@example.com", "2 of 2 approvals", "Fine by me"}},
		{Result{Kind: ResultExpired, Request: func() *approval.Request {
			r := fixedRequest()
			r.Status, r.Reason = approval.StatusCanceled, approval.ReasonNotificationFailed
			return r
		}()}, []string{"This request was closed", "none of its approvers could be reached"}},
		{Result{Kind: ResultInvalid, Message: "decision must be \"approve\" or \"reject\""}, []string{"decision must be &#34;approve&#34; or &#34;reject&#34;", "try again"}},
		{Result{Kind: ResultError}, []string{"Something went wrong", "open the link"}},
		{Result{Kind: ResultAlreadyDecided, Request: timeoutRequest()}, []string{"decided at its expiry", "approved automatically at its expiry", "timeout rule", "not recorded"}},
		{Result{Kind: ResultExpired, Request: canceledRequest()}, []string{"withdrawn", "by ci@example.com: “superseded by v1.3”"}},
		{Result{Kind: ResultDelegated, Request: handoffRequest(), Delegation: &handoffRequest().Delegations[0]}, []string{"handed to <strong>carol@example.com</strong>", "personal link by email", "no longer vote"}},
		{Result{Kind: ResultDelegatedAway, Request: handoffRequest(), Delegation: &handoffRequest().Delegations[0]}, []string{"You handed your vote to <strong>carol@example.com</strong>", "Nothing was recorded"}},
	} {
		var buf bytes.Buffer
		if err := RenderResult(&buf, tc.v); err != nil {
			t.Fatalf("RenderResult(%s): %v", tc.v.Kind, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(buf.String(), w) {
				t.Errorf("%s: page does not say %q", tc.v.Kind, w)
			}
		}
	}
}

func TestRenderErrors(t *testing.T) {
	if _, err := (Renderer{}).Page(approval.PageView{Token: testToken, DecideURL: testDecideURL}); err == nil {
		t.Error("Page without request: no error")
	}
	if _, err := (Renderer{}).Page(approval.PageView{Request: fixedRequest(), DecideURL: testDecideURL}); err == nil {
		t.Error("Page without token: no error")
	}
	if err := RenderConfirm(&bytes.Buffer{}, Confirm{Request: fixedRequest(), Token: testToken, Choice: "maybe", DecideURL: testDecideURL}); err == nil {
		t.Error("RenderConfirm with an unknown choice: no error")
	}
	if _, err := (Renderer{}).Email(approval.EmailView{PageURL: testPageURL}); err == nil {
		t.Error("Email without request: no error")
	}
}

// A request that names no requester shows "unknown" as such; the result pages
// do not tell people to "ask unknown".
func TestResultWithUnknownRequester(t *testing.T) {
	expired := fixedRequest()
	expired.Status, expired.Requester = approval.StatusExpired, approval.DefaultRequester
	gone := decidedRequest(approval.Approve, "")
	gone.Requester = approval.DefaultRequester
	for _, res := range []Result{{Kind: ResultExpired, Request: expired}, {Kind: ResultGone, Request: gone}} {
		var buf bytes.Buffer
		if err := RenderResult(&buf, res); err != nil {
			t.Fatalf("RenderResult(%s): %v", res.Kind, err)
		}
		if got := buf.String(); strings.Contains(got, "ask unknown") || !strings.Contains(got, "ask the person who sent the request") {
			t.Errorf("%s page with an unknown requester: want \"ask the person who sent the request\", got:\n%s", res.Kind, got)
		}
	}
}

// The one-time page says the rule in words, shows the progress and lists the
// votes cast so far; the requester's own page offers only Reject.
func TestPageShowsRuleAndVotes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v       approval.PageView
		want    []string
		notWant []string
	}{
		{
			name: "quorum",
			v:    approval.PageView{Request: quorumRequest(bobApproves, carolRejects), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL},
			want: []string{"<dt>Rule</dt><dd>2 of 3 approvers must approve</dd>", `<progress max="2" value="1"`, "1 of 2 approvals · 1 rejection",
				"Approved</span> <strong>bob@example.com</strong>", "Fine by me &lt;b&gt;now&lt;/b&gt;", "Rejected</span> <strong>U0CAROL001</strong> (carol@example.com)",
				"Wed 25 Nov 2026, 13:27 UTC", "Your vote counts toward the rule", `value="approve"`},
		},
		{
			name: "groups",
			v:    approval.PageView{Request: groupsRequest(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL},
			want: []string{"one approval from each group: eng, security", "<strong>eng</strong>: alice@example.com, bob@example.com", "waiting for security (0 of 1)", "(satisfied)"},
		},
		{
			name:    "any, no votes",
			v:       approval.PageView{Request: fixedRequest(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL},
			want:    []string{"one approval from any approver approves", "No votes yet", "This decides the request for everyone"},
			notWant: []string{"the first answer decides"},
		},
		{
			name:    "requester's own page",
			v:       approval.PageView{Request: selfRequest(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL},
			want:    []string{"You asked for this approval, so you cannot approve it; you may still reject it", `value="reject"`},
			notWant: []string{`name="decision" value="approve"`},
		},
		{
			name: "requester may approve",
			v: approval.PageView{Request: func() *approval.Request {
				r := selfRequest()
				r.Rule.AllowSelfApproval = true
				return r
			}(), Recipient: fixedRequest().Recipients[0], Token: testToken, DecideURL: testDecideURL},
			want:    []string{`name="decision" value="approve"`},
			notWant: []string{"you cannot approve it", "may not approve it"},
		},
	} {
		b, err := Renderer{}.Page(tc.v)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(string(b), w) {
				t.Errorf("%s: page lacks %q", tc.name, w)
			}
		}
		for _, w := range tc.notWant {
			if strings.Contains(string(b), w) {
				t.Errorf("%s: page has %q", tc.name, w)
			}
		}
	}
}
