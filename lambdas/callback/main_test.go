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
	env := map[string]string{"APPROVALS_TABLE": "t", "PAGES_BUCKET": "b", "PAGES_BASE_URL": "https://d.example.net", "MAIL_FROM": "a@example.com"}
	err := run(context.Background(), func(k string) string { return env[k] }, &stderr)
	if err == nil {
		t.Fatal("run without CALLBACK_URL succeeded")
	}
	if !strings.Contains(err.Error(), "CALLBACK_URL") || !strings.Contains(stderr.String(), "CALLBACK_URL") {
		t.Errorf("error %q / log %q do not name CALLBACK_URL", err, stderr.String())
	}
}
