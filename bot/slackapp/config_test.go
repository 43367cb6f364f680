package slackapp

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		want    Config
		wantErr string // the variable the error must name; "" for none
	}{
		{name: "nothing set: Slack off", env: map[string]string{}, want: Config{}},
		{
			name: "HTTP routes",
			env:  map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s3cret", "SLACK_DEFAULT_CHANNEL": "#approvals", "SLACK_API_URL": "http://127.0.0.1:9999/api"},
			want: Config{BotToken: "xoxb-1", SigningSecret: "s3cret", DefaultChannel: "#approvals", APIURL: "http://127.0.0.1:9999/api/"},
		},
		{
			name: "Socket Mode needs no signing secret",
			env:  map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"},
			want: Config{BotToken: "xoxb-1", AppToken: "xapp-1"},
		},
		{
			name: "Lambda with the tokens in Secrets Manager",
			env:  map[string]string{"SLACK_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf"},
			want: Config{SecretARN: "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf"},
		},
		{name: "signing secret without bot token", env: map[string]string{"SLACK_SIGNING_SECRET": "s"}, wantErr: "SLACK_BOT_TOKEN"},
		{name: "default channel alone", env: map[string]string{"SLACK_DEFAULT_CHANNEL": "C1"}, wantErr: "SLACK_BOT_TOKEN"},
		{name: "user token", env: map[string]string{"SLACK_BOT_TOKEN": "xoxp-1", "SLACK_SIGNING_SECRET": "s"}, wantErr: "SLACK_BOT_TOKEN"},
		{name: "bot token without secret", env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1"}, wantErr: "SLACK_SIGNING_SECRET"},
		{name: "bad app token", env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xoxb-2"}, wantErr: "SLACK_APP_TOKEN"},
		{name: "bad channel", env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_DEFAULT_CHANNEL": "two words"}, wantErr: "SLACK_DEFAULT_CHANNEL"},
		{name: "bad API URL", env: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SLACK_API_URL": "slack.test"}, wantErr: "SLACK_API_URL"},
		{name: "bad secret ARN", env: map[string]string{"SLACK_SECRET_ARN": "slack-secret"}, wantErr: "SLACK_SECRET_ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ConfigFromEnv(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
			if got.Enabled() != (len(tt.env) > 0) {
				t.Errorf("Enabled() = %v with %d variables set", got.Enabled(), len(tt.env))
			}
		})
	}
}

func TestApplySecret(t *testing.T) {
	base := Config{SecretARN: "arn:aws:secretsmanager:eu-west-1:1:secret:s"}
	tests := []struct {
		name, secret string
		want         Config
		wantErr      bool
	}{
		{name: "both", secret: `{"botToken":"xoxb-9","signingSecret":"sig"}`, want: Config{SecretARN: base.SecretARN, BotToken: "xoxb-9", SigningSecret: "sig"}},
		{name: "not JSON", secret: `xoxb-9`, wantErr: true},
		{name: "no signing secret", secret: `{"botToken":"xoxb-9"}`, wantErr: true},
		{name: "no bot token", secret: `{"signingSecret":"sig"}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			err := c.ApplySecret([]byte(tt.secret))
			if tt.wantErr {
				if err == nil || !strings.Contains(err.Error(), "SLACK_SECRET_ARN") {
					t.Fatalf("got error %v, want one naming SLACK_SECRET_ARN", err)
				}
				if strings.Contains(err.Error(), "xoxb-9") {
					t.Errorf("error %q repeats the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
