package awsapp

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"approvalbot/bot/approval"
	"approvalbot/bot/awsapp/lambdaenv"
	"approvalbot/bot/awsenv"
	"approvalbot/bot/dynamo"
	"approvalbot/bot/s3pages"
	"approvalbot/bot/ses"
	"approvalbot/bot/sfn"
	"approvalbot/bot/slackapp"
	"approvalbot/pages"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	awssfn "github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/slack-go/slack"
)

// App is the wired AWS form: its configuration and the service built on it.
type App struct {
	Config Config
	// AWS is the SDK configuration the adapters were made from.
	AWS aws.Config
	// Service runs the approvals. Its Chat is Slack when Config.Slack is
	// set, and nil otherwise.
	Service *approval.Service
	Log     *slog.Logger

	slack *slack.Client // nil without Slack
}

// LoadAWS returns the SDK configuration of a Lambda, from the standard
// variables of its environment (AWS_REGION, the credentials, AWS_ENDPOINT_URL
// and the per-service AWS_ENDPOINT_URL_<SERVICE>; see package awsenv, which
// keeps the SDK's default chain of profiles, SSO and instance metadata out of
// the bootstraps). It does not fail; the error is kept for its callers.
func LoadAWS(ctx context.Context) (aws.Config, error) {
	return awsenv.Config(os.Getenv), nil
}

// NotifierFromEnv is the notifier Lambda's wiring: it reads NotifierConfig
// through getenv, loads the SDK's default configuration, reads the Slack
// secret when SLACK_SECRET_ARN is set, and builds the App (New) whose Handle
// serves the Lambda.
func NotifierFromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*App, error) {
	c, err := NotifierConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return fromEnv(ctx, c.Config, log, New)
}

// CallbackFromEnv is the callback Lambda's wiring: as NotifierFromEnv, with
// CallbackConfig and NewCallback; the App's CallbackHandler serves the
// Lambda's function URL.
func CallbackFromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*App, error) {
	c, err := CallbackConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return fromEnv(ctx, c.Config, log, NewCallback)
}

// SlackFromEnv is the slack Lambda's wiring: as NotifierFromEnv, with
// SlackConfig; the App's SlackHandler serves the Lambda's function URL. The
// signing secret must be set, in the environment or in the secret.
func SlackFromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*App, error) {
	c, err := SlackConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return fromEnv(ctx, c.Config, log, func(cfg Config, awsCfg aws.Config, log *slog.Logger) (*App, error) {
		if cfg.Slack.SigningSecret == "" {
			return nil, fmt.Errorf("configuration: %s (or signingSecret in %s) is required to serve Slack's requests",
				lambdaenv.SlackSigningSecret, lambdaenv.SlackSecretARN)
		}
		return New(cfg, awsCfg, log)
	})
}

// fromEnv loads the SDK's default configuration, completes cfg.Slack from the
// secret SLACK_SECRET_ARN names, and builds the App with build.
func fromEnv(ctx context.Context, cfg Config, log *slog.Logger, build func(Config, aws.Config, *slog.Logger) (*App, error)) (*App, error) {
	awsCfg, err := LoadAWS(ctx)
	if err != nil {
		return nil, err
	}
	cfg.Slack, err = readSlackSecret(ctx, secretsmanager.NewFromConfig(awsCfg), cfg.Slack)
	if err != nil {
		return nil, err
	}
	return build(cfg, awsCfg, log)
}

// New wires the service on DynamoDB, S3, SES v2, Step Functions and, when
// cfg.Slack is set, Slack. S3 uses path-style addresses when the SDK is
// pointed at a custom endpoint (moto). Without cfg.CallbackURL the App can
// decide but not notify: Notify refuses.
//
// The service is synchronous (approval.Service.Sync): every call returns only
// once the effects it caused (notifications, delivery to Step Functions,
// deleting pages, updating Slack) have run and are recorded, because Lambda
// may freeze the process as soon as the handler answers. What a frozen or
// killed process leaves undone is taken over by the sweep.
func New(cfg Config, awsCfg aws.Config, log *slog.Logger) (*App, error) {
	return newApp(cfg, awsCfg, log, true)
}

// NewCallback is New for the callback, whose service is asynchronous: its
// CallbackHandler answers as soon as a vote is recorded and the workflow told,
// and keeps the invocation open until the rest is done and recorded.
func NewCallback(cfg Config, awsCfg aws.Config, log *slog.Logger) (*App, error) {
	return newApp(cfg, awsCfg, log, false)
}

func newApp(cfg Config, awsCfg aws.Config, log *slog.Logger, sync bool) (*App, error) {
	if err := invalid(cfg.check(false)); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if o.BaseEndpoint != nil {
			o.UsePathStyle = true
		}
	})
	pg, err := s3pages.New(s3c, s3pages.Config{Bucket: cfg.Bucket, Prefix: cfg.PagesPrefix, BaseURL: cfg.PagesBaseURL})
	if err != nil {
		return nil, fmt.Errorf("configuration: %s/%s: %w", lambdaenv.Bucket, lambdaenv.PagesPrefix, err)
	}
	mailer, err := ses.New(sesv2.NewFromConfig(awsCfg), ses.Config{From: cfg.MailFrom, ConfigurationSet: cfg.ConfigurationSet})
	if err != nil {
		return nil, fmt.Errorf("configuration: %s: %w", lambdaenv.MailFrom, err)
	}
	a := &App{Config: cfg, AWS: awsCfg, Log: log}
	deps := approval.Deps{
		Store:    dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.Table),
		Pages:    pg,
		Renderer: pages.Renderer{},
		Mailer:   mailer,
		Workflow: sfn.New(awssfn.NewFromConfig(awsCfg)),
		Log:      log,
		Sync:     sync,
	}
	if cfg.CallbackURL != "" {
		deps.DecideURL = cfg.DecideURL()
	}
	if cfg.Slack.Enabled() {
		if err := cfg.Slack.Validate(); err != nil {
			return nil, fmt.Errorf("configuration: %w", err)
		}
		a.slack = slackapp.NewClient(cfg.Slack)
		deps.Chat = slackapp.NewChat(a.slack)
		deps.DefaultSlackChannel = cfg.Slack.DefaultChannel
	}
	if a.Service, err = approval.NewService(deps); err != nil {
		return nil, err
	}
	return a, nil
}
