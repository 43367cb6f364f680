// Command notifier is the Lambda that a Step Functions task
// "arn:aws:states:::lambda:invoke.waitForTaskToken" invokes with
// {"taskToken": "$$.Task.Token", "request": {...}}: it puts one page per email
// approver on S3, stores the request with its notifications in DynamoDB, then
// emails each approver through SES v2, posts the Slack message and sends Slack
// approvers a direct message, and answers once those have run and their states
// are recorded (see awsapp.App.Notify; the service is synchronous, since Lambda
// may freeze the process once it answers). A retried invocation for the same
// task token takes over the notifications an earlier one left undone. Invoked
// by an EventBridge scheduled rule, it sweeps instead: it closes the requests
// past their expiry and takes over every effect that is due (notifications to
// retry, outcomes to deliver, pages to delete, messages to update; see
// awsapp.App.Sweep).
//
// Its wiring is awsapp.NotifierFromEnv. Environment (lambdaenv.Notifier):
// APPROVALS_TABLE, PAGES_BUCKET, PAGES_PREFIX (default "p/"), PAGES_BASE_URL,
// CALLBACK_URL, MAIL_FROM, SES_CONFIGURATION_SET (optional), optionally
// SLACK_SECRET_ARN (or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET) and
// SLACK_DEFAULT_CHANNEL, and the AWS SDK's own variables (AWS_REGION,
// AWS_ENDPOINT_URL…).
package main

import (
	"context"
	"log/slog"
	"os"

	"approvalbot/bot/awsapp"

	"github.com/aws/aws-lambda-go/lambda"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	app, err := awsapp.NotifierFromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("notifier: not started", "err", err)
		os.Exit(1)
	}
	lambda.Start(app.Handle)
}
