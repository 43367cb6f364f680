package awsapp

import (
	"context"
	"fmt"
	"net/http"

	"approvalbot/bot/awsapp/lambdaenv"
	"approvalbot/bot/slackapp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// secretGetter is the Secrets Manager call that reading the Slack secret makes.
type secretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ secretGetter = (*secretsmanager.Client)(nil)

// readSlackSecret returns c with its bot token and signing secret filled from
// the Secrets Manager secret c.SecretARN names (JSON: {"botToken": "xoxb-…",
// "signingSecret": "…"}), read through sm; values set in the environment win.
// Without a secret ARN, or with both values already set, it calls nothing.
func readSlackSecret(ctx context.Context, sm secretGetter, c slackapp.Config) (slackapp.Config, error) {
	if c.SecretARN == "" || (c.BotToken != "" && c.SigningSecret != "") {
		return c, nil
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.SecretARN)})
	if err != nil {
		return slackapp.Config{}, fmt.Errorf("read %s: %w", lambdaenv.SlackSecretARN, err)
	}
	if err := c.ApplySecret([]byte(aws.ToString(out.SecretString))); err != nil {
		return slackapp.Config{}, fmt.Errorf("configuration: %w", err)
	}
	return c, nil
}

// SlackHandler is the slack Lambda's HTTP handler: POST /slack/commands
// (/approvals) and POST /slack/interactions (the buttons), verified with the
// signing secret, voting through the App's service. The App must have Slack
// (SlackFromEnv's has).
func (a *App) SlackHandler() http.Handler {
	return slackapp.NewHandler(slackapp.NewApp(a.Service, a.slack, a.Log), a.Config.Slack.SigningSecret)
}
