// Package stack defines the approvalbot CloudFormation stack: the DynamoDB
// table, the private pages bucket behind CloudFront, the notifier, callback and
// Slack Lambdas, the SES sender identity, the Slack secret and an example Step
// Functions state machine that waits for a human decision, and the EventBridge
// schedule of the notifier's sweep.
package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfront"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudfrontorigins"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsses"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctionstasks"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"approvalbot/bot/awsapp/lambdaenv"
	"approvalbot/bot/dynamo/schema"
)

// Lambda names: each is built by scripts/build into <DistDir>/<name>/bootstrap.
const (
	NotifierName = "notifier"
	CallbackName = "callback"
	SlackName    = "slack"
)

// Error names the example state machine catches.
const (
	// ErrorRejected is the error the callback fails the task with on reject.
	ErrorRejected = "Rejected"
	// ErrorExpired is the error the Lambdas fail the task with when the
	// request's own timeout passes before anyone decides.
	ErrorExpired = "Expired"
	// ErrorNotifier is the notifier's error when sending failed on its side.
	ErrorNotifier = "NotifierError"
)

// Stack is the approvalbot stack and the resources other code may refer to.
type Stack struct {
	Stack        awscdk.Stack
	Config       Config
	Table        awsdynamodb.Table
	Bucket       awss3.Bucket
	Distribution awscloudfront.Distribution
	Identity     awsses.EmailIdentity
	SlackSecret  awssecretsmanager.Secret
	Notifier     awslambda.Function
	Callback     awslambda.Function
	Slack        awslambda.Function
	CallbackURL  awslambda.FunctionUrl
	SlackURL     awslambda.FunctionUrl
	// CallbackDistribution serves the callback under Config.CallbackDomain;
	// nil without one.
	CallbackDistribution awscloudfront.Distribution
	StateMachine         awsstepfunctions.StateMachine
	// Sweep is the schedule that invokes the notifier every SweepInterval.
	Sweep awsevents.Rule
}

// New adds the stack to scope. It fails if cfg is invalid or a Lambda's
// bootstrap is missing from cfg.DistDir.
func New(scope constructs.Construct, cfg Config, props *awscdk.StackProps) (*Stack, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("stack config: %w", err)
	}
	for _, name := range []string{NotifierName, CallbackName, SlackName} {
		if _, err := os.Stat(filepath.Join(cfg.DistDir, name, "bootstrap")); err != nil {
			return nil, fmt.Errorf("lambda %s: no bootstrap in %s (run scripts/build first): %w", name, cfg.DistDir, err)
		}
	}
	if props == nil {
		props = &awscdk.StackProps{}
	}
	if props.Description == nil {
		props.Description = jsii.String("approvalbot: human approvals for Step Functions by one-time email pages and Slack")
	}
	s := &Stack{Stack: awscdk.NewStack(scope, jsii.String(cfg.StackName), props), Config: cfg}
	s.addTable()
	s.addPages()
	s.addMail()
	s.addSlackSecret()
	s.addLambdas()
	s.addStateMachine()
	s.addSweep()
	s.addOutputs()
	s.addNagSuppressions()
	for _, c := range []constructs.IConstruct{s.Notifier, s.Callback, s.Slack, s.StateMachine} {
		s.dependOnPolicyOnly(c)
	}
	return s, nil
}

func (s *Stack) addTable() {
	s.Table = awsdynamodb.NewTable(s.Stack, jsii.String("Approvals"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(schema.KeyAttribute), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(schema.TTLAttribute),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption: awsdynamodb.TableEncryption_AWS_MANAGED,
		// The table is the audit trail of who decided what: keep it when the
		// stack is destroyed.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	// The table's key and indexes are those the Lambdas' store uses, named
	// once in package schema. Sparse indexes: only items carrying the
	// index's partition key appear.
	// Keys only: the adapter reads each listed request from the table. Add
	// or remove at most one index per change: CloudFormation updates only one
	// global secondary index per stack update.
	for _, ix := range schema.Indexes {
		s.Table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:      jsii.String(ix.Name),
			PartitionKey:   &awsdynamodb.Attribute{Name: jsii.String(ix.PartitionKey), Type: awsdynamodb.AttributeType_STRING},
			SortKey:        &awsdynamodb.Attribute{Name: jsii.String(ix.SortKey), Type: awsdynamodb.AttributeType_STRING},
			ProjectionType: awsdynamodb.ProjectionType_KEYS_ONLY,
		})
	}
}

// LatePageFunction is the CloudFront function (viewer response) that answers
// a page taken down (object metadata approvalbot-page: late) with 410 Gone.
const LatePageFunction = `function handler(event) {
  var response = event.response;
  var mark = response.headers['x-amz-meta-approvalbot-page'];
  if (mark && mark.value === 'late') {
    response.statusCode = 410;
    response.statusDescription = 'Gone';
    delete response.headers['x-amz-meta-approvalbot-page'];
  }
  return response;
}
`

// addPages adds the private bucket of one-time pages and the CloudFront
// distribution that serves them over HTTPS (S3 website endpoints are HTTP only).
func (s *Stack) addPages() {
	s.Bucket = awss3.NewBucket(s.Stack, jsii.String("Pages"), &awss3.BucketProps{
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		EnforceSSL:        jsii.Bool(true),
		MinimumTLSVersion: jsii.Number(1.2),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_ENFORCED,
		// Not versioned: a decided request's pages must really be gone when
		// the callback deletes them.
		Versioned: jsii.Bool(false),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:     jsii.String("expire-abandoned-pages"),
			Prefix: jsii.String(s.Config.PagesPrefix),
			// A page outlives its request by at most a day: the longest
			// allowed timeout plus one day.
			Expiration:                          awscdk.Duration_Days(jsii.Number(float64(s.Config.MaxTimeoutDays + 1))),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
		// Pages are short-lived; an emptied bucket is removed by hand (see
		// the README), CloudFormation cannot delete a bucket with objects.
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})

	headers := awscloudfront.NewResponseHeadersPolicy(s.Stack, jsii.String("PageHeaders"), &awscloudfront.ResponseHeadersPolicyProps{
		Comment: jsii.String("approvalbot one-time pages: never cached, never framed, no referrer"),
		SecurityHeadersBehavior: &awscloudfront.ResponseSecurityHeadersBehavior{
			ContentSecurityPolicy: &awscloudfront.ResponseHeadersContentSecurityPolicy{
				ContentSecurityPolicy: jsii.String("frame-ancestors 'none'"),
				Override:              jsii.Bool(true),
			},
			ContentTypeOptions: &awscloudfront.ResponseHeadersContentTypeOptions{Override: jsii.Bool(true)},
			FrameOptions: &awscloudfront.ResponseHeadersFrameOptions{
				FrameOption: awscloudfront.HeadersFrameOption_DENY,
				Override:    jsii.Bool(true),
			},
			ReferrerPolicy: &awscloudfront.ResponseHeadersReferrerPolicy{
				ReferrerPolicy: awscloudfront.HeadersReferrerPolicy_NO_REFERRER,
				Override:       jsii.Bool(true),
			},
			StrictTransportSecurity: &awscloudfront.ResponseHeadersStrictTransportSecurity{
				AccessControlMaxAge: awscdk.Duration_Days(jsii.Number(365)),
				IncludeSubdomains:   jsii.Bool(true),
				Override:            jsii.Bool(true),
			},
		},
		CustomHeadersBehavior: &awscloudfront.ResponseCustomHeadersBehavior{
			CustomHeaders: &[]*awscloudfront.ResponseCustomHeader{
				{Header: jsii.String("Cache-Control"), Value: jsii.String("no-store"), Override: jsii.Bool(true)},
				{Header: jsii.String("X-Robots-Tag"), Value: jsii.String("noindex, nofollow"), Override: jsii.Bool(true)},
			},
		},
	})

	// A page taken down is replaced on S3 by the page that tells a late
	// visitor what happened, marked with the object metadata
	// approvalbot-page: late (s3pages.LateMetadata). S3 serves it with 200;
	// this function answers it with 410 Gone, and drops the marker.
	late := awscloudfront.NewFunction(s.Stack, jsii.String("LatePageStatus"), &awscloudfront.FunctionProps{
		Comment: jsii.String("approvalbot: a page taken down answers 410 Gone"),
		Runtime: awscloudfront.FunctionRuntime_JS_2_0(),
		Code:    awscloudfront.FunctionCode_FromInline(jsii.String(LatePageFunction)),
	})

	pagesDomain := s.customDomain("PagesCertificate", s.Config.PagesDomain, s.Config.PagesCertificateARN)
	s.Distribution = awscloudfront.NewDistribution(s.Stack, jsii.String("PagesCDN"), &awscloudfront.DistributionProps{
		Comment:                jsii.String("approvalbot one-time pages"),
		DomainNames:            pagesDomain.names,
		Certificate:            pagesDomain.certificate,
		MinimumProtocolVersion: pagesDomain.minimumProtocol,
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			// Origin access control: only this distribution may read the
			// bucket, and only GetObject.
			Origin:               awscloudfrontorigins.S3BucketOrigin_WithOriginAccessControl(s.Bucket, nil),
			ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_HTTPS_ONLY,
			AllowedMethods:       awscloudfront.AllowedMethods_ALLOW_GET_HEAD(),
			// A page is deleted once its request is decided; a cached copy
			// must not outlive it.
			CachePolicy:           awscloudfront.CachePolicy_CACHING_DISABLED(),
			ResponseHeadersPolicy: headers,
			FunctionAssociations: &[]*awscloudfront.FunctionAssociation{{
				Function:  late,
				EventType: awscloudfront.FunctionEventType_VIEWER_RESPONSE,
			}},
		},
		HttpVersion: awscloudfront.HttpVersion_HTTP2_AND_3,
		PriceClass:  awscloudfront.PriceClass_PRICE_CLASS_100,
	})
}

// addMail adds the SES v2 identity that authorises the sender address. SES
// mails a verification link to an address identity, and lists DKIM records to
// publish for a domain identity.
func (s *Stack) addMail() {
	identity := awsses.Identity_Email(jsii.String(s.Config.MailFrom))
	if s.Config.MailIdentity != "" {
		identity = awsses.Identity_Domain(jsii.String(s.Config.MailIdentity))
	}
	s.Identity = awsses.NewEmailIdentity(s.Stack, jsii.String("Sender"), &awsses.EmailIdentityProps{Identity: identity})
}

// addSlackSecret adds the secret the Slack tokens live in. It is created with a
// random signing secret (so no Slack request verifies until the operator
// stores the real one) and an empty bot token; the operator fills in both.
func (s *Stack) addSlackSecret() {
	s.SlackSecret = awssecretsmanager.NewSecret(s.Stack, jsii.String("SlackTokens"), &awssecretsmanager.SecretProps{
		Description: jsii.String(`approvalbot Slack app: JSON {"botToken": "xoxb-...", "signingSecret": "..."}`),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			SecretStringTemplate: jsii.String(`{"botToken":""}`),
			GenerateStringKey:    jsii.String("signingSecret"),
			ExcludePunctuation:   jsii.Bool(true),
			PasswordLength:       jsii.Number(48),
		},
	})
}

// domain is a distribution's custom domain: its names, certificate and
// minimum TLS version; all nil without one (CloudFront's own domain and
// certificate).
type domain struct {
	names           *[]*string
	certificate     awscertificatemanager.ICertificate
	minimumProtocol awscloudfront.SecurityPolicyProtocol
}

// customDomain is the custom domain name with its ACM certificate, or the
// zero domain when name is empty.
func (s *Stack) customDomain(id, name, certificateARN string) domain {
	if name == "" {
		return domain{}
	}
	return domain{
		names:           &[]*string{jsii.String(name)},
		certificate:     awscertificatemanager.Certificate_FromCertificateArn(s.Stack, jsii.String(id), jsii.String(certificateARN)),
		minimumProtocol: awscloudfront.SecurityPolicyProtocol_TLS_V1_2_2021,
	}
}

func (s *Stack) pagesBaseURL() *string {
	if s.Config.PagesDomain != "" {
		return jsii.String("https://" + s.Config.PagesDomain)
	}
	return awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("https://"), s.Distribution.DistributionDomainName()})
}

// stateMachineARN is the example state machine's ARN built from its fixed
// name, so that the callback's and Slack Lambda's policies do not depend on
// the state machine resource (which depends on the notifier, whose
// environment depends on the callback's URL).
func (s *Stack) stateMachineARN() *string {
	return awscdk.Arn_Format(&awscdk.ArnComponents{
		Service:      jsii.String("states"),
		Resource:     jsii.String("stateMachine"),
		ResourceName: jsii.String(s.Config.StateMachineName()),
		ArnFormat:    awscdk.ArnFormat_COLON_RESOURCE_NAME,
	}, s.Stack)
}

func (s *Stack) pagesARN() *string {
	return s.Bucket.ArnForObjects(jsii.String(s.Config.PagesPrefix + "*"))
}

// origin turns a function URL ("https://<host>/") into "https://<host>", so
// that "<CALLBACK_URL>/decide" has a single slash.
func origin(url *string) *string {
	return awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String("https://"),
		awscdk.Fn_Select(jsii.Number(2), awscdk.Fn_Split(jsii.String("/"), url, nil)),
	})
}

// function adds a Lambda with its own role and log group. reserved is its
// reserved concurrency; 0 reserves none.
func (s *Stack) function(id, name, description string, memoryMB float64, timeout time.Duration, reserved int, env map[string]*string) awslambda.Function {
	logs := awslogs.NewLogGroup(s.Stack, jsii.String(id+"Logs"), &awslogs.LogGroupProps{
		Retention:     retentionDays(s.Config.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_DESTROY,
	})
	// An own role instead of the default one: AWSLambdaBasicExecutionRole
	// allows writing to every log group ("*"); this one only to its own.
	role := awsiam.NewRole(s.Stack, jsii.String(id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("approvalbot " + name + " Lambda"),
	})
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("WriteLogs"),
		Actions:   jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"),
		Resources: &[]*string{logs.LogGroupArn()},
	}))
	var concurrency *float64
	if reserved > 0 {
		concurrency = jsii.Number(reserved)
	}
	return awslambda.NewFunction(s.Stack, jsii.String(id), &awslambda.FunctionProps{
		ReservedConcurrentExecutions: concurrency,
		Role:                         role,
		Description:                  jsii.String(description),
		Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      jsii.String("bootstrap"),
		Code:                         awslambda.Code_FromAsset(jsii.String(filepath.Join(s.Config.DistDir, name)), nil),
		MemorySize:                   jsii.Number(memoryMB),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(timeout.Seconds())),
		Environment:                  &env,
		LogGroup:                     logs,
	})
}

func (s *Stack) addLambdas() {
	env := func(extra map[string]*string) map[string]*string {
		e := map[string]*string{
			lambdaenv.Table:          s.Table.TableName(),
			lambdaenv.Bucket:         s.Bucket.BucketName(),
			lambdaenv.PagesPrefix:    jsii.String(s.Config.PagesPrefix),
			lambdaenv.PagesBaseURL:   s.pagesBaseURL(),
			lambdaenv.MailFrom:       jsii.String(s.Config.MailFrom),
			lambdaenv.SlackSecretARN: s.SlackSecret.SecretArn(),
		}
		if s.Config.SESConfigurationSet != "" {
			e[lambdaenv.ConfigurationSet] = jsii.String(s.Config.SESConfigurationSet)
		}
		if s.Config.SlackDefaultChannel != "" {
			e[lambdaenv.SlackDefaultChannel] = jsii.String(s.Config.SlackDefaultChannel)
		}
		for k, v := range extra {
			e[k] = v
		}
		return e
	}

	// The callback and Slack function URLs use auth type NONE on purpose: a
	// person's browser (the one-time page's form) and Slack's servers call
	// them, and neither can sign requests with AWS credentials. They
	// authenticate each request themselves: the callback by the one-time
	// token, claimed once in a conditional DynamoDB write; the Slack routes by
	// Slack's v0 HMAC signature with the signing secret.
	// The callback gets no CALLBACK_URL: its own function URL depends on the
	// function, so naming it in the function's environment is a dependency
	// cycle CloudFormation rejects. It has to take its address from the
	// requests it serves (the function URL's Host header).
	// The callback and Slack functions have a reserved concurrency: their
	// URLs are public, and a flood must not take the account's whole Lambda
	// concurrency (or its bill); what exceeds it is answered 429.
	s.Callback = s.function("Callback", CallbackName, "approvalbot callback: one-time page decisions", 256, 15*time.Second, s.Config.CallbackConcurrency, env(nil))
	// RESPONSE_STREAM: the handlers are served with lambdaurl.Start, which
	// streams its responses.
	url := &awslambda.FunctionUrlOptions{AuthType: awslambda.FunctionUrlAuthType_NONE, InvokeMode: awslambda.InvokeMode_RESPONSE_STREAM}
	s.CallbackURL = s.Callback.AddFunctionUrl(url)
	s.addCallbackDistribution()
	callbackURL := origin(s.CallbackURL.Url())
	if s.Config.CallbackDomain != "" {
		callbackURL = jsii.String("https://" + s.Config.CallbackDomain)
	}

	s.Slack = s.function("Slack", SlackName, "approvalbot Slack: /approvals and buttons", 256, 15*time.Second, s.Config.SlackConcurrency,
		env(map[string]*string{lambdaenv.CallbackURL: callbackURL}))
	s.SlackURL = s.Slack.AddFunctionUrl(url)

	s.Notifier = s.function("Notifier", NotifierName, "approvalbot notifier: publishes pages, emails approvers, posts to Slack", 256, 30*time.Second, 0,
		env(map[string]*string{lambdaenv.CallbackURL: callbackURL}))

	for _, fn := range []awslambda.Function{s.Notifier, s.Callback, s.Slack} {
		s.Table.GrantReadWriteData(fn)
		s.SlackSecret.GrantRead(fn, nil)
	}

	// Notifier: publish pages (and remove them again if sending fails), and
	// send mail as the verified identity only.
	s.Notifier.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("PublishPages"),
		Actions:   jsii.Strings("s3:PutObject", "s3:DeleteObject"),
		Resources: &[]*string{s.pagesARN()},
	}))
	mailResources := []*string{s.Identity.EmailIdentityArn()}
	if s.Config.SESConfigurationSet != "" {
		mailResources = append(mailResources, awscdk.Arn_Format(&awscdk.ArnComponents{
			Service:      jsii.String("ses"),
			Resource:     jsii.String("configuration-set"),
			ResourceName: jsii.String(s.Config.SESConfigurationSet),
		}, s.Stack))
	}
	s.Notifier.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("SendMail"),
		Actions:   jsii.Strings("ses:SendEmail"),
		Resources: &mailResources,
	}))
	// Notifier's sweep: fail the task of an expired request with "Expired",
	// deliver again outcomes whose delivery failed, and probe the tasks of
	// pending requests with a heartbeat (a stopped execution answers
	// TaskDoesNotExist, and its request is closed as canceled), on this
	// stack's state machine only (its PublishPages statement covers deleting
	// the pages). No example task has a heartbeat timeout for it to reset.
	s.Notifier.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReportOutcome"),
		Actions:   jsii.Strings("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"),
		Resources: &[]*string{s.stateMachineARN()},
	}))

	// Callback and Slack: a vote handed on to an email address (the page's
	// "Delegate to…" form, Slack's delegate picker) emails the delegate
	// their link (its page is put under the pages statement below, which
	// the Slack Lambda's personal links use too).
	for _, fn := range []awslambda.Function{s.Callback, s.Slack} {
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("SendMail"),
			Actions:   jsii.Strings("ses:SendEmail"),
			Resources: &mailResources,
		}))
	}

	// Callback and Slack: decide (report the outcome to the waiting task of
	// this stack's state machine only) and take the pages down (each is
	// written over with the page that says what happened; Slack also
	// publishes the personal pages it mints).
	for _, fn := range []awslambda.Function{s.Callback, s.Slack} {
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("TakeDownPages"),
			Actions:   jsii.Strings("s3:PutObject", "s3:DeleteObject"),
			Resources: &[]*string{s.pagesARN()},
		}))
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("ReportDecision"),
			Actions:   jsii.Strings("states:SendTaskSuccess", "states:SendTaskFailure"),
			Resources: &[]*string{s.stateMachineARN()},
		}))
	}
}

// addCallbackDistribution puts a CloudFront distribution under
// Config.CallbackDomain in front of the callback's function URL, when the
// domain is set. It forwards every method and the viewer's headers but Host
// (a function URL answers only under its own host), and caches nothing.
func (s *Stack) addCallbackDistribution() {
	if s.Config.CallbackDomain == "" {
		return
	}
	d := s.customDomain("CallbackCertificate", s.Config.CallbackDomain, s.Config.CallbackCertificateARN)
	s.CallbackDistribution = awscloudfront.NewDistribution(s.Stack, jsii.String("CallbackCDN"), &awscloudfront.DistributionProps{
		Comment:                jsii.String("approvalbot callback under " + s.Config.CallbackDomain),
		DomainNames:            d.names,
		Certificate:            d.certificate,
		MinimumProtocolVersion: d.minimumProtocol,
		DefaultBehavior: &awscloudfront.BehaviorOptions{
			Origin:               awscloudfrontorigins.NewFunctionUrlOrigin(s.CallbackURL, nil),
			ViewerProtocolPolicy: awscloudfront.ViewerProtocolPolicy_HTTPS_ONLY,
			AllowedMethods:       awscloudfront.AllowedMethods_ALLOW_ALL(),
			CachePolicy:          awscloudfront.CachePolicy_CACHING_DISABLED(),
			OriginRequestPolicy:  awscloudfront.OriginRequestPolicy_ALL_VIEWER_EXCEPT_HOST_HEADER(),
		},
		HttpVersion: awscloudfront.HttpVersion_HTTP2_AND_3,
		PriceClass:  awscloudfront.PriceClass_PRICE_CLASS_100,
	})
}

// addStateMachine adds the example workflow: ask for approval and wait for the
// task token to come back, then end approved, rejected or timed out.
func (s *Stack) addStateMachine() {
	approved := awsstepfunctions.NewSucceed(s.Stack, jsii.String("Approved"), &awsstepfunctions.SucceedProps{
		Comment: jsii.String("Approved: the output holds the decision"),
	})
	rejected := awsstepfunctions.NewFail(s.Stack, jsii.String("RejectedEnd"), &awsstepfunctions.FailProps{
		StateName: jsii.String("Rejected"),
		Comment:   jsii.String("Rejected: the cause is the decision as JSON"),
		Error:     jsii.String(ErrorRejected),
		CausePath: awsstepfunctions.JsonPath_StringAt(jsii.String("$.error.Cause")),
	})
	timedOut := awsstepfunctions.NewFail(s.Stack, jsii.String("TimedOut"), &awsstepfunctions.FailProps{
		StateName: jsii.String("Timed out"),
		Error:     jsii.String("TimedOut"),
		Cause:     jsii.String("No decision arrived before the task timed out"),
	})

	ask := awsstepfunctionstasks.NewLambdaInvoke(s.Stack, jsii.String("Ask"), &awsstepfunctionstasks.LambdaInvokeProps{
		StateName:          jsii.String("Ask for approval"),
		Comment:            jsii.String("Invoke the notifier with the task token and wait until the callback reports the decision"),
		LambdaFunction:     s.Notifier,
		IntegrationPattern: awsstepfunctions.IntegrationPattern_WAIT_FOR_TASK_TOKEN,
		// The task's timeout and start let the bot refuse a request that
		// would outlive the task, and an extension past its end.
		Payload: awsstepfunctions.TaskInput_FromObject(&map[string]any{
			"taskToken":          awsstepfunctions.JsonPath_TaskToken(),
			"request":            awsstepfunctions.JsonPath_ObjectAt(jsii.String("$.request")),
			"taskTimeoutSeconds": s.Config.TaskTimeout.Seconds(),
			"stateEnteredTime":   awsstepfunctions.JsonPath_StringAt(jsii.String("$$.State.EnteredTime")),
		}),
		// No HeartbeatTimeout: nothing sends heartbeats, so one would end
		// the task while its request still waits. The task ends when the
		// sweep fails it with Expired (within sweepInterval of the request's
		// expiry), or at TaskTimeout.
		TaskTimeout: awsstepfunctions.Timeout_Duration(awscdk.Duration_Seconds(jsii.Number(s.Config.TaskTimeout.Seconds()))),
		ResultPath:  jsii.String("$.decision"),
	})
	// The notifier is idempotent on the task token, so a failure on its side
	// (store, S3, mail) is safe to retry.
	ask.AddRetry(&awsstepfunctions.RetryProps{
		Errors:      jsii.Strings(ErrorNotifier),
		Interval:    awscdk.Duration_Seconds(jsii.Number(5)),
		MaxAttempts: jsii.Number(3),
		BackoffRate: jsii.Number(2),
	})
	ask.AddCatch(rejected, &awsstepfunctions.CatchProps{
		Errors:     jsii.Strings(ErrorRejected),
		ResultPath: jsii.String("$.error"),
	})
	ask.AddCatch(timedOut, &awsstepfunctions.CatchProps{
		Errors:     jsii.Strings(*awsstepfunctions.Errors_TIMEOUT(), ErrorExpired),
		ResultPath: jsii.String("$.error"),
	})

	s.StateMachine = awsstepfunctions.NewStateMachine(s.Stack, jsii.String("Approval"), &awsstepfunctions.StateMachineProps{
		StateMachineName: jsii.String(s.Config.StateMachineName()),
		Comment:          jsii.String(`Example: {"request": {...}} in, {"request", "decision"} out on approval`),
		DefinitionBody:   awsstepfunctions.DefinitionBody_FromChainable(ask.Next(approved)),
	})
}

// addSweep adds the schedule that invokes the notifier with EventBridge's
// "Scheduled Event": it closes the requests past their expiry (deleting their
// pages, updating their Slack message, failing their task with "Expired") and
// delivers again the outcomes whose delivery to Step Functions failed.
func (s *Stack) addSweep() {
	interval := awscdk.Duration_Minutes(jsii.Number(s.Config.SweepInterval.Minutes()))
	s.Sweep = awsevents.NewRule(s.Stack, jsii.String("Sweep"), &awsevents.RuleProps{
		Description: jsii.String("approvalbot sweep: close expired requests, deliver outcomes that failed to reach Step Functions"),
		Schedule:    awsevents.Schedule_Rate(interval),
		Targets: &[]awsevents.IRuleTarget{awseventstargets.NewLambdaFunction(s.Notifier, &awseventstargets.LambdaFunctionProps{
			// A sweep is worth retrying until the next one is due, not after.
			MaxEventAge:   interval,
			RetryAttempts: jsii.Number(2),
		})},
	})
}

func (s *Stack) addOutputs() {
	out := func(id, description string, value *string) {
		awscdk.NewCfnOutput(s.Stack, jsii.String(id), &awscdk.CfnOutputProps{Description: jsii.String(description), Value: value})
	}
	out("CallbackURL", "Callback function URL; the one-time pages POST to <CallbackURL>decide", s.CallbackURL.Url())
	out("SlackCommandsURL", "Slack app slash command /approvals request URL",
		awscdk.Fn_Join(jsii.String(""), &[]*string{s.SlackURL.Url(), jsii.String("slack/commands")}))
	out("SlackInteractionsURL", "Slack app interactivity request URL",
		awscdk.Fn_Join(jsii.String(""), &[]*string{s.SlackURL.Url(), jsii.String("slack/interactions")}))
	out("StateMachineARN", "Example approval state machine", s.StateMachine.StateMachineArn())
	out("PagesDomain", "CloudFront domain serving the one-time pages (the CNAME target of pagesDomain)", s.Distribution.DistributionDomainName())
	if s.CallbackDistribution != nil {
		out("CallbackDistributionDomain", "CloudFront domain in front of the callback (the CNAME target of callbackDomain)", s.CallbackDistribution.DistributionDomainName())
	}
	out("SlackSecretARN", "Secret to fill with the Slack bot token and signing secret", s.SlackSecret.SecretArn())
	out("ApprovalsTable", "DynamoDB table of requests and tokens", s.Table.TableName())
	out("PagesBucket", "S3 bucket of the one-time pages", s.Bucket.BucketName())
}

// dependOnPolicyOnly trims the DependsOn that CDK renders for a function or
// state machine (its role's default policy and the role itself) to the policy:
// the role is already a dependency through the GetAtt of its ARN, and cfn-lint
// warns about the redundant entry (W3005).
func (s *Stack) dependOnPolicyOnly(c constructs.IConstruct) {
	var role awsiam.IRole
	switch r := c.(type) {
	case awslambda.Function:
		role = r.Role()
	case awsstepfunctions.StateMachine:
		role = r.Role()
	}
	policy := role.Node().TryFindChild(jsii.String("DefaultPolicy"))
	if policy == nil {
		return
	}
	id := s.Stack.GetLogicalId(policy.Node().DefaultChild().(awscdk.CfnElement))
	c.Node().DefaultChild().(awscdk.CfnResource).AddOverride(jsii.String("DependsOn"), []*string{id})
}

func retentionDays(days int) awslogs.RetentionDays {
	switch days {
	case 1:
		return awslogs.RetentionDays_ONE_DAY
	case 3:
		return awslogs.RetentionDays_THREE_DAYS
	case 5:
		return awslogs.RetentionDays_FIVE_DAYS
	case 7:
		return awslogs.RetentionDays_ONE_WEEK
	case 14:
		return awslogs.RetentionDays_TWO_WEEKS
	case 60:
		return awslogs.RetentionDays_TWO_MONTHS
	case 90:
		return awslogs.RetentionDays_THREE_MONTHS
	case 180:
		return awslogs.RetentionDays_SIX_MONTHS
	case 365:
		return awslogs.RetentionDays_ONE_YEAR
	}
	return awslogs.RetentionDays_ONE_MONTH
}
