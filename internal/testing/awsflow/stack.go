package awsflow

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"approvalbot/bot/awsapp"
	"approvalbot/bot/slackapp"
	"approvalbot/internal/testing/dynamotest"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
)

// Region is the AWS region of a Stack's SDK configuration.
const Region = "us-east-1"

// NotifierName is the function name under which Step Functions invokes the
// notifier through a Stack's proxy (see Stack.NotifierARN).
const NotifierName = "notifier"

// StackConfig says how Start sets up the AWS form. Its zero value is the
// demo's: a free loopback port for the site, the table "approvals" and the
// bucket "approval-pages", no Slack, logs discarded.
type StackConfig struct {
	// Addr is the site's loopback address, such as "127.0.0.1:8080"; empty
	// means a free port.
	Addr string
	// Table and Bucket name the DynamoDB table and the pages bucket; empty
	// means "approvals" and "approval-pages".
	Table, Bucket string
	// Slack is the Lambdas' Slack app (a fake Web API's, see StartSlackAPI);
	// zero means no Slack.
	Slack slackapp.Config
	// Log receives the Lambdas' logs, each with the attribute lambda
	// ("notifier" or "callback"); nil discards them.
	Log *slog.Logger
	// HTTPClient is the SDK's HTTP client; nil means the SDK's default.
	// Tests pass mototest.HTTPClient, which sends one DynamoDB request at a
	// time.
	HTTPClient aws.HTTPClient
	// OnNotify, when set, is called after each invocation of the notifier by
	// Step Functions, before the proxy answers it.
	OnNotify func(Invocation)
}

// Invocation is one run of the notifier's handler as Step Functions invoked it.
type Invocation struct {
	Start, End time.Time
	Out        []byte
	Err        error
}

// Stack is the AWS form running on moto: the notifier and the callback wired
// by package awsapp as in their Lambdas, moto_server behind a Proxy that
// answers Step Functions' invocations of the notifier with its handler
// (awsapp.App.Handle), and a Site serving the pages from the bucket (as
// CloudFront would) and the callback (as its function URL would).
type Stack struct {
	Proxy *Proxy
	Moto  *Moto
	Site  *Site
	// AWS is the SDK configuration of every client: every call goes through
	// the proxy.
	AWS aws.Config
	// Config is the notifier's configuration; the callback's has no
	// CallbackURL, as deployed.
	Config   awsapp.Config
	Notifier *awsapp.App
	Callback *awsapp.App
	SFN      *sfn.Client
	// S3 addresses buckets by path, as moto needs.
	S3 *s3.Client
}

// Start runs the AWS form on moto: it starts the proxy, moto_server (with
// MOTO_PORT set to the proxy's port and Step Functions execution on) and the
// site, creates the table, the bucket and the sender identity (see
// CreateResources), builds the two Lambdas and routes the notifier's
// invocations and the site to them. Close stops what it started; on error
// Start has stopped it already.
func Start(ctx context.Context, c StackConfig) (st *Stack, err error) {
	st = &Stack{}
	defer func() {
		if err != nil {
			st.Close()
			st = nil
		}
	}()
	if st.Proxy, err = NewProxy(); err != nil {
		return st, err
	}
	if st.Moto, err = StartMoto(ctx, []string{"MOTO_PORT=" + strconv.Itoa(st.Proxy.Port())}); err != nil {
		return st, err
	}
	if err := st.Proxy.SetBackend(st.Moto.URL); err != nil {
		return st, err
	}
	if st.Site, err = NewSite(c.Addr); err != nil {
		return st, err
	}
	st.AWS = aws.Config{
		Region:       Region,
		Credentials:  credentials.NewStaticCredentialsProvider("moto", "moto", ""),
		BaseEndpoint: aws.String(st.Proxy.URL()),
		HTTPClient:   c.HTTPClient,
	}
	st.Config = awsapp.Config{
		Table: or(c.Table, "approvals"), Bucket: or(c.Bucket, "approval-pages"), PagesPrefix: "p/",
		PagesBaseURL: st.Site.URL(), CallbackURL: st.Site.URL(), MailFrom: "approvals@example.com",
		Slack: c.Slack,
	}
	if err := CreateResources(ctx, st.AWS, st.Config); err != nil {
		return st, err
	}
	if err := st.wire(c); err != nil {
		return st, err
	}
	return st, nil
}

// wire builds the two Lambdas and routes the notifier's invocations and the
// site to them.
func (st *Stack) wire(c StackConfig) (err error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if st.Notifier, err = awsapp.New(st.Config, st.AWS, log.With("lambda", "notifier")); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	cbCfg := st.Config
	cbCfg.CallbackURL = "" // as deployed: the callback is not told its own URL
	if st.Callback, err = awsapp.NewCallback(cbCfg, st.AWS, log.With("lambda", "callback")); err != nil {
		return fmt.Errorf("callback: %w", err)
	}
	handler := lambda.NewHandler(st.Notifier.Handle)
	st.Proxy.Handle(NotifierName, func(ctx context.Context, payload []byte) ([]byte, error) {
		inv := Invocation{Start: time.Now()}
		inv.Out, inv.Err = handler.Invoke(ctx, payload)
		inv.End = time.Now()
		if c.OnNotify != nil {
			c.OnNotify(inv)
		}
		return inv.Out, inv.Err
	})
	st.SFN = sfn.NewFromConfig(st.AWS)
	st.S3 = s3.NewFromConfig(st.AWS, func(o *s3.Options) { o.UsePathStyle = true })
	st.Site.Serve(st.Config.PagesPrefix, BucketPages(st.S3, st.Config.Bucket), FunctionURL(st.Callback.CallbackHandler()))
	return nil
}

// NotifierARN is the ARN under which a state machine's task invokes the
// notifier (see CreateStateMachine).
func (st *Stack) NotifierARN() string { return FunctionARN(Region, NotifierName) }

// Close stops the site, moto_server and the proxy. It may be called on a
// Stack that Start left half built.
func (st *Stack) Close() {
	if st.Site != nil {
		st.Site.Close()
	}
	if st.Moto != nil {
		st.Moto.Stop()
	}
	if st.Proxy != nil {
		st.Proxy.Close()
	}
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// CreateResources creates what the Lambdas configured by cfg need on moto: the
// DynamoDB table, the pages bucket and the sender's SES identity (moto refuses
// to send from an address that is not one).
func CreateResources(ctx context.Context, awsCfg aws.Config, cfg awsapp.Config) error {
	if err := dynamotest.CreateTable(ctx, dynamodb.NewFromConfig(awsCfg), cfg.Table); err != nil {
		return err
	}
	s3c := s3.NewFromConfig(awsCfg, func(o *s3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return fmt.Errorf("create bucket %s: %w", cfg.Bucket, err)
	}
	if _, err := sesv2.NewFromConfig(awsCfg).CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(cfg.MailFrom)}); err != nil {
		return fmt.Errorf("create email identity %s: %w", cfg.MailFrom, err)
	}
	return nil
}
