package dynamo

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// CreateTable creates a table of the shape the store needs, on-demand billing,
// waits until it is active and turns on time to live on TTLAttribute. Tests
// and the local demo use it; in AWS the CDK app creates the same table:
//
//	partition key  pk (S), no sort key
//	index pending      pendingPK (S) / createdAt (S), keys only
//	index undelivered  undeliveredPK (S) / createdAt (S), keys only (first version)
//	index due          dueShard (S) / dueAt (S), keys only
//	time to live   ttl
func CreateTable(ctx context.Context, client *dynamodb.Client, table string) error {
	s := func(name string) types.AttributeDefinition {
		return types.AttributeDefinition{AttributeName: aws.String(name), AttributeType: types.ScalarAttributeTypeS}
	}
	index := func(name, key, sort string) types.GlobalSecondaryIndex {
		return types.GlobalSecondaryIndex{
			IndexName: aws.String(name),
			KeySchema: []types.KeySchemaElement{
				{AttributeName: aws.String(key), KeyType: types.KeyTypeHash},
				{AttributeName: aws.String(sort), KeyType: types.KeyTypeRange},
			},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}
	}
	_, err := client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:   aws.String(table),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			s(KeyAttribute), s(PendingKeyAttribute), s(UndeliveredKeyAttribute), s(CreatedAtAttribute),
			s(DueKeyAttribute), s(DueAtAttribute),
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(KeyAttribute), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{
			index(PendingIndex, PendingKeyAttribute, CreatedAtAttribute),
			index(UndeliveredIndex, UndeliveredKeyAttribute, CreatedAtAttribute),
			index(DueIndex, DueKeyAttribute, DueAtAttribute),
		},
	})
	if err != nil {
		return fmt.Errorf("create table %s: %w", table, err)
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = time.Second })
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)}, 5*time.Minute); err != nil {
		return fmt.Errorf("create table %s: wait until active: %w", table, err)
	}
	_, err = client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: aws.String(table),
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	if err != nil {
		return fmt.Errorf("create table %s: enable time to live: %w", table, err)
	}
	return nil
}
