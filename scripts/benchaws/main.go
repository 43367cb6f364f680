// Command benchaws measures the critical paths of approvalbot's AWS form: the
// notifier and the callback (package awsapp, wired as in the Lambdas) on moto,
// with Step Functions invoking the notifier through the proxy of package
// awsflow, and a fixed latency D added to every AWS call (by that proxy) and
// to every Slack Web API call (by a fake Slack API in this process).
// scripts/bench -aws builds and runs it; "benchaws -h" lists the flags.
//
// For each scenario it starts a fresh execution of the approval state machine
// and measures, from the timeline of calls, in units of D:
//   - notify: from the notifier's invocation to the pages being up, every
//     email sent and the Slack message posted, and to the invocation's answer;
//   - decide: from the approver's confirmed POST to its answer, to the
//     workflow resumed (SendTaskSuccess), the pages deleted, the Slack message
//     updated, and to the last call the vote caused (all bookkeeping done).
//
// Scenarios: policy any (2 email approvers and the Slack channel), and
// quorum:2 of 3 (a vote that does not decide, then the deciding one). Each
// runs -rounds times; the report gives medians and the timeline of the last
// round. It runs the Lambdas as deployed (the notifier synchronous; the
// callback streaming its answer once the vote is recorded and the workflow
// told, then finishing the rest before its invocation ends) and, with -async,
// also as a long-running process would (the notifier's answer waits only for
// the workflow too). The approver's answer is the moment the whole answer page
// has arrived. It exits 1 when a round fails.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"approvalbot/bot/slackapp"
	"approvalbot/internal/cmdmain"
	"approvalbot/internal/testing/awsflow"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

func main() { cmdmain.Main("benchaws", run) }

// config is what the flags set.
type config struct {
	D        time.Duration
	Rounds   int
	Async    bool
	Timeline bool
	Verbose  bool
	Timeout  time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("benchaws", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&c.D, "d", 200*time.Millisecond, "latency added to every AWS and Slack call (the emulators' own work adds to it: keep it well above theirs)")
	fs.IntVar(&c.Rounds, "rounds", 3, "rounds of each scenario (medians are reported)")
	fs.BoolVar(&c.Async, "async", false, "also measure the service as a long-running process runs it (not synchronous)")
	fs.BoolVar(&c.Timeline, "timeline", true, "print the timeline of calls of each scenario's last round")
	fs.BoolVar(&c.Verbose, "v", false, "print the Lambdas' JSON logs to stderr")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Minute, "stop everything after this long")
	if err := cmdmain.Parse(fs, args); err != nil {
		return c, err
	}
	switch {
	case c.D < time.Millisecond || c.D > 2*time.Second:
		return c, cmdmain.UsageError{Err: fmt.Errorf("-d %s: want 1ms to 2s", c.D)}
	case c.Rounds < 1 || c.Rounds > 50:
		return c, cmdmain.UsageError{Err: fmt.Errorf("-rounds %d: want 1 to 50", c.Rounds)}
	case c.Timeout <= 0:
		return c, cmdmain.UsageError{Err: fmt.Errorf("-timeout %s: want more than 0", c.Timeout)}
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err // -h: flag.ErrHelp, which cmdmain ends with exit 0
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logOut := io.Discard
	if cfg.Verbose {
		logOut = stderr
	}
	fmt.Fprintln(stderr, "benchaws: starting moto_server…")
	st, err := startStack(ctx, cfg.D, slog.New(slog.NewJSONHandler(logOut, nil)))
	if err != nil {
		return err
	}
	defer st.close()

	modes := []bool{true}
	if cfg.Async {
		modes = append(modes, false)
	}
	fmt.Fprintf(stdout, "AWS form on moto 5.2.1 with D = %s added to every AWS and Slack call; medians of %d rounds, in units of D [target]\n", cfg.D, cfg.Rounds)
	failed := false
	for _, sync := range modes {
		ok, err := st.runMode(ctx, cfg, sync, stdout, stderr)
		if err != nil {
			return err
		}
		failed = failed || !ok
	}
	if failed {
		return errors.New("some rounds failed")
	}
	return nil
}

// runMode runs every scenario's rounds with the service synchronous or not
// and reports them; ok is false when a round failed, err set when the
// deadline passed.
func (st *stack) runMode(ctx context.Context, cfg config, sync bool, stdout, stderr io.Writer) (ok bool, err error) {
	// As deployed: the notifier is synchronous; the callback streams its
	// answer once the vote is recorded and the workflow told, and
	// finishes the rest before its invocation ends (CallbackHandler).
	st.Notifier.Service.Sync = sync
	mode := "as in Lambda: the notifier answers once its effects are done and recorded; the callback streams its answer first and ends its invocation once the rest is recorded"
	if !sync {
		mode = "asynchronous, as a long-running process: answers wait only for the workflow; the rest finishes in the background"
	}
	fmt.Fprintf(stdout, "\n== service %s\n", mode)
	ok = true
	for _, sc := range scenarios {
		var rounds []*measure
		for i := 0; i < cfg.Rounds; i++ {
			m, err := st.runScenario(ctx, sc)
			if err != nil {
				fmt.Fprintf(stderr, "benchaws: %s, round %d: %v\n", sc.name, i+1, err)
				ok = false
				if ctx.Err() != nil {
					return false, err
				}
				continue
			}
			rounds = append(rounds, m)
		}
		if len(rounds) == 0 {
			continue
		}
		report(stdout, sc, rounds, cfg.D, cfg.Timeline)
	}
	return ok, nil
}

// scenario is one request and the votes cast on it.
type scenario struct {
	name      string
	policy    string
	approvers []string
	// votes cast one after the other, each measured; the last decides.
	votes []string
}

var scenarios = []scenario{
	{name: "policy any", policy: "any", approvers: []string{"alice@example.com", "bob@example.com"}, votes: []string{"alice@example.com"}},
	{name: "policy quorum:2 of 3", policy: "quorum:2", approvers: []string{"carol@example.com", "dave@example.com", "erin@example.com"},
		votes: []string{"carol@example.com", "dave@example.com"}},
}

// stack is the AWS form on moto (awsflow.Stack), with the latency proxy and
// the fake Slack.
type stack struct {
	*awsflow.Stack
	slack    *awsflow.SlackAPI
	timeline *awsflow.Timeline
	web      *http.Client
	invoked  chan awsflow.Invocation
	n        int
}

// startStack starts the fake Slack and the AWS form, then adds d to every
// call through the proxy and records the calls on the timeline.
func startStack(ctx context.Context, d time.Duration, log *slog.Logger) (*stack, error) {
	st := &stack{timeline: &awsflow.Timeline{}, web: &http.Client{Timeout: time.Minute}, invoked: make(chan awsflow.Invocation, 1)}
	var err error
	if st.slack, err = awsflow.StartSlackAPI(d, st.timeline); err != nil {
		return nil, err
	}
	st.Stack, err = awsflow.Start(ctx, awsflow.StackConfig{
		Table: "bench-approvals", Bucket: "bench-pages",
		Slack: slackapp.Config{
			BotToken: "xoxb-bench", SigningSecret: "bench", APIURL: st.slack.URL + "/", DefaultChannel: "C0BENCH001",
		},
		Log:      log,
		OnNotify: func(inv awsflow.Invocation) { st.invoked <- inv },
	})
	if err != nil {
		st.slack.Close()
		return nil, err
	}
	st.Proxy.SetTimeline(st.timeline)
	st.Proxy.SetDelay(d)
	return st, nil
}

func (st *stack) close() {
	st.Stack.Close()
	st.slack.Close()
}

// measure is what one round of a scenario took.
type measure struct {
	notify phase
	votes  []phase
}

// phase is one measured step: when it began, the times of its milestones, and
// the calls it made.
type phase struct {
	t0         time.Time
	milestones map[string]time.Duration
	calls      []awsflow.Call
}

// The milestones.
const (
	mPagesUp    = "pages up"
	mEmailsSent = "every email sent"
	mPosted     = "Slack message posted"
	mNotified   = "pages up, emails sent, Slack posted"
	mAnswered   = "notifier answered"
	mAnswer     = "approver's answer"
	mResumed    = "workflow resumed"
	mDeleted    = "pages taken down"
	mUpdated    = "Slack message updated"
	mCritical   = "answer, workflow, pages and Slack"
	mAll        = "all bookkeeping done"
)

// runScenario runs one round of sc: a fresh state machine and execution, the
// notifier's invocation, then each vote.
func (st *stack) runScenario(ctx context.Context, sc scenario) (*measure, error) {
	sm, exec, seen, err := st.startRound(ctx, sc)
	if err != nil {
		return nil, err
	}
	defer awsflow.Discard(context.WithoutCancel(ctx), st.SFN, sm, exec)

	var inv awsflow.Invocation
	select {
	case inv = <-st.invoked:
	case <-ctx.Done():
		return nil, fmt.Errorf("the notifier was not invoked: %w", ctx.Err())
	}
	if inv.Err != nil {
		return nil, fmt.Errorf("notifier: %w", inv.Err)
	}
	if err := st.Notifier.Service.Idle(ctx); err != nil {
		return nil, err
	}
	m := &measure{notify: notifyPhase(inv, st.timeline.Calls())}

	links, err := st.mailedLinks(ctx, seen)
	if err != nil {
		return nil, err
	}
	for _, voter := range sc.votes {
		link := links[voter]
		if link == "" {
			return nil, fmt.Errorf("no link mailed to %s (links: %v)", voter, links)
		}
		p, err := st.vote(ctx, link)
		if err != nil {
			return nil, fmt.Errorf("vote of %s: %w", voter, err)
		}
		m.votes = append(m.votes, p)
	}
	d, err := awsflow.WaitExecution(ctx, st.SFN, exec)
	if err != nil {
		return nil, err
	}
	if d.Status != types.ExecutionStatusSucceeded {
		return nil, fmt.Errorf("execution %s, want SUCCEEDED", d.Status)
	}
	return m, nil
}

// startRound creates a fresh state machine and starts its execution on sc's
// request, the timeline reset; seen is how many emails moto had sent before.
func (st *stack) startRound(ctx context.Context, sc scenario) (sm, exec string, seen int, err error) {
	st.n++
	sm, err = awsflow.CreateStateMachine(ctx, st.SFN, fmt.Sprintf("bench-%d", st.n), st.NotifierARN(), 10*time.Minute)
	if err != nil {
		return "", "", 0, err
	}
	in, _ := json.Marshal(map[string]any{"request": map[string]any{
		"title": "Deploy v2.4 (" + sc.name + ")", "requester": "ci@example.com", "approvers": sc.approvers,
		"policy": sc.policy, "timeoutSeconds": 3600,
	}})
	sentBefore, err := st.Moto.SentMail(ctx)
	if err != nil {
		return "", "", 0, err
	}
	st.timeline.Reset()
	out, err := st.SFN.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(sm), Name: aws.String(fmt.Sprintf("run-%d", st.n)), Input: aws.String(string(in)),
	})
	if err != nil {
		return "", "", 0, fmt.Errorf("start execution: %w", err)
	}
	return sm, aws.ToString(out.ExecutionArn), len(sentBefore), nil
}

// notifyPhase reads the notifier's milestones from the calls.
func notifyPhase(inv awsflow.Invocation, calls []awsflow.Call) phase {
	p := phase{t0: inv.Start, calls: since(calls, inv.Start), milestones: map[string]time.Duration{}}
	p.milestones[mPagesUp] = lastEnd(p.calls, inv.Start, "s3.PutObject")
	p.milestones[mEmailsSent] = lastEnd(p.calls, inv.Start, "ses.SendEmail")
	p.milestones[mPosted] = lastEnd(p.calls, inv.Start, "slack.chat.postMessage")
	p.milestones[mNotified] = max(p.milestones[mPagesUp], p.milestones[mEmailsSent], p.milestones[mPosted])
	p.milestones[mAnswered] = inv.End.Sub(inv.Start)
	all := p.milestones[mAnswered]
	for _, c := range p.calls {
		all = max(all, c.End.Sub(inv.Start))
	}
	p.milestones[mAll] = all
	return p
}

// vote opens the page at link and posts its approve as the page's script
// does (confirmed), and measures what follows from the POST.
func (st *stack) vote(ctx context.Context, link string) (phase, error) {
	page, err := awsflow.Get(ctx, st.web, link)
	if err != nil {
		return phase{}, err
	}
	if page.Status != http.StatusOK {
		return phase{}, fmt.Errorf("page: status %d", page.Status)
	}
	forms, err := awsflow.Forms(page.URL, page.Body)
	if err != nil {
		return phase{}, err
	}
	var action string
	var values url.Values
	for _, f := range forms {
		if slices.Contains(f.Buttons["decision"], "approve") {
			action, values = f.Action, f.Fields
		}
	}
	if action == "" {
		return phase{}, errors.New("no approve button on the page")
	}
	values.Set("decision", "approve")
	values.Set("confirmed", "1")
	st.timeline.Reset()
	t0 := time.Now()
	status, body, answered, err := postStreamed(ctx, st.web, action, values)
	if err != nil {
		return phase{}, err
	}
	if status != http.StatusOK {
		return phase{}, fmt.Errorf("answer: status %d:\n%s", status, body)
	}
	if err := st.Callback.Service.Idle(ctx); err != nil {
		return phase{}, err
	}
	return decidePhase(t0, answered, st.timeline.Calls()), nil
}

// postStreamed posts a page's form and reads the streamed answer, noting when
// the whole answer page had arrived (its closing </html>), which may be before
// the stream ends: the callback streams its answer, then finishes its
// bookkeeping before the invocation ends.
func postStreamed(ctx context.Context, c *http.Client, action string, values url.Values) (status int, body string, answered time.Time, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(values.Encode()))
	if err != nil {
		return 0, "", time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", time.Time{}, err
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, rerr := resp.Body.Read(buf)
		b.Write(buf[:n])
		if answered.IsZero() && strings.Contains(b.String(), "</html>") {
			answered = time.Now()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return 0, "", time.Time{}, fmt.Errorf("read the answer: %w", rerr)
		}
	}
	if answered.IsZero() {
		answered = time.Now()
	}
	return resp.StatusCode, b.String(), answered, nil
}

// decidePhase reads a vote's milestones from the calls made after t0.
func decidePhase(t0, answered time.Time, calls []awsflow.Call) phase {
	p := phase{t0: t0, calls: since(calls, t0), milestones: map[string]time.Duration{}}
	p.milestones[mAnswer] = answered.Sub(t0)
	p.milestones[mResumed] = lastEnd(p.calls, t0, "sfn.SendTaskSuccess")
	// Pages are taken down by replacing them with the late visitor's page
	// (s3.PutObject after the vote), or deleted.
	p.milestones[mDeleted] = max(lastEnd(p.calls, t0, "s3.DeleteObjects"), lastEnd(p.calls, t0, "s3.PutObject"))
	p.milestones[mUpdated] = lastEnd(p.calls, t0, "slack.chat.update")
	p.milestones[mCritical] = max(p.milestones[mAnswer], p.milestones[mResumed], p.milestones[mDeleted], p.milestones[mUpdated])
	all := p.milestones[mAnswer]
	for _, c := range p.calls {
		all = max(all, c.End.Sub(t0))
	}
	p.milestones[mAll] = all
	return p
}

// since returns the calls that started at or after t0, but for the Lambda
// invocations (Step Functions calling the notifier).
func since(calls []awsflow.Call, t0 time.Time) []awsflow.Call {
	var out []awsflow.Call
	for _, c := range calls {
		if !c.Start.Before(t0) && !strings.HasPrefix(c.Name, "lambda.Invoke") {
			out = append(out, c)
		}
	}
	return out
}

// lastEnd is when the last call named name ended, after t0; -1 when there
// was none.
func lastEnd(calls []awsflow.Call, t0 time.Time, name string) time.Duration {
	d := time.Duration(-1)
	for _, c := range calls {
		if c.Name == name {
			d = max(d, c.End.Sub(t0))
		}
	}
	return d
}

var pageLink = regexp.MustCompile(`https?://[^\s"<>]+/p/[A-Za-z0-9_-]+`)

// mailedLinks returns the page link mailed to each approver, from the
// messages moto sent after the first seen.
func (st *stack) mailedLinks(ctx context.Context, seen int) (map[string]string, error) {
	mail, err := st.Moto.SentMail(ctx)
	if err != nil {
		return nil, err
	}
	links := map[string]string{}
	for _, m := range mail[min(seen, len(mail)):] {
		l := pageLink.FindString(m.Body)
		for _, to := range m.To {
			links[to] = l
		}
	}
	return links, nil
}
