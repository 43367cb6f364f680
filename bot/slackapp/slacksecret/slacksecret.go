// Package slacksecret reads the Slack app's bot token and signing secret from
// the AWS Secrets Manager secret named by SLACK_SECRET_ARN, for the Lambdas. The
// secret's value is JSON: {"botToken": "xoxb-…", "signingSecret": "…"}.
package slacksecret

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"approvalbot/bot/slackapp"
)

// Getter is the Secrets Manager call Load makes; *secretsmanager.Client has it.
type Getter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

var _ Getter = (*secretsmanager.Client)(nil)

// Load fills c's bot token and signing secret from c.SecretARN when the
// environment did not set them both. Without a secret ARN, or with both values
// already set, it calls nothing.
func Load(ctx context.Context, sm Getter, c *slackapp.Config) error {
	if c.SecretARN == "" || (c.BotToken != "" && c.SigningSecret != "") {
		return nil
	}
	out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(c.SecretARN)})
	if err != nil {
		return fmt.Errorf("read SLACK_SECRET_ARN: %w", err)
	}
	if err := c.ApplySecret([]byte(aws.ToString(out.SecretString))); err != nil {
		return err
	}
	return nil
}

// FromEnv reads the Slack configuration through getenv and completes it from
// the secret named by SLACK_SECRET_ARN through sm. With no Slack variable set it
// returns a disabled configuration (see slackapp.Config.Enabled) and calls
// nothing.
func FromEnv(ctx context.Context, getenv func(string) string, sm Getter) (slackapp.Config, error) {
	c, err := slackapp.ConfigFromEnv(getenv)
	if err != nil {
		return slackapp.Config{}, err
	}
	if err := Load(ctx, sm, &c); err != nil {
		return slackapp.Config{}, err
	}
	return c, nil
}
