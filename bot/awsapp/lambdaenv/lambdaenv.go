// Package lambdaenv names the environment variables the Lambdas read, and which
// Lambda reads which: the public contract between the Lambdas (bot/awsapp reads
// the variables) and the CDK app in infra/ (which sets them), written once. It
// imports nothing, so the CDK app can use it without the rest of the bot. The
// AWS SDK reads its own variables (AWS_REGION, AWS_ENDPOINT_URL…), which are
// not listed here.
package lambdaenv

// The variables.
const (
	Table            = "APPROVALS_TABLE"       // DynamoDB table name
	Bucket           = "PAGES_BUCKET"          // S3 bucket of the one-time pages
	PagesPrefix      = "PAGES_PREFIX"          // key prefix of the pages (default "p/")
	PagesBaseURL     = "PAGES_BASE_URL"        // where the pages are served, e.g. https://d123.cloudfront.net
	CallbackURL      = "CALLBACK_URL"          // the callback's address; pages post to <CALLBACK_URL>/decide
	MailFrom         = "MAIL_FROM"             // sender address, a verified SES identity
	ConfigurationSet = "SES_CONFIGURATION_SET" // SES configuration set

	SlackSecretARN      = "SLACK_SECRET_ARN"      // Secrets Manager secret {"botToken","signingSecret"}
	SlackBotToken       = "SLACK_BOT_TOKEN"       // xoxb-…, instead of the secret's
	SlackSigningSecret  = "SLACK_SIGNING_SECRET"  // instead of the secret's
	SlackAppToken       = "SLACK_APP_TOKEN"       // xapp-… (Socket Mode: of no use in a Lambda)
	SlackDefaultChannel = "SLACK_DEFAULT_CHANNEL" // channel for requests that name none
	SlackAPIURL         = "SLACK_API_URL"         // Slack Web API base URL (tests, proxies)
)

// Var is one variable a Lambda reads.
type Var struct {
	Name string
	// Required is true when the Lambda does not start without it.
	Required bool
}

// Notifier lists every variable the notifier reads. It publishes pages that
// post to CALLBACK_URL and emails their links; Slack is optional.
var Notifier = lambda(Var{Name: CallbackURL, Required: true})

// Callback lists every variable the callback reads. CALLBACK_URL is optional:
// the callback cannot be told its own function URL (a dependency cycle in
// CloudFormation), and its confirmation step posts to the relative /decide.
// It sends mail too: a vote handed on through a page's "Delegate to…" form
// emails the delegate their own page. Slack is optional (it updates the
// request's messages).
var Callback = lambda(Var{Name: CallbackURL})

// Slack lists every variable the slack Lambda reads. Its personal links and
// delegations publish pages that post to CALLBACK_URL (a delegate is
// emailed). It needs SLACK_SECRET_ARN, or SLACK_BOT_TOKEN and
// SLACK_SIGNING_SECRET: one or the other, so neither is marked required.
var Slack = lambda(Var{Name: CallbackURL, Required: true})

// lambda lists the variables of a Lambda whose CALLBACK_URL is callback: the
// three read the same resources and the same (otherwise optional) Slack
// variables.
func lambda(callback Var) []Var {
	return []Var{
		{Name: Table, Required: true}, {Name: Bucket, Required: true}, {Name: PagesPrefix},
		{Name: PagesBaseURL, Required: true}, callback,
		{Name: MailFrom, Required: true}, {Name: ConfigurationSet},
		{Name: SlackSecretARN}, {Name: SlackBotToken}, {Name: SlackSigningSecret},
		{Name: SlackAppToken}, {Name: SlackDefaultChannel}, {Name: SlackAPIURL},
	}
}
