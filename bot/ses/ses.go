// Package ses sends the approvers' emails through Amazon SES v2.
package ses

import (
	"context"
	"errors"
	"fmt"
	"net/mail"

	"approvalbot/bot/approval"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sesv2/types"
)

// api is the part of the SES v2 client that Mailer uses.
type api interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, opts ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// Config says who the mail comes from.
type Config struct {
	From             string // sender address (a verified SES identity), optionally with a display name
	ConfigurationSet string // optional SES configuration set
}

// Mailer sends email through SES v2. It implements approval.Mailer.
type Mailer struct {
	client api
	from   string
	set    string
}

var _ approval.Mailer = (*Mailer)(nil)

// New returns a Mailer sending through client (an *sesv2.Client).
func New(client api, cfg Config) (*Mailer, error) {
	if client == nil {
		return nil, errors.New("ses: no SES client")
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("ses: from-address %q is not an email address", cfg.From)
	}
	return &Mailer{client: client, from: cfg.From, set: cfg.ConfigurationSet}, nil
}

// Send sends m as one message with a text and an HTML part.
func (m *Mailer) Send(ctx context.Context, e approval.Email) error {
	if e.To == "" {
		return fmt.Errorf("send email: %w", approval.Invalidf("to", "email has no recipient"))
	}
	body := &types.Body{}
	if e.Text != "" {
		body.Text = &types.Content{Data: aws.String(e.Text), Charset: aws.String("UTF-8")}
	}
	if e.HTML != "" {
		body.Html = &types.Content{Data: aws.String(e.HTML), Charset: aws.String("UTF-8")}
	}
	in := &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(m.from),
		Destination:      &types.Destination{ToAddresses: []string{e.To}},
		Content: &types.EmailContent{Simple: &types.Message{
			Subject: &types.Content{Data: aws.String(e.Subject), Charset: aws.String("UTF-8")},
			Body:    body,
		}},
	}
	if m.set != "" {
		in.ConfigurationSetName = aws.String(m.set)
	}
	if _, err := m.client.SendEmail(ctx, in); err != nil {
		return fmt.Errorf("send email: %w", err)
	}
	return nil
}
