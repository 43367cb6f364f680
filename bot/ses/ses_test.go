package ses

import (
	"context"
	"errors"
	"testing"

	"approvalbot/bot/approval"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/google/go-cmp/cmp"
)

// fakeSES records the messages it is given.
type fakeSES struct {
	sent []*sesv2.SendEmailInput
	err  error
}

func (f *fakeSES) SendEmail(_ context.Context, in *sesv2.SendEmailInput, _ ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	f.sent = append(f.sent, in)
	return &sesv2.SendEmailOutput{MessageId: aws.String("m1")}, f.err
}

func TestNew(t *testing.T) {
	for _, from := range []string{"", "not an address", "a@"} {
		if _, err := New(&fakeSES{}, Config{From: from}); err == nil {
			t.Errorf("New(From %q) succeeded, want an error", from)
		}
	}
	if _, err := New(&fakeSES{}, Config{From: "Approvals <approvals@example.com>"}); err != nil {
		t.Errorf("New with a display name: %v", err)
	}
}

func TestSend(t *testing.T) {
	tests := []struct {
		name    string
		set     string
		email   approval.Email
		wantSet string
	}{
		{"both parts", "", approval.Email{To: "a@example.com", Subject: "Approve?", Text: "text", HTML: "<p>html</p>"}, ""},
		{"configuration set", "tracked", approval.Email{To: "a@example.com", Subject: "Approve?", Text: "text", HTML: "<p>html</p>"}, "tracked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeSES{}
			m, err := New(f, Config{From: "approvals@example.com", ConfigurationSet: tt.set})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Send(context.Background(), tt.email); err != nil {
				t.Fatalf("Send: %v", err)
			}
			if len(f.sent) != 1 {
				t.Fatalf("sent %d messages, want 1", len(f.sent))
			}
			in := f.sent[0]
			msg := in.Content.Simple
			got := []string{
				aws.ToString(in.FromEmailAddress), in.Destination.ToAddresses[0], aws.ToString(in.ConfigurationSetName),
				aws.ToString(msg.Subject.Data), aws.ToString(msg.Body.Text.Data), aws.ToString(msg.Body.Html.Data),
				aws.ToString(msg.Body.Text.Charset), aws.ToString(msg.Body.Html.Charset),
			}
			want := []string{
				"approvals@example.com", tt.email.To, tt.wantSet,
				tt.email.Subject, tt.email.Text, tt.email.HTML, "UTF-8", "UTF-8",
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("from, to, set, subject, text, html, charsets (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSendErrors(t *testing.T) {
	m, err := New(&fakeSES{err: errors.New("throttled")}, Config{From: "approvals@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), approval.Email{To: "a@example.com", Subject: "s", Text: "t"}); err == nil {
		t.Error("Send succeeded although SES failed")
	}
	if err := m.Send(context.Background(), approval.Email{Subject: "s", Text: "t"}); !errors.Is(err, approval.ErrInvalid) {
		t.Errorf("Send without recipient = %v, want ErrInvalid", err)
	}
}
