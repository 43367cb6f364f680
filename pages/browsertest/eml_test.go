package browsertest

import (
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/local"
	"approvalbot/pages"
)

// TestEmlLink checks that the outbox reader finds the page link in a message
// composed the way the bot's outbox writes it (quoted-printable, which folds
// long lines).
func TestEmlLink(t *testing.T) {
	const origin = "http://127.0.0.1:40123"
	link := origin + "/p/" + approval.NewPageKey()
	r := &approval.Request{
		Title: title, Details: "a long line that goes on and on and on and on and on and on and on and on and on and on",
		Requester: "ci@example.com", Approvers: []string{"dismiss-alice@example.com"},
		CreatedAt: time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC), ExpiresAt: time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC),
	}
	m, err := pages.Renderer{}.Email(approval.EmailView{Request: r, Recipient: approval.Recipient{Address: "dismiss-alice@example.com", Channel: approval.ChannelEmail}, PageURL: link})
	if err != nil {
		t.Fatal(err)
	}
	raw, _, err := local.Compose("approvalbot@localhost", m, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	to, got, err := emlLink(raw, origin)
	if err != nil {
		t.Fatal(err)
	}
	if to != "dismiss-alice@example.com" || got != link {
		t.Errorf("emlLink = %q, %q; want %q, %q", to, got, "dismiss-alice@example.com", link)
	}
}
