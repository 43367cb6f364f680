// Command callback is the Lambda behind the callback's function URL (InvokeMode
// RESPONSE_STREAM): it serves the one-time pages' POST /decide (and the
// "Delegate to…" form's POST /delegate) with the same HTTP handler as the
// embedded mode, its local API disabled, over DynamoDB, S3, SES v2 and Step
// Functions (see awsapp.App.CallbackHandler). A vote is one conditional write
// on the request (one UpdateItem, with no read before it, when any one vote
// decides the request); the vote that closes it hands the outcome to Step
// Functions, deletes the pages and updates the Slack messages. The answer is
// streamed as soon as the vote is recorded and Step Functions told; the
// invocation ends once the rest is done and recorded.
//
// Its wiring is awsapp.CallbackFromEnv. Environment (lambdaenv.Callback): the
// notifier's, except that CALLBACK_URL is optional (its confirmation step
// posts to the relative /decide). MAIL_FROM is required: a delegate is emailed
// their page. Slack is optional and updates the request's messages.
package main

import (
	"context"
	"log/slog"
	"os"

	"approvalbot/bot/awsapp"

	"github.com/aws/aws-lambda-go/lambdaurl"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	app, err := awsapp.CallbackFromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("callback: not started", "err", err)
		os.Exit(1)
	}
	lambdaurl.Start(app.CallbackHandler())
}
