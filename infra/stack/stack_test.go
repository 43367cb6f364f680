package stack

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/awsapp/lambdaenv"
)

// distDir holds a dummy bootstrap for each Lambda; set by TestMain.
var distDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "approvalbot-dist-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, name := range []string{NotifierName, CallbackName, SlackName} {
		err := os.MkdirAll(filepath.Join(dir, name), 0o755)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name, "bootstrap"), []byte("#!/bin/sh\n# "+name+"\n"), 0o755)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	distDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func baseConfig() Config {
	return Config{
		StackName: "ApprovalBot", MailFrom: "approvals@example.com", PagesPrefix: "p/",
		MaxTimeoutDays: 30, TaskTimeout: 24 * time.Hour,
		LogRetentionDays: 30, SweepInterval: 5 * time.Minute, DistDir: distDir,
		CallbackConcurrency: DefaultConcurrency, SlackConcurrency: DefaultConcurrency,
	}
}

// synthesized is one stack's template, as the assertions library and as JSON.
type synthesized struct {
	tpl assertions.Template
	doc map[string]any
}

var (
	synthMu    sync.Mutex
	synthCache = map[string]*synthesized{}
)

// synth synthesizes the stack for cfg once per name and returns its template.
func synth(t *testing.T, name string, cfg Config) *synthesized {
	t.Helper()
	synthMu.Lock()
	defer synthMu.Unlock()
	if s, ok := synthCache[name]; ok {
		return s
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &map[string]any{"@aws-cdk/core:validateAgainstDefaultRules": true}})
	st, err := New(app, cfg, &awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tpl := assertions.Template_FromStack(st.Stack, nil)
	raw, err := json.Marshal(tpl.ToJSON())
	if err != nil {
		t.Fatalf("template to JSON: %v", err)
	}
	s := &synthesized{tpl: tpl}
	if err := json.Unmarshal(raw, &s.doc); err != nil {
		t.Fatalf("template from JSON: %v", err)
	}
	synthCache[name] = s
	return s
}

func defaultStack(t *testing.T) *synthesized { return synth(t, "default", baseConfig()) }

// has asserts that a resource of type typ has at least props; the assertions
// library reports a mismatch by panicking.
func has(t *testing.T, s *synthesized, typ string, props map[string]any) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Errorf("%s with %v: %v", typ, props, r)
		}
	}()
	s.tpl.HasResourceProperties(jsii.String(typ), props)
}

func count(t *testing.T, s *synthesized, typ string, want int) {
	t.Helper()
	if got := len(s.resources(typ)); got != want {
		t.Errorf("%s resources: got %d, want %d", typ, got, want)
	}
}

// resources returns the logical IDs and properties of every resource of type typ.
func (s *synthesized) resources(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for id, r := range s.doc["Resources"].(map[string]any) {
		r := r.(map[string]any)
		if r["Type"] == typ {
			props, _ := r["Properties"].(map[string]any)
			out[id] = props
		}
	}
	return out
}

// resource returns the logical ID and properties of the only resource of type
// typ for which match is true.
func (s *synthesized) resource(t *testing.T, typ string, match func(props map[string]any) bool) (string, map[string]any) {
	t.Helper()
	var ids []string
	var found map[string]any
	for id, props := range s.resources(typ) {
		if match(props) {
			ids, found = append(ids, id), props
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%s: got %d matching resources %v, want 1", typ, len(ids), ids)
	}
	return ids[0], found
}

// function returns the logical ID and properties of the Lambda whose
// description starts with "approvalbot <name>".
func (s *synthesized) function(t *testing.T, name string) (string, map[string]any) {
	t.Helper()
	return s.resource(t, "AWS::Lambda::Function", func(p map[string]any) bool {
		d, _ := p["Description"].(string)
		return strings.HasPrefix(d, "approvalbot "+name+":") || strings.HasPrefix(d, "approvalbot "+strings.ToUpper(name[:1])+name[1:]+":")
	})
}

// render turns a CloudFormation value into a string: intrinsic functions
// become ${Ref}/${Id.Attr} placeholders and Fn::Join is joined.
func render(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if j, ok := v["Fn::Join"].([]any); ok {
			var parts []string
			for _, p := range j[1].([]any) {
				parts = append(parts, render(p))
			}
			return strings.Join(parts, j[0].(string))
		}
		if r, ok := v["Ref"].(string); ok {
			return "${" + r + "}"
		}
		if g, ok := v["Fn::GetAtt"].([]any); ok {
			return fmt.Sprintf("${%v.%v}", g[0], g[1])
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestTable(t *testing.T) {
	s := defaultStack(t)
	count(t, s, "AWS::DynamoDB::Table", 1)
	has(t, s, "AWS::DynamoDB::Table", map[string]any{
		"KeySchema":                        []any{map[string]any{"AttributeName": "pk", "KeyType": "HASH"}},
		"BillingMode":                      "PAY_PER_REQUEST",
		"TimeToLiveSpecification":          map[string]any{"AttributeName": "ttl", "Enabled": true},
		"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
		"GlobalSecondaryIndexes": []any{
			map[string]any{
				"IndexName": "pending",
				"KeySchema": []any{
					map[string]any{"AttributeName": "pendingPK", "KeyType": "HASH"},
					map[string]any{"AttributeName": "createdAt", "KeyType": "RANGE"},
				},
				"Projection": map[string]any{"ProjectionType": "KEYS_ONLY"},
			},
			map[string]any{
				"IndexName": "undelivered",
				"KeySchema": []any{
					map[string]any{"AttributeName": "undeliveredPK", "KeyType": "HASH"},
					map[string]any{"AttributeName": "createdAt", "KeyType": "RANGE"},
				},
				"Projection": map[string]any{"ProjectionType": "KEYS_ONLY"},
			},
			map[string]any{
				"IndexName": "due",
				"KeySchema": []any{
					map[string]any{"AttributeName": "dueShard", "KeyType": "HASH"},
					map[string]any{"AttributeName": "dueAt", "KeyType": "RANGE"},
				},
				"Projection": map[string]any{"ProjectionType": "KEYS_ONLY"},
			},
		},
		"AttributeDefinitions": []any{
			map[string]any{"AttributeName": "pk", "AttributeType": "S"},
			map[string]any{"AttributeName": "pendingPK", "AttributeType": "S"},
			map[string]any{"AttributeName": "createdAt", "AttributeType": "S"},
			map[string]any{"AttributeName": "undeliveredPK", "AttributeType": "S"},
			map[string]any{"AttributeName": "dueShard", "AttributeType": "S"},
			map[string]any{"AttributeName": "dueAt", "AttributeType": "S"},
		},
	})
	id, _ := s.resource(t, "AWS::DynamoDB::Table", func(map[string]any) bool { return true })
	res := s.doc["Resources"].(map[string]any)[id].(map[string]any)
	if got := res["DeletionPolicy"]; got != "Retain" {
		t.Errorf("table DeletionPolicy: got %v, want Retain (the audit trail outlives the stack)", got)
	}
}

func TestPagesBucket(t *testing.T) {
	s := defaultStack(t)
	count(t, s, "AWS::S3::Bucket", 1)
	has(t, s, "AWS::S3::Bucket", map[string]any{
		"PublicAccessBlockConfiguration": map[string]any{
			"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true,
		},
		"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{
			map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "AES256"}},
		}},
		"LifecycleConfiguration": map[string]any{"Rules": []any{map[string]any{
			"Prefix": "p/", "ExpirationInDays": 31, "Status": "Enabled",
		}}},
		"VersioningConfiguration": assertions.Match_Absent(),
		"WebsiteConfiguration":    assertions.Match_Absent(),
	})
	// TLS only, and reads only by this stack's CloudFront distribution.
	has(t, s, "AWS::S3::BucketPolicy", map[string]any{
		"PolicyDocument": map[string]any{"Statement": assertions.Match_ArrayWith(&[]any{
			assertions.Match_ObjectLike(&map[string]any{
				"Effect": "Deny", "Action": "s3:*",
				"Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
			}),
			assertions.Match_ObjectLike(&map[string]any{
				"Effect": "Allow", "Action": "s3:GetObject",
				"Principal": map[string]any{"Service": "cloudfront.amazonaws.com"},
				"Resource":  map[string]any{"Fn::Join": []any{"", []any{map[string]any{"Fn::GetAtt": []any{assertions.Match_AnyValue(), "Arn"}}, "/*"}}},
				"Condition": map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": assertions.Match_AnyValue()}},
			}),
		})},
	})
}

func TestLifecycleFollowsMaxTimeout(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxTimeoutDays, cfg.TaskTimeout, cfg.PagesPrefix = 7, 2*time.Hour, "pages/"
	s := synth(t, "short", cfg)
	has(t, s, "AWS::S3::Bucket", map[string]any{
		"LifecycleConfiguration": map[string]any{"Rules": []any{map[string]any{"Prefix": "pages/", "ExpirationInDays": 8}}},
	})
	_, notifier := s.function(t, NotifierName)
	if got := render(notifier["Environment"].(map[string]any)["Variables"].(map[string]any)["PAGES_PREFIX"]); got != "pages/" {
		t.Errorf("PAGES_PREFIX: got %q, want pages/", got)
	}
}

func TestCloudFront(t *testing.T) {
	s := defaultStack(t)
	count(t, s, "AWS::CloudFront::Distribution", 1)
	has(t, s, "AWS::CloudFront::OriginAccessControl", map[string]any{
		"OriginAccessControlConfig": map[string]any{
			"OriginAccessControlOriginType": "s3", "SigningBehavior": "always", "SigningProtocol": "sigv4",
		},
	})
	// A page taken down (replaced by what happened) answers 410.
	count(t, s, "AWS::CloudFront::Function", 1)
	has(t, s, "AWS::CloudFront::Function", map[string]any{
		"FunctionCode":   LatePageFunction,
		"FunctionConfig": map[string]any{"Runtime": "cloudfront-js-2.0"},
		"AutoPublish":    true,
	})
	has(t, s, "AWS::CloudFront::Distribution", map[string]any{
		"DistributionConfig": map[string]any{
			"DefaultCacheBehavior": map[string]any{
				"FunctionAssociations": []any{map[string]any{
					"EventType":   "viewer-response",
					"FunctionARN": map[string]any{"Fn::GetAtt": []any{assertions.Match_AnyValue(), "FunctionARN"}},
				}},
			},
		},
	})
	has(t, s, "AWS::CloudFront::Distribution", map[string]any{
		"DistributionConfig": map[string]any{
			"DefaultCacheBehavior": map[string]any{
				"ViewerProtocolPolicy":    "https-only",
				"ResponseHeadersPolicyId": assertions.Match_AnyValue(),
				// Managed policy CachingDisabled: a deleted page is not served from a cache.
				"CachePolicyId": "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
			},
			"Origins": []any{map[string]any{
				"OriginAccessControlId": map[string]any{"Fn::GetAtt": []any{assertions.Match_AnyValue(), "Id"}},
				"S3OriginConfig":        map[string]any{"OriginAccessIdentity": ""},
			}},
		},
	})
	has(t, s, "AWS::CloudFront::ResponseHeadersPolicy", map[string]any{
		"ResponseHeadersPolicyConfig": map[string]any{
			"SecurityHeadersConfig": map[string]any{
				"ContentSecurityPolicy":   map[string]any{"ContentSecurityPolicy": "frame-ancestors 'none'", "Override": true},
				"ContentTypeOptions":      map[string]any{"Override": true},
				"FrameOptions":            map[string]any{"FrameOption": "DENY", "Override": true},
				"ReferrerPolicy":          map[string]any{"ReferrerPolicy": "no-referrer", "Override": true},
				"StrictTransportSecurity": map[string]any{"AccessControlMaxAgeSec": 31536000, "Override": true},
			},
			"CustomHeadersConfig": map[string]any{"Items": assertions.Match_ArrayWith(&[]any{
				map[string]any{"Header": "Cache-Control", "Value": "no-store", "Override": true},
			})},
		},
	})
}

func TestLambdas(t *testing.T) {
	s := defaultStack(t)
	count(t, s, "AWS::Lambda::Function", 3) // no hidden custom-resource functions
	common := []string{"APPROVALS_TABLE", "PAGES_BUCKET", "PAGES_PREFIX", "PAGES_BASE_URL", "MAIL_FROM", "SLACK_SECRET_ARN"}
	tests := []struct {
		name string
		env  []string
	}{
		{NotifierName, append(slices.Clone(common), "CALLBACK_URL")},
		{CallbackName, common},
		{SlackName, append(slices.Clone(common), "CALLBACK_URL")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, fn := s.function(t, tt.name)
			for key, want := range map[string]any{"Runtime": "provided.al2023", "Handler": "bootstrap", "MemorySize": 256.0} {
				if got := fn[key]; got != want {
					t.Errorf("%s: got %v, want %v", key, got, want)
				}
			}
			if diff := cmp.Diff([]any{"arm64"}, fn["Architectures"]); diff != "" {
				t.Errorf("Architectures (-want +got):\n%s", diff)
			}
			if timeout, _ := fn["Timeout"].(float64); timeout < 3 || timeout > 60 {
				t.Errorf("Timeout: got %v, want 3 to 60 seconds", fn["Timeout"])
			}
			if _, ok := fn["LoggingConfig"].(map[string]any)["LogGroup"]; !ok {
				t.Errorf("LoggingConfig: got %v, want an own log group", fn["LoggingConfig"])
			}
			vars := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			var got []string
			for k := range vars {
				got = append(got, k)
			}
			sort.Strings(got)
			want := slices.Clone(tt.env)
			sort.Strings(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("environment variables (-want +got):\n%s", diff)
			}
			wantValues := map[string]string{
				"PAGES_PREFIX":   "p/",
				"MAIL_FROM":      "approvals@example.com",
				"PAGES_BASE_URL": "https://${PagesCDN",
			}
			for k, prefix := range wantValues {
				if v := render(vars[k]); !strings.HasPrefix(v, prefix) {
					t.Errorf("%s: got %q, want it to start with %q", k, v, prefix)
				}
			}
			for k, v := range vars {
				if strings.Contains(strings.ToLower(render(v)), "xox") {
					t.Errorf("%s looks like a Slack token; tokens belong in the secret", k)
				}
			}
			if cb, ok := vars["CALLBACK_URL"]; ok {
				// https:// + the host of the callback's function URL
				// ("https://<host>/" split on "/", item 2), no trailing slash.
				urlID, _ := s.resource(t, "AWS::Lambda::Url", func(p map[string]any) bool {
					return strings.Contains(render(p["TargetFunctionArn"]), "Callback")
				})
				want := map[string]any{"Fn::Join": []any{"", []any{"https://", map[string]any{"Fn::Select": []any{2.0,
					map[string]any{"Fn::Split": []any{"/", map[string]any{"Fn::GetAtt": []any{urlID, "FunctionUrl"}}}}}}}}}
				if diff := cmp.Diff(want, cb); diff != "" {
					t.Errorf("CALLBACK_URL (-want +got):\n%s", diff)
				}
			}
		})
	}
	has(t, s, "AWS::Logs::LogGroup", map[string]any{"RetentionInDays": 30})
	count(t, s, "AWS::Logs::LogGroup", 3)
}

// Each Lambda is given only variables it reads and every one it requires, as
// package lambdaenv (which the Lambdas' configuration is read by) lists them,
// with and without the optional settings.
func TestLambdaEnvironmentMatchesTheLambdas(t *testing.T) {
	opt := baseConfig()
	opt.SESConfigurationSet, opt.SlackDefaultChannel, opt.MailIdentity = "tracked", "#approvals", "example.com"
	for _, s := range []*synthesized{defaultStack(t), synth(t, "optional", opt), synth(t, "domains", domainsConfig())} {
		for name, vars := range map[string][]lambdaenv.Var{
			NotifierName: lambdaenv.Notifier, CallbackName: lambdaenv.Callback, SlackName: lambdaenv.Slack,
		} {
			_, fn := s.function(t, name)
			got := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
			reads := map[string]bool{}
			for _, v := range vars {
				reads[v.Name] = true
				if _, ok := got[v.Name]; v.Required && !ok {
					t.Errorf("%s: %s is required but not set", name, v.Name)
				}
			}
			for k := range got {
				if !reads[k] {
					t.Errorf("%s: %s is set but the Lambda does not read it", name, k)
				}
			}
		}
	}
}

func TestOptionalEnvironment(t *testing.T) {
	cfg := baseConfig()
	cfg.SESConfigurationSet, cfg.SlackDefaultChannel, cfg.MailIdentity = "tracked", "#approvals", "example.com"
	s := synth(t, "optional", cfg)
	_, fn := s.function(t, NotifierName)
	vars := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
	for k, want := range map[string]string{"SES_CONFIGURATION_SET": "tracked", "SLACK_DEFAULT_CHANNEL": "#approvals"} {
		if got := render(vars[k]); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	has(t, s, "AWS::SES::EmailIdentity", map[string]any{"EmailIdentity": "example.com"})
	st := statementsFor(t, s, NotifierName)
	send := findStatement(t, st, "ses:SendEmail")
	want := []string{
		"arn:${AWS::Partition}:ses:eu-west-1:123456789012:identity/${Sender",
		"arn:${AWS::Partition}:ses:eu-west-1:123456789012:configuration-set/tracked",
	}
	got := send.resources()
	if len(got) != 2 || !strings.HasPrefix(got[0], want[0]) || got[1] != want[1] {
		t.Errorf("ses:SendEmail resources: got %q, want %q (identity ARN completed by its name)", got, want)
	}
}

func TestFunctionURLs(t *testing.T) {
	s := defaultStack(t)
	count(t, s, "AWS::Lambda::Url", 2)
	for _, name := range []string{CallbackName, SlackName} {
		id, _ := s.function(t, name)
		has(t, s, "AWS::Lambda::Url", map[string]any{
			"AuthType":          "NONE",
			"InvokeMode":        "RESPONSE_STREAM",
			"TargetFunctionArn": map[string]any{"Fn::GetAtt": []any{id, "Arn"}},
		})
	}
	notifierID, _ := s.function(t, NotifierName)
	for _, props := range s.resources("AWS::Lambda::Url") {
		if strings.Contains(render(props["TargetFunctionArn"]), notifierID) {
			t.Errorf("the notifier has a function URL; only Step Functions may invoke it")
		}
	}
}

func TestSESAndSecret(t *testing.T) {
	s := defaultStack(t)
	has(t, s, "AWS::SES::EmailIdentity", map[string]any{"EmailIdentity": "approvals@example.com"})
	has(t, s, "AWS::SecretsManager::Secret", map[string]any{
		"GenerateSecretString": map[string]any{"GenerateStringKey": "signingSecret", "SecretStringTemplate": `{"botToken":""}`},
		"SecretString":         assertions.Match_Absent(),
	})
}

// definition returns the example state machine's name and its definition,
// with intrinsic functions as placeholders.
func definition(t *testing.T, s *synthesized) (string, map[string]any) {
	t.Helper()
	_, sm := s.resource(t, "AWS::StepFunctions::StateMachine", func(map[string]any) bool { return true })
	var def map[string]any
	if err := json.Unmarshal([]byte(render(sm["DefinitionString"])), &def); err != nil {
		t.Fatalf("state machine definition: %v", err)
	}
	name, _ := sm["StateMachineName"].(string)
	return name, def
}

func TestStateMachine(t *testing.T) {
	s := defaultStack(t)
	name, def := definition(t, s)
	if name != "ApprovalBot-approval" {
		t.Errorf("StateMachineName: got %q, want ApprovalBot-approval", name)
	}
	if got := def["StartAt"]; got != "Ask for approval" {
		t.Fatalf("StartAt: got %v, want Ask for approval", got)
	}
	states := def["States"].(map[string]any)
	ask := states["Ask for approval"].(map[string]any)
	notifierID, _ := s.function(t, NotifierName)
	checks := []struct {
		what string
		got  any
		want any
	}{
		{"Type", ask["Type"], "Task"},
		{"Resource", ask["Resource"], "arn:${AWS::Partition}:states:::lambda:invoke.waitForTaskToken"},
		{"FunctionName", ask["Parameters"].(map[string]any)["FunctionName"], "${" + notifierID + ".Arn}"},
		{"Payload", ask["Parameters"].(map[string]any)["Payload"], map[string]any{
			"taskToken.$": "$$.Task.Token", "request.$": "$.request", "taskTimeoutSeconds": 86400.0, "stateEnteredTime.$": "$$.State.EnteredTime",
		}},
		{"TimeoutSeconds", ask["TimeoutSeconds"], 86400.0},
		// Nothing sends heartbeats: a heartbeat timeout would end the task
		// while its request still waits.
		{"HeartbeatSeconds", ask["HeartbeatSeconds"], nil},
		{"ResultPath", ask["ResultPath"], "$.decision"},
		{"Next", ask["Next"], "Approved"},
		{"Catch", ask["Catch"], []any{
			map[string]any{"ErrorEquals": []any{"Rejected"}, "ResultPath": "$.error", "Next": "Rejected"},
			map[string]any{"ErrorEquals": []any{"States.Timeout", "Expired"}, "ResultPath": "$.error", "Next": "Timed out"},
		}},
		{"Approved", states["Approved"].(map[string]any)["Type"], "Succeed"},
		{"Rejected", states["Rejected"], map[string]any{"Type": "Fail", "Comment": "Rejected: the cause is the decision as JSON", "Error": "Rejected", "CausePath": "$.error.Cause"}},
		{"Timed out", states["Timed out"].(map[string]any)["Type"], "Fail"},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.what, diff)
		}
	}
	retried := false
	for _, r := range ask["Retry"].([]any) {
		r := r.(map[string]any)
		if cmp.Equal(r["ErrorEquals"], []any{"NotifierError"}) {
			retried = r["MaxAttempts"] == 3.0
		}
	}
	if !retried {
		t.Errorf("Retry: got %v, want NotifierError retried 3 times", ask["Retry"])
	}
}

func TestStateMachineTimeouts(t *testing.T) {
	cfg := baseConfig()
	cfg.MaxTimeoutDays, cfg.TaskTimeout, cfg.PagesPrefix = 7, 2*time.Hour, "pages/"
	_, def := definition(t, synth(t, "short", cfg))
	ask := def["States"].(map[string]any)["Ask for approval"].(map[string]any)
	if ask["TimeoutSeconds"] != 7200.0 || ask["HeartbeatSeconds"] != nil {
		t.Errorf("TimeoutSeconds, HeartbeatSeconds: got %v, %v, want 7200 and none", ask["TimeoutSeconds"], ask["HeartbeatSeconds"])
	}
}

func TestOutputs(t *testing.T) {
	s := defaultStack(t)
	outputs := s.doc["Outputs"].(map[string]any)
	want := map[string]string{
		"CallbackURL":          "${CallbackFunctionUrl",
		"SlackCommandsURL":     "${SlackFunctionUrl",
		"SlackInteractionsURL": "${SlackFunctionUrl",
		"StateMachineARN":      "${Approval",
		"PagesDomain":          "${PagesCDN",
	}
	suffix := map[string]string{"SlackCommandsURL": ".FunctionUrl}slack/commands", "SlackInteractionsURL": ".FunctionUrl}slack/interactions"}
	for name, prefix := range want {
		o, ok := outputs[name].(map[string]any)
		if !ok {
			t.Errorf("output %s missing", name)
			continue
		}
		got := render(o["Value"])
		if !strings.HasPrefix(got, prefix) || !strings.HasSuffix(got, suffix[name]) {
			t.Errorf("output %s: got %q, want %q...%q", name, got, prefix, suffix[name])
		}
	}
}

// statement is one IAM policy statement.
type statement map[string]any

func (st statement) list(key string) []string {
	switch v := st[key].(type) {
	case []any:
		var out []string
		for _, x := range v {
			out = append(out, render(x))
		}
		return out
	case nil:
		return nil
	default:
		return []string{render(v)}
	}
}

func (st statement) actions() []string   { return st.list("Action") }
func (st statement) resources() []string { return st.list("Resource") }

// statementsFor returns the identity policy statements of the role of the
// Lambda called name, inline and attached.
func statementsFor(t *testing.T, s *synthesized, name string) []statement {
	t.Helper()
	_, fn := s.function(t, name)
	role := fn["Role"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	var out []statement
	for _, p := range s.resources("AWS::IAM::Policy") {
		for _, r := range p["Roles"].([]any) {
			if r.(map[string]any)["Ref"] == role {
				for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					out = append(out, st.(map[string]any))
				}
			}
		}
	}
	return out
}

// findStatement returns the only statement whose actions include action.
func findStatement(t *testing.T, sts []statement, action string) statement {
	t.Helper()
	var found []statement
	for _, st := range sts {
		if slices.Contains(st.actions(), action) {
			found = append(found, st)
		}
	}
	if len(found) != 1 {
		t.Fatalf("statements allowing %s: got %d, want 1: %v", action, len(found), found)
	}
	return found[0]
}

func TestLambdaRoles(t *testing.T) {
	s := defaultStack(t)
	bucketID, _ := s.resource(t, "AWS::S3::Bucket", func(map[string]any) bool { return true })
	tableID, _ := s.resource(t, "AWS::DynamoDB::Table", func(map[string]any) bool { return true })
	secretID, _ := s.resource(t, "AWS::SecretsManager::Secret", func(map[string]any) bool { return true })
	pages := "${" + bucketID + ".Arn}/p/*"
	stateMachine := "arn:${AWS::Partition}:states:eu-west-1:123456789012:stateMachine:ApprovalBot-approval"
	table := []string{"${" + tableID + ".Arn}", "${" + tableID + ".Arn}/index/*"}

	for _, name := range []string{NotifierName, CallbackName, SlackName} {
		t.Run(name, func(t *testing.T) {
			sts := statementsFor(t, s, name)
			var s3Actions, statesActions []string
			for _, st := range sts {
				if st["Effect"] != "Allow" {
					t.Errorf("statement %v: want Allow only", st)
				}
				for _, a := range st.actions() {
					service, _, _ := strings.Cut(a, ":")
					switch service {
					case "s3":
						s3Actions = append(s3Actions, a)
						if diff := cmp.Diff([]string{pages}, st.resources()); diff != "" {
							t.Errorf("%s resources (-want +got):\n%s", a, diff)
						}
					case "states":
						statesActions = append(statesActions, a)
						if diff := cmp.Diff([]string{stateMachine}, st.resources()); diff != "" {
							t.Errorf("%s resources (-want +got):\n%s", a, diff)
						}
					case "dynamodb":
						if diff := cmp.Diff(table, st.resources()); diff != "" {
							t.Errorf("%s resources (-want +got):\n%s", a, diff)
						}
					case "secretsmanager":
						if diff := cmp.Diff([]string{"${" + secretID + "}"}, st.resources()); diff != "" {
							t.Errorf("%s resources (-want +got):\n%s", a, diff)
						}
					case "logs":
						if r := st.resources(); len(r) != 1 || !strings.Contains(r[0], "Logs") || !strings.HasSuffix(r[0], ".Arn}") {
							t.Errorf("%s resources: got %q, want the function's own log group", a, r)
						}
					case "ses":
						// checked below: the sender identity only
					default:
						t.Errorf("unexpected action %s", a)
					}
				}
			}
			wantS3 := []string{"s3:DeleteObject"}
			// Every Lambda publishes pages: the notifier the approvers', the
			// callback a delegate's ("Delegate to…"), the Slack Lambda a
			// personal link ("Open approval page").
			wantS3 = []string{"s3:DeleteObject", "s3:PutObject"}
			wantStates := []string{"states:SendTaskFailure", "states:SendTaskSuccess"}
			if name == NotifierName {
				// The sweep reports expiries, redelivers, and asks whether a
				// task still waits (a heartbeat).
				wantStates = []string{"states:SendTaskFailure", "states:SendTaskHeartbeat", "states:SendTaskSuccess"}
			}
			sort.Strings(s3Actions)
			sort.Strings(statesActions)
			if diff := cmp.Diff(wantS3, s3Actions); diff != "" {
				t.Errorf("s3 actions (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantStates, statesActions); diff != "" {
				t.Errorf("states actions (-want +got):\n%s", diff)
			}
			for _, a := range []string{"dynamodb:PutItem", "dynamodb:Query", "secretsmanager:GetSecretValue", "logs:PutLogEvents"} {
				findStatement(t, sts, a)
			}
			// Every Lambda sends mail: the notifier to the approvers, the
			// callback and the Slack Lambda to a delegate.
			send := findStatement(t, sts, "ses:SendEmail")
			if r := send.resources(); len(r) != 1 || !strings.HasPrefix(r[0], "arn:${AWS::Partition}:ses:eu-west-1:123456789012:identity/") {
				t.Errorf("ses:SendEmail resources: got %q, want the sender identity only", r)
			}
		})
	}
}

func TestStateMachineRole(t *testing.T) {
	s := defaultStack(t)
	_, sm := s.resource(t, "AWS::StepFunctions::StateMachine", func(map[string]any) bool { return true })
	role := sm["RoleArn"].(map[string]any)["Fn::GetAtt"].([]any)[0].(string)
	notifierID, _ := s.function(t, NotifierName)
	var got []statement
	for _, p := range s.resources("AWS::IAM::Policy") {
		if p["Roles"].([]any)[0].(map[string]any)["Ref"] == role {
			for _, st := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				got = append(got, st.(map[string]any))
			}
		}
	}
	if len(got) != 1 {
		t.Fatalf("state machine statements: got %v, want one", got)
	}
	want := []string{"${" + notifierID + ".Arn}", "${" + notifierID + ".Arn}:*"}
	if diff := cmp.Diff([]string{"lambda:InvokeFunction"}, got[0].actions()); diff != "" {
		t.Errorf("state machine actions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want, got[0].resources()); diff != "" {
		t.Errorf("state machine may invoke (-want +got):\n%s", diff)
	}
}

// TestNoWildcardResources checks every identity policy in the template: no
// statement allows an action on Resource "*", no action is a wildcard, and no
// role carries a managed policy (AWS's basic Lambda policy writes to any log
// group).
func TestNoWildcardResources(t *testing.T) {
	for _, name := range []string{"default", "optional"} {
		t.Run(name, func(t *testing.T) {
			var s *synthesized
			if name == "default" {
				s = defaultStack(t)
			} else {
				cfg := baseConfig()
				cfg.SESConfigurationSet, cfg.SlackDefaultChannel, cfg.MailIdentity = "tracked", "#approvals", "example.com"
				s = synth(t, "optional", cfg)
			}
			n := 0
			for id, p := range s.resources("AWS::IAM::Policy") {
				for _, raw := range p["PolicyDocument"].(map[string]any)["Statement"].([]any) {
					st := statement(raw.(map[string]any))
					n++
					for _, r := range st.resources() {
						if r == "*" {
							t.Errorf("%s: %v on Resource *", id, st.actions())
						}
					}
					for _, a := range st.actions() {
						if strings.Contains(a, "*") {
							t.Errorf("%s: wildcard action %s", id, a)
						}
					}
				}
			}
			if n == 0 {
				t.Fatal("no policy statements found")
			}
			for id, r := range s.resources("AWS::IAM::Role") {
				if r["ManagedPolicyArns"] != nil || r["Policies"] != nil {
					t.Errorf("role %s: managed %v, inline %v; want only the stack's scoped policies", id, r["ManagedPolicyArns"], r["Policies"])
				}
			}
			for id := range s.doc["Resources"].(map[string]any) {
				if typ := s.doc["Resources"].(map[string]any)[id].(map[string]any)["Type"].(string); strings.HasPrefix(typ, "Custom::") {
					t.Errorf("custom resource %s (%s): its provider Lambda would need broad permissions", id, typ)
				}
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{"missing bootstrap", func(c *Config) { c.DistDir = empty }, "run scripts/build first"},
		{"invalid config", func(c *Config) { c.MailFrom = "" }, "mailFrom is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			tt.edit(&cfg)
			_, err := New(awscdk.NewApp(nil), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// synthApp synthesizes a whole app with the default validation rules on, as
// `cdk synth` does with cdk.json, after edit has had its way with the stack.
// It returns the error the synthesis raised, if any.
func synthApp(t *testing.T, edit func(*Stack)) (err error) {
	t.Helper()
	app := awscdk.NewApp(&awscdk.AppProps{
		Context: &map[string]any{"@aws-cdk/core:validateAgainstDefaultRules": true},
		Outdir:  jsii.String(t.TempDir()),
	})
	st, err := New(app, baseConfig(), nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	edit(st)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	app.Synth(nil)
	return nil
}

func TestDefaultRules(t *testing.T) {
	if err := synthApp(t, func(*Stack) {}); err != nil {
		t.Fatalf("synth with the default validation rules: %v", err)
	}
	// The rules really run: a Lambda with less memory than AWS allows fails.
	err := synthApp(t, func(s *Stack) {
		s.Notifier.Node().DefaultChild().(awscdk.CfnResource).AddPropertyOverride(jsii.String("MemorySize"), 64)
	})
	if err == nil || !strings.Contains(err.Error(), "Validation failed") {
		t.Errorf("synth of a 64 MB Lambda: got error %v, want a validation failure", err)
	}
}

func TestSweep(t *testing.T) {
	for _, tt := range []struct {
		name     string
		interval time.Duration
		wantRate string
		wantAge  float64
	}{
		{"default", 5 * time.Minute, "rate(5 minutes)", 300},
		{"sweep-1m", time.Minute, "rate(1 minute)", 60},
		{"sweep-2h", 2 * time.Hour, "rate(2 hours)", 7200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := baseConfig()
			cfg.SweepInterval = tt.interval
			s := synth(t, tt.name, cfg)
			notifierID, _ := s.function(t, NotifierName)
			count(t, s, "AWS::Events::Rule", 1)
			ruleID, rule := s.resource(t, "AWS::Events::Rule", func(map[string]any) bool { return true })
			if got := rule["ScheduleExpression"]; got != tt.wantRate {
				t.Errorf("ScheduleExpression: got %v, want %s", got, tt.wantRate)
			}
			if got := rule["State"]; got != "ENABLED" {
				t.Errorf("State: got %v, want ENABLED", got)
			}
			if rule["EventPattern"] != nil {
				t.Errorf("EventPattern %v: want a schedule only", rule["EventPattern"])
			}
			targets, _ := rule["Targets"].([]any)
			if len(targets) != 1 {
				t.Fatalf("Targets: got %v, want the notifier only", rule["Targets"])
			}
			target := targets[0].(map[string]any)
			if got, want := render(target["Arn"]), "${"+notifierID+".Arn}"; got != want {
				t.Errorf("target: got %s, want %s", got, want)
			}
			if target["Input"] != nil || target["InputPath"] != nil || target["InputTransformer"] != nil {
				t.Errorf("target %v: want EventBridge's own scheduled event as input", target)
			}
			wantRetry := map[string]any{"MaximumEventAgeInSeconds": tt.wantAge, "MaximumRetryAttempts": 2.0}
			if diff := cmp.Diff(wantRetry, target["RetryPolicy"]); diff != "" {
				t.Errorf("RetryPolicy (-want +got):\n%s", diff)
			}
			// EventBridge may invoke the notifier, from this rule only.
			_, perm := s.resource(t, "AWS::Lambda::Permission", func(p map[string]any) bool { return p["Principal"] == "events.amazonaws.com" })
			want := map[string]string{"Action": "lambda:InvokeFunction", "FunctionName": "${" + notifierID + ".Arn}", "SourceArn": "${" + ruleID + ".Arn}"}
			for k, v := range want {
				if got := render(perm[k]); got != v {
					t.Errorf("permission %s: got %s, want %s", k, got, v)
				}
			}
		})
	}
}

// The callback and Slack functions, whose URLs are public, have a reserved
// concurrency (a setting); the notifier, invoked by Step Functions and the
// schedule only, has none. Zero reserves none.
func TestReservedConcurrency(t *testing.T) {
	s := defaultStack(t)
	for name, want := range map[string]any{CallbackName: 10.0, SlackName: 10.0, NotifierName: nil} {
		if _, fn := s.function(t, name); fn["ReservedConcurrentExecutions"] != want {
			t.Errorf("%s ReservedConcurrentExecutions: got %v, want %v", name, fn["ReservedConcurrentExecutions"], want)
		}
	}
	cfg := baseConfig()
	cfg.CallbackConcurrency, cfg.SlackConcurrency = 0, 50
	s = synth(t, "concurrency", cfg)
	for name, want := range map[string]any{CallbackName: nil, SlackName: 50.0} {
		if _, fn := s.function(t, name); fn["ReservedConcurrentExecutions"] != want {
			t.Errorf("%s ReservedConcurrentExecutions: got %v, want %v", name, fn["ReservedConcurrentExecutions"], want)
		}
	}
}

func domainsConfig() Config {
	cfg := baseConfig()
	cfg.PagesDomain, cfg.PagesCertificateARN = "approvals.example.com", "arn:aws:acm:us-east-1:123456789012:certificate/0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c"
	cfg.CallbackDomain, cfg.CallbackCertificateARN = "decide.example.com", "arn:aws:acm:us-east-1:123456789012:certificate/1f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c"
	return cfg
}

// With custom domains, the pages are served under pagesDomain and the
// callback under callbackDomain, each with its certificate and TLS 1.2 or
// later; the Lambdas link and post there.
func TestCustomDomains(t *testing.T) {
	s := synth(t, "domains", domainsConfig())
	count(t, s, "AWS::CloudFront::Distribution", 2)
	has(t, s, "AWS::CloudFront::Distribution", map[string]any{"DistributionConfig": map[string]any{
		"Aliases": []any{"approvals.example.com"},
		"ViewerCertificate": map[string]any{
			"AcmCertificateArn":      "arn:aws:acm:us-east-1:123456789012:certificate/0f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c",
			"MinimumProtocolVersion": "TLSv1.2_2021", "SslSupportMethod": "sni-only",
		},
	}})
	has(t, s, "AWS::CloudFront::Distribution", map[string]any{"DistributionConfig": map[string]any{
		"Aliases": []any{"decide.example.com"},
		"ViewerCertificate": map[string]any{
			"AcmCertificateArn":      "arn:aws:acm:us-east-1:123456789012:certificate/1f2b6a3c-1d4e-4f5a-8b6c-7d8e9f0a1b2c",
			"MinimumProtocolVersion": "TLSv1.2_2021", "SslSupportMethod": "sni-only",
		},
		"DefaultCacheBehavior": map[string]any{
			"ViewerProtocolPolicy":  "https-only",
			"AllowedMethods":        []any{"GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"},
			"CachePolicyId":         "4135ea2d-6df8-44a3-9df3-4b5a84be39ad", // CachingDisabled
			"OriginRequestPolicyId": "b689b0a8-53d0-40ab-baf2-68738e2966ac", // AllViewerExceptHostHeader
		},
	}})
	for name, want := range map[string]map[string]string{
		NotifierName: {"PAGES_BASE_URL": "https://approvals.example.com", "CALLBACK_URL": "https://decide.example.com"},
		SlackName:    {"PAGES_BASE_URL": "https://approvals.example.com", "CALLBACK_URL": "https://decide.example.com"},
		CallbackName: {"PAGES_BASE_URL": "https://approvals.example.com"},
	} {
		_, fn := s.function(t, name)
		vars := fn["Environment"].(map[string]any)["Variables"].(map[string]any)
		for k, v := range want {
			if got := render(vars[k]); got != v {
				t.Errorf("%s %s: got %q, want %q", name, k, got, v)
			}
		}
	}
	if _, ok := s.doc["Outputs"].(map[string]any)["CallbackDistributionDomain"]; !ok {
		t.Error("no CallbackDistributionDomain output (the CNAME target of callbackDomain)")
	}
	// Without custom domains: one distribution, CloudFront's own domain.
	d := defaultStack(t)
	count(t, d, "AWS::CloudFront::Distribution", 1)
	if _, ok := d.doc["Outputs"].(map[string]any)["CallbackDistributionDomain"]; ok {
		t.Error("CallbackDistributionDomain output without callbackDomain")
	}
}
