package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"approvalbot/bot/approval"
	apiclient "approvalbot/bot/client"
	"approvalbot/bot/web"
)

// The client's side of timing and hand-offs: the request flags for
// reminders, escalation, the timeout action and delegation; the cancel and
// extend commands; and how "get" shows them.

// durationList is a repeatable duration flag; values may also be
// comma-separated.
type durationList []time.Duration

func (l *durationList) String() string { return fmt.Sprint(*l) }
func (l *durationList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 30m or 24h", s)
		}
		*l = append(*l, d)
	}
	return nil
}

// escalationGroupList is the repeatable --escalate-group name=member,... flag.
type escalationGroupList []web.EscalationGroup

func (l *escalationGroupList) String() string { return fmt.Sprint(*l) }
func (l *escalationGroupList) Set(v string) error {
	name, members, ok := strings.Cut(v, "=")
	g := web.EscalationGroup{Name: strings.TrimSpace(name)}
	if !ok || g.Name == "" {
		return fmt.Errorf("want name=member,member..., e.g. security=ciso@example.com")
	}
	for _, m := range strings.Split(members, ",") {
		if m = strings.TrimSpace(m); m != "" {
			g.Approvers = append(g.Approvers, m)
		}
	}
	if len(g.Approvers) == 0 {
		return fmt.Errorf("%q: no members", v)
	}
	*l = append(*l, g)
	return nil
}

// lifecycleFlags are the request flags of timing and hand-offs.
type lifecycleFlags struct {
	onTimeout       *string
	remindEvery     *time.Duration
	remindBefore    durationList
	escalateAfter   *time.Duration
	escalateTo      stringList
	escalateGroups  escalationGroupList
	escalateChannel *string
	noDelegation    *bool
}

func addLifecycleFlags(fs *flag.FlagSet) *lifecycleFlags {
	f := &lifecycleFlags{
		onTimeout:       fs.String("on-timeout", "", ""),
		remindEvery:     fs.Duration("remind-every", 0, ""),
		escalateAfter:   fs.Duration("escalate-after", 0, ""),
		escalateChannel: fs.String("escalate-channel", "", ""),
		noDelegation:    fs.Bool("no-delegation", false, ""),
	}
	fs.Var(&f.remindBefore, "remind-before", "")
	fs.Var(&f.escalateTo, "escalate-to", "")
	fs.Var(&f.escalateGroups, "escalate-group", "")
	return f
}

// apply checks the flags and sets them on the request in.
func (f *lifecycleFlags) apply(in *apiclient.NewRequest) error {
	if *f.onTimeout != "" {
		if _, err := approval.ParseTimeoutAction(*f.onTimeout); err != nil {
			return usageErr("--on-timeout %q: want expire, reject or approve", *f.onTimeout)
		}
		in.OnTimeout = *f.onTimeout
	}
	whole := func(flag string, d time.Duration) error {
		if d%time.Second != 0 || d < 0 {
			return usageErr("--%s must be whole seconds, got %s", flag, d)
		}
		return nil
	}
	if *f.remindEvery != 0 || len(f.remindBefore) > 0 {
		if err := whole("remind-every", *f.remindEvery); err != nil {
			return err
		}
		for _, d := range f.remindBefore {
			if err := whole("remind-before", d); err != nil {
				return err
			}
		}
		in.Reminders = &apiclient.Reminders{Every: *f.remindEvery, BeforeExpiry: f.remindBefore}
	}
	escalates := len(f.escalateTo) > 0 || len(f.escalateGroups) > 0 || *f.escalateChannel != ""
	switch {
	case escalates && *f.escalateAfter == 0:
		return usageErr("--escalate-to, --escalate-group and --escalate-channel need --escalate-after")
	case *f.escalateAfter != 0:
		if err := whole("escalate-after", *f.escalateAfter); err != nil {
			return err
		}
		e := &apiclient.Escalation{After: *f.escalateAfter, Approvers: f.escalateTo, SlackChannel: *f.escalateChannel}
		for _, g := range f.escalateGroups {
			e.Groups = append(e.Groups, apiclient.EscalationGroup{Name: g.Name, Approvers: g.Approvers})
		}
		in.Escalation = e
	}
	if *f.noDelegation {
		no := false
		in.AllowDelegation = &no
	}
	return nil
}

// idArg reads "COMMAND ID [flags]" or "COMMAND [flags] ID".
func idArg(fs *flag.FlagSet, args []string, stdout io.Writer, help func(io.Writer), cmd string) (string, error) {
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	if err := parseFlags(fs, args, stdout, help); err != nil {
		return "", err
	}
	if id == "" && fs.NArg() > 0 {
		id = fs.Arg(0)
	}
	if id == "" || fs.NArg() > 1 || (fs.NArg() == 1 && fs.Arg(0) != id) {
		return "", usageErr("%s: want exactly one request ID (see %s -h)", cmd, cmd)
	}
	return id, nil
}

// runCancel withdraws a pending request: bot cancel ID [--reason text].
func runCancel(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("cancel", flag.ContinueOnError)
	c := clientFlags(fs, getenv)
	reason := fs.String("reason", "", "")
	asJSON := fs.Bool("json", false, "")
	id, err := idArg(fs, args, stdout, printCancelHelp, "cancel")
	if err != nil {
		return err
	}
	r, err := c.api().Cancel(ctx, id, apiclient.CancelInput{Reason: *reason})
	if err != nil {
		return clientErr(c.explain(err))
	}
	show(stdout, *r, *asJSON)
	return nil
}

// runExtend gives a pending request more time: bot extend ID --timeout 2h.
func runExtend(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("extend", flag.ContinueOnError)
	c := clientFlags(fs, getenv)
	timeout := fs.Duration("timeout", 0, "")
	asJSON := fs.Bool("json", false, "")
	id, err := idArg(fs, args, stdout, printExtendHelp, "extend")
	if err != nil {
		return err
	}
	if *timeout <= 0 || *timeout%time.Second != 0 {
		return usageErr("extend: --timeout is required, in whole seconds (e.g. --timeout 2h): how long from now the request waits")
	}
	r, err := c.api().Extend(ctx, id, *timeout)
	if err != nil {
		return clientErr(c.explain(err))
	}
	show(stdout, *r, *asJSON)
	return nil
}

// showLifecycle prints the timers and hand-offs of r.
func showLifecycle(w io.Writer, r web.RequestJSON) {
	switch r.OnTimeout {
	case string(approval.TimeoutApprove):
		fmt.Fprintln(w, "on timeout: approve (unless someone has rejected it)")
	case string(approval.TimeoutReject):
		fmt.Fprintln(w, "on timeout: reject")
	}
	if m := r.Reminders; m != nil {
		var parts []string
		if m.EverySeconds > 0 {
			parts = append(parts, "every "+span(m.EverySeconds))
		}
		if len(m.BeforeExpirySeconds) > 0 {
			var before []string
			for _, b := range m.BeforeExpirySeconds {
				before = append(before, span(b))
			}
			parts = append(parts, strings.Join(before, ", ")+" before the expiry")
		}
		line := strings.Join(parts, "; ")
		if m.LastAt != nil {
			line += "; last " + m.LastAt.Local().Format(time.RFC3339)
		}
		if m.NextAt != nil && r.Status == string(approval.StatusPending) {
			line += "; next " + m.NextAt.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "reminders:  %s\n", oneLine(line))
	}
	if e := r.Escalation; e != nil {
		people := append([]string(nil), e.Approvers...)
		for _, g := range e.Groups {
			people = append(people, g.Name+": "+strings.Join(g.Approvers, ", "))
		}
		line := fmt.Sprintf("after %s to %s", span(e.AfterSeconds), strings.Join(people, "; "))
		if e.SlackChannel != "" {
			line += " (posted in " + e.SlackChannel + ")"
		}
		switch {
		case e.EscalatedAt != nil:
			line += "; escalated " + e.EscalatedAt.Local().Format(time.RFC3339)
		case e.DueAt != nil:
			line += "; due " + e.DueAt.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(w, "escalation: %s\n", oneLine(line))
	}
	if !r.AllowDelegation {
		fmt.Fprintln(w, "delegation: not allowed")
	}
	for i, d := range r.Delegations {
		label := "handed on: "
		if i > 0 {
			label = "           "
		}
		fmt.Fprintf(w, "%s %s delegated to %s at %s (%s)\n", label, oneLine(d.From), oneLine(d.To), d.At.Local().Format(time.RFC3339), oneLine(d.Channel))
	}
	for i, x := range r.Extensions {
		label := "extended:  "
		if i > 0 {
			label = "           "
		}
		fmt.Fprintf(w, "%s by %s at %s, from %s\n", label, oneLine(x.By), x.At.Local().Format(time.RFC3339), x.From.Local().Format(time.RFC3339))
	}
	if c := r.Canceled; c != nil {
		line := fmt.Sprintf("by %s at %s", c.By, c.At.Local().Format(time.RFC3339))
		if c.Reason != "" {
			line += ": " + c.Reason
		}
		fmt.Fprintf(w, "canceled:   %s\n", indented(line))
	}
}

// span writes a number of seconds the way people say it: 90s, 45m, 2h, 1d.
func span(secs int64) string {
	d := time.Duration(secs) * time.Second
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

func printCancelHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot cancel ID [--reason text] [--json] [--server url]

Withdraws a pending request: its status becomes canceled, its pages go, its
Slack messages say who canceled it and why, and whatever waits for it is told
(a waiting command exits 1, the webhook gets "decision": "canceled"). Who
cancels is the API caller: APPROVALBOT_API_TOKEN_NAME on the server, or "api".

Flags:
  --reason text   why (at most 500 characters), shown in Slack and to the workflow
`)
}

func printExtendHelp(w io.Writer) {
	fmt.Fprint(w, `Usage: go run ./bot extend ID --timeout duration [--json] [--server url]

Gives a pending request more time: it now expires the given duration from now
(later than its current expiry, and at most 30 days after its creation). The
approvers' pages and Slack messages show the new expiry; their links keep
working.

Flags:
  --timeout duration   how long from now the request waits, e.g. 2h
`)
}
