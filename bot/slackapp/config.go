// Package slackapp connects approvalbot to Slack. Chat (approval.Chat) posts a
// request's Block Kit message to its channel, sends Slack approvers a direct
// message, and rewrites both as votes come in and when the request closes. App
// answers the /approvals command and the buttons: Approve and Reject vote as
// the clicking Slack user (user ID and profile email, as Slack vouches), "Open
// approval page" answers an approver with a personal one-time link that only
// they see. No message carries a link that decides for whoever opens it.
// Handler serves App over HTTP, verifying Slack's request signatures;
// RunSocketMode serves it over a Socket Mode connection.
package slackapp

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/slack-go/slack"
)

// Config is the Slack part of a binary's configuration, read from the
// environment.
type Config struct {
	BotToken       string // SLACK_BOT_TOKEN: xoxb-…, for the Web API
	SigningSecret  string // SLACK_SIGNING_SECRET: verifies requests sent to the HTTP routes
	AppToken       string // SLACK_APP_TOKEN: xapp-…, switches to Socket Mode
	DefaultChannel string // SLACK_DEFAULT_CHANNEL: channel for requests that name none
	APIURL         string // SLACK_API_URL: Web API base URL (tests, proxies); ends in "/"
	// SecretARN (SLACK_SECRET_ARN) names a Secrets Manager secret holding
	// {"botToken": "…", "signingSecret": "…"}; the Lambda reads it at start and
	// passes it to ApplySecret.
	SecretARN string
}

// ConfigFromEnv reads the Slack variables through getenv and validates them. A
// configuration with none of them set is valid and disabled (see Enabled).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		BotToken:       strings.TrimSpace(getenv("SLACK_BOT_TOKEN")),
		SigningSecret:  strings.TrimSpace(getenv("SLACK_SIGNING_SECRET")),
		AppToken:       strings.TrimSpace(getenv("SLACK_APP_TOKEN")),
		DefaultChannel: strings.TrimSpace(getenv("SLACK_DEFAULT_CHANNEL")),
		APIURL:         strings.TrimSpace(getenv("SLACK_API_URL")),
		SecretARN:      strings.TrimSpace(getenv("SLACK_SECRET_ARN")),
	}
	if err := c.validate(c.SecretARN != ""); err != nil {
		return Config{}, err
	}
	if c.APIURL != "" && !strings.HasSuffix(c.APIURL, "/") {
		c.APIURL += "/"
	}
	return c, nil
}

// Enabled reports whether Slack is configured at all.
func (c Config) Enabled() bool {
	return c.BotToken != "" || c.SecretARN != "" || c.AppToken != "" || c.SigningSecret != ""
}

// SocketMode reports whether the bot should reach Slack over Socket Mode (an app
// token is set) instead of serving the HTTP routes.
func (c Config) SocketMode() bool { return c.AppToken != "" }

// Validate checks a complete configuration: when Slack is enabled, the bot token
// and (outside Socket Mode) the signing secret are required.
func (c Config) Validate() error { return c.validate(false) }

// validate checks c; pendingSecret allows the bot token and signing secret to be
// missing because they will come from SLACK_SECRET_ARN.
func (c Config) validate(pendingSecret bool) error {
	if !c.Enabled() && c.DefaultChannel == "" && c.APIURL == "" {
		return nil
	}
	if !pendingSecret || c.BotToken != "" {
		switch {
		case c.BotToken == "":
			return fmt.Errorf("SLACK_BOT_TOKEN is required when any other SLACK_ variable is set")
		case !strings.HasPrefix(c.BotToken, "xoxb-"):
			return fmt.Errorf("SLACK_BOT_TOKEN must be a bot token (it starts with xoxb-)")
		}
	}
	if !pendingSecret && c.SigningSecret == "" && c.AppToken == "" {
		return fmt.Errorf("SLACK_SIGNING_SECRET is required to serve Slack's HTTP requests (or set SLACK_APP_TOKEN for Socket Mode)")
	}
	if c.AppToken != "" && !strings.HasPrefix(c.AppToken, "xapp-") {
		return fmt.Errorf("SLACK_APP_TOKEN must be an app-level token (it starts with xapp-)")
	}
	if c.DefaultChannel != "" && (len(c.DefaultChannel) > 80 || strings.ContainsAny(c.DefaultChannel, " \t\n,<>")) {
		return fmt.Errorf("SLACK_DEFAULT_CHANNEL %q is not a Slack channel ID or name", c.DefaultChannel)
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("SLACK_API_URL %q is not an absolute http(s) URL", c.APIURL)
		}
	}
	if c.SecretARN != "" && !strings.HasPrefix(c.SecretARN, "arn:") {
		return fmt.Errorf("SLACK_SECRET_ARN %q is not an ARN", c.SecretARN)
	}
	return nil
}

// ApplySecret fills the bot token and signing secret from the JSON of the
// Secrets Manager secret named by SLACK_SECRET_ARN, then validates the result.
// Values already set in the environment win.
func (c *Config) ApplySecret(secretJSON []byte) error {
	var s struct {
		BotToken      string `json:"botToken"`
		SigningSecret string `json:"signingSecret"`
	}
	if err := json.Unmarshal(secretJSON, &s); err != nil {
		return fmt.Errorf("SLACK_SECRET_ARN: the secret is not JSON like {\"botToken\":…,\"signingSecret\":…}")
	}
	if c.BotToken == "" {
		c.BotToken = strings.TrimSpace(s.BotToken)
	}
	if c.SigningSecret == "" {
		c.SigningSecret = strings.TrimSpace(s.SigningSecret)
	}
	if c.BotToken == "" {
		return fmt.Errorf("SLACK_SECRET_ARN: the secret has no botToken")
	}
	if c.SigningSecret == "" && c.AppToken == "" {
		return fmt.Errorf("SLACK_SECRET_ARN: the secret has no signingSecret")
	}
	return c.Validate()
}

// NewClient returns a Web API client for c: the bot token, the app token when
// set (Socket Mode) and the API URL override.
func NewClient(c Config) *slack.Client {
	var opts []slack.Option
	if c.APIURL != "" {
		opts = append(opts, slack.OptionAPIURL(c.APIURL))
	}
	if c.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(c.AppToken))
	}
	return slack.New(c.BotToken, opts...)
}
