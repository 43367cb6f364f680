package stack

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// cert is an ACM certificate ARN of the form CloudFront takes.
const cert = "arn:aws:acm:us-east-1:123456789012:certificate/0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c"

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		ctx     map[string]any
		env     map[string]string
		want    Config
		wantErr string
	}{
		{
			name: "defaults",
			ctx:  map[string]any{"mailFrom": "approvals@example.com"},
			want: Config{
				StackName: "ApprovalBot", MailFrom: "approvals@example.com", PagesPrefix: "p/",
				MaxTimeoutDays: 30, TaskTimeout: 24 * time.Hour,
				LogRetentionDays: 30, SweepInterval: 5 * time.Minute, DistDir: "../dist",
				CallbackConcurrency: 10, SlackConcurrency: 10,
			},
		},
		{
			name: "environment fills what context leaves unset",
			ctx:  map[string]any{"mailFrom": "ctx@example.com", "maxTimeoutDays": 7.0},
			env: map[string]string{
				"APPROVALBOT_MAIL_FROM": "env@example.com", "APPROVALBOT_MAIL_IDENTITY": "example.com",
				"APPROVALBOT_SES_CONFIGURATION_SET": "tracked", "APPROVALBOT_SLACK_DEFAULT_CHANNEL": "#approvals",
				"APPROVALBOT_PAGES_PREFIX": "pages/x/", "APPROVALBOT_MAX_TIMEOUT_DAYS": "3",
				"APPROVALBOT_TASK_TIMEOUT": "2h", "APPROVALBOT_CALLBACK_CONCURRENCY": "0", "APPROVALBOT_SLACK_CONCURRENCY": "25",
				"APPROVALBOT_PAGES_DOMAIN": "approvals.example.com", "APPROVALBOT_PAGES_CERTIFICATE_ARN": cert,
				"APPROVALBOT_CALLBACK_DOMAIN": "decide.example.com", "APPROVALBOT_CALLBACK_CERTIFICATE_ARN": cert,
				"APPROVALBOT_LOG_RETENTION_DAYS": "14", "APPROVALBOT_DIST_DIR": "/tmp/dist",
				"APPROVALBOT_STACK_NAME": "Approvals-Test", "APPROVALBOT_SWEEP_INTERVAL": "2h",
			},
			want: Config{
				StackName: "Approvals-Test", MailFrom: "ctx@example.com", MailIdentity: "example.com",
				SESConfigurationSet: "tracked", SlackDefaultChannel: "#approvals", PagesPrefix: "pages/x/",
				MaxTimeoutDays: 7, TaskTimeout: 2 * time.Hour,
				LogRetentionDays: 14, SweepInterval: 2 * time.Hour, DistDir: "/tmp/dist",
				CallbackConcurrency: 0, SlackConcurrency: 25,
				PagesDomain: "approvals.example.com", PagesCertificateARN: cert,
				CallbackDomain: "decide.example.com", CallbackCertificateARN: cert,
			},
		},
		{name: "mailFrom missing", wantErr: "mailFrom is required"},
		{name: "mailFrom with display name", ctx: map[string]any{"mailFrom": "Bot <bot@example.com>"}, wantErr: "bare email address"},
		{name: "identity not covering sender", ctx: map[string]any{"mailFrom": "a@example.com", "mailIdentity": "example.org"}, wantErr: "does not cover"},
		{name: "prefix without slash", ctx: map[string]any{"mailFrom": "a@example.com", "pagesPrefix": "p"}, wantErr: "pagesPrefix"},
		{name: "prefix from root", ctx: map[string]any{"mailFrom": "a@example.com", "pagesPrefix": "/p/"}, wantErr: "pagesPrefix"},
		{name: "timeout over 30 days", ctx: map[string]any{"mailFrom": "a@example.com", "maxTimeoutDays": "31"}, wantErr: "maxTimeoutDays 31"},
		{name: "task timeout over max", ctx: map[string]any{"mailFrom": "a@example.com", "maxTimeoutDays": "1", "taskTimeout": "26h"}, wantErr: "taskTimeout 26h"},
		{name: "heartbeat removed", ctx: map[string]any{"mailFrom": "a@example.com", "heartbeat": "1h"}, wantErr: "heartbeat (APPROVALBOT_HEARTBEAT): the example task no longer has a heartbeat timeout"},
		{name: "heartbeat removed, from the environment", ctx: map[string]any{"mailFrom": "a@example.com"}, env: map[string]string{"APPROVALBOT_HEARTBEAT": "1h"}, wantErr: "remove the setting"},
		{name: "concurrency negative", ctx: map[string]any{"mailFrom": "a@example.com", "callbackConcurrency": "-1"}, wantErr: "callbackConcurrency -1"},
		{name: "concurrency too high", ctx: map[string]any{"mailFrom": "a@example.com", "slackConcurrency": "1001"}, wantErr: "slackConcurrency 1001"},
		{name: "concurrency not a number", ctx: map[string]any{"mailFrom": "a@example.com", "slackConcurrency": "lots"}, wantErr: "slackConcurrency"},
		{name: "domain without certificate", ctx: map[string]any{"mailFrom": "a@example.com", "pagesDomain": "approvals.example.com"}, wantErr: "pagesDomain and pagesCertificateArn go together"},
		{name: "certificate without domain", ctx: map[string]any{"mailFrom": "a@example.com", "callbackCertificateArn": cert}, wantErr: "callbackDomain and callbackCertificateArn go together"},
		{name: "certificate outside us-east-1", ctx: map[string]any{"mailFrom": "a@example.com", "pagesDomain": "approvals.example.com",
			"pagesCertificateArn": strings.Replace(cert, "us-east-1", "eu-west-1", 1)}, wantErr: "in us-east-1"},
		{name: "domain with capitals", ctx: map[string]any{"mailFrom": "a@example.com", "callbackDomain": "Decide.Example.com", "callbackCertificateArn": cert}, wantErr: "callbackDomain"},
		{name: "bad duration", ctx: map[string]any{"mailFrom": "a@example.com", "taskTimeout": "a day"}, wantErr: "Go duration"},
		{name: "sweep in seconds", ctx: map[string]any{"mailFrom": "a@example.com", "sweepInterval": "90s"}, wantErr: "sweepInterval 1m30s: want whole minutes"},
		{name: "sweep too rare", ctx: map[string]any{"mailFrom": "a@example.com", "sweepInterval": "25h"}, wantErr: "sweepInterval 25h0m0s"},
		{name: "sweep off", ctx: map[string]any{"mailFrom": "a@example.com", "sweepInterval": "0"}, wantErr: "sweepInterval 0s"},
		{name: "bad retention", ctx: map[string]any{"mailFrom": "a@example.com", "logRetentionDays": "10"}, wantErr: "logRetentionDays 10"},
		{name: "bad channel", ctx: map[string]any{"mailFrom": "a@example.com", "slackDefaultChannel": "General Chat"}, wantErr: "slackDefaultChannel"},
		{name: "bad stack name", ctx: map[string]any{"mailFrom": "a@example.com", "stackName": "my_stack"}, wantErr: "stackName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(func(k string) any { return tt.ctx[k] }, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Load mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSettingsHaveEnvNames(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Settings {
		if !strings.HasPrefix(s.Env, "APPROVALBOT_") || s.Context == "" || s.Doc == "" {
			t.Errorf("setting %+v: want a context key, an APPROVALBOT_ variable and a description", s)
		}
		if seen[s.Context] {
			t.Errorf("setting %q listed twice", s.Context)
		}
		seen[s.Context] = true
	}
}
