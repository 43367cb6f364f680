package slackapp

import (
	"context"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
)

// sweep moves the clock on and runs the sweep, waiting for its effects.
func (e *env) sweep(d time.Duration) {
	e.t.Helper()
	e.clock.Add(d)
	if _, err := e.svc.Sweep(context.Background()); err != nil {
		e.t.Fatalf("sweep: %v", err)
	}
	e.idle()
}

// What Slack shows of the timers: the escalation post and its direct
// message, reminders by DM and in the thread, the cancel notice, and every
// message (the escalation post too) rewritten on close.
func TestTimersInSlack(t *testing.T) {
	e := newEnv(t)
	in := deployRequest()
	in.OnTimeout = "approve"
	in.Reminders.BeforeExpiry = []time.Duration{30 * time.Minute}
	in.Escalation = &approval.EscalationInput{After: time.Hour, Approvers: []string{"U0DAN0001"}, SlackChannel: "C0ESCALATE"}
	r := e.create(in)

	post := on(e.slack.messages("chat.postMessage"), testChannel)[0]
	ctx := strings.Join(parseBlocks(t, post.Blocks).Context, "\n")
	for _, want := range []string{"Approved automatically at the expiry unless someone rejects it", "Escalates <!date^", "to <@U0DAN0001> if still undecided"} {
		if !strings.Contains(ctx, want) {
			t.Errorf("the channel message does not say %q:\n%s", want, ctx)
		}
	}

	e.sweep(time.Hour - time.Minute) // created a minute ago: the escalation is due
	esc := on(e.slack.messages("chat.postMessage"), "C0ESCALATE")
	if len(esc) != 1 || len(parseBlocks(t, esc[0].Blocks).Buttons) == 0 {
		t.Fatalf("escalation posts %+v, want one with the buttons", esc)
	}
	if dm := on(e.slack.messages("chat.postMessage"), dmChannel("U0DAN0001")); len(dm) != 1 {
		t.Errorf("%d direct messages to dan, want 1", len(dm))
	}
	if got := e.request(r.ID); got.Escalation.Message.Channel != "C0ESCALATE" || got.Escalation.Message.TS != esc[0].TS {
		t.Errorf("escalation message %+v, want the post", got.Escalation.Message)
	}

	e.sweep(30 * time.Minute) // 30 minutes before the expiry
	reminder := on(e.slack.messages("chat.postMessage"), dmChannel("U0BOB0001"))
	if len(reminder) != 2 || !strings.Contains(reminder[1].Text, "Reminder") || !strings.Contains(reminder[1].Text, "still waits for your vote") {
		t.Errorf("bob's direct messages %+v, want the request and a reminder", reminder)
	}
	var thread []sent
	for _, m := range on(e.slack.messages("chat.postMessage"), testChannel) {
		if m.ThreadTS == post.TS {
			thread = append(thread, m)
		}
	}
	if len(thread) != 1 || !strings.Contains(thread[0].Text, "still waiting for alice@example.com, <@U0BOB0001>, <@U0DAN0001>") {
		t.Errorf("thread replies %+v, want one naming who has not voted", thread)
	}

	if _, err := e.svc.Cancel(context.Background(), r.ID, "U0ALICE01", "wrong build"); err != nil {
		t.Fatal(err)
	}
	e.idle()
	thread = nil
	for _, m := range on(e.slack.messages("chat.postMessage"), testChannel) {
		if m.ThreadTS == post.TS {
			thread = append(thread, m)
		}
	}
	if len(thread) != 2 || !strings.Contains(thread[1].Text, "*Canceled* by <@U0ALICE01>") || !strings.Contains(thread[1].Text, "“wrong build”") {
		t.Errorf("thread replies %+v, want the cancel notice", thread)
	}
	for _, ch := range []string{testChannel, "C0ESCALATE", dmChannel("U0BOB0001"), dmChannel("U0DAN0001")} {
		ups := on(e.slack.messages("chat.update"), ch)
		if len(ups) == 0 {
			t.Errorf("no update in %s", ch)
			continue
		}
		last := parseBlocks(t, ups[len(ups)-1].Blocks)
		if !strings.Contains(strings.Join(last.Sections, "\n"), ":no_entry_sign: *Canceled* by <@U0ALICE01>") || len(last.Buttons) != 0 {
			t.Errorf("%s after the cancel: %q, buttons %v; want canceled by alice, no buttons", ch, last.Sections, last.Buttons)
		}
	}
}

func TestOutcomeByTimeout(t *testing.T) {
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	r := &approval.Request{ID: "abcdefghijklmnop", Status: approval.StatusApproved, ExpiresAt: at,
		Decision: &approval.Decision{Choice: approval.Approve, By: approval.DecidedByTimeout, At: at}}
	if got := outcomeText(r); !strings.HasPrefix(got, ":white_check_mark: *Approved by timeout*: nobody objected before the expiry <!date^") {
		t.Errorf("approved by timeout: %q", got)
	}
	r.Status, r.Decision.Choice = approval.StatusRejected, approval.Reject
	if got := outcomeText(r); !strings.HasPrefix(got, ":x: *Rejected by timeout*") {
		t.Errorf("rejected by timeout: %q", got)
	}
	if got := closedText(r); !strings.Contains(got, "rejected by its timeout rule") {
		t.Errorf("closed text: %q", got)
	}
}
