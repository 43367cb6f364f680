package slackapp

import (
	"os"
	"strings"
	"testing"
)

// TestManifest checks that the app manifest asks for what the code uses: the
// scopes of the calls it makes and the routes Handler serves.
func TestManifest(t *testing.T) {
	raw, err := os.ReadFile("manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	m := string(raw)
	for _, want := range []string{
		"- chat:write\n",       // chat.postMessage, chat.update, chat.postEphemeral
		"- commands\n",         // /approvals
		"- im:write\n",         // conversations.open: direct messages to Slack approvers
		"- users:read\n",       // users.info
		"- users:read.email\n", // the clicking user's email
		"command: /approvals\n",
		"url: https://YOUR-HOST/slack/commands\n",
		"request_url: https://YOUR-HOST/slack/interactions\n",
		"is_enabled: true\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("manifest.yaml lacks %q", strings.TrimSpace(want))
		}
	}
}
