package mototest_test

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/google/go-cmp/cmp"

	"approvalbot/internal/testing/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

func TestConfigReachesServer(t *testing.T) {
	srv := mototest.Start(t)
	ctx := context.Background()
	db := dynamodb.NewFromConfig(srv.Config(t))
	name := mototest.UniqueName("t")
	_, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	out, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		t.Fatalf("ListTables: %v", err)
	}
	if !contains(out.TableNames, name) {
		t.Errorf("ListTables = %v, want it to contain %q", out.TableNames, name)
	}
}

func TestSentEmails(t *testing.T) {
	srv := mototest.Start(t)
	ctx := context.Background()
	ses := sesv2.NewFromConfig(srv.Config(t))
	from := mototest.UniqueName("from") + "@example.com"
	if _, err := ses.CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(from)}); err != nil {
		t.Fatalf("CreateEmailIdentity: %v", err)
	}
	_, err := ses.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(from),
		Destination:      &sestypes.Destination{ToAddresses: []string{"alice@example.com"}, CcAddresses: []string{"bob@example.com"}},
		Content: &sestypes.EmailContent{Simple: &sestypes.Message{
			Subject: &sestypes.Content{Data: aws.String("Approve the deploy?")},
			Body: &sestypes.Body{
				Text: &sestypes.Content{Data: aws.String("text part")},
				Html: &sestypes.Content{Data: aws.String("<p>html part</p>")},
			},
		}},
	})
	if err != nil {
		t.Fatalf("SendEmail: %v", err)
	}
	var got []mototest.SentEmail
	for _, m := range srv.SentEmails(t) {
		if m.From == from {
			m.ID = ""
			got = append(got, m)
		}
	}
	want := []mototest.SentEmail{{
		From:    from,
		To:      []string{"alice@example.com", "bob@example.com"},
		Subject: "Approve the deploy?",
		Body:    "<p>html part</p>",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SentEmails (-want +got):\n%s", diff)
	}
}

// TestOwnServer checks a dedicated server: Reset clears it, Step Functions
// executes state machines once enabled, and the process is gone after the test.
func TestOwnServer(t *testing.T) {
	var url string
	t.Run("server", func(t *testing.T) {
		srv := mototest.StartWith(t, mototest.Options{})
		url = srv.URL
		ctx := context.Background()
		cfg := srv.Config(t)

		db := dynamodb.NewFromConfig(cfg)
		if _, err := db.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String("before-reset"),
			BillingMode:          ddbtypes.BillingModePayPerRequest,
			AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
			KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
		}); err != nil {
			t.Fatalf("CreateTable: %v", err)
		}
		srv.Reset(t)
		out, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
		if err != nil {
			t.Fatalf("ListTables: %v", err)
		}
		if len(out.TableNames) != 0 {
			t.Errorf("after Reset, ListTables = %v, want none", out.TableNames)
		}

		srv.EnableStepFunctionsExecution(t)
		sf := sfn.NewFromConfig(cfg)
		sm, err := sf.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{
			Name:       aws.String("pass"),
			RoleArn:    aws.String("arn:aws:iam::123456789012:role/sfn"),
			Definition: aws.String(`{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"ok":true},"End":true}}}`),
		})
		if err != nil {
			t.Fatalf("CreateStateMachine: %v", err)
		}
		ex, err := sf.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: sm.StateMachineArn, Name: aws.String("run1"), Input: aws.String("{}")})
		if err != nil {
			t.Fatalf("StartExecution: %v", err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			d, err := sf.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: ex.ExecutionArn})
			if err != nil {
				t.Fatalf("DescribeExecution: %v", err)
			}
			if d.Status == sfntypes.ExecutionStatusSucceeded {
				if got, want := aws.ToString(d.Output), `{"ok": true}`; strings.ReplaceAll(got, " ", "") != strings.ReplaceAll(want, " ", "") {
					t.Errorf("execution output = %s, want %s", got, want)
				}
				break
			}
			if d.Status != sfntypes.ExecutionStatusRunning || time.Now().After(deadline) {
				t.Fatalf("execution status = %s, want SUCCEEDED", d.Status)
			}
			time.Sleep(50 * time.Millisecond) // polling a real process
		}
	})
	if url == "" {
		t.Fatal("no server started")
	}
	if resp, err := http.Get(url + "/moto-api/config"); err == nil {
		resp.Body.Close()
		t.Errorf("server at %s still answers after its test ended", url)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
