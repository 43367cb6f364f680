package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"approvalbot/bot/approval"
	"approvalbot/bot/web"
)

// pageVote is one person's press of a button on their emailed page.
type pageVote struct {
	who    string // the approver whose page it is
	choice string // approve or reject
	noJS   bool   // without JavaScript: the bot answers with a confirmation step first
	status int    // the answer's status
	body   string // a phrase of the answer
	after  string // the request's status after it
	needed int    // progress.needed after it
}

// TestPoliciesThroughEmailedPages runs each rule end to end: a request through
// the API, every approver's email in the outbox, votes through the personal
// pages (with the page's script, and without it through the confirmation
// step), and what the API, the pages and "bot get" show after each vote.
func TestPoliciesThroughEmailedPages(t *testing.T) {
	const a, b, c = "alice@example.com", "bob@example.com", "carol@example.com"
	for _, tc := range []struct {
		name  string
		rule  string // the request's JSON after its title
		who   []string
		votes []pageVote
		rule2 string // what "bot get" says of the rule
		want  []string
	}{
		{
			name: "any", rule: `"approvers":["` + a + `","` + b + `"]`, who: []string{a, b},
			votes: []pageVote{
				{who: a, choice: "approve", noJS: true, status: 200, body: "Approved", after: "approved"},
				{who: b, choice: "reject", status: 409, body: "already", after: "approved"},
			},
			rule2: "one approval from any approver approves",
		},
		{
			name: "all", rule: `"approvers":["` + a + `","` + b + `","` + c + `"],"policy":"all"`, who: []string{a, b, c},
			votes: []pageVote{
				{who: a, choice: "approve", status: 200, body: "2 more approvals", after: "pending", needed: 2},
				{who: b, choice: "approve", noJS: true, status: 200, body: "1 more approval", after: "pending", needed: 1},
				{who: b, choice: "approve", status: 409, body: "already approved", after: "pending", needed: 1},
				{who: c, choice: "approve", status: 200, body: "Approved", after: "approved"},
			},
			rule2: "every approver must approve",
		},
		{
			name: "quorum:2", rule: `"approvers":["` + a + `","` + b + `","` + c + `"],"policy":"quorum:2"`, who: []string{a, b, c},
			votes: []pageVote{
				{who: a, choice: "approve", noJS: true, status: 200, body: "1 more approval", after: "pending", needed: 1},
				{who: a, choice: "reject", status: 409, body: "already approved", after: "pending", needed: 1},
				{who: b, choice: "approve", status: 200, body: "Approved", after: "approved"},
				{who: c, choice: "reject", noJS: true, status: 409, body: "already", after: "approved"},
			},
			rule2: "2 of 3 approvers must approve",
		},
		{
			name: "quorum:2, rejected once impossible", rule: `"approvers":["` + a + `","` + b + `","` + c + `"],"policy":"quorum:2","rejectPolicy":"impossible"`, who: []string{a, b, c},
			votes: []pageVote{
				{who: a, choice: "reject", status: 200, body: "rejection", after: "pending", needed: 2},
				{who: b, choice: "approve", noJS: true, status: 200, body: "1 more approval", after: "pending", needed: 1},
				{who: c, choice: "reject", status: 200, body: "Rejected", after: "rejected", needed: 1},
			},
			rule2: "2 of 3 approvers must approve; rejected only once that can no longer happen",
		},
		{
			name: "groups", rule: `"groups":[{"name":"eng","approvers":["` + a + `","` + b + `"]},{"name":"security","approvers":["` + c + `"],"min":1}]`, who: []string{a, b, c},
			votes: []pageVote{
				{who: a, choice: "approve", status: 200, body: "security", after: "pending", needed: 1},
				{who: b, choice: "approve", noJS: true, status: 200, body: "recorded", after: "pending", needed: 1},
				{who: c, choice: "approve", status: 200, body: "Approved", after: "approved"},
			},
			rule2: "one approval from each group: eng, security",
			want:  []string{"(eng)", "(security)", "eng 1 of 1 (met), security 1 of 1 (met)"},
		},
		{
			name: "self-approval refused", rule: `"requester":"` + strings.ToUpper(a) + `","approvers":["` + a + `","` + b + `"]`, who: []string{a, b},
			votes: []pageVote{
				{who: a, choice: "approve", status: 403, body: "cannot approve your own request", after: "pending", needed: 1},
				{who: a, choice: "approve", noJS: true, status: 403, body: "cannot approve your own request", after: "pending", needed: 1},
				{who: b, choice: "approve", status: 200, body: "Approved", after: "approved"},
			},
			rule2: "one approval from any approver approves",
		},
		{
			name: "self-approval allowed", rule: `"requester":"` + a + `","approvers":["` + a + `","` + b + `"],"policy":"all","allowSelfApproval":true`, who: []string{a, b},
			votes: []pageVote{
				{who: a, choice: "approve", status: 200, body: "1 more approval", after: "pending", needed: 1},
				{who: b, choice: "approve", noJS: true, status: 200, body: "Approved", after: "approved"},
			},
			rule2: "every approver must approve; the requester may approve",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, t.TempDir(), nil)
			r := s.create(`{"title":"Deploy ` + tc.name + `",` + tc.rule + `,"timeoutSeconds":3600}`)
			var links map[string]string
			eventually(t, "an email to each approver", func() bool { links = outboxLinks(t, s.data); return len(links) == len(tc.who) })
			tokens := map[string]string{}
			for _, who := range tc.who {
				tokens[who] = getPage(t, links[who])
			}
			voted := map[string]bool{}
			for i, v := range tc.votes {
				status, body := s.vote(tokens[v.who], v.choice, fmt.Sprintf("vote %d", i), v.noJS)
				if status != v.status || !strings.Contains(body, v.body) {
					t.Fatalf("vote %d (%s %s, without JavaScript %v): status %d, want %d with %q\n%s", i, v.who, v.choice, v.noJS, status, v.status, v.body, pageText(body))
				}
				got := s.get(r.ID)
				if got.Status != v.after || (v.after == "pending" && got.Progress.Needed != v.needed) {
					t.Fatalf("after vote %d: %s needing %d, want %s needing %d", i, got.Status, got.Progress.Needed, v.after, v.needed)
				}
				if status == http.StatusOK {
					voted[v.who] = true
				}
				s.idle() // the pages of those who voted are deleted in the background
				for _, who := range tc.who {
					// A page goes once its holder has voted, and every page once the
					// request closes: its link then says what happened (410).
					want := http.StatusOK
					if voted[who] || got.Status != "pending" {
						want = http.StatusGone
					}
					if code := statusOf(t, links[who]); code != want {
						t.Errorf("after vote %d the page of %s answers %d, want %d", i, who, code, want)
					}
				}
			}

			final := s.get(r.ID)
			var byWho []string
			for _, v := range final.Votes {
				byWho = append(byWho, v.By+" "+v.Choice+" "+v.Channel)
			}
			var want []string
			for _, v := range tc.votes {
				if v.status == http.StatusOK {
					want = append(want, v.who+" "+v.choice+" email")
				}
			}
			if !slices.Equal(byWho, want) {
				t.Errorf("votes %q, want %q", byWho, want)
			}
			if final.Decision == nil || final.Decision.By != tc.votes[len(tc.votes)-1-countTrailingRefused(tc.votes)].who {
				t.Errorf("decision %+v, want the last counted vote's", final.Decision)
			}

			var out bytes.Buffer
			if err := run(context.Background(), []string{"bot", "get", r.ID, "--server", s.url}, env(nil), &out, io.Discard); err != nil {
				t.Fatalf("bot get: %v", err)
			}
			for _, w := range append([]string{"rule:       " + tc.rule2, "status:     " + final.Status, "comment: vote "}, tc.want...) {
				if !strings.Contains(out.String(), w) {
					t.Errorf("bot get lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range want {
				f := strings.Fields(w)
				if line := fmt.Sprintf("%s %s by email at ", f[0], pastTense(f[1])); !strings.Contains(out.String(), line) {
					t.Errorf("bot get lacks the vote %q:\n%s", line, out.String())
				}
			}
		})
	}
}

func countTrailingRefused(votes []pageVote) int {
	n := 0
	for i := len(votes) - 1; i >= 0 && votes[i].status != http.StatusOK; i-- {
		n++
	}
	return n
}

// vote presses Approve or Reject on a page: with its script (confirmed=1 at
// once), or without (the bot's confirmation step first, whose form is then
// sent as a browser would).
func (s *server) vote(token, choice, comment string, noJS bool) (int, string) {
	s.t.Helper()
	form := url.Values{"token": {token}, "decision": {choice}, "comment": {comment}}
	if noJS {
		status, body := s.do("POST", "/decide", "application/x-www-form-urlencoded", form.Encode())
		if status != http.StatusOK || !strings.Contains(body, `name="confirmed" value="1"`) {
			return status, body // refused before confirmation
		}
		if id := approval.TokenRequestID(token); id != "" {
			if got := s.get(id); len(got.Votes) > 0 && got.Votes[len(got.Votes)-1].Comment == comment {
				s.t.Fatalf("the confirmation step recorded the vote")
			}
		}
		form = confirmForm(s.t, body)
	} else {
		form.Set("confirmed", "1")
	}
	return s.do("POST", "/decide", "application/x-www-form-urlencoded", form.Encode())
}

var (
	hiddenField  = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)"`)
	commentField = regexp.MustCompile(`(?s)<textarea[^>]* name="comment"[^>]*>(.*?)</textarea>`)
)

// confirmForm reads the confirmation step's form as a browser sends it.
func confirmForm(t *testing.T, page string) url.Values {
	t.Helper()
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], htmlUnescape(m[2]))
	}
	if form.Get("confirmed") != "1" || form.Get("token") == "" || form.Get("decision") == "" {
		t.Fatalf("the confirmation step's form lacks its fields: %v", form)
	}
	if m := commentField.FindStringSubmatch(page); m != nil {
		form.Set("comment", htmlUnescape(m[1]))
	}
	return form
}

var htmlUnescape = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace

var tags = regexp.MustCompile(`(?s)<style.*?</style>|<script.*?</script>|<[^>]+>`)

// pageText is the text of an HTML page, for failure messages.
func pageText(html string) string {
	return strings.Join(strings.Fields(tags.ReplaceAllString(html, " ")), " ")
}

// TestListPages: "bot list" reads the API a page at a time; --all reads every
// page.
func TestListPages(t *testing.T) {
	s := startServer(t, t.TempDir(), nil)
	var ids []string
	for i := range 5 {
		ids = append(ids, s.create(fmt.Sprintf(`{"title":"Request %d","approvers":["a%d@example.com"],"timeoutSeconds":600}`, i, i)).ID)
	}
	e := env(map[string]string{"APPROVALBOT_SERVER": s.url})
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"bot", "list", "--limit", "2"}, e, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(out.String(), "\n"); lines != 2 || !strings.Contains(out.String(), ids[4]) || !strings.Contains(out.String(), "0/1 approvals") {
		t.Errorf("list --limit 2 printed %d lines, want the 2 newest with their progress:\n%s", lines, out.String())
	}
	if !strings.Contains(errOut.String(), "--all") {
		t.Errorf("list --limit 2 does not say there is more: %q", errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if err := run(context.Background(), []string{"bot", "list", "--limit", "2", "--all"}, e, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if !strings.Contains(out.String(), id) {
			t.Errorf("list --all lacks request %d:\n%s", i, out.String())
		}
	}
	if lines := strings.Count(out.String(), "\n"); lines != 5 || errOut.Len() != 0 {
		t.Errorf("list --all printed %d lines (want 5) and %q on stderr (want nothing)", lines, errOut.String())
	}
	var l web.ListJSON
	out.Reset()
	if err := run(context.Background(), []string{"bot", "list", "--limit", "3", "--all", "--json"}, e, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out.Bytes(), &l); err != nil || len(l.Requests) != 5 || l.NextCursor != "" {
		t.Errorf("list --all --json: %d requests, next cursor %q (%v); want 5 and none", len(l.Requests), l.NextCursor, err)
	}
}
