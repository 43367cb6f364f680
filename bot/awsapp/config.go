// Package awsapp wires the AWS form of approvalbot: it is the one composition
// point of the three Lambdas. For each it reads that Lambda's configuration
// from the environment (NotifierConfig, CallbackConfig, SlackConfig: the
// variables package lambdaenv lists), reads the Slack secret from Secrets
// Manager, builds the approval.Service on DynamoDB, S3, SES v2, Step Functions
// and Slack, and gives the Lambda its handler: NotifierFromEnv (Handle: the
// Step Functions task for Notify, EventBridge's schedule for Sweep),
// CallbackFromEnv (CallbackHandler) and SlackFromEnv (SlackHandler). The
// Lambda mains, the end-to-end tests and the local demo share it.
package awsapp

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"approvalbot/bot/awsapp/lambdaenv"
	"approvalbot/bot/s3pages"
	"approvalbot/bot/slackapp"
)

// DecidePath is the path, under CALLBACK_URL, to which the pages post decisions.
const DecidePath = "/decide"

// Config is the configuration of the AWS form, as New takes it: the resources
// the service works on and, when Slack is set, the Slack app. Each Lambda reads
// it from its environment through its own type (NotifierConfig,
// CallbackConfig, SlackConfig), which says what that Lambda requires.
type Config struct {
	Table            string // APPROVALS_TABLE
	Bucket           string // PAGES_BUCKET
	PagesPrefix      string // PAGES_PREFIX (default "p/")
	PagesBaseURL     string // PAGES_BASE_URL, without a trailing slash
	CallbackURL      string // CALLBACK_URL, without a trailing slash
	MailFrom         string // MAIL_FROM
	ConfigurationSet string // SES_CONFIGURATION_SET (optional)
	// Slack is the Slack app (the SLACK_ variables; see slackapp.Config).
	// Zero means no Slack. New takes it complete: the wiring has read the
	// secret SLACK_SECRET_ARN names.
	Slack slackapp.Config
}

// NotifierConfig is the notifier's configuration (lambdaenv.Notifier):
// CALLBACK_URL is required, since its pages post there; Slack is optional.
type NotifierConfig struct{ Config }

// CallbackConfig is the callback's configuration (lambdaenv.Callback):
// CALLBACK_URL is optional (the callback cannot be told its own function URL,
// a dependency cycle in CloudFormation, and needs none: its confirmation step
// posts to the relative /decide); Slack is optional.
type CallbackConfig struct{ Config }

// SlackConfig is the slack Lambda's configuration (lambdaenv.Slack):
// CALLBACK_URL is required (personal links post there) and so is Slack:
// SLACK_SECRET_ARN, or SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET.
type SlackConfig struct{ Config }

// NotifierConfigFromEnv reads the notifier's configuration through getenv
// (os.Getenv in a Lambda) and validates it. Its error names every missing or
// malformed variable.
func NotifierConfigFromEnv(getenv func(string) string) (NotifierConfig, error) {
	c, err := readEnv(getenv)
	if err != nil {
		return NotifierConfig{}, err
	}
	n := NotifierConfig{c}
	return n, n.Validate()
}

// Validate checks that every setting the notifier needs is present and well
// formed.
func (c NotifierConfig) Validate() error { return invalid(c.check(true)) }

// CallbackConfigFromEnv reads the callback's configuration through getenv and
// validates it.
func CallbackConfigFromEnv(getenv func(string) string) (CallbackConfig, error) {
	c, err := readEnv(getenv)
	if err != nil {
		return CallbackConfig{}, err
	}
	cb := CallbackConfig{c}
	return cb, cb.Validate()
}

// Validate checks that every setting the callback needs is present and well
// formed.
func (c CallbackConfig) Validate() error { return invalid(c.check(false)) }

// SlackConfigFromEnv reads the slack Lambda's configuration through getenv and
// validates it.
func SlackConfigFromEnv(getenv func(string) string) (SlackConfig, error) {
	c, err := readEnv(getenv)
	if err != nil {
		return SlackConfig{}, err
	}
	s := SlackConfig{c}
	return s, s.Validate()
}

// Validate checks that every setting the slack Lambda needs is present and
// well formed. The bot token and signing secret may still be missing when
// SLACK_SECRET_ARN is set (the wiring reads them from the secret, and checks
// them again).
func (c SlackConfig) Validate() error {
	errs := c.check(true)
	if sc := c.Slack; sc.SecretARN == "" && (sc.BotToken == "" || sc.SigningSecret == "") {
		errs = append(errs, fmt.Errorf("%s (or %s and %s) is required",
			lambdaenv.SlackSecretARN, lambdaenv.SlackBotToken, lambdaenv.SlackSigningSecret))
	}
	return invalid(errs)
}

// readEnv reads every variable a Lambda may read. The Slack ones are checked
// as they are read (slackapp.ConfigFromEnv).
func readEnv(getenv func(string) string) (Config, error) {
	get := func(name string) string { return strings.TrimSpace(getenv(name)) }
	c := Config{
		Table:            get(lambdaenv.Table),
		Bucket:           get(lambdaenv.Bucket),
		PagesPrefix:      get(lambdaenv.PagesPrefix),
		PagesBaseURL:     strings.TrimRight(get(lambdaenv.PagesBaseURL), "/"),
		CallbackURL:      strings.TrimRight(get(lambdaenv.CallbackURL), "/"),
		MailFrom:         get(lambdaenv.MailFrom),
		ConfigurationSet: get(lambdaenv.ConfigurationSet),
	}
	if c.PagesPrefix == "" {
		c.PagesPrefix = s3pages.DefaultPrefix
	}
	sc, err := slackapp.ConfigFromEnv(getenv)
	if err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	c.Slack = sc
	return c, nil
}

// invalid is the error of a configuration with the problems errs, or nil.
func invalid(errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	return nil
}

// check lists what is wrong with c; needCallback makes CALLBACK_URL required.
// The Slack part was checked when it was read.
func (c Config) check(needCallback bool) []error {
	var errs []error
	required := []struct{ name, value string }{
		{lambdaenv.Table, c.Table}, {lambdaenv.Bucket, c.Bucket}, {lambdaenv.PagesBaseURL, c.PagesBaseURL}, {lambdaenv.MailFrom, c.MailFrom},
	}
	if needCallback {
		required = append(required, struct{ name, value string }{lambdaenv.CallbackURL, c.CallbackURL})
	}
	for _, v := range required {
		if v.value == "" {
			errs = append(errs, fmt.Errorf("%s is not set", v.name))
		}
	}
	for _, v := range []struct{ name, value string }{{lambdaenv.PagesBaseURL, c.PagesBaseURL}, {lambdaenv.CallbackURL, c.CallbackURL}} {
		if v.value == "" {
			continue
		}
		if u, err := url.Parse(v.value); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("%s=%q is not an absolute http(s) URL without query", v.name, v.value))
		}
	}
	if c.MailFrom != "" && !strings.Contains(c.MailFrom, "@") {
		errs = append(errs, fmt.Errorf("%s=%q is not an email address", lambdaenv.MailFrom, c.MailFrom))
	}
	return errs
}

// DecideURL is where the one-time pages post decisions: <CALLBACK_URL>/decide,
// or the relative /decide when CALLBACK_URL is not set (the callback itself).
func (c Config) DecideURL() string { return c.CallbackURL + DecidePath }
