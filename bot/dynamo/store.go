// Package dynamo is the approval.Store on Amazon DynamoDB: one table holding
// request items (pk "REQ#<id>") and token items (pk "TOK#<sha256 hex of the
// token>"; the raw token is never stored).
//
// Claim is one TransactWriteItems over the token and its request, conditional on
// the token unused, the request pending and both unexpired, so that of any
// number of concurrent claims at most one wins. Expiry is checked in every
// condition, never left to DynamoDB's time to live, which only cleans up:
// every item carries a "ttl" (epoch seconds) of its expiry plus Retention.
//
// Two sparse, keys-only global secondary indexes serve the lists: "pending"
// (pendingPK, createdAt) holds exactly the pending requests, and "undelivered"
// (undeliveredPK, createdAt) the closed requests whose outcome has not reached
// the workflow. The lists read the items themselves with strongly consistent
// reads and keep only those still in the listed state. CreateTable makes a
// table of this shape.
//
// LeaseDelivery is one conditional UpdateItem of a request's delivery lease
// attribute, which no index uses; MarkDelivered and MarkWorkflowGone remove it.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"approvalbot/bot/approval"
)

// DefaultRetention is how long items are kept after they expire, for the audit
// trail, before DynamoDB's time to live may delete them.
const DefaultRetention = 90 * 24 * time.Hour

// api is the part of the DynamoDB client the store uses.
type api interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

// Store is an approval.Store on one DynamoDB table. It is safe for concurrent
// use.
type Store struct {
	db    api
	table string
	// Retention is how long after its expiry an item may be deleted by
	// DynamoDB's time to live. Set it before the first call.
	Retention time.Duration

	pageSize  int32 // items per index query page; 0 lets DynamoDB decide
	batchSize int   // keys per BatchGetItem; 0 means batchGetMax
}

var _ approval.Store = (*Store)(nil)

// New returns a store on table, through client, with DefaultRetention.
func New(client *dynamodb.Client, table string) *Store {
	return &Store{db: client, table: table, Retention: DefaultRetention}
}

func (s *Store) retention() time.Duration {
	if s.Retention > 0 {
		return s.Retention
	}
	return DefaultRetention
}

func keyOf(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{KeyAttribute: &types.AttributeValueMemberS{Value: pk}}
}

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

// CreateRequest stores r and its tokens in one transaction, each conditional on
// its key being new. It returns ErrConflict if the request or a token exists.
func (s *Store) CreateRequest(ctx context.Context, r *approval.Request, tokens []approval.Token) error {
	keep := s.retention()
	req, err := attributevalue.MarshalMap(newRequestItem(r, keep))
	if err != nil {
		return fmt.Errorf("create request %s: encode: %w", r.ID, err)
	}
	notExists := aws.String("attribute_not_exists(" + KeyAttribute + ")")
	items := []types.TransactWriteItem{{Put: &types.Put{TableName: &s.table, Item: req, ConditionExpression: notExists}}}
	for _, t := range tokens {
		tok, err := attributevalue.MarshalMap(newTokenItem(t, keep))
		if err != nil {
			return fmt.Errorf("create request %s: encode token: %w", r.ID, err)
		}
		items = append(items, types.TransactWriteItem{Put: &types.Put{TableName: &s.table, Item: tok, ConditionExpression: notExists}})
	}
	_, err = s.db.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	if err != nil {
		if conditionFailed(err) {
			return fmt.Errorf("create request %s: %w", r.ID, approval.ErrConflict)
		}
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	return nil
}

// conditionFailed reports whether err is a transaction cancelled because a
// condition did not hold, or a failed conditional write.
func conditionFailed(err error) bool {
	var cc *types.ConditionalCheckFailedException
	if errors.As(err, &cc) {
		return true
	}
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		for _, r := range tc.CancellationReasons {
			if aws.ToString(r.Code) == "ConditionalCheckFailed" {
				return true
			}
		}
	}
	return false
}

// transactionConflict reports whether a transaction was cancelled because
// another one was writing the same items at the same time.
func transactionConflict(err error) bool {
	var tc *types.TransactionCanceledException
	if errors.As(err, &tc) {
		for _, r := range tc.CancellationReasons {
			if aws.ToString(r.Code) == "TransactionConflict" {
				return true
			}
		}
	}
	var tcx *types.TransactionConflictException
	return errors.As(err, &tcx)
}

// GetRequest returns the request with the given ID (strongly consistent read),
// or ErrNotFound.
func (s *Store) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	r, err := s.getRequest(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	return r, nil
}

func (s *Store) getRequest(ctx context.Context, id string) (*approval.Request, error) {
	var it requestItem
	if err := s.get(ctx, requestKey(id), &it); err != nil {
		return nil, err
	}
	return it.request()
}

// GetToken returns the token stored under hash (strongly consistent read), or
// ErrNotFound.
func (s *Store) GetToken(ctx context.Context, hash string) (*approval.Token, error) {
	t, err := s.getToken(ctx, hash)
	if err != nil {
		return nil, fmt.Errorf("get token: %w", err)
	}
	return t, nil
}

func (s *Store) getToken(ctx context.Context, hash string) (*approval.Token, error) {
	var it tokenItem
	if err := s.get(ctx, tokenKey(hash), &it); err != nil {
		return nil, err
	}
	return it.token()
}

func (s *Store) get(ctx context.Context, pk string, v any) error {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: keyOf(pk), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return err
	}
	if out.Item == nil {
		return approval.ErrNotFound
	}
	if err := attributevalue.UnmarshalMap(out.Item, v); err != nil {
		return fmt.Errorf("decode item: %w", err)
	}
	return nil
}

// ListPending returns every pending request, newest first, from the pending
// index.
func (s *Store) ListPending(ctx context.Context) ([]*approval.Request, error) {
	rs, err := s.list(ctx, PendingIndex, PendingKeyAttribute, pendingValue, false, func(r *approval.Request) bool {
		return r.Status == approval.StatusPending
	})
	if err != nil {
		return nil, fmt.Errorf("list pending: %w", err)
	}
	return rs, nil
}

// ListUndelivered returns every closed request whose outcome has not been
// delivered, oldest first, from the undelivered index.
func (s *Store) ListUndelivered(ctx context.Context) ([]*approval.Request, error) {
	rs, err := s.list(ctx, UndeliveredIndex, UndeliveredKeyAttribute, undeliveredValue, true, func(r *approval.Request) bool {
		return r.Status != approval.StatusPending && !r.Delivered
	})
	if err != nil {
		return nil, fmt.Errorf("list undelivered: %w", err)
	}
	return rs, nil
}

// list reads every key of a sparse index in order, then the items themselves
// with consistent reads (an index is only eventually consistent), and keeps
// those for which keep holds.
func (s *Store) list(ctx context.Context, index, attr, value string, ascending bool, keep func(*approval.Request) bool) ([]*approval.Request, error) {
	var keys []string
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(index),
		KeyConditionExpression:    aws.String("#k = :v"),
		ExpressionAttributeNames:  map[string]string{"#k": attr, "#pk": KeyAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": str(value)},
		ProjectionExpression:      aws.String("#pk"),
		ScanIndexForward:          aws.Bool(ascending),
	}
	if s.pageSize > 0 {
		in.Limit = aws.Int32(s.pageSize)
	}
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query index %s: %w", index, err)
		}
		for _, item := range out.Items {
			if pk, ok := item[KeyAttribute].(*types.AttributeValueMemberS); ok {
				keys = append(keys, pk.Value)
			}
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	items, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, err
	}
	var rs []*approval.Request
	for _, pk := range keys {
		item, ok := items[pk]
		if !ok {
			continue // deleted since the query
		}
		var it requestItem
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return nil, fmt.Errorf("decode item: %w", err)
		}
		r, err := it.request()
		if err != nil {
			return nil, fmt.Errorf("decode request %s: %w", it.ID, err)
		}
		if keep(r) {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// maxAttempts bounds how often an operation that DynamoDB asks to retry (a
// transaction conflict, unprocessed keys) is tried.
const maxAttempts = 8

// batchGetMax is the most keys one BatchGetItem call may ask for.
const batchGetMax = 100

// batchGet reads the items under keys with consistent reads, by partition key.
func (s *Store) batchGet(ctx context.Context, keys []string) (map[string]map[string]types.AttributeValue, error) {
	size := batchGetMax
	if s.batchSize > 0 {
		size = min(s.batchSize, batchGetMax)
	}
	found := make(map[string]map[string]types.AttributeValue, len(keys))
	for start := 0; start < len(keys); start += size {
		var ask []map[string]types.AttributeValue
		for _, pk := range keys[start:min(start+size, len(keys))] {
			ask = append(ask, keyOf(pk))
		}
		req := map[string]types.KeysAndAttributes{s.table: {Keys: ask, ConsistentRead: aws.Bool(true)}}
		for attempt := 0; len(req) > 0; attempt++ {
			if attempt == maxAttempts {
				return nil, fmt.Errorf("batch get: keys still unprocessed after %d attempts", attempt)
			}
			if attempt > 0 {
				if err := pause(ctx, attempt); err != nil {
					return nil, err
				}
			}
			out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
			if err != nil {
				return nil, fmt.Errorf("batch get: %w", err)
			}
			for _, item := range out.Responses[s.table] {
				if pk, ok := item[KeyAttribute].(*types.AttributeValueMemberS); ok {
					found[pk.Value] = item
				}
			}
			req = out.UnprocessedKeys
		}
	}
	return found, nil
}

// pause waits before attempt (1, 2, …) of an operation that DynamoDB asked to
// retry, growing from 20 ms to at most 1 s.
func pause(ctx context.Context, attempt int) error {
	d := min(20*time.Millisecond<<min(attempt-1, 6), time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
