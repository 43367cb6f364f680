package awsapp

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"approvalbot/bot/approval"
	"approvalbot/bot/awsenv"
	"approvalbot/bot/dynamo"
	"approvalbot/bot/s3pages"
	"approvalbot/bot/ses"
	"approvalbot/bot/sfn"
	"approvalbot/pages"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	awssfn "github.com/aws/aws-sdk-go-v2/service/sfn"
)

// App is the wired AWS form: its configuration and the service built on it.
type App struct {
	Config Config
	// AWS is the SDK configuration the adapters were made from.
	AWS aws.Config
	// Service runs the approvals. Service.Chat is set by ConnectSlack when
	// Slack is configured, and nil otherwise.
	Service *approval.Service
	Log     *slog.Logger
}

// LoadAWS returns the SDK configuration of a Lambda, from the standard
// variables of its environment (AWS_REGION, the credentials, AWS_ENDPOINT_URL
// and the per-service AWS_ENDPOINT_URL_<SERVICE>; see package awsenv, which
// keeps the SDK's default chain of profiles, SSO and instance metadata out of
// the bootstraps). It does not fail; the error is kept for its callers.
func LoadAWS(ctx context.Context) (aws.Config, error) {
	return awsenv.Config(os.Getenv), nil
}

// FromEnv reads the notifier's configuration through getenv (ConfigFromEnv),
// loads the SDK's default configuration and wires the App, with Slack when the
// environment configures it (ConnectSlack): what the notifier's main does first.
func FromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*App, error) {
	cfg, err := ConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return fromEnv(ctx, cfg, getenv, log)
}

// CallbackFromEnv is FromEnv for the callback, which may run without
// CALLBACK_URL (CallbackConfigFromEnv).
func CallbackFromEnv(ctx context.Context, getenv func(string) string, log *slog.Logger) (*App, error) {
	cfg, err := CallbackConfigFromEnv(getenv)
	if err != nil {
		return nil, err
	}
	return fromEnv(ctx, cfg, getenv, log)
}

func fromEnv(ctx context.Context, cfg Config, getenv func(string) string, log *slog.Logger) (*App, error) {
	awsCfg, err := LoadAWS(ctx)
	if err != nil {
		return nil, err
	}
	app, err := New(cfg, awsCfg, log)
	if err != nil {
		return nil, err
	}
	if err := app.ConnectSlack(ctx, getenv, nil); err != nil {
		return nil, err
	}
	return app, nil
}

// New wires the service on DynamoDB, S3, SES v2 and Step Functions. S3 uses
// path-style addresses when the SDK is pointed at a custom endpoint (moto).
// Without cfg.CallbackURL the App can decide but not notify (the callback's
// case): Notify refuses.
//
// The service is synchronous (approval.Service.Sync): every call returns only
// once the effects it caused (notifications, delivery to Step Functions,
// deleting pages, updating Slack) have run and are recorded, because Lambda
// may freeze the process as soon as the handler answers. What a frozen or
// killed process leaves undone is taken over by the sweep.
func New(cfg Config, awsCfg aws.Config, log *slog.Logger) (*App, error) {
	if err := cfg.validate(false); err != nil {
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
		return nil, fmt.Errorf("configuration: %s/%s: %w", EnvBucket, EnvPrefix, err)
	}
	mailer, err := ses.New(sesv2.NewFromConfig(awsCfg), ses.Config{From: cfg.MailFrom, ConfigurationSet: cfg.ConfigurationSet})
	if err != nil {
		return nil, fmt.Errorf("configuration: %s: %w", EnvMailFrom, err)
	}
	svc := &approval.Service{
		Store:    dynamo.New(dynamodb.NewFromConfig(awsCfg), cfg.Table),
		Pages:    pg,
		Renderer: pages.Renderer{},
		Mailer:   mailer,
		Workflow: sfn.New(awssfn.NewFromConfig(awsCfg)),
		Log:      log,
		Sync:     true,
	}
	if cfg.CallbackURL != "" {
		svc.DecideURL = cfg.DecideURL()
	}
	return &App{Config: cfg, AWS: awsCfg, Service: svc, Log: log}, nil
}
