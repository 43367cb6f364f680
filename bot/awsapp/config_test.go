package awsapp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"approvalbot/bot/awsapp/lambdaenv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/google/go-cmp/cmp"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func fullEnv() map[string]string {
	return map[string]string{
		lambdaenv.Table: "approvals", lambdaenv.Bucket: "pages-bucket", lambdaenv.PagesBaseURL: "https://d.example.net/",
		lambdaenv.CallbackURL: "https://cb.lambda-url.us-east-1.on.aws/", lambdaenv.MailFrom: "approvals@example.com",
	}
}

// lambdas are the three Lambdas' configuration readers with the variables
// package lambdaenv (the CDK app's source) says each reads.
var lambdas = []struct {
	name string
	vars []lambdaenv.Var
	read func(getenv func(string) string) (Config, error)
}{
	{"notifier", lambdaenv.Notifier, func(g func(string) string) (Config, error) { c, err := NotifierConfigFromEnv(g); return c.Config, err }},
	{"callback", lambdaenv.Callback, func(g func(string) string) (Config, error) { c, err := CallbackConfigFromEnv(g); return c.Config, err }},
	{"slack", lambdaenv.Slack, func(g func(string) string) (Config, error) { c, err := SlackConfigFromEnv(g); return c.Config, err }},
}

// withSlack adds the Slack variables the slack Lambda requires.
func withSlack(m map[string]string) map[string]string {
	m["SLACK_BOT_TOKEN"], m["SLACK_SIGNING_SECRET"] = "xoxb-1", "s"
	return m
}

// Each Lambda reads exactly the variables lambdaenv lists for it, which the
// CDK app sets from the same list.
func TestLambdasReadTheirVariables(t *testing.T) {
	for _, l := range lambdas {
		t.Run(l.name, func(t *testing.T) {
			var read []string
			m := withSlack(fullEnv())
			if _, err := l.read(func(k string) string { read = append(read, k); return m[k] }); err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, v := range l.vars {
				want = append(want, v.Name)
			}
			slices.Sort(want)
			slices.Sort(read)
			if diff := cmp.Diff(want, slices.Compact(read)); diff != "" {
				t.Errorf("variables read (-lambdaenv +read):\n%s", diff)
			}
		})
	}
}

// Without a variable lambdaenv marks required, a Lambda does not start and
// says which; without any other, it does.
func TestLambdasRequireTheirVariables(t *testing.T) {
	for _, l := range lambdas {
		for _, v := range l.vars {
			m := withSlack(fullEnv())
			if _, set := m[v.Name]; !set {
				continue // optional and unset already
			}
			delete(m, v.Name)
			_, err := l.read(env(m))
			switch {
			case v.Required && (err == nil || !strings.Contains(err.Error(), v.Name+" is not set")):
				t.Errorf("%s without %s: err = %v, want one naming it", l.name, v.Name, err)
			case !v.Required && v.Name != "SLACK_BOT_TOKEN" && v.Name != "SLACK_SIGNING_SECRET" && err != nil:
				t.Errorf("%s without %s (optional): %v", l.name, v.Name, err)
			}
		}
	}
}

func TestNotifierConfigFromEnv(t *testing.T) {
	c, err := NotifierConfigFromEnv(env(fullEnv()))
	if err != nil {
		t.Fatalf("NotifierConfigFromEnv: %v", err)
	}
	if got, want := c.DecideURL(), "https://cb.lambda-url.us-east-1.on.aws/decide"; got != want {
		t.Errorf("DecideURL = %q, want %q", got, want)
	}
	if got, want := c.PagesPrefix, "p/"; got != want {
		t.Errorf("PagesPrefix = %q, want %q", got, want)
	}
	if got, want := c.PagesBaseURL, "https://d.example.net"; got != want {
		t.Errorf("PagesBaseURL = %q, want %q", got, want)
	}
	if c.Slack.Enabled() {
		t.Errorf("Slack enabled without any SLACK_ variable: %+v", c.Slack)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name, key, value string
		want             string // what the error must name
	}{
		{"relative callback", lambdaenv.CallbackURL, "cb.example.net", lambdaenv.CallbackURL},
		{"pages URL with query", lambdaenv.PagesBaseURL, "https://d.example.net/?a=1", lambdaenv.PagesBaseURL},
		{"sender without @", lambdaenv.MailFrom, "approvals", lambdaenv.MailFrom},
		{"bot token alone", "SLACK_BOT_TOKEN", "xoxb-1", "SLACK_SIGNING_SECRET"},
		{"user token", "SLACK_BOT_TOKEN", "xoxp-1", "SLACK_BOT_TOKEN"},
		{"secret not an ARN", "SLACK_SECRET_ARN", "slack", "SLACK_SECRET_ARN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fullEnv()
			m[tt.key] = tt.value
			if _, err := NotifierConfigFromEnv(env(m)); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
	m := fullEnv()
	m[lambdaenv.PagesPrefix] = "../up/"
	c, err := NotifierConfigFromEnv(env(m))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(c.Config, aws.Config{Region: "us-east-1"}, nil); err == nil || !strings.Contains(err.Error(), lambdaenv.PagesPrefix) {
		t.Errorf("bad %s: New err = %v, want one naming it", lambdaenv.PagesPrefix, err)
	}
}

// The callback runs without CALLBACK_URL: its confirmation step posts to the
// relative /decide, and it decides but does not notify.
func TestCallbackConfigFromEnv(t *testing.T) {
	m := fullEnv()
	delete(m, lambdaenv.CallbackURL)
	c, err := CallbackConfigFromEnv(env(m))
	if err != nil {
		t.Fatalf("CallbackConfigFromEnv without CALLBACK_URL: %v", err)
	}
	if got := c.DecideURL(); got != "/decide" {
		t.Errorf("DecideURL = %q, want /decide", got)
	}
	a, err := NewCallback(c.Config, aws.Config{Region: "us-east-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var ne *NotifierError
	if _, err := a.Notify(context.Background(), json.RawMessage(goodEvent)); !errors.As(err, &ne) || !strings.Contains(err.Error(), lambdaenv.CallbackURL) {
		t.Errorf("Notify without CALLBACK_URL = %v, want a NotifierError naming it", err)
	}
}

// The notifier's and the slack Lambda's service is synchronous: Lambda may
// freeze the process as soon as the handler answers. The callback's is not:
// its handler keeps the invocation open until the effects are done.
func TestNewIsSynchronous(t *testing.T) {
	c, err := NotifierConfigFromEnv(env(fullEnv()))
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(c.Config, aws.Config{Region: "us-east-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Service.Sync || a.Service.Chat != nil {
		t.Errorf("New: Service.Sync %v, Chat %v; want true, nil (no Slack)", a.Service.Sync, a.Service.Chat)
	}
	cb, err := NewCallback(c.Config, aws.Config{Region: "us-east-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Service.Sync {
		t.Error("NewCallback: Service.Sync = true, want false")
	}
}

// New takes a complete Slack configuration (the secret read) and gives the
// service a Slack chat on the default channel.
func TestNewWithSlack(t *testing.T) {
	c, err := NotifierConfigFromEnv(env(map[string]string{
		lambdaenv.Table: "approvals", lambdaenv.Bucket: "pages-bucket", lambdaenv.PagesBaseURL: "https://d.example.net/",
		lambdaenv.CallbackURL: "https://cb.example.net", lambdaenv.MailFrom: "approvals@example.com",
		"SLACK_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:slack", "SLACK_DEFAULT_CHANNEL": "C0123456",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(c.Config, aws.Config{Region: "us-east-1"}, nil); err == nil || !strings.Contains(err.Error(), "SLACK_BOT_TOKEN") {
		t.Errorf("New before the secret is read: err %v, want one naming SLACK_BOT_TOKEN", err)
	}
	c.Slack, err = readSlackSecret(context.Background(), &fakeSecrets{secret: `{"botToken":"xoxb-1","signingSecret":"s"}`}, c.Slack)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(c.Config, aws.Config{Region: "us-east-1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a.Service.Chat == nil || a.Service.DefaultSlackChannel != "C0123456" {
		t.Errorf("chat %v, default channel %q; want a chat on C0123456", a.Service.Chat, a.Service.DefaultSlackChannel)
	}
}

// SlackFromEnv wires the slack Lambda: a synchronous service with a Slack chat,
// and routes that refuse unsigned requests.
func TestSlackFromEnv(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		unset   string
		wantErr string // a variable the error must name; "" for none
	}{
		{name: "tokens in the environment", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}},
		{name: "no Slack settings", wantErr: "SLACK_SECRET_ARN"},
		{name: "no signing secret", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, wantErr: "SLACK_SIGNING_SECRET"},
		{name: "bad Slack setting", set: map[string]string{"SLACK_BOT_TOKEN": "xoxp-1", "SLACK_SIGNING_SECRET": "s"}, wantErr: "SLACK_BOT_TOKEN"},
		{name: "no table", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, unset: lambdaenv.Table, wantErr: lambdaenv.Table},
		{name: "no callback URL", set: map[string]string{"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s"}, unset: lambdaenv.CallbackURL, wantErr: lambdaenv.CallbackURL},
	}
	t.Setenv("AWS_REGION", "eu-west-1")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := fullEnv()
			delete(m, tt.unset)
			for k, v := range tt.set {
				m[k] = v
			}
			a, err := SlackFromEnv(context.Background(), env(m), slog.New(slog.DiscardHandler))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !a.Service.Sync || a.Service.Chat == nil {
				t.Errorf("service Sync %v, Chat %v; want Sync and a Slack chat", a.Service.Sync, a.Service.Chat)
			}
			h := a.SlackHandler()
			for _, path := range []string{"/slack/commands", "/slack/interactions"} {
				w := httptest.NewRecorder()
				h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, path, strings.NewReader("text=")))
				if w.Code != http.StatusUnauthorized {
					t.Errorf("POST %s unsigned: status %d, want 401", path, w.Code)
				}
			}
		})
	}
}

// The notifier's and the callback's wiring: the right service, or an error
// naming what is missing.
func TestFromEnv(t *testing.T) {
	t.Setenv("AWS_REGION", "eu-west-1")
	n, err := NotifierFromEnv(context.Background(), env(fullEnv()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !n.Service.Sync || n.Service.DecideURL != "https://cb.lambda-url.us-east-1.on.aws/decide" {
		t.Errorf("notifier: Sync %v, DecideURL %q", n.Service.Sync, n.Service.DecideURL)
	}
	m := fullEnv()
	delete(m, lambdaenv.CallbackURL)
	if _, err := NotifierFromEnv(context.Background(), env(m), nil); err == nil || !strings.Contains(err.Error(), lambdaenv.CallbackURL) {
		t.Errorf("notifier without %s: err %v, want one naming it", lambdaenv.CallbackURL, err)
	}
	cb, err := CallbackFromEnv(context.Background(), env(m), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Service.Sync || cb.Service.DecideURL != "" {
		t.Errorf("callback: Sync %v, DecideURL %q; want asynchronous, no DecideURL", cb.Service.Sync, cb.Service.DecideURL)
	}
}
