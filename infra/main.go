// Command infra is the approvalbot CDK app: it reads the configuration from CDK
// context and the environment and synthesizes the approvalbot stack. Run it
// through the CDK CLI (see README.md and ./check).
package main

import (
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"approvalbot/infra/stack"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(1)
	}
}

func run() error {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	cfg, err := stack.Load(func(key string) any { return app.Node().TryGetContext(jsii.String(key)) }, os.Getenv)
	if err != nil {
		return err
	}
	props := &awscdk.StackProps{}
	// CDK_DEFAULT_ACCOUNT and CDK_DEFAULT_REGION are set by the CLI from the
	// current credentials; without them the stack is environment-agnostic.
	if account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION"); account != "" && region != "" {
		props.Env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
	}
	if _, err := stack.New(app, cfg, props); err != nil {
		return err
	}
	// -c nag=true (infra/check) applies the cdk-nag AwsSolutions rules: an
	// unsuppressed finding is an error, which fails the synthesis.
	if v := app.Node().TryGetContext(jsii.String("nag")); v == true || v == "true" {
		awscdk.Aspects_Of(app).Add(stack.NagChecks(), nil)
	}
	app.Synth(nil)
	return nil
}
