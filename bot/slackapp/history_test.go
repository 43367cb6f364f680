package slackapp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"approvalbot/bot/approval"
)

// /approvals history lists the last closed requests the caller could vote
// on, newest first: outcome, who decided or withdrew it, the comment or
// reason, and the caller's own vote.
func TestHistoryCommand(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	approved := e.create(approval.NewRequest{Title: "Approved by Bob", Approvers: []string{"bob@example.com", "carol@example.com"}})
	e.click(approved.ID, ActionApprove, "U0BOB0001", nil)
	rejected := e.create(approval.NewRequest{Title: "Rejected by Carol", Approvers: []string{"carol@example.com"}})
	if _, err := e.decide(rejected, "carol@example.com", approval.Reject, "not during\nthe freeze"); err != nil {
		t.Fatal(err)
	}
	withdrawn := e.create(approval.NewRequest{Title: "Withdrawn", Approvers: []string{"U0CAROL01"}})
	if _, err := e.svc.Cancel(ctx, withdrawn.ID, "ci@example.com", "superseded"); err != nil {
		t.Fatal(err)
	}
	e.create(approval.NewRequest{Title: "Expired", Approvers: []string{"carol@example.com"}, Timeout: time.Minute})
	e.create(approval.NewRequest{Title: "Still open", Approvers: []string{"carol@example.com"}})
	notHers := e.create(approval.NewRequest{Title: "Not Carol's", Approvers: []string{"bob@example.com"}})
	e.click(notHers.ID, ActionApprove, "U0BOB0001", nil)
	e.clock.Add(time.Minute)
	if _, err := e.svc.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	e.idle()

	got := e.command("U0CAROL01", "history")
	if want := "The last 4 closed requests you could vote on:"; got.Text != want {
		t.Errorf("text %q, want %q", got.Text, want)
	}
	if len(got.Lines) != 5 || len(got.Buttons) != 0 {
		t.Fatalf("got lines %q and buttons %+v, want a heading and 4 requests, no button", got.Lines, got.Buttons)
	}
	for i, want := range [][]string{
		{"*Expired*\nExpired <!date^", "without a decision", "requested by ci-pipeline"},
		{"*Withdrawn*\nWithdrawn by ci@example.com <!date^", "\n> superseded"},
		{"*Rejected by Carol*\nRejected by carol@example.com <!date^", "\n> not during the freeze", "\nYou rejected <!date^"},
		{"*Approved by Bob*\nApproved by <@U0BOB0001> <!date^"},
	} {
		for _, w := range want {
			if !strings.Contains(got.Lines[i+1], w) {
				t.Errorf("item %d %q does not say %q", i+1, got.Lines[i+1], w)
			}
		}
	}
	if got := e.command("U0MALLORY", "history"); got.Text != "No closed request you could vote on." {
		t.Errorf("/approvals history by someone who approves nothing: %q", got.Text)
	}
	if got := e.command("U0CAROL01", "help"); !strings.Contains(got.Text, "history") {
		t.Errorf("help does not mention history: %q", got.Text)
	}
}

// /approvals history pages with a More button.
func TestHistoryPaginates(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 12; i++ {
		r := e.create(approval.NewRequest{Title: fmt.Sprintf("Request %02d", i), Approvers: []string{"alice@example.com"}})
		e.click(r.ID, ActionApprove, "U0ALICE01", nil)
	}
	got := e.command("U0ALICE01", "history")
	if len(got.Lines) != 11 || len(got.Buttons) != 1 || got.Buttons[0].ActionID != ActionMore || !strings.HasPrefix(got.Buttons[0].Value, "history:") {
		t.Fatalf("first page: %d lines, buttons %+v; want a heading, 10 requests and More", len(got.Lines), got.Buttons)
	}
	e.clickAt(got.Buttons[0].Value, ActionMore, "U0ALICE01", where{Ephemeral: true}, nil)
	answers := on(e.slack.messages("response_url"), "/response/U0ALICE01")
	if len(answers) != 1 {
		t.Fatalf("got %d answers through the response URL, want 1", len(answers))
	}
	next := readAnswer(t, "ephemeral", answers[0].Text, answers[0].Blocks)
	if next.Text != "2 more closed requests you could vote on:" || len(next.Lines) != 3 || len(next.Buttons) != 0 ||
		!strings.HasPrefix(next.Lines[1], "*Request 02*") || !strings.HasPrefix(next.Lines[2], "*Request 01*") {
		t.Errorf("next page %q, lines %q, buttons %+v; want the two oldest and no More", next.Text, next.Lines, next.Buttons)
	}
}

// TestHistoryFailure: when the store cannot list, /approvals history says so
// in a sentence.
func TestHistoryFailure(t *testing.T) {
	e := newEnv(t)
	e.app.svc = failingList{e.svc}
	if got := e.command("U0ALICE01", "history"); got.Text != msgHistoryFailed || len(got.Lines) != 0 {
		t.Errorf("/approvals history with the store down: got %+v, want %q", got, msgHistoryFailed)
	}
}
