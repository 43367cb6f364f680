package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"approvalbot/bot/approval"
	"approvalbot/bot/client"
)

// A program asks two people for a decision and waits for it. Here the bot
// runs in memory and the votes are cast in code; in real use the URL is your
// bot's ("http://127.0.0.1:8080", or your deployment), the token is
// APPROVALBOT_API_TOKEN, and the approvers vote through their email or Slack.
func Example() {
	bot := newBot("s3cret")
	defer bot.Close()

	c := client.New(bot.URL, "s3cret")
	ctx := context.Background()
	r, err := c.Create(ctx, client.NewRequest{
		Title:     "Deploy v1.2 to prod",
		Details:   "Release notes: https://example.com/v1.2",
		Requester: "release-pipeline",
		Approvers: []string{"alice@example.com", "bob@example.com"},
		Policy:    "all",
		Timeout:   2 * time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d of %d approvals\n", r.Status, r.Progress.Approvals, r.Progress.Required)

	// Alice and Bob open their emailed links and approve.
	bot.vote(r.ID, "alice@example.com", approval.Approve, "looks good")
	bot.vote(r.ID, "bob@example.com", approval.Approve, "")

	r, err = c.Wait(ctx, r.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s by %s\n", r.Status, r.Decision.By)
	for _, v := range r.Votes {
		fmt.Printf("  %s: %s %q\n", v.By, v.Choice, v.Comment)
	}
	// Output:
	// pending: 0 of 2 approvals
	// approved by bob@example.com
	//   alice@example.com: approve "looks good"
	//   bob@example.com: approve ""
}

// The server's refusals are *client.Error values: errors.Is tells the kind,
// Field names the input at fault.
func ExampleError() {
	bot := newBot("")
	defer bot.Close()
	c := client.New(bot.URL, "")

	_, err := c.Create(context.Background(), client.NewRequest{Title: "Drop the old table", Approvers: []string{"not an address"}})
	var e *client.Error
	if errors.Is(err, client.ErrInvalid) && errors.As(err, &e) {
		fmt.Println("refused field:", e.Field)
	}
	_, err = c.Get(context.Background(), "abcdefghijklmnop")
	fmt.Println("not found:", errors.Is(err, client.ErrNotFound))
	// Output:
	// refused field: approvers
	// not found: true
}

// A request that is no longer needed is withdrawn; whoever waits for it
// learns it was canceled, and a second cancel says it is already closed.
func ExampleClient_Cancel() {
	bot := newBot("")
	defer bot.Close()
	c := client.New(bot.URL, "")
	ctx := context.Background()

	r, _ := c.Create(ctx, client.NewRequest{Title: "Rotate the keys", Approvers: []string{"sec@example.com"}})
	r, err := c.Cancel(ctx, r.ID, client.CancelInput{Reason: "done by hand", By: "ops-bot"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Status, "by", r.Canceled.By+":", r.Canceled.Reason)
	_, err = c.Cancel(ctx, r.ID, client.CancelInput{})
	fmt.Println("closed:", errors.Is(err, client.ErrClosed))
	// Output:
	// canceled by ops-bot: done by hand
	// closed: true
}
