// Command slack is the Lambda behind the Slack app's function URL. It serves
// POST /slack/commands (/approvals) and POST /slack/interactions (the
// Approve, Reject and "Open approval page" buttons) with slackapp.Handler,
// voting through the AWS form of the service (awsapp: DynamoDB, S3 pages, Step
// Functions).
//
// Environment: the variables of awsapp (APPROVALS_TABLE, PAGES_BUCKET,
// PAGES_PREFIX, PAGES_BASE_URL, CALLBACK_URL, MAIL_FROM…), SLACK_SECRET_ARN (a
// secret {"botToken","signingSecret"}) or SLACK_BOT_TOKEN and
// SLACK_SIGNING_SECRET, and optionally SLACK_DEFAULT_CHANNEL and SLACK_API_URL.
// The function URL must use InvokeMode RESPONSE_STREAM (lambdaurl): a click is
// acknowledged by flushing an empty 200 at once, and the vote, its effects and
// the ephemeral answer to the voter follow in the same invocation.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"approvalbot/bot/approval"
	"approvalbot/bot/awsapp"
	"approvalbot/bot/slackapp"
	"approvalbot/bot/slackapp/slacksecret"
)

func main() {
	if err := run(context.Background(), os.Getenv, os.Stderr); err != nil {
		os.Exit(1)
	}
}

// run wires the Slack routes from the environment and serves the function URL.
func run(ctx context.Context, getenv func(string) string, stderr io.Writer) error {
	log := slog.New(slog.NewJSONHandler(stderr, nil))
	h, _, err := setup(ctx, getenv, log)
	if err != nil {
		log.Error("slack: not started", "err", err)
		return err
	}
	lambdaurl.Start(h)
	return nil
}

// setup builds the Slack handler over the AWS form of the service, which it
// returns too. It reads the Slack secret once, here, rather than through
// awsapp.FromEnv, because the routes need the signing secret and the client
// too.
func setup(ctx context.Context, getenv func(string) string, log *slog.Logger) (http.Handler, *approval.Service, error) {
	cfg, err := awsapp.ConfigFromEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	awsCfg, err := awsapp.LoadAWS(ctx)
	if err != nil {
		return nil, nil, err
	}
	app, err := awsapp.New(cfg, awsCfg, log)
	if err != nil {
		return nil, nil, err
	}
	sc, err := slackapp.ConfigFromEnv(getenv)
	if err != nil {
		return nil, nil, err
	}
	if sc.SecretARN == "" && (sc.BotToken == "" || sc.SigningSecret == "") {
		return nil, nil, fmt.Errorf("SLACK_SECRET_ARN (or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET) is required")
	}
	if err := slacksecret.Load(ctx, secretsmanager.NewFromConfig(awsCfg), &sc); err != nil {
		return nil, nil, err
	}
	if sc.SigningSecret == "" {
		return nil, nil, fmt.Errorf("SLACK_SIGNING_SECRET (or signingSecret in SLACK_SECRET_ARN) is required to serve Slack's requests")
	}
	client := slackapp.NewClient(sc)
	app.Service.Chat = slackapp.NewChat(client)
	app.Service.DefaultSlackChannel = sc.DefaultChannel
	// Lambda may freeze the process once the invocation ends: every call
	// waits until the effects it caused are done and recorded.
	app.Service.Sync = true
	return slackapp.NewHandler(slackapp.NewApp(app.Service, client, log), sc.SigningSecret), app.Service, nil
}
