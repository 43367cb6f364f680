// Command callback is the Lambda behind the callback's function URL (InvokeMode
// RESPONSE_STREAM): it serves the one-time pages' POST /decide with the same
// HTTP handler as the embedded mode, its local API disabled, over DynamoDB, S3,
// SES v2 and Step Functions (see awsapp.App.CallbackHandler). A vote is one
// conditional write on the request (one UpdateItem, with no read before it,
// when any one vote decides the request); the vote that closes it hands the
// outcome to Step Functions, deletes the pages and updates the Slack messages.
// The answer is streamed as soon as the vote is recorded and Step Functions
// told; the invocation ends once the rest is done and recorded (see
// awsapp.App.CallbackHandler).
//
// Environment: the notifier's (APPROVALS_TABLE, PAGES_BUCKET, PAGES_PREFIX,
// PAGES_BASE_URL, MAIL_FROM, SES_CONFIGURATION_SET) except that CALLBACK_URL is
// optional (its confirmation step posts to the relative /decide), optionally
// SLACK_SECRET_ARN to update the Slack message, and the AWS SDK's own variables.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"

	"approvalbot/bot/awsapp"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"
)

func main() {
	if err := run(context.Background(), os.Getenv, os.Stderr); err != nil {
		os.Exit(1)
	}
}

// run wires the callback from the environment and serves function URL requests.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	app, err := awsapp.CallbackFromEnv(ctx, getenv, log)
	if err != nil {
		log.Error("callback: not started", "err", err)
		return err
	}
	lambdaurl.Start(app.CallbackHandler(), lambda.WithContext(ctx))
	return nil
}
