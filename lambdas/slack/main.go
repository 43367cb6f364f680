// Command slack is the Lambda behind the Slack app's function URL. It serves
// POST /slack/commands (/approvals) and POST /slack/interactions (the
// Approve, Reject and "Open approval page" buttons) with slackapp.Handler,
// voting through the AWS form of the service (DynamoDB, S3 pages, SES v2, Step
// Functions). The function URL must use InvokeMode RESPONSE_STREAM
// (lambdaurl): a click is acknowledged by flushing an empty 200 at once, and
// the vote, its effects and the ephemeral answer to the voter follow in the
// same invocation.
//
// Its wiring is awsapp.SlackFromEnv. Environment (lambdaenv.Slack): the
// notifier's (CALLBACK_URL is required: personal links post there), and
// SLACK_SECRET_ARN (a secret {"botToken","signingSecret"}) or SLACK_BOT_TOKEN
// and SLACK_SIGNING_SECRET, optionally SLACK_DEFAULT_CHANNEL and SLACK_API_URL.
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
	app, err := awsapp.SlackFromEnv(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("slack: not started", "err", err)
		os.Exit(1)
	}
	lambdaurl.Start(app.SlackHandler())
}
