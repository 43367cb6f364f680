package stack

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/cxapi"
	"github.com/aws/jsii-runtime-go"
)

// nagFindings synthesizes the stack for cfg with the cdk-nag AwsSolutions
// rules, after edit, and returns every unsuppressed finding (errors and
// warnings) as "path: rule".
func nagFindings(t *testing.T, cfg Config, edit func(*Stack)) []string {
	t.Helper()
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(t.TempDir())})
	st, err := New(app, cfg, &awscdk.StackProps{Env: &awscdk.Environment{Account: jsii.String("123456789012"), Region: jsii.String("eu-west-1")}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if edit != nil {
		edit(st)
	}
	awscdk.Aspects_Of(app).Add(NagChecks(), nil)
	a := assertions.Annotations_FromStack(st.Stack)
	rule := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	var out []string
	for _, msgs := range []*[]*cxapi.SynthesisMessage{a.FindError(jsii.String("*"), rule), a.FindWarning(jsii.String("*"), rule)} {
		for _, m := range *msgs {
			data, _ := m.Entry.Data.(string)
			id, _, _ := strings.Cut(data, ": ")
			out = append(out, *m.Id+": "+id)
		}
	}
	return out
}

// TestNag applies the cdk-nag AwsSolutions rules: every finding is fixed or
// suppressed with its reason (nag.go), in every configuration, so that a new
// one fails.
func TestNag(t *testing.T) {
	optional := baseConfig()
	optional.SESConfigurationSet, optional.SlackDefaultChannel, optional.MailIdentity = "tracked", "#approvals", "example.com"
	optional.CallbackConcurrency, optional.PagesPrefix = 0, "pages/x/"
	for name, cfg := range map[string]Config{"default": baseConfig(), "optional": optional, "domains": domainsConfig()} {
		t.Run(name, func(t *testing.T) {
			if got := nagFindings(t, cfg, nil); len(got) > 0 {
				t.Errorf("cdk-nag AwsSolutions findings (fix them, or suppress them with a reason in nag.go):\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// TestNagCatchesNewFindings: the rules really run; a bucket added without
// TLS enforcement or access logs is reported.
func TestNagCatchesNewFindings(t *testing.T) {
	got := nagFindings(t, baseConfig(), func(s *Stack) {
		awss3.NewBucket(s.Stack, jsii.String("Careless"), &awss3.BucketProps{})
	})
	want := []string{"/ApprovalBot/Careless/Resource: AwsSolutions-S1", "/ApprovalBot/Careless/Resource: AwsSolutions-S10"}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			t.Errorf("findings %q, want %q among them", got, w)
		}
	}
	// The default certificate's TLS finding is suppressed only without a
	// custom domain for the pages, which requires TLS 1.2.
	for name, s := range map[string]*synthesized{"default": defaultStack(t), "domains": synth(t, "domains", domainsConfig())} {
		id, _ := s.resource(t, "AWS::CloudFront::Distribution", func(p map[string]any) bool {
			return strings.Contains(render(p["DistributionConfig"].(map[string]any)["Comment"]), "one-time pages")
		})
		res := s.doc["Resources"].(map[string]any)[id].(map[string]any)
		suppressed := strings.Contains(render(res["Metadata"]), "AwsSolutions-CFR4")
		if suppressed != (name == "default") {
			t.Errorf("%s: AwsSolutions-CFR4 suppressed on the pages' distribution: %v, want %v", name, suppressed, name == "default")
		}
	}
}
