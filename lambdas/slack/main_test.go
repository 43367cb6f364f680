package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLoadConfig(t *testing.T) {
	full := map[string]string{
		"APPROVALS_TABLE":  "approvals",
		"PAGES_BUCKET":     "pages-bucket",
		"PAGES_BASE_URL":   "https://d123.cloudfront.net",
		"SLACK_SECRET_ARN": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack",
	}
	tests := []struct {
		name    string
		unset   string
		set     map[string]string
		wantErr string
	}{
		{name: "complete"},
		{name: "no table", unset: "APPROVALS_TABLE", wantErr: "APPROVALS_TABLE"},
		{name: "no bucket", unset: "PAGES_BUCKET", wantErr: "PAGES_BUCKET"},
		{name: "no base URL", unset: "PAGES_BASE_URL", wantErr: "PAGES_BASE_URL"},
		{name: "no Slack at all", unset: "SLACK_SECRET_ARN", wantErr: "SLACK_SECRET_ARN"},
		{name: "tokens instead of a secret", unset: "SLACK_SECRET_ARN", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range full {
				if k != tt.unset {
					env[k] = v
				}
			}
			for k, v := range tt.set {
				env[k] = v
			}
			c, err := loadConfig(func(k string) string { return env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if c.Table != "approvals" || c.Pages.Bucket != "pages-bucket" {
				t.Errorf("got %+v", c)
			}
		})
	}
}

func TestSetupServesSlackRoutes(t *testing.T) {
	env := map[string]string{
		"APPROVALS_TABLE":      "approvals",
		"PAGES_BUCKET":         "pages-bucket",
		"PAGES_BASE_URL":       "https://d123.cloudfront.net",
		"SLACK_BOT_TOKEN":      "xoxb-1",
		"SLACK_SIGNING_SECRET": "s",
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	h, err := setup(context.Background(), func(k string) string { return env[k] }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// Without a signature nothing reaches AWS: the answer is 401.
	for _, path := range []string{"/slack/commands", "/slack/interactions"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader("text=")))
		if w.Code != http.StatusUnauthorized {
			t.Errorf("POST %s unsigned: status %d, want 401", path, w.Code)
		}
	}
}
