// Package awsenv builds the AWS SDK configuration of a Lambda from its
// environment alone: the region, the credentials Lambda puts in the
// environment, and the endpoint variables (AWS_ENDPOINT_URL and the
// per-service AWS_ENDPOINT_URL_<SERVICE>, honouring
// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS).
//
// It stands in for config.LoadDefaultConfig in the Lambdas: a Lambda never
// reads shared config files, SSO, web identity or instance metadata, but the
// default chain links all of them (with the STS, SSO, SSO OIDC and sign-in
// clients), about 1.5 MB of every bootstrap. Command-line tools, which may use
// a profile, keep the default chain.
package awsenv

import (
	"context"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// The variables Config reads.
const (
	EnvRegion          = "AWS_REGION"
	EnvDefaultRegion   = "AWS_DEFAULT_REGION"
	EnvAccessKeyID     = "AWS_ACCESS_KEY_ID"
	EnvSecretAccessKey = "AWS_SECRET_ACCESS_KEY"
	EnvSessionToken    = "AWS_SESSION_TOKEN"
	EnvAccountID       = "AWS_ACCOUNT_ID"
	EnvEndpointURL     = "AWS_ENDPOINT_URL"
	EnvIgnoreEndpoints = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"
)

// Config is the SDK configuration that getenv describes. Without an access key
// in the environment it has no credentials provider (requests then fail when
// signed), as Lambda always provides one.
func Config(getenv func(string) string) aws.Config {
	cfg := aws.Config{Region: getenv(EnvRegion)}
	if cfg.Region == "" {
		cfg.Region = getenv(EnvDefaultRegion)
	}
	if id, secret := getenv(EnvAccessKeyID), getenv(EnvSecretAccessKey); id != "" && secret != "" {
		cfg.Credentials = aws.NewCredentialsCache(credentials.StaticCredentialsProvider{Value: aws.Credentials{
			AccessKeyID:     id,
			SecretAccessKey: secret,
			SessionToken:    getenv(EnvSessionToken),
			AccountID:       getenv(EnvAccountID),
			Source:          "EnvConfigCredentials",
		}})
	}
	src := endpoints{getenv: getenv}
	if url := getenv(EnvEndpointURL); url != "" && !src.ignore() {
		cfg.BaseEndpoint = aws.String(url)
	}
	cfg.ConfigSources = []any{src}
	return cfg
}

// endpoints answers the service clients' questions about configured
// endpoints, as the SDK's environment configuration does.
type endpoints struct{ getenv func(string) string }

func (e endpoints) ignore() bool {
	v, err := strconv.ParseBool(e.getenv(EnvIgnoreEndpoints))
	return err == nil && v
}

// GetIgnoreConfiguredEndpoints reports AWS_IGNORE_CONFIGURED_ENDPOINT_URLS.
func (e endpoints) GetIgnoreConfiguredEndpoints(context.Context) (value, found bool, err error) {
	if e.getenv(EnvIgnoreEndpoints) == "" {
		return false, false, nil
	}
	return e.ignore(), true, nil
}

// GetServiceBaseEndpoint is AWS_ENDPOINT_URL_<SERVICE> for the service whose
// SDK ID is sdkID ("DynamoDB", "SESv2", "Secrets Manager" and so on).
func (e endpoints) GetServiceBaseEndpoint(_ context.Context, sdkID string) (string, bool, error) {
	v := e.getenv(EnvEndpointURL + "_" + strings.ToUpper(strings.ReplaceAll(sdkID, " ", "_")))
	return v, v != "", nil
}
