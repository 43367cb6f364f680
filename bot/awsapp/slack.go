package awsapp

import (
	"context"
	"fmt"

	"approvalbot/bot/slackapp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// secretGetter is the Secrets Manager call that reading the Slack secret makes.
type secretGetter interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// ConnectSlack gives the service a Slack chat when the environment configures
// Slack (SLACK_SECRET_ARN, or SLACK_BOT_TOKEN; see slackapp.ConfigFromEnv): the
// notifier then posts each request to its channel and sends each Slack approver
// a direct message, and every vote and the close (in the callback, the slack
// Lambda or the sweep) update those messages. Without any SLACK_ variable it
// does nothing. The
// secret is read through sm (nil means Secrets Manager from the App's AWS
// configuration).
func (a *App) ConnectSlack(ctx context.Context, getenv func(string) string, sm secretGetter) error {
	sc, err := slackapp.ConfigFromEnv(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if !sc.Enabled() {
		return nil
	}
	if sc.SecretARN != "" && sc.BotToken == "" {
		if sm == nil {
			sm = secretsmanager.NewFromConfig(a.AWS)
		}
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(sc.SecretARN)})
		if err != nil {
			return fmt.Errorf("read %s: %w", EnvSlackSecretARN, err)
		}
		if err := sc.ApplySecret([]byte(aws.ToString(out.SecretString))); err != nil {
			return fmt.Errorf("configuration: %w", err)
		}
	}
	a.Service.Chat = slackapp.NewChat(slackapp.NewClient(sc))
	a.Service.DefaultSlackChannel = sc.DefaultChannel
	return nil
}
