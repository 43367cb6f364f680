package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSetup(t *testing.T) {
	base := map[string]string{
		"APPROVALS_TABLE": "approvals",
		"PAGES_BUCKET":    "pages-bucket",
		"PAGES_BASE_URL":  "https://d123.cloudfront.net",
		"CALLBACK_URL":    "https://callback.lambda-url.eu-west-1.on.aws",
		"MAIL_FROM":       "approvals@example.com",
	}
	tests := []struct {
		name    string
		set     map[string]string
		unset   string
		wantErr string // a variable the error must name; "" for none
	}{
		{name: "tokens in the environment", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}},
		{name: "no Slack settings", wantErr: "SLACK_SECRET_ARN"},
		{name: "no signing secret", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, wantErr: "SLACK_SIGNING_SECRET"},
		{name: "bad Slack setting", set: map[string]string{"SLACK_BOT_TOKEN": "xoxp-1", "SLACK_SIGNING_SECRET": "s"}, wantErr: "SLACK_BOT_TOKEN"},
		{name: "no table", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, unset: "APPROVALS_TABLE", wantErr: "APPROVALS_TABLE"},
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				if k != tt.unset {
					env[k] = v
				}
			}
			for k, v := range tt.set {
				env[k] = v
			}
			h, svc, err := setup(context.Background(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The process may freeze once an invocation ends: calls wait for
			// their effects. Votes update the Slack messages.
			if !svc.Sync || svc.Chat == nil {
				t.Errorf("service Sync %v, Chat %v; want Sync and a Slack chat", svc.Sync, svc.Chat)
			}
			// Without a signature nothing reaches AWS: the answer is 401.
			for _, path := range []string{"/slack/commands", "/slack/interactions"} {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader("text=")))
				if w.Code != http.StatusUnauthorized {
					t.Errorf("POST %s unsigned: status %d, want 401", path, w.Code)
				}
			}
		})
	}
}
