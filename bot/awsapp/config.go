// Package awsapp wires the AWS form of approvalbot: it reads the Lambdas'
// configuration from the environment, builds the approval.Service on DynamoDB,
// S3, SES v2 and Step Functions, and provides the notifier's handler (Handle:
// the Step Functions task for Notify, EventBridge's schedule for Sweep) and the
// callback's HTTP handler. The Lambda mains (lambdas/notifier, lambdas/callback,
// lambdas/slack), the end-to-end tests and the local demo share it.
package awsapp

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"approvalbot/bot/s3pages"
)

// The environment variables the Lambdas read: the public contract with the CDK
// app and with users. The AWS SDK reads its own (AWS_REGION, AWS_ENDPOINT_URL…).
const (
	EnvTable            = "APPROVALS_TABLE"       // DynamoDB table name (required)
	EnvBucket           = "PAGES_BUCKET"          // S3 bucket of the one-time pages (required)
	EnvPrefix           = "PAGES_PREFIX"          // key prefix of the pages (default "p/")
	EnvPagesBaseURL     = "PAGES_BASE_URL"        // where the pages are served, e.g. https://d123.cloudfront.net (required)
	EnvCallbackURL      = "CALLBACK_URL"          // the callback function URL; pages post to <CALLBACK_URL>/decide (required)
	EnvMailFrom         = "MAIL_FROM"             // sender address, a verified SES identity (required)
	EnvConfigurationSet = "SES_CONFIGURATION_SET" // SES configuration set (optional)
	EnvSlackSecretARN   = "SLACK_SECRET_ARN"      // Secrets Manager secret with the Slack credentials (optional)
)

// DecidePath is the path, under CALLBACK_URL, to which the pages post decisions.
const DecidePath = "/decide"

// Config is the configuration of the AWS Lambdas.
type Config struct {
	Table            string
	Bucket           string
	PagesPrefix      string
	PagesBaseURL     string
	CallbackURL      string // without a trailing slash
	MailFrom         string
	ConfigurationSet string
	SlackSecretARN   string
}

// ConfigFromEnv reads the notifier's configuration through getenv (os.Getenv in
// a Lambda) and validates it. Its error names every missing or malformed
// variable.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := readEnv(getenv)
	return c, c.Validate()
}

// CallbackConfigFromEnv reads the callback's configuration: as ConfigFromEnv,
// except that CALLBACK_URL may be missing. The callback cannot be told its own
// function URL (in CloudFormation that is a dependency cycle), and needs none:
// its confirmation step posts back to the relative /decide, on the address the
// request came to.
func CallbackConfigFromEnv(getenv func(string) string) (Config, error) {
	c := readEnv(getenv)
	return c, c.validate(false)
}

func readEnv(getenv func(string) string) Config {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	c := Config{
		Table:            get(EnvTable),
		Bucket:           get(EnvBucket),
		PagesPrefix:      get(EnvPrefix),
		PagesBaseURL:     strings.TrimRight(get(EnvPagesBaseURL), "/"),
		CallbackURL:      strings.TrimRight(get(EnvCallbackURL), "/"),
		MailFrom:         get(EnvMailFrom),
		ConfigurationSet: get(EnvConfigurationSet),
		SlackSecretARN:   get(EnvSlackSecretARN),
	}
	if c.PagesPrefix == "" {
		c.PagesPrefix = s3pages.DefaultPrefix
	}
	return c
}

// Validate checks that every setting the notifier needs is present and well
// formed.
func (c Config) Validate() error { return c.validate(true) }

// validate checks c; needCallback makes CALLBACK_URL required.
func (c Config) validate(needCallback bool) error {
	var errs []error
	required := []struct{ name, value string }{
		{EnvTable, c.Table}, {EnvBucket, c.Bucket}, {EnvPagesBaseURL, c.PagesBaseURL}, {EnvMailFrom, c.MailFrom},
	}
	if needCallback {
		required = append(required, struct{ name, value string }{EnvCallbackURL, c.CallbackURL})
	}
	for _, v := range required {
		if v.value == "" {
			errs = append(errs, fmt.Errorf("%s is not set", v.name))
		}
	}
	for _, v := range []struct{ name, value string }{{EnvPagesBaseURL, c.PagesBaseURL}, {EnvCallbackURL, c.CallbackURL}} {
		if v.value == "" {
			continue
		}
		if u, err := url.Parse(v.value); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("%s=%q is not an absolute http(s) URL without query", v.name, v.value))
		}
	}
	if c.MailFrom != "" && !strings.Contains(c.MailFrom, "@") {
		errs = append(errs, fmt.Errorf("%s=%q is not an email address", EnvMailFrom, c.MailFrom))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// DecideURL is where the one-time pages post decisions: <CALLBACK_URL>/decide,
// or the relative /decide when CALLBACK_URL is not set (the callback itself).
func (c Config) DecideURL() string { return c.CallbackURL + DecidePath }

// Env returns the configuration as environment variables, the inverse of
// ConfigFromEnv (for running a binary against a local stack).
func (c Config) Env() []string {
	env := []string{
		EnvTable + "=" + c.Table, EnvBucket + "=" + c.Bucket, EnvPrefix + "=" + c.PagesPrefix,
		EnvPagesBaseURL + "=" + c.PagesBaseURL, EnvMailFrom + "=" + c.MailFrom,
	}
	if c.CallbackURL != "" {
		env = append(env, EnvCallbackURL+"="+c.CallbackURL)
	}
	if c.ConfigurationSet != "" {
		env = append(env, EnvConfigurationSet+"="+c.ConfigurationSet)
	}
	if c.SlackSecretARN != "" {
		env = append(env, EnvSlackSecretARN+"="+c.SlackSecretARN)
	}
	return env
}
