package main

import (
	"context"
	"strings"
	"testing"
)

// Without its configuration the callback does not start, and says which
// variable is missing.
func TestRunNeedsConfiguration(t *testing.T) {
	var stderr strings.Builder
	env := map[string]string{"APPROVALS_TABLE": "t", "PAGES_BASE_URL": "https://d.example.net", "MAIL_FROM": "a@example.com"}
	err := run(context.Background(), func(k string) string { return env[k] }, &stderr)
	if err == nil {
		t.Fatal("run without PAGES_BUCKET succeeded")
	}
	if !strings.Contains(err.Error(), "PAGES_BUCKET") || !strings.Contains(stderr.String(), "PAGES_BUCKET") {
		t.Errorf("error %q / log %q do not name PAGES_BUCKET", err, stderr.String())
	}
	// CALLBACK_URL is not required: the CDK app cannot give the callback its own URL.
	if strings.Contains(err.Error(), "CALLBACK_URL") {
		t.Errorf("error %q requires CALLBACK_URL", err)
	}
}
