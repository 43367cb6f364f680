package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"

	"approvalbot/bot/approval"
	apiclient "approvalbot/bot/client"
	"approvalbot/bot/web"
)

// client talks to a running bot's API through the client package. Its
// address is known once the flags are read.
type client struct {
	server string // base URL
	token  string // API bearer token
	http   *http.Client
}

// clientFlags adds the flags every client command has.
func clientFlags(fs *flag.FlagSet, getenv func(string) string) *client {
	c := &client{http: &http.Client{Timeout: web.DefaultMaxWait + 15*time.Second}}
	def := getenv("APPROVALBOT_SERVER")
	if def == "" {
		def = "http://" + dialAddr(envOr(getenv, "APPROVALBOT_ADDR", defaultAddr))
	}
	fs.StringVar(&c.server, "server", def, "")
	c.token = strings.TrimSpace(getenv("APPROVALBOT_API_TOKEN"))
	return c
}

// api is the client of the server the flags name.
func (c *client) api() *apiclient.Client {
	a := apiclient.New(c.server, c.token, apiclient.WithHTTPClient(c.http))
	a.RetryDelay = waitRetryDelay
	return a
}

// dialAddr is where a client reaches a server listening on addr: the same
// address, with 127.0.0.1 for an empty host (":8080") or one that means every
// interface ("0.0.0.0:8080", "[::]:8080"), which are no address to connect
// to or to name in a Host header.
func dialAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// explain turns the client package's errors into what the command line says:
// the server's refusal in its words, an unreachable server with the hint to
// start one, an unusable --server as a usage error.
func (c *client) explain(err error) error {
	var (
		e      *apiclient.Error
		urlErr *url.Error
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e) && e.StatusCode == 0:
		return usageErr("%s", e.Message)
	case errors.As(err, &e):
		return fmt.Errorf("the server refused: %s", e.Message)
	case errors.Is(err, apiclient.ErrUnreachable):
		cause := errors.Unwrap(err)
		if errors.As(err, &urlErr) {
			cause = urlErr.Err
		}
		return fmt.Errorf("cannot reach approvalbot at %s (is it running? start it with: go run ./bot): %w", c.server, cause)
	}
	return err
}

// stringList is a repeatable flag; values may also be comma-separated.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// linkList is the repeatable --link label=url flag.
type linkList []apiclient.Link

func (l *linkList) String() string { return fmt.Sprint(*l) }
func (l *linkList) Set(v string) error {
	label, u, ok := strings.Cut(v, "=")
	if !ok || strings.Contains(label, "://") {
		label, u = "", v
	}
	*l = append(*l, apiclient.Link{Label: strings.TrimSpace(label), URL: strings.TrimSpace(u)})
	return nil
}

// groupList is the repeatable --group name[:min]=member,member flag.
type groupList []web.GroupJSON

func (l *groupList) String() string { return fmt.Sprint(*l) }
func (l *groupList) Set(v string) error {
	g, err := parseGroup(v)
	if err != nil {
		return err
	}
	*l = append(*l, g)
	return nil
}

// parseGroup reads "security:2=sec@example.com,U0SEC00001": the group's name,
// how many of its members must approve (1 when left out), and its members.
func parseGroup(v string) (web.GroupJSON, error) {
	head, members, ok := strings.Cut(v, "=")
	if !ok {
		return web.GroupJSON{}, fmt.Errorf("want name[:min]=member,member..., e.g. security:1=sec@example.com,U0SEC00001")
	}
	name, minText, hasMin := strings.Cut(strings.TrimSpace(head), ":")
	g := web.GroupJSON{Name: strings.TrimSpace(name), Min: 1}
	if g.Name == "" {
		return web.GroupJSON{}, fmt.Errorf("%q: the group has no name (want name[:min]=member,...)", v)
	}
	if hasMin {
		n, err := strconv.Atoi(strings.TrimSpace(minText))
		if err != nil || n < 1 {
			return web.GroupJSON{}, fmt.Errorf("%q: the minimum after %q must be a whole number of at least 1", v, g.Name+":")
		}
		g.Min = n
	}
	for _, m := range strings.Split(members, ",") {
		if m = strings.TrimSpace(m); m != "" {
			g.Approvers = append(g.Approvers, m)
		}
	}
	if len(g.Approvers) == 0 {
		return web.GroupJSON{}, fmt.Errorf("%q: group %s has no members", v, g.Name)
	}
	return g, nil
}

func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, help func(io.Writer)) error {
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			help(stdout)
			return &exitError{code: 0}
		}
		return usageErr("%v (see -h)", err)
	}
	return nil
}

// runRequest creates a request and, with --wait, waits for its outcome.
func runRequest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	c := clientFlags(fs, getenv)
	var (
		approvers stringList
		groups    groupList
		links     linkList
	)
	title := fs.String("title", "", "")
	details := fs.String("details", "", "")
	requester := fs.String("requester", getenv("USER"), "")
	timeout := fs.Duration("timeout", time.Hour, "")
	webhook := fs.String("webhook", "", "")
	channel := fs.String("slack-channel", "", "")
	policy := fs.String("policy", "", "")
	rejectPolicy := fs.String("reject-policy", "", "")
	selfApproval := fs.Bool("allow-self-approval", false, "")
	wait := fs.Bool("wait", false, "")
	asJSON := fs.Bool("json", false, "")
	fs.Var(&approvers, "approver", "")
	fs.Var(&groups, "group", "")
	fs.Var(&links, "link", "")
	lf := addLifecycleFlags(fs)
	if err := parseFlags(fs, args, stdout, printRequestHelp); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("request: unexpected argument %q (see request -h)", fs.Arg(0))
	}
	if *policy != "" {
		if _, err := approval.ParsePolicy(*policy); err != nil {
			return usageErr("--policy %q: want any, all or quorum:N (N a whole number of at least 1)", *policy)
		}
	}
	if *rejectPolicy != "" {
		if _, err := approval.ParseRejectPolicy(*rejectPolicy); err != nil {
			return usageErr("--reject-policy %q: want any or impossible", *rejectPolicy)
		}
	}
	if len(groups) > 0 && (len(approvers) > 0 || *policy != "") {
		return usageErr("request: give either --group (one or more), or --approver and --policy, not both (see request -h)")
	}
	if *details == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, web.MaxBody))
		if err != nil {
			return usageErr("read details from stdin: %v", err)
		}
		*details = string(b)
	}
	if *timeout%time.Second != 0 {
		return usageErr("--timeout must be whole seconds, got %s", *timeout)
	}
	in := apiclient.NewRequest{
		Title: *title, Details: *details, Requester: *requester, Timeout: *timeout,
		Policy: *policy, RejectPolicy: *rejectPolicy, AllowSelfApproval: *selfApproval,
		WebhookURL: *webhook, SlackChannel: *channel, Links: links,
	}
	if len(groups) > 0 {
		in.Groups = groups
	} else {
		in.Approvers = approvers
	}
	if err := lf.apply(&in); err != nil {
		return err
	}
	created, err := c.api().Create(ctx, in)
	if err != nil {
		return clientErr(c.explain(err))
	}
	r := *created
	show(stdout, r, *asJSON)
	if !*wait {
		return nil
	}
	return waitFor(ctx, c, r.ID, stdout, stderr, *asJSON)
}

// waitRetryDelay is the longest pause of waitFor before it asks again after a
// failure (the pauses grow from half a second).
var waitRetryDelay = 2 * time.Second

// waitFor waits until the request is no longer pending. A server that is
// briefly unreachable (restarting) or failing (5xx) is tried again for up to
// a minute.
func waitFor(ctx context.Context, c *client, id string, stdout, stderr io.Writer, asJSON bool) error {
	if !asJSON {
		fmt.Fprintln(stderr, "waiting for a decision (Ctrl-C stops waiting; the request stays open)...")
	}
	r, err := c.api().Wait(ctx, id)
	switch {
	case ctx.Err() != nil:
		return &exitError{code: exitUsage, err: fmt.Errorf("stopped waiting; request %s is still open", id)}
	case err != nil:
		return clientErr(c.explain(err))
	}
	showOutcome(stdout, *r, asJSON)
	if r.Status == apiclient.StatusApproved {
		return nil
	}
	return &exitError{code: exitNotOK}
}

func clientErr(err error) error {
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitUsage, err: err}
}

func show(w io.Writer, r web.RequestJSON, asJSON bool) {
	if asJSON {
		json.NewEncoder(w).Encode(r)
		return
	}
	fmt.Fprintf(w, "id:         %s\n", oneLine(r.ID))
	fmt.Fprintf(w, "status:     %s\n", oneLine(r.Status))
	fmt.Fprintf(w, "title:      %s\n", oneLine(r.Title))
	fmt.Fprintf(w, "requester:  %s\n", oneLine(r.Requester))
	fmt.Fprintf(w, "approvers:  %s\n", oneLine(strings.Join(r.Approvers, ", ")))
	fmt.Fprintf(w, "rule:       %s\n", oneLine(ruleText(r)))
	fmt.Fprintf(w, "expires:    %s\n", r.ExpiresAt.Local().Format(time.RFC3339))
	showLifecycle(w, r)
	showProgress(w, r)
	showNotifications(w, r)
	if r.Decision != nil {
		showDecision(w, r)
	}
	showReason(w, r)
}

func showOutcome(w io.Writer, r web.RequestJSON, asJSON bool) {
	if asJSON {
		json.NewEncoder(w).Encode(r)
		return
	}
	fmt.Fprintf(w, "status:     %s\n", oneLine(r.Status))
	showProgress(w, r)
	if r.Decision != nil {
		showDecision(w, r)
	}
	if c := r.Canceled; c != nil {
		showLifecycle(w, web.RequestJSON{Canceled: c, AllowDelegation: true})
	}
	showReason(w, r)
}

// ruleText is the request's rule in words, as the pages say it: "2 of 3
// approvers must approve", "one approval from each group: eng, security",
// with the reject rule and self-approval when they differ from the defaults.
func ruleText(r web.RequestJSON) string {
	rule, ok := r.Rule()
	if !ok {
		return r.Policy // a policy this client does not know: as the server says it
	}
	s := rule.Describe(len(r.Approvers))
	if rule.RejectPolicy == approval.RejectImpossible {
		s += "; rejected only once that can no longer happen"
	}
	if rule.AllowSelfApproval {
		s += "; the requester may approve"
	}
	return s
}

// showProgress prints how far the votes are from the rule, and each vote.
func showProgress(w io.Writer, r web.RequestJSON) {
	p := r.Progress
	line := fmt.Sprintf("%d of %d %s", counted(p), p.Required, plural(p.Required, "approval", "approvals"))
	if p.Rejections > 0 {
		line += fmt.Sprintf(", %d %s", p.Rejections, plural(p.Rejections, "rejection", "rejections"))
	}
	if r.Status == string(approval.StatusPending) && p.Needed > 0 {
		line += fmt.Sprintf("; %d more %s needed", p.Needed, plural(p.Needed, "approval", "approvals"))
	}
	var groups []string
	for _, g := range p.Groups {
		gs := fmt.Sprintf("%s %d of %d", g.Name, min(g.Approvals, g.Needed), g.Needed)
		if g.Satisfied {
			gs += " (met)"
		}
		groups = append(groups, gs)
	}
	if len(groups) > 0 {
		line += " · " + strings.Join(groups, ", ")
	}
	fmt.Fprintf(w, "progress:   %s\n", oneLine(line))
	if len(r.Votes) == 0 {
		fmt.Fprintln(w, "votes:      none yet")
		return
	}
	for i, v := range r.Votes {
		label := "votes:     "
		if i > 0 {
			label = "           "
		}
		line := fmt.Sprintf("%s %s by %s at %s", oneLine(v.By), oneLine(pastTense(v.Choice)), oneLine(v.Channel), v.At.Local().Format(time.RFC3339))
		if len(v.Groups) > 0 {
			line += " (" + oneLine(strings.Join(v.Groups, ", ")) + ")"
		}
		fmt.Fprintf(w, "%s %s\n", label, line)
		if v.Comment != "" {
			fmt.Fprintf(w, "              comment: %s\n", indentedBy(v.Comment, "                       "))
		}
	}
}

// counted is how many approvals count toward the rule, as the pages say it.
func counted(p web.ProgressJSON) int { return max(0, p.Required-p.Needed) }

// showNotifications prints the notifications that failed, for good or for
// now (those still on their first attempt, just after the request was
// created, are not news).
func showNotifications(w io.Writer, r web.RequestJSON) {
	for _, n := range r.Notifications {
		if n.State != "retrying" && n.State != "failed" {
			continue
		}
		line := fmt.Sprintf("%s to %s: %s", n.Channel, n.To, n.State)
		if n.Error != "" {
			line += " (" + n.Error + ")"
		}
		fmt.Fprintf(w, "notify:     %s\n", oneLine(line))
	}
}

// showReason says why a request closed without a decision.
func showReason(w io.Writer, r web.RequestJSON) {
	if r.Reason == "" {
		return
	}
	why := map[string]string{
		approval.ReasonNotificationFailed: "no approver could be reached",
		approval.ReasonWorkflowGone:       "the workflow stopped waiting before the outcome reached it",
		approval.ReasonCanceled:           "withdrawn before a decision",
	}[r.Reason]
	if why == "" {
		fmt.Fprintf(w, "reason:     %s\n", oneLine(r.Reason))
		return
	}
	fmt.Fprintf(w, "reason:     %s (%s)\n", oneLine(r.Reason), why)
}

func pastTense(choice string) string {
	switch choice {
	case string(approval.Approve):
		return "approved"
	case string(approval.Reject):
		return "rejected"
	}
	return choice
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func showDecision(w io.Writer, r web.RequestJSON) {
	d := r.Decision
	if d.ByTimeout {
		// Nobody decided: the request's onTimeout did, at the expiry.
		fmt.Fprintf(w, "decision:   %s by timeout\n", oneLine(d.Decision))
		fmt.Fprintf(w, "at:         %s (the expiry)\n", d.At.Local().Format(time.RFC3339))
		return
	}
	fmt.Fprintf(w, "decision:   %s\n", oneLine(d.Decision))
	fmt.Fprintf(w, "by:         %s\n", oneLine(d.By))
	fmt.Fprintf(w, "at:         %s\n", d.At.Local().Format(time.RFC3339))
	fmt.Fprintf(w, "channel:    %s\n", oneLine(d.Channel))
	if d.Comment != "" {
		fmt.Fprintf(w, "comment:    %s\n", indented(d.Comment))
	}
}

// oneLine is text that other people wrote, made safe to print as one line of a
// terminal: line breaks and tabs become spaces, other control characters
// (escape sequences that could recolour, move the cursor or rewrite a line)
// become U+FFFD.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			return ' '
		case unicode.IsControl(r):
			return unicode.ReplacementChar
		}
		return r
	}, s)
}

// indented is like oneLine but keeps line breaks, indenting the lines after the
// first so that none can pass for a field of its own.
func indented(s string) string { return indentedBy(s, "            ") }

// indentedBy is indented with the given indentation.
func indentedBy(s, indent string) string {
	lines := strings.Split(approval.NormalizeNewlines(s), "\n")
	for i, l := range lines {
		lines[i] = oneLine(l)
	}
	return strings.Join(lines, "\n"+indent)
}

// runGet shows one request, or waits for its outcome with --wait.
func runGet(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("get", flag.ContinueOnError)
	c := clientFlags(fs, getenv)
	wait := fs.Bool("wait", false, "")
	asJSON := fs.Bool("json", false, "")
	// Allow the ID before or after the flags.
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, stdout, printGetHelp); err != nil {
		return err
	}
	if id == "" && fs.NArg() > 0 {
		// The ID after some flags: the flags after it are read too.
		id = fs.Arg(0)
		if err := parseFlags(fs, fs.Args()[1:], stdout, printGetHelp); err != nil {
			return err
		}
	}
	switch {
	case id == "":
		return usageErr("get: want exactly one request ID (see get -h)")
	case fs.NArg() > 0:
		return usageErr("get: unexpected argument %q after the request ID (see get -h)", fs.Arg(0))
	}
	if *wait {
		return waitFor(ctx, c, id, stdout, stderr, *asJSON)
	}
	r, err := c.api().Get(ctx, id)
	if err != nil {
		return clientErr(c.explain(err))
	}
	show(stdout, *r, *asJSON)
	return nil
}

// listPageMax is the largest page --limit asks for.
const listPageMax = web.MaxListLimit

// runList shows requests, newest first: the pending ones, or with --status
// those of another status; one page of them, or with --all every page.
func runList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return listing(ctx, "list", args, getenv, stdout, stderr)
}

// runHistory shows the closed requests, newest first, with who decided (or
// withdrew) them, when and with what comment.
func runHistory(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return listing(ctx, "history", args, getenv, stdout, stderr)
}

// listing is list and history: they differ in the default status and in
// how much of a closed request they print.
func listing(ctx context.Context, cmd string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	l, err := parseListing(cmd, args, getenv, stdout)
	if err != nil {
		return err
	}
	return l.run(ctx, stdout, stderr)
}

// listCmd is a list or history command as its flags ask for it.
type listCmd struct {
	cmd    string // list or history
	c      *client
	opts   apiclient.ListOptions
	status approval.ListStatus
	all    bool // every page, not just one
	json   bool
}

// parseListing reads the flags of list (cmd "list") or history.
func parseListing(cmd string, args []string, getenv func(string) string, stdout io.Writer) (*listCmd, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	l := &listCmd{cmd: cmd, c: clientFlags(fs, getenv)}
	fs.BoolVar(&l.json, "json", false, "")
	fs.IntVar(&l.opts.Limit, "limit", 0, "")
	fs.BoolVar(&l.all, "all", false, "")
	fs.StringVar(&l.opts.Cursor, "cursor", "", "")
	defStatus, help := "pending", printListHelp
	if cmd == "history" {
		defStatus, help = "closed", printHistoryHelp
	}
	status := fs.String("status", defStatus, "")
	fs.StringVar(&l.opts.Approver, "approver", "", "")
	fs.StringVar(&l.opts.Requester, "requester", "", "")
	since := fs.String("since", "", "")
	until := fs.String("until", "", "")
	if err := parseFlags(fs, args, stdout, help); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, usageErr("%s: unexpected argument %q (see %s -h)", cmd, fs.Arg(0), cmd)
	}
	if l.opts.Limit < 0 || l.opts.Limit > listPageMax {
		return nil, usageErr("--limit %d: want 1 to %d (0: the server's default)", l.opts.Limit, listPageMax)
	}
	st, err := approval.ParseListStatus(*status)
	if err != nil {
		return nil, usageErr("--status %q: want pending, approved, rejected, expired, canceled or closed", *status)
	}
	if cmd == "history" && st == approval.ListStatus(approval.StatusPending) {
		return nil, usageErr("history lists closed requests; for pending ones use list")
	}
	l.status, l.opts.Status = st, string(st)
	l.opts.Approver, l.opts.Requester = strings.TrimSpace(l.opts.Approver), strings.TrimSpace(l.opts.Requester)
	for _, t := range []struct {
		name string
		raw  string
		dst  *time.Time
	}{{"since", *since, &l.opts.Since}, {"until", *until, &l.opts.Until}} {
		if raw := strings.TrimSpace(t.raw); raw != "" {
			if *t.dst, err = web.ParseTime(raw); err != nil {
				return nil, usageErr("--%s %q: want a time such as 2026-11-25T14:00:00Z or a date such as 2026-11-25", t.name, raw)
			}
		}
	}
	return l, nil
}

// run lists: one page, or with --all every page (text goes out a page at a
// time, so that --all holds one page in memory).
func (l *listCmd) run(ctx context.Context, stdout, stderr io.Writer) error {
	api := l.c.api()
	out := web.ListJSON{Requests: []web.RequestJSON{}}
	for {
		page, err := api.List(ctx, l.opts)
		if err != nil {
			return clientErr(l.c.explain(err))
		}
		out.Requests = append(out.Requests, page.Requests...)
		out.NextCursor = page.NextCursor
		if !l.all || page.NextCursor == "" || page.NextCursor == l.opts.Cursor {
			break
		}
		l.opts.Cursor = page.NextCursor
		if !l.json {
			printRequests(stdout, l.cmd, out.Requests)
			out.Requests = out.Requests[:0]
		}
	}
	if l.json {
		json.NewEncoder(stdout).Encode(out)
		return nil
	}
	if len(out.Requests) == 0 && out.NextCursor == "" && !l.all {
		fmt.Fprintf(stdout, "no %s requests\n", l.status)
		return nil
	}
	printRequests(stdout, l.cmd, out.Requests)
	if out.NextCursor != "" {
		fmt.Fprintf(stderr, "more requests: %s --all shows them all, %s --cursor %s the next page\n", l.cmd, l.cmd, oneLine(out.NextCursor))
	}
	return nil
}

// printRequests prints one line per request (and, in history, its comment).
func printRequests(w io.Writer, cmd string, rs []web.RequestJSON) {
	for _, r := range rs {
		if r.Status == string(approval.StatusPending) {
			p := r.Progress
			progress := fmt.Sprintf("%d/%d approvals", counted(p), p.Required)
			if p.Rejections > 0 {
				progress += fmt.Sprintf(", %d %s", p.Rejections, plural(p.Rejections, "rejection", "rejections"))
			}
			fmt.Fprintf(w, "%s  expires %s  %s  %s (by %s)\n", oneLine(r.ID), r.ExpiresAt.Local().Format(time.RFC3339), progress, oneLine(r.Title), oneLine(r.Requester))
			continue
		}
		at, by, comment := closedBy(r)
		line := fmt.Sprintf("%s  %-8s %s", oneLine(r.ID), oneLine(r.Status), at.Local().Format(time.RFC3339))
		if by != "" {
			line += "  by " + oneLine(by)
		}
		fmt.Fprintf(w, "%s  %s (asked by %s)\n", line, oneLine(r.Title), oneLine(r.Requester))
		if cmd == "history" && comment != "" {
			fmt.Fprintf(w, "    %s\n", indentedBy(comment, "    "))
		}
	}
}

// closedBy is when a closed request closed, who closed it (the deciding
// voter, or who withdrew it; "" when it expired), and their comment or
// reason, as the API shows it.
func closedBy(r web.RequestJSON) (time.Time, string, string) {
	switch {
	case r.Canceled != nil:
		return r.Canceled.At, r.Canceled.By, r.Canceled.Reason
	case r.Decision != nil && (r.Status == string(approval.StatusApproved) || r.Status == string(approval.StatusRejected)):
		return r.Decision.At, r.Decision.By, r.Decision.Comment
	case r.Decision != nil:
		return r.Decision.At, r.Decision.By, "(the workflow had stopped waiting) " + r.Decision.Comment
	}
	return r.ExpiresAt, "", ""
}
