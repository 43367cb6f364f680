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
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"approvalbot/bot/awsapp"
	"approvalbot/internal/testing/awsflow"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

const region = "us-east-1"

// run is the demo; it returns an error when something failed or, with
// --decide, when the execution did not end as the decision says it should.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	decide := fs.String("decide", "", `decide by itself: "approve" or "reject" (default: wait for a person)`)
	addr := fs.String("addr", "127.0.0.1:0", "loopback address serving the pages and the callback")
	approver := fs.String("approver", "approver@example.com", "approver's email address")
	title := fs.String("title", "Deploy approvalbot demo to production", "title of the request")
	timeout := fs.Duration("timeout", time.Hour, "how long the approver has")
	verbose := fs.Bool("v", false, "show the Lambdas' JSON logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *decide != "" && *decide != "approve" && *decide != "reject" {
		return fmt.Errorf(`--decide must be "approve" or "reject", not %q`, *decide)
	}
	logOut := io.Discard
	if *verbose {
		logOut = stderr
	}
	log := slog.New(slog.NewJSONHandler(logOut, nil))
	say := func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) }

	proxy, err := awsflow.NewProxy()
	if err != nil {
		return err
	}
	defer proxy.Close()
	say("starting moto_server…")
	moto, err := awsflow.StartMoto(ctx, []string{"MOTO_PORT=" + strconv.Itoa(proxy.Port())})
	if err != nil {
		return err
	}
	defer func() { moto.Stop(); say("stopped moto_server") }()
	if err := proxy.SetBackend(moto.URL); err != nil {
		return err
	}
	proxy.Record("AWSStepFunctions.SendTaskFailure") // moto drops the cause
	site, err := awsflow.NewSite(*addr)
	if err != nil {
		return err
	}
	defer site.Close()

	awsCfg := aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider("demo", "demo", ""),
		BaseEndpoint: aws.String(proxy.URL()),
	}
	cfg := awsapp.Config{
		Table: "approvals", Bucket: "approval-pages", PagesPrefix: "p/",
		PagesBaseURL: site.URL(), CallbackURL: site.URL(), MailFrom: "approvals@example.com",
	}
	if err := awsflow.CreateResources(ctx, awsCfg, cfg); err != nil {
		return err
	}
	app, err := awsapp.New(cfg, awsCfg, log.With("lambda", "notifier"))
	if err != nil {
		return err
	}
	cbCfg := cfg
	cbCfg.CallbackURL = "" // as deployed: the callback is not told its own URL
	callback, err := awsapp.NewCallback(cbCfg, awsCfg, log.With("lambda", "callback"))
	if err != nil {
		return err
	}
	notified := make(chan error, 1)
	notify := lambda.NewHandler(app.Notify)
	proxy.Handle("notifier", func(ctx context.Context, payload []byte) ([]byte, error) {
		out, err := notify.Invoke(ctx, payload)
		notified <- err
		return out, err
	})
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	site.Serve(cfg.PagesPrefix, awsflow.BucketPages(s3c, cfg.Bucket), awsflow.FunctionURL(callback.CallbackHandler()))
	say("moto at %s; pages and callback at %s", moto.URL, site.URL())

	sfnc := sfn.NewFromConfig(awsCfg)
	sm, err := awsflow.CreateStateMachine(ctx, sfnc, "approval-demo", awsflow.FunctionARN(region, "notifier"), *timeout+time.Minute)
	if err != nil {
		return err
	}
	input, _ := json.Marshal(map[string]any{"request": map[string]any{
		"title": *title, "details": "Started by scripts/demo against moto.", "requester": "scripts/demo",
		"approvers": []string{*approver}, "timeoutSeconds": int(timeout.Seconds()),
	}})
	name := "demo-" + time.Now().UTC().Format("20060102-150405")
	started, err := sfnc.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(sm), Name: aws.String(name), Input: aws.String(string(input))})
	if err != nil {
		return fmt.Errorf("start execution: %w", err)
	}
	execARN := aws.ToString(started.ExecutionArn)
	say("started execution %s", execARN)
	defer awsflow.Discard(context.Background(), sfnc, sm, execARN)

	select {
	case err := <-notified:
		if err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(60 * time.Second):
		return errors.New("moto did not invoke the notifier within 60s")
	}
	link, err := mailedLink(ctx, moto, site.URL(), *approver)
	if err != nil {
		return err
	}
	say("\nThe email to %s links to the one-time page:\n\n    %s\n", *approver, link)

	if *decide != "" {
		web := &http.Client{Timeout: 30 * time.Second}
		result, err := awsflow.Decide(ctx, web, link, *decide, "Decided by scripts/demo --decide "+*decide)
		if err != nil {
			return fmt.Errorf("decide through the page: %w", err)
		}
		say("submitted %q through the page's form (no JavaScript): the callback answered %d %q", *decide, result.Status, pageTitle(result.Body))
	} else {
		say("Open it in a browser and decide. Waiting for the decision (Ctrl-C stops the demo)…")
	}

	wait, cancel := context.WithTimeout(ctx, *timeout+2*time.Minute)
	defer cancel()
	done, err := awsflow.WaitExecution(wait, sfnc, execARN)
	if err != nil {
		if ctx.Err() != nil {
			return errors.New("interrupted while the execution was still running; stopping it")
		}
		return err
	}
	say("\nexecution %s", done.Status)
	switch done.Status {
	case types.ExecutionStatusSucceeded:
		say("output: %s", aws.ToString(done.Output))
	case types.ExecutionStatusFailed:
		errName, cause, _ := awsflow.Failure(ctx, sfnc, done)
		if sent := proxy.Recorded("AWSStepFunctions.SendTaskFailure"); cause == "" && len(sent) > 0 {
			var in struct{ Cause string }
			json.Unmarshal(sent[len(sent)-1], &in)
			cause = in.Cause
		}
		say("error: %s\ncause: %s", errName, cause)
	}
	return check(ctx, sfnc, *decide, *approver, done)
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
