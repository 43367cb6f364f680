package stack

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"
)

// NagChecks is the cdk-nag rule pack the infra checks apply to the stack
// (AwsSolutions): each finding either is fixed in the stack or suppressed
// below with its reason, so that any new finding fails the checks.
func NagChecks() awscdk.IAspect {
	return cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true), Reports: jsii.Bool(true)})
}

// suppress records that the findings of rule on c (and its children) are
// accepted, and why. appliesTo, when given, are regular expressions that
// narrow a granular rule (IAM5) to the findings named.
func suppress(c constructs.IConstruct, rule, reason string, appliesTo ...string) {
	sup := &cdknag.NagPackSuppression{Id: jsii.String(rule), Reason: jsii.String(reason)}
	if len(appliesTo) > 0 {
		var at []any
		for _, re := range appliesTo {
			at = append(at, &cdknag.RegexAppliesTo{Regex: jsii.String("/" + re + "/g")})
		}
		sup.AppliesTo = &at
	}
	cdknag.NagSuppressions_AddResourceSuppressions(c, &[]*cdknag.NagPackSuppression{sup}, jsii.Bool(true))
}

// Reasons shared by several resources.
const (
	noAccessLogs = "No access logs: the pages' object keys are their one-time names, and whoever reads a page has its token; " +
		"a log bucket would keep every name of every page. The Lambdas log each request themselves, without tokens or page names."
	noWAF = "No WAF: the pages are static objects read through origin access control and the callback authenticates every vote " +
		"by its one-time token; its reserved concurrency (callbackConcurrency) caps what a flood can take and cost."
	noGeo = "No geo restriction: approvers may be anywhere."
)

// addNagSuppressions accepts the AwsSolutions findings that are by design.
func (s *Stack) addNagSuppressions() {
	suppress(s.Bucket, "AwsSolutions-S1", noAccessLogs)
	for _, d := range []constructs.IConstruct{s.Distribution, s.CallbackDistribution} {
		if d == nil {
			continue // no callback domain
		}
		suppress(d, "AwsSolutions-CFR1", noGeo)
		suppress(d, "AwsSolutions-CFR2", noWAF)
		suppress(d, "AwsSolutions-CFR3", noAccessLogs)
	}
	if s.Config.PagesDomain == "" {
		suppress(s.Distribution, "AwsSolutions-CFR4", "CloudFront's default certificate (*.cloudfront.net) always allows TLS 1.0; "+
			"set pagesDomain and pagesCertificateArn to serve the pages with TLSv1.2_2021.")
	}
	suppress(s.SlackSecret, "AwsSolutions-SMG4", "Slack issues the bot token and signing secret: no rotation function can mint them. "+
		"Rotate them in the Slack app and store the new values (README, After the first deploy).")
	suppress(s.StateMachine, "AwsSolutions-SF1", "No CloudWatch logging for the example state machine: log delivery needs logs:*LogDelivery "+
		"on Resource *, which this stack grants nowhere, and logged execution data would hold task tokens; the execution history records every step.")
	suppress(s.StateMachine, "AwsSolutions-SF2", "No X-Ray tracing for the example state machine: xray:PutTraceSegments needs Resource *, "+
		"which this stack grants nowhere.")
	suppress(s.StateMachine, "AwsSolutions-IAM5", "Invoking the notifier through Step Functions' lambda:invoke integration allows its versions "+
		"and aliases (<arn>:*), as CDK grants it.", `^Resource::<Notifier[0-9A-F]{8}\.Arn>:\*$`)
	for _, fn := range []awslambda.Function{s.Notifier, s.Callback, s.Slack} {
		role := fn.Role()
		suppress(role, "AwsSolutions-IAM5", "The table's indexes (<table>/index/*: pending, due, undelivered), queried by the Lambdas; "+
			"the wildcard names only this table's indexes.", `^Resource::<Approvals[0-9A-F]{8}\.Arn>\/index\/\*$`)
		suppress(role, "AwsSolutions-IAM5", "The one-time pages under the pages prefix: their names are random, made per request, so no policy can list them.",
			`^Resource::<Pages[0-9A-F]{8}\.Arn>\/`+strings.ReplaceAll(s.Config.PagesPrefix, "/", `\/`)+`\*$`)
	}
}
