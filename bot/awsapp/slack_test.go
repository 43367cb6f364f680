package awsapp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/slackapp"
)

// fakeSecrets answers GetSecretValue with a fixed secret.
type fakeSecrets struct {
	secret string
	err    error
	asked  []string
}

func (f *fakeSecrets) GetSecretValue(_ context.Context, in *secretsmanager.GetSecretValueInput, _ ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error) {
	f.asked = append(f.asked, aws.ToString(in.SecretId))
	if f.err != nil {
		return nil, f.err
	}
	return &secretsmanager.GetSecretValueOutput{SecretString: aws.String(f.secret)}, nil
}

func TestReadSlackSecret(t *testing.T) {
	const arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack"
	tests := []struct {
		name    string
		cfg     slackapp.Config
		sm      *fakeSecrets
		want    slackapp.Config
		asked   []string
		wantErr string
	}{
		{
			name:  "from the secret",
			cfg:   slackapp.Config{SecretARN: arn, DefaultChannel: "C1"},
			sm:    &fakeSecrets{secret: `{"botToken":"xoxb-9","signingSecret":"sig"}`},
			want:  slackapp.Config{SecretARN: arn, DefaultChannel: "C1", BotToken: "xoxb-9", SigningSecret: "sig"},
			asked: []string{arn},
		},
		{
			name: "environment already complete: no call",
			cfg:  slackapp.Config{SecretARN: arn, BotToken: "xoxb-1", SigningSecret: "s"},
			sm:   &fakeSecrets{err: errors.New("must not be called")},
			want: slackapp.Config{SecretARN: arn, BotToken: "xoxb-1", SigningSecret: "s"},
		},
		{
			name: "no secret ARN: no call",
			cfg:  slackapp.Config{},
			sm:   &fakeSecrets{err: errors.New("must not be called")},
			want: slackapp.Config{},
		},
		{
			name:    "Secrets Manager fails",
			cfg:     slackapp.Config{SecretARN: arn},
			sm:      &fakeSecrets{err: errors.New("AccessDeniedException")},
			asked:   []string{arn},
			wantErr: "read SLACK_SECRET_ARN: AccessDeniedException",
		},
		{
			name:    "secret without signing secret",
			cfg:     slackapp.Config{SecretARN: arn},
			sm:      &fakeSecrets{secret: `{"botToken":"xoxb-9"}`},
			asked:   []string{arn},
			wantErr: "signingSecret",
		},
		{
			name:    "secret is not JSON",
			cfg:     slackapp.Config{SecretARN: arn},
			sm:      &fakeSecrets{secret: `xoxb-9`},
			asked:   []string{arn},
			wantErr: "SLACK_SECRET_ARN",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := readSlackSecret(context.Background(), tt.sm, tt.cfg)
			if diff := cmp.Diff(tt.asked, tt.sm.asked); diff != "" {
				t.Errorf("secrets asked for (-want +got):\n%s", diff)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "xoxb-9") {
					t.Errorf("error %q repeats the secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
