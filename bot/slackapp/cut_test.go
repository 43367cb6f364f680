package slackapp

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"approvalbot/bot/approval"
)

func TestUTF16Len(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{{"", 0}, {"abc", 3}, {"é", 1}, {"€", 1}, {"😀", 2}, {"a😀b", 4}, {"👍🏽", 4}} {
		if got := utf16Len(tc.s); got != tc.want {
			t.Errorf("utf16Len(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
	if got := truncate(strings.Repeat("😀", 100), 150); utf16Len(got) > 150 || !strings.HasSuffix(got, "😀…") {
		t.Errorf("truncate of 100 emoji to 150 units: %d units (%q), want at most 150 ending in a whole emoji and …", utf16Len(got), got)
	}
	if got := escapeMax(strings.Repeat("😀&", 40), 100); utf16Len(got) > 100 || strings.Contains(strings.TrimSuffix(got, "…"), "&amp…") {
		t.Errorf("escapeMax: %d units (%q), want at most 100 with whole entities", utf16Len(got), got)
	}
}

func TestLinksText(t *testing.T) {
	got := linksText([]approval.Link{{Label: "diff", URL: "https://example.com/a|b?x=1&y=<2>"}}, maxSectionText)
	if want := "<https://example.com/a%7Cb?x=1&amp;y=%3C2%3E|diff>"; got != want {
		t.Errorf("linksText = %q, want %q", got, want)
	}
	var links []approval.Link
	for i := range 10 {
		links = append(links, approval.Link{Label: fmt.Sprintf("link %d 😀", i), URL: "https://example.com/" + strings.Repeat("x", 600)})
	}
	got = linksText(links, maxSectionText)
	if utf16Len(got) > maxSectionText {
		t.Errorf("10 long links: %d units, want at most %d", utf16Len(got), maxSectionText)
	}
	if strings.Count(got, "<") != strings.Count(got, ">") || !strings.HasSuffix(got, "more") {
		t.Errorf("10 long links cut inside a link, or without saying so: ...%s", got[len(got)-80:])
	}
	if n := strings.Count(got, "|link "); n < 3 || !strings.Contains(got, fmt.Sprintf("…and %d more", 10-n)) {
		t.Errorf("10 long links: %d whole links, want at least 3 and the rest counted:\n%s", n, got)
	}
	// One link too long for the section on its own: its label, no markup.
	got = linksText([]approval.Link{{Label: "huge", URL: "https://example.com/" + strings.Repeat("&", 1900)}}, maxSectionText)
	if got != "huge" {
		t.Errorf("a link longer than the section: %q, want its label", got)
	}
}

// No text in a request's message exceeds Slack's limits (counted in UTF-16
// units) or ends inside a link or mention, however long its parts.
func TestRequestBlocksWithinLimits(t *testing.T) {
	long := func(i int) string { return fmt.Sprintf("%s%02d@example.com", strings.Repeat("a", 240), i) }
	var approvers []string
	for i := range 18 {
		approvers = append(approvers, long(i))
	}
	approvers = append(approvers, "U0BOB00001", "U0CAROL001")
	var links []approval.Link
	for i := range approval.MaxLinks {
		links = append(links, approval.Link{Label: strings.Repeat("🚀", 100), URL: fmt.Sprintf("https://example.com/%d/%s", i, strings.Repeat("y", 1900))})
	}
	now := time.Date(2026, 11, 25, 13, 0, 0, 0, time.UTC)
	base := approval.Request{
		ID: "abcdefghijklmnop", Title: strings.Repeat("😀", 200), Details: strings.Repeat("<&>😀", 2000),
		Requester: strings.Repeat("🙂", 200), Approvers: approvers, Links: links,
		Status: approval.StatusPending, CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	grouped := base
	grouped.Rule.Groups = []approval.Group{{Name: "eng", Approvers: approvers[:10], Min: 1}, {Name: "ops", Approvers: approvers[10:], Min: 2}}
	for _, r := range []*approval.Request{&base, &grouped} {
		for _, dm := range []bool{false, true} {
			b, err := json.Marshal(requestBlocks(r, dm))
			if err != nil {
				t.Fatal(err)
			}
			var blocks []struct {
				Type   string                   `json:"type"`
				Text   *slack.TextBlockObject   `json:"text"`
				Fields []*slack.TextBlockObject `json:"fields"`
			}
			if err := json.Unmarshal(b, &blocks); err != nil {
				t.Fatal(err)
			}
			for _, bl := range blocks {
				check := func(what string, o *slack.TextBlockObject, limit int) {
					if o == nil {
						return
					}
					if n := utf16Len(o.Text); n > limit {
						t.Errorf("groups %v: %s text of %d UTF-16 units, Slack allows %d", len(r.Rule.Groups) > 0, what, n, limit)
					}
					if strings.Count(o.Text, "<") != strings.Count(o.Text, ">") {
						t.Errorf("groups %v: %s text cut inside a link or mention: ...%s", len(r.Rule.Groups) > 0, what, o.Text[max(0, len(o.Text)-100):])
					}
				}
				limit := maxSectionText
				if bl.Type == "header" {
					limit = maxHeader
				}
				check(bl.Type, bl.Text, limit)
				for _, f := range bl.Fields {
					check("field", f, maxFieldText)
				}
			}
			if !strings.Contains(string(b), "…and ") {
				t.Errorf("groups %v: the message does not say that approvers or links were left out", len(r.Rule.Groups) > 0)
			}
		}
	}
}
