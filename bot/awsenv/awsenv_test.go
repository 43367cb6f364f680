package awsenv

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

func TestRegionAndCredentials(t *testing.T) {
	env := map[string]string{
		EnvDefaultRegion:   "eu-central-1",
		EnvAccessKeyID:     "AKIDEXAMPLE",
		EnvSecretAccessKey: "secret",
		EnvSessionToken:    "session",
	}
	cfg := Config(func(k string) string { return env[k] })
	if got, want := cfg.Region, "eu-central-1"; got != want {
		t.Errorf("Region = %q, want %q (from %s)", got, want, EnvDefaultRegion)
	}
	env[EnvRegion] = "eu-west-1"
	cfg = Config(func(k string) string { return env[k] })
	if got, want := cfg.Region, "eu-west-1"; got != want {
		t.Errorf("Region = %q, want %q (%s first)", got, want, EnvRegion)
	}
	if cfg.Credentials == nil {
		t.Fatal("no credentials provider")
	}
	c, err := cfg.Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessKeyID != "AKIDEXAMPLE" || c.SecretAccessKey != "secret" || c.SessionToken != "session" {
		t.Errorf("credentials = %+v, want the environment's", c)
	}
	if cfg := Config(func(string) string { return "" }); cfg.Credentials != nil {
		t.Error("credentials provider without credentials in the environment")
	}
}

// setenv sets env in the process too: the service clients look there to
// decide between the general and the per-service endpoint.
func setenv(t *testing.T, env map[string]string) func(string) string {
	t.Helper()
	for _, k := range []string{EnvEndpointURL, EnvEndpointURL + "_DYNAMODB", EnvEndpointURL + "_SECRETS_MANAGER", EnvIgnoreEndpoints} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	return func(k string) string { return env[k] }
}

func TestEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name               string
		env                map[string]string
		wantDynamo, wantSM string
	}{
		{"none", nil, "", ""},
		{"general", map[string]string{EnvEndpointURL: "http://127.0.0.1:5000"}, "http://127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"per service", map[string]string{EnvEndpointURL: "http://127.0.0.1:5000", EnvEndpointURL + "_DYNAMODB": "http://127.0.0.1:8000", EnvEndpointURL + "_SECRETS_MANAGER": "http://127.0.0.1:9000"}, "http://127.0.0.1:8000", "http://127.0.0.1:9000"},
		{"per service only", map[string]string{EnvEndpointURL + "_DYNAMODB": "http://127.0.0.1:8000"}, "http://127.0.0.1:8000", ""},
		{"ignored", map[string]string{EnvEndpointURL: "http://127.0.0.1:5000", EnvEndpointURL + "_DYNAMODB": "http://127.0.0.1:8000", EnvIgnoreEndpoints: "true"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config(setenv(t, tc.env))
			cfg.Region = "eu-west-1"
			if got := aws.ToString(dynamodb.NewFromConfig(cfg).Options().BaseEndpoint); got != tc.wantDynamo {
				t.Errorf("DynamoDB endpoint = %q, want %q", got, tc.wantDynamo)
			}
			if got := aws.ToString(secretsmanager.NewFromConfig(cfg).Options().BaseEndpoint); got != tc.wantSM {
				t.Errorf("Secrets Manager endpoint = %q, want %q", got, tc.wantSM)
			}
		})
	}
}
