package main

import (
	"context"
	"strings"
	"testing"
)

// Without its configuration the notifier does not start, and says which
// variable is missing.
func TestRunNeedsConfiguration(t *testing.T) {
	var stderr strings.Builder
	err := run(context.Background(), func(string) string { return "" }, &stderr)
	if err == nil {
		t.Fatal("run without configuration succeeded")
	}
	for _, name := range []string{"APPROVALS_TABLE", "PAGES_BUCKET", "PAGES_BASE_URL", "CALLBACK_URL", "MAIL_FROM"} {
		if !strings.Contains(err.Error(), name) || !strings.Contains(stderr.String(), name) {
			t.Errorf("error %q / log %q do not name %s", err, stderr.String(), name)
		}
	}
}
