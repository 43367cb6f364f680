package mailtest

import (
	"testing"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/local"

	"github.com/google/go-cmp/cmp"
)

func TestParseReadsWhatComposeWrote(t *testing.T) {
	want := approval.Email{
		To:      "alice@example.com",
		Subject: "Approval needed: Déploiement v1.2 — prod",
		Text:    "Open http://127.0.0.1:8080/p/abc_DEF-123\nlong line with = signs and ümlauts\n",
		HTML:    "<p><a href=\"http://127.0.0.1:8080/p/abc_DEF-123\">Open</a></p>\n",
	}
	raw, _, err := local.Compose(local.DefaultFrom, want, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(raw)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse(Compose(m)) differs from m (-want +got):\n%s", diff)
	}
}

func TestParseRefusesWhatIsNotMail(t *testing.T) {
	for _, raw := range []string{"", "no headers", "To: not an address\r\nSubject: x\r\n\r\nbody"} {
		if _, err := Parse([]byte(raw)); err == nil {
			t.Errorf("Parse(%q): got no error", raw)
		}
	}
}
