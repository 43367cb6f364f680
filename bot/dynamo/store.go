// Package dynamo is the approval.Store on Amazon DynamoDB: one table, one item
// per request (pk "REQ#<id>") holding everything about it: the rule, the
// recipients with their token hashes (the raw tokens are never stored), the
// votes, the effects with their states and leases, the chat messages, the
// decision and the reason, and a numeric version.
//
// Every write is one PutItem of the whole item, with no read before it (and,
// for a request with an audit trail, the journal's PutItem beside it).
// CreateRequest is conditional on the key being new; UpdateRequest on the
// stored version being the one the request was read at (items written by the
// first version, which have no version, are read as version 0 and written
// over only while they still have none). A failed condition returns the
// stored item (ReturnValuesOnConditionCheckFailure ALL_OLD), which tells
// ErrConflict from ErrNotFound without another read, and recognises a write
// that had already taken effect when the SDK sent it again. Expiry is checked
// by the core on every read, never left to DynamoDB's time to live, which only
// cleans up: every item carries a "ttl" (epoch seconds) of its expiry plus
// Retention.
//
// Three sparse, keys-only global secondary indexes with sharded partition keys
// serve the lists, so that no single key value takes every write (a request's
// shard is a hash of its ID modulo Shards):
//
//	pending      pendingPK     "PENDING#<shard>" / createdAt   only while pending
//	due          dueShard      "DUE#<shard>"     / dueAt       only while DueAt is set
//	undelivered  undeliveredPK "CLOSED#<shard>"  / createdAt   once closed
//
// (the index "undelivered" keeps its first-version name: a table gains only
// one index per stack update; it also holds the audit journal, see audit.go).
// List queries every shard of the pending or closed index in parallel and
// merges them newest first, with an opaque cursor; ListDue queries every due
// shard for dueAt at or before now and merges them earliest first. Both then
// read the items with strongly consistent BatchGetItem calls (an index is only
// eventually consistent) and keep only those that match (the status, and the
// filters the index cannot apply: approver, requester). The audit trail of a
// request is the "audit" attribute of its item (see audit.go).
//
// Items of the first version keep working. They decode, at version 0, into
// the request they stand for: rule "any" (one reject rejects), their decision
// as the one vote, and, when closed with the outcome not delivered, a pending
// delivery effect whose first attempt holds the old delivery lease. Their
// tokens ("TOK#<hash>" items) are found by LegacyToken. Until they are written
// again they sit in the first version's index partitions ("PENDING" in
// pending, "UNDELIVERED" in the index "undelivered"), which ListPending and
// ListDue read as well; their first write (a vote, the sweep) rewrites them in
// the current form and takes them out of those partitions. Package schema
// names the table's key and indexes; the CDK app creates the table from it.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
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
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

// Store is an approval.Store on one DynamoDB table. It is safe for concurrent
// use.
type Store struct {
	db    api
	table string
	// Retention is how long after its expiry an item may be deleted by
	// DynamoDB's time to live. Set it before the first call.
	Retention time.Duration

	pageSize  int32 // items per index query page; 0 lets the store decide
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

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// encode is the item of r at version.
func (s *Store) encode(r *approval.Request, version int64) (map[string]types.AttributeValue, error) {
	item, err := attributevalue.MarshalMap(newRequestItem(r, version, s.retention()))
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return item, nil
}

// CreateRequest stores r at version 1: one PutItem conditional on its key
// being new. It returns ErrConflict if a request with the same ID exists.
func (s *Store) CreateRequest(ctx context.Context, r *approval.Request) error {
	item, err := s.encode(r, 1)
	if err != nil {
		return fmt.Errorf("create request %s: %w", r.ID, err)
	}
	err = s.withJournal(ctx, r, func() error {
		_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
			TableName:                           &s.table,
			Item:                                item,
			ConditionExpression:                 aws.String("attribute_not_exists(#pk)"),
			ExpressionAttributeNames:            map[string]string{"#pk": KeyAttribute},
			ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		})
		return err
	})
	if err != nil {
		old, failed := conditionFailed(err)
		switch {
		case !failed:
			return fmt.Errorf("create request %s: %w", r.ID, err)
		case !sameItem(old, item):
			return fmt.Errorf("create request %s: %w", r.ID, approval.ErrConflict)
		}
		// Our own write, sent again by the SDK after its answer was lost.
	}
	r.Version = 1
	return nil
}

// UpdateRequest replaces the stored request with r if the stored version is
// r.Version (version 0: an item of the first version, which has none), and
// then increments r.Version. It is one PutItem with no read before it; the
// item returned by a failed condition says which error to return:
// ErrNotFound (no item) or ErrConflict (another version).
func (s *Store) UpdateRequest(ctx context.Context, r *approval.Request) error {
	item, err := s.encode(r, r.Version+1)
	if err != nil {
		return fmt.Errorf("update request %s: %w", r.ID, err)
	}
	in := &dynamodb.PutItemInput{
		TableName:                           &s.table,
		Item:                                item,
		ConditionExpression:                 aws.String("#v = :v"),
		ExpressionAttributeNames:            map[string]string{"#v": VersionAttribute},
		ExpressionAttributeValues:           map[string]types.AttributeValue{":v": num(r.Version)},
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
	}
	if r.Version == 0 {
		in.ConditionExpression = aws.String("attribute_exists(#pk) AND attribute_not_exists(#v)")
		in.ExpressionAttributeNames["#pk"] = KeyAttribute
		in.ExpressionAttributeValues = nil
	}
	if err := s.withJournal(ctx, r, func() error { _, err := s.db.PutItem(ctx, in); return err }); err != nil {
		old, failed := conditionFailed(err)
		switch {
		case !failed:
			return fmt.Errorf("update request %s: %w", r.ID, err)
		case len(old) == 0:
			return fmt.Errorf("update request %s: %w", r.ID, approval.ErrNotFound)
		case !sameItem(old, item):
			return fmt.Errorf("update request %s: version %d, not %d: %w", r.ID, storedVersion(old), r.Version, approval.ErrConflict)
		}
		// Our own write, sent again by the SDK after its answer was lost.
	}
	r.Version++
	return nil
}

// conditionFailed reports whether err is a failed condition, and returns the
// item as it stood (empty when there was none).
func conditionFailed(err error) (map[string]types.AttributeValue, bool) {
	var cc *types.ConditionalCheckFailedException
	if errors.As(err, &cc) {
		return cc.Item, true
	}
	return nil, false
}

// sameItem reports whether two items hold the same attributes and values.
func sameItem(a, b map[string]types.AttributeValue) bool {
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	var x, y map[string]any
	if attributevalue.UnmarshalMap(a, &x) != nil || attributevalue.UnmarshalMap(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// storedVersion is the version of a stored item, 0 for the first version's.
func storedVersion(item map[string]types.AttributeValue) int64 {
	if n, ok := item[VersionAttribute].(*types.AttributeValueMemberN); ok {
		v, _ := strconv.ParseInt(n.Value, 10, 64)
		return v
	}
	return 0
}

// GetRequest returns the request with the given ID (strongly consistent read),
// or ErrNotFound.
func (s *Store) GetRequest(ctx context.Context, id string) (*approval.Request, error) {
	var it requestItem
	if err := s.get(ctx, requestKey(id), &it); err != nil {
		return nil, fmt.Errorf("get request %s: %w", id, err)
	}
	r, err := it.request()
	if err != nil {
		return nil, fmt.Errorf("get request %s: decode: %w", id, err)
	}
	return r, nil
}

// LegacyToken returns the ID of the request that a token of the first version
// belongs to, from its "TOK#<hash>" item, or ErrNotFound.
func (s *Store) LegacyToken(ctx context.Context, hash string) (string, error) {
	var it tokenItem
	if err := s.get(ctx, tokenKey(hash), &it); err != nil {
		return "", fmt.Errorf("legacy token: %w", err)
	}
	if it.RequestID == "" {
		return "", fmt.Errorf("legacy token: no request ID: %w", approval.ErrNotFound)
	}
	return it.RequestID, nil
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

func decodeRequest(item map[string]types.AttributeValue) (*approval.Request, error) {
	var it requestItem
	if err := attributevalue.UnmarshalMap(item, &it); err != nil {
		return nil, fmt.Errorf("decode item: %w", err)
	}
	r, err := it.request()
	if err != nil {
		return nil, fmt.Errorf("decode request %s: %w", it.ID, err)
	}
	return r, nil
}
