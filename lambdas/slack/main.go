// Command slack is the Lambda behind the Slack app's function URL. It serves
// POST /slack/commands (/approvals) and POST /slack/interactions (the
// Approve/Reject buttons) with slackapp.Handler, deciding through the AWS
// adapters: DynamoDB for requests and tokens, S3 for the one-time pages, Step
// Functions for the waiting workflow.
//
// Environment: APPROVALS_TABLE, PAGES_BUCKET, PAGES_PREFIX (optional),
// PAGES_BASE_URL, SLACK_SECRET_ARN (a secret {"botToken","signingSecret"}) or
// SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, and optionally
// SLACK_DEFAULT_CHANNEL, SLACK_API_URL and AWS_ENDPOINT_URL (moto). The
// function URL must use InvokeMode RESPONSE_STREAM (lambdaurl).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/aws/aws-lambda-go/lambdaurl"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	sfnapi "github.com/aws/aws-sdk-go-v2/service/sfn"

	"approvalbot/bot/approval"
	"approvalbot/bot/dynamo"
	"approvalbot/bot/s3pages"
	"approvalbot/bot/sfn"
	"approvalbot/bot/slackapp"
	"approvalbot/bot/slackapp/slacksecret"
	"approvalbot/pages"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	h, err := setup(context.Background(), os.Getenv, log)
	if err != nil {
		log.Error("slack lambda: not started", "err", err)
		os.Exit(1)
	}
	lambdaurl.Start(h)
}

// config is this binary's configuration.
type config struct {
	Table string
	Pages s3pages.Config
	Slack slackapp.Config
	// PathStyle addresses S3 buckets by path, as an endpoint override such as
	// moto needs.
	PathStyle bool
}

func loadConfig(getenv func(string) string) (config, error) {
	c := config{
		Table:     getenv("APPROVALS_TABLE"),
		Pages:     s3pages.Config{Bucket: getenv("PAGES_BUCKET"), Prefix: getenv("PAGES_PREFIX"), BaseURL: getenv("PAGES_BASE_URL")},
		PathStyle: getenv("AWS_ENDPOINT_URL") != "" || getenv("AWS_ENDPOINT_URL_S3") != "",
	}
	switch {
	case c.Table == "":
		return config{}, fmt.Errorf("APPROVALS_TABLE is required")
	case c.Pages.Bucket == "":
		return config{}, fmt.Errorf("PAGES_BUCKET is required")
	case c.Pages.BaseURL == "":
		return config{}, fmt.Errorf("PAGES_BASE_URL is required")
	}
	sc, err := slackapp.ConfigFromEnv(getenv)
	if err != nil {
		return config{}, err
	}
	if sc.SecretARN == "" && (sc.BotToken == "" || sc.SigningSecret == "") {
		return config{}, fmt.Errorf("SLACK_SECRET_ARN (or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET) is required")
	}
	c.Slack = sc
	return c, nil
}

// setup wires the Slack handler over the AWS adapters.
func setup(ctx context.Context, getenv func(string) string, log *slog.Logger) (http.Handler, error) {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if err := slacksecret.Load(ctx, secretsmanager.NewFromConfig(awsCfg), &cfg.Slack); err != nil {
		return nil, err
	}
	if cfg.Slack.SigningSecret == "" {
		return nil, fmt.Errorf("SLACK_SIGNING_SECRET (or signingSecret in SLACK_SECRET_ARN) is required to serve Slack's requests")
	}
	site, err := s3pages.New(s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = cfg.PathStyle }), cfg.Pages)
	if err != nil {
		return nil, err
	}
	client := slackapp.NewClient(cfg.Slack)
	svc := &approval.Service{
		Store:               dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.Table),
		Pages:               site,
		Renderer:            pages.Renderer{},
		Chat:                slackapp.NewChat(client),
		Workflow:            sfn.New(sfnapi.NewFromConfig(awsCfg)),
		DefaultSlackChannel: cfg.Slack.DefaultChannel,
		Log:                 log,
	}
	app := slackapp.NewApp(svc, client, site.URL, log)
	return slackapp.NewHandler(app, cfg.Slack.SigningSecret), nil
}
