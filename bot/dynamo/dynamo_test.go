package dynamo_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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

// fixtureWithRawTokens is a storetest fixture whose tokens' raw values are
// known, so that a test can look for them in the table.
func fixtureWithRawTokens(createdAt time.Time) (*approval.Request, []approval.Token, []string) {
	r, toks := storetest.Fixture(createdAt)
	var raws []string
	for i := range toks {
		raw, hash := approval.NewToken()
		raws = append(raws, raw)
		toks[i].Hash = hash
		r.Recipients[i].TokenHash = hash
	}
	return r, toks, raws
}

// items returns every item of the table by partition key.
func items(t *testing.T, client *dynamodb.Client, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out := map[string]map[string]types.AttributeValue{}
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(t.Context())
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		for _, it := range page.Items {
			out[it["pk"].(*types.AttributeValueMemberS).Value] = it
		}
	}
	return out
}

// strings collects every string inside an attribute value.
func allStrings(v types.AttributeValue) []string {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return []string{v.Value}
	case *types.AttributeValueMemberSS:
		return v.Value
	case *types.AttributeValueMemberL:
		var out []string
		for _, e := range v.Value {
			out = append(out, allStrings(e)...)
		}
		return out
	case *types.AttributeValueMemberM:
		var out []string
		for k, e := range v.Value {
			out = append(out, k)
			out = append(out, allStrings(e)...)
		}
		return out
	}
	return nil
}

func attrS(it map[string]types.AttributeValue, name string) (string, bool) {
	v, ok := it[name].(*types.AttributeValueMemberS)
	if !ok {
		return "", false
	}
	return v.Value, true
}

func attrN(it map[string]types.AttributeValue, name string) string {
	if v, ok := it[name].(*types.AttributeValueMemberN); ok {
		return v.Value
	}
	return ""
}

// TestItemShape checks what lands in the table: keys, time to live, the
// sparse index keys through a request's life, and no raw token anywhere.
func TestItemShape(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	s.Retention = 48 * time.Hour

	r, toks, raws := fixtureWithRawTokens(storetest.Base)
	if err := s.CreateRequest(ctx, storetest.Clone(r), toks); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	got := items(t, client, table)
	if len(got) != 1+len(toks) {
		t.Errorf("table holds %d items, want %d (the request and its tokens)", len(got), 1+len(toks))
	}
	wantTTL := strconvI(r.ExpiresAt.Add(48 * time.Hour).Unix())
	req, ok := got["REQ#"+r.ID]
	if !ok {
		t.Fatalf("no item REQ#%s; keys: %v", r.ID, keys(got))
	}
	for _, tok := range toks {
		if _, ok := got["TOK#"+tok.Hash]; !ok {
			t.Errorf("no item TOK#<hash> for %s", tok.Recipient)
		}
	}
	for pk, it := range got {
		if got := attrN(it, dynamo.TTLAttribute); got != wantTTL {
			t.Errorf("%s: ttl = %q, want %q (expiry + retention, epoch seconds)", pk, got, wantTTL)
		}
		for name, v := range it {
			for _, sv := range allStrings(v) {
				for _, raw := range raws {
					if strings.Contains(sv, raw) {
						t.Errorf("%s: attribute %s holds a raw token", pk, name)
					}
				}
			}
		}
	}
	if v, _ := attrS(req, dynamo.PendingKeyAttribute); v != "PENDING" {
		t.Errorf("pending request: pendingPK = %q, want PENDING", v)
	}
	if _, ok := req[dynamo.UndeliveredKeyAttribute]; ok {
		t.Errorf("pending request has undeliveredPK")
	}
	if v, _ := attrS(req, dynamo.CreatedAtAttribute); v != "2031-05-06T07:08:09.123000000Z" {
		t.Errorf("createdAt = %q, want fixed-width UTC 2031-05-06T07:08:09.123000000Z", v)
	}

	d := approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: storetest.Base.Add(time.Minute)}
	if _, err := s.Claim(ctx, toks[0].Hash, d); err != nil {
		t.Fatalf("Claim: %v", err)
	}
	got = items(t, client, table)
	req = got["REQ#"+r.ID]
	if _, ok := req[dynamo.PendingKeyAttribute]; ok {
		t.Errorf("after Claim: pendingPK still present")
	}
	if v, _ := attrS(req, dynamo.UndeliveredKeyAttribute); v != "UNDELIVERED" {
		t.Errorf("after Claim: undeliveredPK = %q, want UNDELIVERED", v)
	}
	if _, ok := req["decisionComment"]; ok {
		t.Errorf("after Claim without a comment: decisionComment stored")
	}
	if v, _ := attrS(got["TOK#"+toks[0].Hash], "usedAt"); v != "2031-05-06T07:09:09.123000000Z" {
		t.Errorf("after Claim: token usedAt = %q, want 2031-05-06T07:09:09.123000000Z", v)
	}
	if _, ok := got["TOK#"+toks[1].Hash]["usedAt"]; ok {
		t.Errorf("after Claim: an unused token has usedAt")
	}

	if err := s.MarkDelivered(ctx, r.ID); err != nil {
		t.Fatalf("MarkDelivered: %v", err)
	}
	req = items(t, client, table)["REQ#"+r.ID]
	if _, ok := req[dynamo.UndeliveredKeyAttribute]; ok {
		t.Errorf("after MarkDelivered: undeliveredPK still present")
	}
}

// TestDeliveryLeaseItemShape checks that the delivery lease is one attribute
// that leaves the sparse indexes alone: a leased outcome stays in the
// undelivered index, and delivering it removes the lease with the index key.
func TestDeliveryLeaseItemShape(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	r, toks := storetest.Fixture(storetest.Base)
	gone, goneToks := storetest.Fixture(storetest.Base.Add(time.Minute))
	for _, f := range []struct {
		r    *approval.Request
		toks []approval.Token
	}{{r, toks}, {gone, goneToks}} {
		if err := s.CreateRequest(ctx, storetest.Clone(f.r), f.toks); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
		d := approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: storetest.Base.Add(2 * time.Minute)}
		if _, err := s.Claim(ctx, f.toks[0].Hash, d); err != nil {
			t.Fatalf("Claim: %v", err)
		}
	}
	before := items(t, client, table)
	now := storetest.Base.Add(3 * time.Minute)
	for _, id := range []string{r.ID, gone.ID} {
		if err := s.LeaseDelivery(ctx, id, now, now.Add(time.Minute)); err != nil {
			t.Fatalf("LeaseDelivery: %v", err)
		}
	}
	after := items(t, client, table)
	req := after["REQ#"+r.ID]
	if v, _ := attrS(req, "deliveryLeaseUntil"); v != "2031-05-06T07:12:09.123000000Z" {
		t.Errorf("leased request: deliveryLeaseUntil = %q, want fixed-width UTC 2031-05-06T07:12:09.123000000Z", v)
	}
	// Nothing but the lease changed: same index keys, same everything else.
	for pk, it := range after {
		old := before[pk]
		for name, v := range it {
			if name == "deliveryLeaseUntil" {
				continue
			}
			if !slices.Equal(slices.Sorted(slices.Values(allStrings(old[name]))), slices.Sorted(slices.Values(allStrings(v)))) ||
				attrN(old, name) != attrN(it, name) {
				t.Errorf("%s: attribute %s changed by LeaseDelivery", pk, name)
			}
		}
		if len(it) != len(old)+boolInt(strings.HasPrefix(pk, "REQ#")) {
			t.Errorf("%s: %d attributes after LeaseDelivery, want %d", pk, len(it), len(old)+boolInt(strings.HasPrefix(pk, "REQ#")))
		}
	}
	if v, _ := attrS(req, dynamo.UndeliveredKeyAttribute); v != "UNDELIVERED" {
		t.Errorf("leased request: undeliveredPK = %q, want UNDELIVERED", v)
	}
	undelivered, err := s.ListUndelivered(ctx)
	if err != nil {
		t.Fatalf("ListUndelivered: %v", err)
	}
	if got := len(undelivered); got != 2 {
		t.Errorf("ListUndelivered of two leased outcomes: got %d requests, want 2", got)
	}

	if err := s.MarkDelivered(ctx, r.ID); err != nil {
		t.Fatalf("MarkDelivered: %v", err)
	}
	if _, err := s.MarkWorkflowGone(ctx, gone.ID); err != nil {
		t.Fatalf("MarkWorkflowGone: %v", err)
	}
	after = items(t, client, table)
	for _, id := range []string{r.ID, gone.ID} {
		for _, name := range []string{"deliveryLeaseUntil", dynamo.UndeliveredKeyAttribute} {
			if _, ok := after["REQ#"+id][name]; ok {
				t.Errorf("REQ#%s: %s still present once delivered", id, name)
			}
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestIndexesAreSparse queries the indexes directly.
func TestIndexesAreSparse(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	a, aToks := storetest.Fixture(storetest.Base)
	b, bToks := storetest.Fixture(storetest.Base.Add(time.Minute))
	for _, f := range []struct {
		r    *approval.Request
		toks []approval.Token
	}{{a, aToks}, {b, bToks}} {
		if err := s.CreateRequest(ctx, f.r, f.toks); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
	}
	if _, err := s.Expire(ctx, a.ID, a.ExpiresAt); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	query := func(index, attr, value string) []string {
		out, err := client.Query(ctx, &dynamodb.QueryInput{
			TableName:                 aws.String(table),
			IndexName:                 aws.String(index),
			KeyConditionExpression:    aws.String("#k = :v"),
			ExpressionAttributeNames:  map[string]string{"#k": attr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: value}},
		})
		if err != nil {
			t.Fatalf("Query %s: %v", index, err)
		}
		var pks []string
		for _, it := range out.Items {
			v, _ := attrS(it, "pk")
			pks = append(pks, v)
		}
		return pks
	}
	if diff := cmp.Diff([]string{"REQ#" + b.ID}, query(dynamo.PendingIndex, dynamo.PendingKeyAttribute, "PENDING")); diff != "" {
		t.Errorf("pending index (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"REQ#" + a.ID}, query(dynamo.UndeliveredIndex, dynamo.UndeliveredKeyAttribute, "UNDELIVERED")); diff != "" {
		t.Errorf("undelivered index (-want +got):\n%s", diff)
	}
}

// TestListsPaginate lists more requests than one query page and one batch
// read hold.
func TestListsPaginate(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	dynamo.SetPaging(s, 2, 3)
	var rs []*approval.Request
	var toks [][]approval.Token
	for i := range 8 {
		r, tk := storetest.Fixture(storetest.Base.Add(time.Duration(i) * time.Minute))
		if err := s.CreateRequest(ctx, r, tk); err != nil {
			t.Fatalf("CreateRequest: %v", err)
		}
		rs, toks = append(rs, r), append(toks, tk)
	}
	for _, i := range []int{1, 4, 6} {
		d := approval.Decision{Choice: approval.Reject, By: "bob@example.com", Channel: approval.ChannelSlack, At: rs[i].CreatedAt.Add(time.Second)}
		if _, err := s.Claim(ctx, toks[i][2].Hash, d); err != nil {
			t.Fatalf("Claim: %v", err)
		}
	}
	pending, err := s.ListPending(ctx)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	want := []string{rs[7].ID, rs[5].ID, rs[3].ID, rs[2].ID, rs[0].ID}
	if diff := cmp.Diff(want, ids(pending)); diff != "" {
		t.Errorf("ListPending, newest first (-want +got):\n%s", diff)
	}
	undelivered, err := s.ListUndelivered(ctx)
	if err != nil {
		t.Fatalf("ListUndelivered: %v", err)
	}
	want = []string{rs[1].ID, rs[4].ID, rs[6].ID}
	if diff := cmp.Diff(want, ids(undelivered)); diff != "" {
		t.Errorf("ListUndelivered, oldest first (-want +got):\n%s", diff)
	}
}

// TestListIgnoresStaleIndexEntries: the lists trust the items, not the index
// (which is only eventually consistent in DynamoDB).
func TestListIgnoresStaleIndexEntries(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	r, toks := storetest.Fixture(storetest.Base)
	if err := s.CreateRequest(ctx, r, toks); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	// An item still in the pending index though no longer pending, as an
	// index lagging behind its table would show it.
	_, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(table),
		Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "REQ#" + r.ID}},
		UpdateExpression:          aws.String("SET #s = :approved"),
		ExpressionAttributeNames:  map[string]string{"#s": "status"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":approved": &types.AttributeValueMemberS{Value: "approved"}},
	})
	if err != nil {
		t.Fatalf("UpdateItem: %v", err)
	}
	got, err := s.ListPending(ctx)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	if len(got) != 0 {
		t.Errorf("ListPending = %v, want none: the item is no longer pending", ids(got))
	}
}

// conflictOnce cancels the first transaction as DynamoDB does when another
// transaction is writing the same items.
type conflictOnce struct {
	dynamo.API
	calls atomic.Int32
}

func (c *conflictOnce) TransactWriteItems(ctx context.Context, in *dynamodb.TransactWriteItemsInput, opts ...func(*dynamodb.Options)) (*dynamodb.TransactWriteItemsOutput, error) {
	if c.calls.Add(1) == 1 {
		return nil, &types.TransactionCanceledException{
			Message:             aws.String("Transaction cancelled"),
			CancellationReasons: []types.CancellationReason{{Code: aws.String("None")}, {Code: aws.String("TransactionConflict")}},
		}
	}
	return c.API.TransactWriteItems(ctx, in, opts...)
}

func TestClaimRetriesTransactionConflict(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	r, toks := storetest.Fixture(storetest.Base)
	if err := dynamo.New(client, table).CreateRequest(ctx, r, toks); err != nil {
		t.Fatalf("CreateRequest: %v", err)
	}
	db := &conflictOnce{API: client}
	s := dynamo.NewWithAPI(db, table)
	d := approval.Decision{Choice: approval.Approve, By: "alice@example.com", Channel: approval.ChannelEmail, At: storetest.Base.Add(time.Minute)}
	got, err := s.Claim(ctx, toks[0].Hash, d)
	if err != nil {
		t.Fatalf("Claim after a transaction conflict: %v, want success on retry", err)
	}
	if got.Status != approval.StatusApproved {
		t.Errorf("status = %q, want approved", got.Status)
	}
	if n := db.calls.Load(); n != 2 {
		t.Errorf("TransactWriteItems calls = %d, want 2 (the conflicting claim, its retry)", n)
	}
}

func TestMissingTableIsNotNotFound(t *testing.T) {
	client, _ := newTable(t)
	s := dynamo.New(client, "no-such-table")
	_, err := s.GetRequest(t.Context(), "abc")
	if err == nil || errors.Is(err, approval.ErrNotFound) {
		t.Errorf("GetRequest on a missing table: got %v, want an error that is not ErrNotFound", err)
	}
}

// TestCreateTable checks the table definition the CDK app must match.
func TestCreateTable(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("DescribeTable: %v", err)
	}
	type index struct{ Name, Hash, Range, Projection string }
	var got []index
	for _, g := range out.Table.GlobalSecondaryIndexes {
		got = append(got, index{aws.ToString(g.IndexName), aws.ToString(g.KeySchema[0].AttributeName), aws.ToString(g.KeySchema[1].AttributeName), string(g.Projection.ProjectionType)})
	}
	want := []index{
		{"pending", "pendingPK", "createdAt", "KEYS_ONLY"},
		{"undelivered", "undeliveredPK", "createdAt", "KEYS_ONLY"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("indexes (-want +got):\n%s", diff)
	}
	if k := out.Table.KeySchema; len(k) != 1 || aws.ToString(k[0].AttributeName) != "pk" || k[0].KeyType != types.KeyTypeHash {
		t.Errorf("key schema = %+v, want pk HASH only", k)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatalf("DescribeTimeToLive: %v", err)
	}
	if d := ttl.TimeToLiveDescription; d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != "ttl" {
		t.Errorf("time to live = %s on %q, want ENABLED on ttl", d.TimeToLiveStatus, aws.ToString(d.AttributeName))
	}
}

func ids(rs []*approval.Request) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }
