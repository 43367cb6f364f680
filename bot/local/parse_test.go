package local

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"approvalbot/bot/approval"

	"github.com/google/go-cmp/cmp"
)

func TestParseReadsWhatComposeWrote(t *testing.T) {
	want := approval.Email{
		To:      "alice@example.com",
		Subject: "Approval needed: Déploiement v1.2 — prod",
		Text:    "Open http://127.0.0.1:8080/p/abc_DEF-123\nlong line with = signs and ümlauts\n",
		HTML:    "<p><a href=\"http://127.0.0.1:8080/p/abc_DEF-123\">Open</a></p>\n",
	}
	raw, _, err := Compose(DefaultFrom, want, time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
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

func TestReadOutbox(t *testing.T) {
	dir := t.TempDir()
	o, err := NewOutbox(dir, DefaultFrom, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	for _, to := range []string{"a@example.com", "b@example.com"} {
		if err := o.Send(t.Context(), approval.Email{To: to, Subject: "s", Text: "t", HTML: "<p>h</p>"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not mail"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadOutbox(dir)
	if err != nil {
		t.Fatalf("ReadOutbox: %v", err)
	}
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.To] = m.Text == "t" && m.HTML == "<p>h</p>"
	}
	if len(got) != 2 || !seen["a@example.com"] || !seen["b@example.com"] {
		t.Errorf("ReadOutbox: got %+v, want the two messages sent", got)
	}
}
