package dynamo_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/dynamo"
)

// fakeDB is a DynamoDB client without a server: PutItem answers putErr (or
// stores the item when it is nil), Query serves the stored items' index keys
// (equality and "<=" on the sort key; no paging), and the first BatchGetItem
// leaves every key unprocessed, as DynamoDB may under load.
type fakeDB struct {
	mu       sync.Mutex
	putErr   error
	puts     []*dynamodb.PutItemInput
	items    map[string]map[string]types.AttributeValue
	queried  []string // partition values, in no particular order
	batchGet int
	stuck    bool // every BatchGetItem leaves every key unprocessed
}

func sv(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func (f *fakeDB) GetItem(ctx context.Context, in *dynamodb.GetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &dynamodb.GetItemOutput{Item: f.items[sv(in.Key["pk"])]}, nil
}

func (f *fakeDB) PutItem(ctx context.Context, in *dynamodb.PutItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, in)
	if f.putErr != nil {
		return nil, f.putErr
	}
	if f.items == nil {
		f.items = map[string]map[string]types.AttributeValue{}
	}
	f.items[sv(in.Item["pk"])] = in.Item
	return &dynamodb.PutItemOutput{}, nil
}

// UpdateItem is not used by the tests of the fake: quick votes are tested on
// moto, which evaluates their expressions.
func (f *fakeDB) UpdateItem(context.Context, *dynamodb.UpdateItemInput, ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error) {
	return nil, errors.New("fakeDB: UpdateItem not supported")
}

func (f *fakeDB) Query(ctx context.Context, in *dynamodb.QueryInput, _ ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	keyAttr, key := in.ExpressionAttributeNames["#k"], sv(in.ExpressionAttributeValues[":k"])
	sortAttr := map[string]string{dynamo.PendingIndex: "createdAt", dynamo.UndeliveredIndex: "createdAt", dynamo.DueIndex: "dueAt"}[aws.ToString(in.IndexName)]
	bound := sv(in.ExpressionAttributeValues[":s"])
	f.queried = append(f.queried, key)
	var out []map[string]types.AttributeValue
	for _, it := range f.items {
		if sv(it[keyAttr]) == key && (bound == "" || sv(it[sortAttr]) <= bound) {
			out = append(out, map[string]types.AttributeValue{"pk": it["pk"], keyAttr: it[keyAttr], sortAttr: it[sortAttr]})
		}
	}
	slices.SortFunc(out, func(a, b map[string]types.AttributeValue) int {
		c := strings.Compare(sv(a[sortAttr]), sv(b[sortAttr]))
		if !aws.ToBool(in.ScanIndexForward) {
			c = -c
		}
		return c
	})
	return &dynamodb.QueryOutput{Items: out}, nil
}

func (f *fakeDB) Scan(ctx context.Context, in *dynamodb.ScanInput, _ ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	return &dynamodb.ScanOutput{}, nil
}

func (f *fakeDB) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, _ ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batchGet++
	if f.batchGet == 1 || f.stuck {
		return &dynamodb.BatchGetItemOutput{UnprocessedKeys: in.RequestItems}, nil
	}
	out := &dynamodb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{}}
	for table, ka := range in.RequestItems {
		for _, k := range ka.Keys {
			if it, ok := f.items[sv(k["pk"])]; ok {
				out.Responses[table] = append(out.Responses[table], it)
			}
		}
	}
	return out, nil
}

// TestUpdateRequestWrite checks the conditional PutItem of UpdateRequest and
// how its failures are told apart from the item the condition returns.
func TestUpdateRequestWrite(t *testing.T) {
	ccf := func(item map[string]types.AttributeValue) error {
		return &types.ConditionalCheckFailedException{Message: aws.String("The conditional request failed"), Item: item}
	}
	tests := []struct {
		name        string
		version     int64
		putErr      error
		wantCond    string
		wantValue   string // of :v, "" for none
		wantErr     error
		wantVersion int64
	}{
		{"written", 3, nil, "#v = :v", "3", nil, 4},
		{"first version's item", 0, nil, "attribute_exists(#pk) AND attribute_not_exists(#v)", "", nil, 1},
		{"no item", 3, ccf(nil), "#v = :v", "3", approval.ErrNotFound, 3},
		{"another version", 3, ccf(map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "REQ#x"}, "version": &types.AttributeValueMemberN{Value: "5"},
		}), "#v = :v", "3", approval.ErrConflict, 3},
		{"first version's item written over", 0, ccf(map[string]types.AttributeValue{
			"pk": &types.AttributeValueMemberS{Value: "REQ#x"}, "version": &types.AttributeValueMemberN{Value: "1"},
		}), "attribute_exists(#pk) AND attribute_not_exists(#v)", "", approval.ErrConflict, 0},
		{"throttled", 3, &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")}, "#v = :v", "3", nil, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{putErr: tt.putErr}
			st := dynamo.NewWithAPI(db, "approvals")
			r := storetest.Fixture(storetest.Base)
			r.Version = tt.version
			err := st.UpdateRequest(t.Context(), r)
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && tt.putErr == nil && err != nil:
				t.Errorf("got error %v, want none", err)
			case tt.wantErr == nil && tt.putErr != nil && (err == nil || errors.Is(err, approval.ErrConflict) || errors.Is(err, approval.ErrNotFound)):
				t.Errorf("got error %v, want the DynamoDB error as it is", err)
			}
			if r.Version != tt.wantVersion {
				t.Errorf("Version = %d, want %d", r.Version, tt.wantVersion)
			}
			if len(db.puts) != 1 {
				t.Fatalf("%d PutItem calls, want 1 (no read before or after the write)", len(db.puts))
			}
			in := db.puts[0]
			if got := aws.ToString(in.ConditionExpression); got != tt.wantCond {
				t.Errorf("condition %q, want %q", got, tt.wantCond)
			}
			got := ""
			if v, ok := in.ExpressionAttributeValues[":v"].(*types.AttributeValueMemberN); ok {
				got = v.Value
			}
			if got != tt.wantValue {
				t.Errorf(":v = %q, want %q", got, tt.wantValue)
			}
			if in.ReturnValuesOnConditionCheckFailure != types.ReturnValuesOnConditionCheckFailureAllOld {
				t.Errorf("ReturnValuesOnConditionCheckFailure = %q, want ALL_OLD", in.ReturnValuesOnConditionCheckFailure)
			}
			if v := in.Item["version"].(*types.AttributeValueMemberN).Value; v != strconv.FormatInt(tt.version+1, 10) {
				t.Errorf("written version %s, want %d", v, tt.version+1)
			}
		})
	}
}

// TestListPendingReadsEveryShard: ListPending asks every shard of the pending
// index and the first version's partition, merges them newest first and reads
// the items again when DynamoDB leaves keys unprocessed.
func TestListPendingReadsEveryShard(t *testing.T) {
	ctx := t.Context()
	db := &fakeDB{}
	st := dynamo.NewWithAPI(db, "approvals")
	var want []string
	for i := range 20 {
		r := quiet(storetest.Fixture(storetest.Base.Add(time.Duration(i) * time.Second)))
		if err := st.CreateRequest(ctx, r); err != nil {
			t.Fatal(err)
		}
		want = append([]string{r.ID}, want...)
	}
	got, next, err := st.ListPending(ctx, "", 50)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	if diff := cmp.Diff(want, ids(got)); diff != "" || next != "" {
		t.Errorf("ListPending: next %q, requests (-want +got):\n%s", next, diff)
	}
	wantParts := append(shards("PENDING#"), "PENDING")
	slices.Sort(wantParts)
	slices.Sort(db.queried)
	if diff := cmp.Diff(wantParts, db.queried); diff != "" {
		t.Errorf("partitions queried (-want +got):\n%s", diff)
	}
	if db.batchGet != 2 {
		t.Errorf("BatchGetItem calls = %d, want 2 (the second for the unprocessed keys)", db.batchGet)
	}
}

// TestListPendingGivesUpOnUnprocessedKeys: keys DynamoDB leaves unprocessed
// are asked for again, with growing pauses, eight calls in all.
func TestListPendingGivesUpOnUnprocessedKeys(t *testing.T) {
	ctx := t.Context()
	db := &fakeDB{stuck: true}
	st := dynamo.NewWithAPI(db, "approvals")
	if err := st.CreateRequest(ctx, quiet(storetest.Fixture(storetest.Base))); err != nil {
		t.Fatal(err)
	}
	_, _, err := st.ListPending(ctx, "", 50)
	if err == nil || !strings.Contains(err.Error(), "keys still unprocessed after 8 attempts") {
		t.Errorf("ListPending: %v, want keys still unprocessed after 8 attempts", err)
	}
	if db.batchGet != 8 {
		t.Errorf("BatchGetItem calls = %d, want 8", db.batchGet)
	}
}
