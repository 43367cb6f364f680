package ses_test

import (
	"context"
	"os"
	"testing"

	"approvalbot/bot/approval"
	"approvalbot/bot/ses"
	"approvalbot/internal/testing/mototest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestSendOnMoto(t *testing.T) {
	ctx := context.Background()
	srv := mototest.Start(t)
	client := sesv2.NewFromConfig(srv.Config(t))
	from := mototest.UniqueName("approvals") + "@example.com"
	m, err := ses.New(client, ses.Config{From: from})
	if err != nil {
		t.Fatal(err)
	}
	email := approval.Email{To: "alice@example.com", Subject: "Approve deploy?", Text: "Open the page.", HTML: "<p>Open the page.</p>"}

	// moto refuses to send from an address that is not a verified identity.
	if err := m.Send(ctx, email); err == nil {
		t.Error("Send from an unverified address succeeded")
	}
	if _, err := client.CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(from)}); err != nil {
		t.Fatalf("CreateEmailIdentity: %v", err)
	}
	if err := m.Send(ctx, email); err != nil {
		t.Fatalf("Send: %v", err)
	}

	var got []mototest.SentEmail
	for _, e := range srv.SentEmails(t) {
		if e.From == from {
			e.ID = ""
			got = append(got, e)
		}
	}
	// moto keeps one body part: the HTML one.
	want := []mototest.SentEmail{{From: from, To: []string{"alice@example.com"}, Subject: "Approve deploy?", Body: "<p>Open the page.</p>"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sent emails (-want +got):\n%s", diff)
	}
}
