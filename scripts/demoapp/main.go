// Command demo runs the Step Functions approval flow of the AWS form on this
// machine, against moto, with the real Lambda handlers: it is not deployed
// (scripts/build skips it). scripts/demo runs it; see there for its usage.
//
// It starts moto_server (with Step Functions execution on, and its Lambda calls
// routed through a proxy to the notifier handler in this process), creates the
// table, the bucket, the sender identity and a state machine whose task is the
// notifier with .waitForTaskToken, starts an execution, and prints the link of
// the approver's one-time page, served with the callback on 127.0.0.1. When the
// execution ends it prints its status and output, and stops what it started.
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
	"regexp"
	"time"

	"approvalbot/internal/cmdmain"
	"approvalbot/internal/testing/awsflow"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

func main() { cmdmain.Main("demo", run) }

// failureTarget is the call whose body the proxy keeps: moto drops the cause
// of SendTaskFailure.
const failureTarget = "AWSStepFunctions.SendTaskFailure"

// options are what the flags set.
type options struct {
	decide, addr, approver, title string
	timeout                       time.Duration
	verbose                       bool
}

// run is the demo; it returns an error when something failed or, with
// --decide, when the execution did not end as the decision says it should.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }
	logOut := io.Discard
	if o.verbose {
		logOut = stderr
	}
	notified := make(chan error, 1)
	say("starting moto_server…")
	st, err := awsflow.Start(ctx, awsflow.StackConfig{
		Addr:     o.addr,
		Log:      slog.New(slog.NewJSONHandler(logOut, nil)),
		OnNotify: func(inv awsflow.Invocation) { notified <- inv.Err },
	})
	if err != nil {
		return err
	}
	defer func() { st.Close(); say("stopped moto_server") }()
	st.Proxy.Record(failureTarget)
	say("moto at %s; pages and callback at %s", st.Moto.URL, st.Site.URL())

	sm, execARN, err := startExecution(ctx, st, o)
	if err != nil {
		return err
	}
	say("started execution %s", execARN)
	defer awsflow.Discard(context.Background(), st.SFN, sm, execARN)
	link, err := awaitLink(ctx, st, notified, o.approver)
	if err != nil {
		return err
	}
	say("\nThe email to %s links to the one-time page:\n\n    %s\n", o.approver, link)
	if err := decideOrPrompt(ctx, o.decide, link, say); err != nil {
		return err
	}
	done, err := waitEnd(ctx, st.SFN, execARN, o.timeout+2*time.Minute)
	if err != nil {
		return err
	}
	report(ctx, st, done, say)
	return check(ctx, st.SFN, o.decide, o.approver, done)
}

// parseFlags reads the flags in args.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.decide, "decide", "", `decide by itself: "approve" or "reject" (default: wait for a person)`)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:0", "loopback address serving the pages and the callback")
	fs.StringVar(&o.approver, "approver", "approver@example.com", "approver's email address")
	fs.StringVar(&o.title, "title", "Deploy approvalbot demo to production", "title of the request")
	fs.DurationVar(&o.timeout, "timeout", time.Hour, "how long the approver has")
	fs.BoolVar(&o.verbose, "v", false, "show the Lambdas' JSON logs")
	if err := cmdmain.Parse(fs, args); err != nil {
		return o, err
	}
	if o.decide != "" && o.decide != "approve" && o.decide != "reject" {
		return o, cmdmain.UsageError{Err: fmt.Errorf(`--decide must be "approve" or "reject", not %q`, o.decide)}
	}
	return o, nil
}

// startExecution creates the approval state machine and starts an execution
// asking the approver; it returns their ARNs.
func startExecution(ctx context.Context, st *awsflow.Stack, o options) (sm, execARN string, err error) {
	sm, err = awsflow.CreateStateMachine(ctx, st.SFN, "approval-demo", st.NotifierARN(), o.timeout+time.Minute)
	if err != nil {
		return "", "", err
	}
	input, _ := json.Marshal(map[string]any{"request": map[string]any{
		"title": o.title, "details": "Started by scripts/demo against moto.", "requester": "scripts/demo",
		"approvers": []string{o.approver}, "timeoutSeconds": int(o.timeout.Seconds()),
	}})
	name := "demo-" + time.Now().UTC().Format("20060102-150405")
	started, err := st.SFN.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(sm), Name: aws.String(name), Input: aws.String(string(input))})
	if err != nil {
		return "", "", fmt.Errorf("start execution: %w", err)
	}
	return sm, aws.ToString(started.ExecutionArn), nil
}

// awaitLink waits for the notifier's invocation and returns the page link it
// mailed to approver.
func awaitLink(ctx context.Context, st *awsflow.Stack, notified <-chan error, approver string) (string, error) {
	select {
	case err := <-notified:
		if err != nil {
			return "", fmt.Errorf("notifier: %w", err)
		}
	case <-ctx.Done():
		return "", ctx.Err()
	case <-time.After(60 * time.Second):
		return "", errors.New("moto did not invoke the notifier within 60s")
	}
	return mailedLink(ctx, st.Moto, st.Site.URL(), approver)
}

// decideOrPrompt submits decide through the page at link, as a browser
// without JavaScript would, or, when decide is empty, asks a person to.
func decideOrPrompt(ctx context.Context, decide, link string, say func(string, ...any)) error {
	if decide == "" {
		say("Open it in a browser and decide. Waiting for the decision (Ctrl-C stops the demo)…")
		return nil
	}
	web := &http.Client{Timeout: 30 * time.Second}
	result, err := awsflow.Decide(ctx, web, link, decide, "Decided by scripts/demo --decide "+decide)
	if err != nil {
		return fmt.Errorf("decide through the page: %w", err)
	}
	say("submitted %q through the page's form (no JavaScript): the callback answered %d %q", decide, result.Status, pageTitle(result.Body))
	return nil
}

// waitEnd waits, at most timeout, for the execution to end.
func waitEnd(ctx context.Context, c *sfn.Client, execARN string, timeout time.Duration) (*sfn.DescribeExecutionOutput, error) {
	wait, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done, err := awsflow.WaitExecution(wait, c, execARN)
	if err != nil {
		if ctx.Err() != nil {
			return nil, errors.New("interrupted while the execution was still running; stopping it")
		}
		return nil, err
	}
	return done, nil
}

// report says how the execution ended: its output, or its error and cause
// (the cause as sent, since moto drops it).
func report(ctx context.Context, st *awsflow.Stack, done *sfn.DescribeExecutionOutput, say func(string, ...any)) {
	say("\nexecution %s", done.Status)
	switch done.Status {
	case types.ExecutionStatusSucceeded:
		say("output: %s", aws.ToString(done.Output))
	case types.ExecutionStatusFailed:
		errName, cause, _ := awsflow.Failure(ctx, st.SFN, done)
		if sent := st.Proxy.Recorded(failureTarget); cause == "" && len(sent) > 0 {
			var in struct{ Cause string }
			json.Unmarshal(sent[len(sent)-1], &in)
			cause = in.Cause
		}
		say("error: %s\ncause: %s", errName, cause)
	}
}

// check reports whether the execution ended as the decision says it should:
// on approve, with the approver's vote in the output.
func check(ctx context.Context, c *sfn.Client, decide, approver string, d *sfn.DescribeExecutionOutput) error {
	switch decide {
	case "approve":
		var out struct {
			Decision string
			Votes    []struct{ By, Channel, Choice string }
		}
		json.Unmarshal([]byte(aws.ToString(d.Output)), &out)
		if d.Status != types.ExecutionStatusSucceeded || out.Decision != "approved" {
			return fmt.Errorf("want SUCCEEDED with decision approved, got %s with %s", d.Status, aws.ToString(d.Output))
		}
		if len(out.Votes) != 1 || out.Votes[0].By != approver || out.Votes[0].Choice != "approve" || out.Votes[0].Channel != "email" {
			return fmt.Errorf("want the output to hold the approval of %s by email as its one vote, got %s", approver, aws.ToString(d.Output))
		}
	case "reject":
		errName, _, _ := awsflow.Failure(ctx, c, d)
		if d.Status != types.ExecutionStatusFailed || errName != "Rejected" {
			return fmt.Errorf("want FAILED with error Rejected, got %s with %q", d.Status, errName)
		}
	}
	return nil
}

// mailedLink reads the page link from the email moto's SES sent to approver.
func mailedLink(ctx context.Context, moto *awsflow.Moto, siteURL, approver string) (string, error) {
	mails, err := moto.SentMail(ctx)
	if err != nil {
		return "", err
	}
	link := regexp.MustCompile(regexp.QuoteMeta(siteURL) + `/p/[A-Za-z0-9_-]+`)
	for i := len(mails) - 1; i >= 0; i-- {
		for _, to := range mails[i].To {
			if to == approver {
				if l := link.FindString(mails[i].Body); l != "" {
					return l, nil
				}
			}
		}
	}
	return "", fmt.Errorf("no email with a page link was sent to %s", approver)
}

var titleRe = regexp.MustCompile(`(?s)<title>(.*?)</title>`)

func pageTitle(html string) string {
	if m := titleRe.FindStringSubmatch(html); m != nil {
		return m[1]
	}
	return ""
}
