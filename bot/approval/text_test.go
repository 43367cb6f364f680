package approval_test

import (
	"errors"
	"strings"
	"testing"

	"approvalbot/bot/approval"
)

func TestCheckText(t *testing.T) {
	tests := []struct {
		name      string
		text      string
		multiline bool
		wantErr   string // a part of the message; empty for none
	}{
		{"plain", "Deploy v1.2 to prod", false, ""},
		{"emoji and accents", "Déployer 🚀 v1.2 — ok", false, ""},
		{"right-to-left script", "פריסה לייצור", false, ""},
		{"left-to-right mark", "a\u200eb", false, ""},
		{"line breaks and tabs in details", "line 1\r\nline 2\n\tindented", true, ""},
		{"line break in a title", "a\nb", false, "title must not contain line breaks (U+000A at character 2)"},
		{"tab in a title", "a\tb", false, "title must not contain control characters (U+0009 at character 2)"},
		{"NUL", "a\x00", true, "U+0000 at character 2"},
		{"ESC", "\x1b[2J", true, "control characters (U+001B at character 1)"},
		{"BEL", "\a", true, "U+0007"},
		{"DEL", "a\x7f", true, "U+007F"},
		{"C1 CSI", "a\u009b", true, "U+009B"},
		{"line separator in a title", "a\u2028b", false, "line breaks (U+2028"},
		{"line separator in details", "a\u2028b", true, ""},
		{"LRE", "\u202a", true, "bidirectional control characters"},
		{"RLO", "Approve \u202egnp.exe", false, "bidirectional control characters, which make text show differently from what it says (U+202E at character 9)"},
		{"PDF", "\u202c", true, "U+202C"},
		{"LRI", "\u2066", true, "U+2066"},
		{"PDI", "\u2069", true, "U+2069"},
		{"invalid UTF-8", "a\xffb", true, "title must be valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := approval.CheckText("title", tt.text, tt.multiline)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckText(%q): %v, want nil", tt.text, err)
				}
				return
			}
			var ve *approval.ValidationError
			if !errors.As(err, &ve) || ve.Field != "title" {
				t.Fatalf("CheckText(%q): %#v, want a validation error of title", tt.text, err)
			}
			if !strings.Contains(ve.Message, tt.wantErr) {
				t.Errorf("CheckText(%q): %q, want it to contain %q", tt.text, ve.Message, tt.wantErr)
			}
		})
	}
}
