package stack

import (
	"fmt"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Limits that mirror the core's (bot/approval): a request waits at least a
// minute and at most 30 days. The infra module does not import the root module,
// so they are repeated here.
const (
	MaxTimeoutDays = 30
	minTaskTimeout = time.Minute
)

// Defaults for the optional settings.
const (
	DefaultStackName        = "ApprovalBot"
	DefaultPagesPrefix      = "p/"
	DefaultDistDir          = "../dist"
	DefaultTaskTimeout      = 24 * time.Hour
	DefaultLogRetentionDays = 30
	DefaultSweepInterval    = 5 * time.Minute
	// DefaultConcurrency is the reserved concurrency of the callback and of
	// the Slack Lambda: enough for dozens of votes a second, and a cap on
	// what a flood of requests to their public URLs can take from the
	// account (whose other functions keep the rest) and cost.
	DefaultConcurrency = 10
	// MaxConcurrency bounds the reserved concurrency settings.
	MaxConcurrency = 1000
)

// Bounds of the sweep interval: EventBridge schedules in whole minutes, and a
// request should not linger open for more than a day after its expiry.
const (
	minSweepInterval = time.Minute
	maxSweepInterval = 24 * time.Hour
)

// Config is everything the stack is parameterised by. Build it with Load, or by
// hand in tests, and check it with Validate.
type Config struct {
	// StackName names the CloudFormation stack; the state machine is named
	// "<StackName>-approval".
	StackName string
	// MailFrom is the sender address of approval emails (required).
	MailFrom string
	// MailIdentity is the SES identity that authorises MailFrom: a domain
	// (verified by DKIM records) or, when empty, the MailFrom address itself
	// (verified by a link SES mails to it).
	MailIdentity string
	// SESConfigurationSet is the name of an existing SES configuration set to
	// send through; empty for none.
	SESConfigurationSet string
	// SlackDefaultChannel is the channel for requests that name none; empty
	// for none.
	SlackDefaultChannel string
	// PagesPrefix is the S3 key prefix of the one-time pages, ending in "/".
	PagesPrefix string
	// MaxTimeoutDays is the longest timeout a request may have; pages left
	// behind are removed by a lifecycle rule one day after it.
	MaxTimeoutDays int
	// TaskTimeout is the example state machine's TimeoutSeconds. The task
	// has no HeartbeatSeconds: nothing sends heartbeats, so a heartbeat
	// timeout could only end the task while its request still waits.
	TaskTimeout time.Duration
	// LogRetentionDays is how long the Lambdas' logs are kept.
	LogRetentionDays int
	// SweepInterval is how often an EventBridge schedule invokes the notifier
	// to close expired requests and deliver outcomes whose delivery failed.
	SweepInterval time.Duration
	// DistDir holds <name>/bootstrap for each Lambda, as scripts/build makes it.
	DistDir string
	// CallbackConcurrency and SlackConcurrency are the reserved concurrency
	// of the callback and the Slack Lambda, whose function URLs are public:
	// at most that many run at once (the rest of a flood is answered 429),
	// and the account's other functions keep the rest. Zero reserves none
	// (no cap), for accounts whose concurrency limit is too low to reserve
	// any (Lambda keeps 100 unreserved).
	CallbackConcurrency int
	SlackConcurrency    int
	// PagesDomain and PagesCertificateARN, set together, serve the pages
	// under a domain of one's own with an ACM certificate (in us-east-1, as
	// CloudFront requires) and TLS 1.2 or later (TLSv1.2_2021). Without them
	// CloudFront's default certificate allows TLS 1.0.
	PagesDomain         string
	PagesCertificateARN string
	// CallbackDomain and CallbackCertificateARN, set together, put a
	// CloudFront distribution with that domain and certificate (us-east-1,
	// TLSv1.2_2021) in front of the callback's function URL; the pages then
	// post there.
	CallbackDomain         string
	CallbackCertificateARN string
}

// Setting describes one configuration key: its CDK context name, the
// environment variable read when the context does not set it, and what it is.
type Setting struct {
	Context string
	Env     string
	Doc     string
}

// Settings lists every configuration key, in the order the README documents
// them.
var Settings = []Setting{
	{"mailFrom", "APPROVALBOT_MAIL_FROM", "sender address of approval emails (required)"},
	{"mailIdentity", "APPROVALBOT_MAIL_IDENTITY", "SES identity to verify: a domain; default the mailFrom address"},
	{"sesConfigurationSet", "APPROVALBOT_SES_CONFIGURATION_SET", "existing SES configuration set to send through"},
	{"slackDefaultChannel", "APPROVALBOT_SLACK_DEFAULT_CHANNEL", "Slack channel for requests that name none"},
	{"pagesPrefix", "APPROVALBOT_PAGES_PREFIX", "S3 key prefix of the one-time pages (default p/)"},
	{"maxTimeoutDays", "APPROVALBOT_MAX_TIMEOUT_DAYS", "longest request timeout in days, 1-30 (default 30)"},
	{"taskTimeout", "APPROVALBOT_TASK_TIMEOUT", "example state machine task timeout, Go duration (default 24h)"},
	{"logRetentionDays", "APPROVALBOT_LOG_RETENTION_DAYS", "Lambda log retention in days (default 30)"},
	{"sweepInterval", "APPROVALBOT_SWEEP_INTERVAL", "how often the notifier closes expired requests and redelivers failed outcomes, whole minutes, 1m-24h (default 5m)"},
	{"distDir", "APPROVALBOT_DIST_DIR", "folder with <name>/bootstrap for each Lambda (default ../dist)"},
	{"stackName", "APPROVALBOT_STACK_NAME", "CloudFormation stack name (default ApprovalBot)"},
	{"callbackConcurrency", "APPROVALBOT_CALLBACK_CONCURRENCY", "reserved concurrency of the callback Lambda, 0-1000 (default 10; 0 reserves none)"},
	{"slackConcurrency", "APPROVALBOT_SLACK_CONCURRENCY", "reserved concurrency of the Slack Lambda, 0-1000 (default 10; 0 reserves none)"},
	{"pagesDomain", "APPROVALBOT_PAGES_DOMAIN", "domain name serving the pages (with pagesCertificateArn)"},
	{"pagesCertificateArn", "APPROVALBOT_PAGES_CERTIFICATE_ARN", "ACM certificate in us-east-1 for pagesDomain"},
	{"callbackDomain", "APPROVALBOT_CALLBACK_DOMAIN", "domain name in front of the callback (with callbackCertificateArn)"},
	{"callbackCertificateArn", "APPROVALBOT_CALLBACK_CERTIFICATE_ARN", "ACM certificate in us-east-1 for callbackDomain"},
}

// removedSettings are settings of earlier versions that no longer exist, with
// what to do instead; Load refuses them rather than ignore them.
var removedSettings = []Setting{
	{"heartbeat", "APPROVALBOT_HEARTBEAT", "the example task no longer has a heartbeat timeout: nothing sends heartbeats, so it could only end the task while its request still waits; remove the setting (the task ends at taskTimeout)"},
}

// Load reads the configuration from CDK context (ctx, which returns nil for an
// unset key) and, for keys the context leaves unset, from the environment
// (getenv). It applies defaults and validates the result.
func Load(ctx func(key string) any, getenv func(string) string) (Config, error) {
	for _, s := range removedSettings {
		if ctx(s.Context) != nil || getenv(s.Env) != "" {
			return Config{}, fmt.Errorf("%s (%s): %s", s.Context, s.Env, s.Doc)
		}
	}
	get := func(key string) string {
		if v := ctx(key); v != nil {
			return strings.TrimSpace(fmt.Sprint(v))
		}
		for _, s := range Settings {
			if s.Context == key {
				return strings.TrimSpace(getenv(s.Env))
			}
		}
		return ""
	}
	c := Config{
		StackName:              or(get("stackName"), DefaultStackName),
		MailFrom:               get("mailFrom"),
		MailIdentity:           get("mailIdentity"),
		SESConfigurationSet:    get("sesConfigurationSet"),
		SlackDefaultChannel:    get("slackDefaultChannel"),
		PagesPrefix:            or(get("pagesPrefix"), DefaultPagesPrefix),
		DistDir:                or(get("distDir"), DefaultDistDir),
		PagesDomain:            get("pagesDomain"),
		PagesCertificateARN:    get("pagesCertificateArn"),
		CallbackDomain:         get("callbackDomain"),
		CallbackCertificateARN: get("callbackCertificateArn"),
	}
	var err error
	if c.MaxTimeoutDays, err = intSetting("maxTimeoutDays", get("maxTimeoutDays"), MaxTimeoutDays); err != nil {
		return Config{}, err
	}
	if c.LogRetentionDays, err = intSetting("logRetentionDays", get("logRetentionDays"), DefaultLogRetentionDays); err != nil {
		return Config{}, err
	}
	if c.TaskTimeout, err = durationSetting("taskTimeout", get("taskTimeout"), DefaultTaskTimeout); err != nil {
		return Config{}, err
	}
	if c.CallbackConcurrency, err = intSetting("callbackConcurrency", get("callbackConcurrency"), DefaultConcurrency); err != nil {
		return Config{}, err
	}
	if c.SlackConcurrency, err = intSetting("slackConcurrency", get("slackConcurrency"), DefaultConcurrency); err != nil {
		return Config{}, err
	}
	if c.SweepInterval, err = durationSetting("sweepInterval", get("sweepInterval"), DefaultSweepInterval); err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

var (
	prefixRe    = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(/[a-z0-9][a-z0-9_-]*)*/$`)
	stackNameRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,63}$`)
	domainRe    = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$`)
	configSetRe = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	channelRe   = regexp.MustCompile(`^(#?[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{5,20})$`)
	// CloudFront takes certificates from ACM in us-east-1 only.
	certificateRe = regexp.MustCompile(`^arn:aws[a-z-]*:acm:us-east-1:[0-9]{12}:certificate/[0-9a-f-]{36}$`)
)

// retention maps the day counts CloudWatch Logs accepts that this stack offers.
var retention = map[int]bool{1: true, 3: true, 5: true, 7: true, 14: true, 30: true, 60: true, 90: true, 180: true, 365: true}

// Validate reports the first setting that is missing or out of range, naming
// its context key.
func (c Config) Validate() error {
	switch {
	case !stackNameRe.MatchString(c.StackName):
		return fmt.Errorf("stackName %q: want a letter then up to 63 letters, digits or hyphens", c.StackName)
	case c.MailFrom == "":
		return fmt.Errorf("mailFrom is required: pass -c mailFrom=approvals@example.com or set APPROVALBOT_MAIL_FROM")
	}
	addr, err := mail.ParseAddress(c.MailFrom)
	if err != nil || addr.Address != c.MailFrom || addr.Name != "" {
		return fmt.Errorf("mailFrom %q: want a bare email address such as approvals@example.com", c.MailFrom)
	}
	switch {
	case c.MailIdentity != "" && !domainRe.MatchString(c.MailIdentity):
		return fmt.Errorf("mailIdentity %q: want a lower-case domain name such as example.com", c.MailIdentity)
	case c.MailIdentity != "" && !strings.HasSuffix(strings.ToLower(c.MailFrom), "@"+c.MailIdentity) &&
		!strings.HasSuffix(strings.ToLower(c.MailFrom), "."+c.MailIdentity):
		return fmt.Errorf("mailIdentity %q does not cover mailFrom %q", c.MailIdentity, c.MailFrom)
	case c.SESConfigurationSet != "" && !configSetRe.MatchString(c.SESConfigurationSet):
		return fmt.Errorf("sesConfigurationSet %q: want up to 64 letters, digits, _ or -", c.SESConfigurationSet)
	case c.SlackDefaultChannel != "" && !channelRe.MatchString(c.SlackDefaultChannel):
		return fmt.Errorf("slackDefaultChannel %q: want a channel name or ID", c.SlackDefaultChannel)
	case !prefixRe.MatchString(c.PagesPrefix):
		return fmt.Errorf("pagesPrefix %q: want lower-case path segments ending in /, such as p/", c.PagesPrefix)
	case c.MaxTimeoutDays < 1 || c.MaxTimeoutDays > MaxTimeoutDays:
		return fmt.Errorf("maxTimeoutDays %d: want 1 to %d", c.MaxTimeoutDays, MaxTimeoutDays)
	case c.TaskTimeout < minTaskTimeout || c.TaskTimeout%time.Second != 0:
		return fmt.Errorf("taskTimeout %s: want whole seconds, at least %s", c.TaskTimeout, minTaskTimeout)
	case c.TaskTimeout > time.Duration(c.MaxTimeoutDays)*24*time.Hour+time.Hour:
		return fmt.Errorf("taskTimeout %s: want at most maxTimeoutDays (%d days) plus an hour", c.TaskTimeout, c.MaxTimeoutDays)
	case c.SweepInterval < minSweepInterval || c.SweepInterval > maxSweepInterval || c.SweepInterval%time.Minute != 0:
		return fmt.Errorf("sweepInterval %s: want whole minutes, %s to %s", c.SweepInterval, minSweepInterval, maxSweepInterval)
	case !retention[c.LogRetentionDays]:
		return fmt.Errorf("logRetentionDays %d: want one of 1, 3, 5, 7, 14, 30, 60, 90, 180, 365", c.LogRetentionDays)
	case c.DistDir == "":
		return fmt.Errorf("distDir is required")
	case c.CallbackConcurrency < 0 || c.CallbackConcurrency > MaxConcurrency:
		return fmt.Errorf("callbackConcurrency %d: want 0 (none reserved) to %d", c.CallbackConcurrency, MaxConcurrency)
	case c.SlackConcurrency < 0 || c.SlackConcurrency > MaxConcurrency:
		return fmt.Errorf("slackConcurrency %d: want 0 (none reserved) to %d", c.SlackConcurrency, MaxConcurrency)
	}
	if err := checkDomain("pagesDomain", c.PagesDomain, "pagesCertificateArn", c.PagesCertificateARN); err != nil {
		return err
	}
	return checkDomain("callbackDomain", c.CallbackDomain, "callbackCertificateArn", c.CallbackCertificateARN)
}

// checkDomain checks a custom domain setting and its certificate, which go
// together.
func checkDomain(domainKey, domain, certKey, cert string) error {
	switch {
	case domain == "" && cert == "":
		return nil
	case domain == "" || cert == "":
		return fmt.Errorf("%s and %s go together: set both or neither", domainKey, certKey)
	case !domainRe.MatchString(domain):
		return fmt.Errorf("%s %q: want a lower-case domain name such as approvals.example.com", domainKey, domain)
	case !certificateRe.MatchString(cert):
		return fmt.Errorf("%s %q: want the ARN of an ACM certificate in us-east-1 (CloudFront uses no other region), arn:aws:acm:us-east-1:<account>:certificate/<id>", certKey, cert)
	}
	return nil
}

// StateMachineName is the fixed name of the example state machine. It is fixed
// so that the Lambdas' policies can name its ARN without depending on the state
// machine resource, which itself depends on the notifier.
func (c Config) StateMachineName() string { return c.StackName + "-approval" }

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func intSetting(key, v string, def int) (int, error) {
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a whole number", key, v)
	}
	return n, nil
}

func durationSetting(key, v string, def time.Duration) (time.Duration, error) {
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: want a Go duration such as 24h or 90m", key, v)
	}
	return d, nil
}
