package dynamo_test

import (
	"context"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/dynamo"
	"approvalbot/internal/testing/dynamotest"
	"approvalbot/internal/testing/mototest"
)

func TestMain(m *testing.M) { os.Exit(mototest.Main(m)) }

// newTable creates a fresh table on moto and returns a client and its name.
func newTable(t *testing.T) (*dynamodb.Client, string) {
	t.Helper()
	srv := mototest.Start(t)
	client := dynamodb.NewFromConfig(srv.Config(t))
	name := mototest.UniqueName("approvals-")
	if err := dynamotest.CreateTable(context.Background(), client, name); err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	return client, name
}

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) approval.Store {
		client, name := newTable(t)
		return dynamo.New(client, name)
	})
}
