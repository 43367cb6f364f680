package dynamo_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
func fixtureWithRawTokens(createdAt time.Time) (*approval.Request, []string) {
	r := storetest.Fixture(createdAt)
	var raws []string
	for i := range r.Recipients {
		raw := approval.NewRequestToken(r.ID)
		raws = append(raws, raw)
		r.Recipients[i].TokenHash = approval.HashToken(raw)
	}
	return r, raws
}

// quiet marks every effect of r done: nothing is due on it but its expiry.
func quiet(r *approval.Request) *approval.Request {
	for i := range r.Effects {
		r.Effects[i].State, r.Effects[i].Lease = approval.EffectDone, ""
	}
	r.Reminders = approval.Reminders{} // no timer due either
	return r
}

func mustCreate(t *testing.T, s approval.Store, r *approval.Request) {
	t.Helper()
	if err := s.CreateRequest(t.Context(), r); err != nil {
		t.Fatalf("CreateRequest %s: %v", r.ID, err)
	}
}

func mustUpdate(t *testing.T, s approval.Store, r *approval.Request) {
	t.Helper()
	if err := s.UpdateRequest(t.Context(), r); err != nil {
		t.Fatalf("UpdateRequest %s: %v", r.ID, err)
	}
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

// allStrings collects every string inside an attribute value.
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

// firstVersionAttributes are attributes only the first version wrote.
// (undeliveredPK, which it wrote too, now keys the closed requests.)
var firstVersionAttributes = []string{"delivered", "deliveryLeaseUntil", "policy"}

// TestItemShape checks what lands in the table: one item per request with its
// version, time to live, the sharded index keys through a request's life, no
// attribute of the first version, and no raw token anywhere.
func TestItemShape(t *testing.T) {
	client, table := newTable(t)
	s := dynamo.New(client, table)
	s.Retention = 48 * time.Hour

	r, raws := fixtureWithRawTokens(storetest.Base)
	mustCreate(t, s, r.Clone())
	got := items(t, client, table)
	if len(got) != 1 {
		t.Errorf("table holds %d items, want 1 (the request)", len(got))
	}
	req, ok := got["REQ#"+r.ID]
	if !ok {
		t.Fatalf("no item REQ#%s; keys: %v", r.ID, slices.Collect(maps.Keys(got)))
	}
	wantTTL := strconv.FormatInt(r.ExpiresAt.Add(48*time.Hour).Unix(), 10)
	if got := attrN(req, dynamo.TTLAttribute); got != wantTTL {
		t.Errorf("ttl = %q, want %q (expiry + retention, epoch seconds)", got, wantTTL)
	}
	if got := attrN(req, dynamo.VersionAttribute); got != "1" {
		t.Errorf("version = %q, want 1", got)
	}
	for name, v := range req {
		for _, sv := range allStrings(v) {
			for _, raw := range raws {
				if strings.Contains(sv, raw) || strings.Contains(sv, strings.SplitN(raw, ".", 2)[1]) {
					t.Errorf("attribute %s holds a raw token", name)
				}
			}
		}
	}
	if v, _ := attrS(req, dynamo.CreatedAtAttribute); v != "2031-05-06T07:08:09.123000000Z" {
		t.Errorf("createdAt = %q, want fixed-width UTC 2031-05-06T07:08:09.123000000Z", v)
	}
	n := dynamo.ShardOf(r.ID)
	if v, _ := attrS(req, dynamo.PendingKeyAttribute); v != fmt.Sprintf("PENDING#%d", n) {
		t.Errorf("pending request: pendingPK = %q, want PENDING#%d", v, n)
	}
	if v, _ := attrS(req, dynamo.DueKeyAttribute); v != fmt.Sprintf("DUE#%d", n) {
		t.Errorf("pending request: dueShard = %q, want DUE#%d", v, n)
	}
	// Due first when bob's email may be retried: 4 s after creation.
	if v, _ := attrS(req, dynamo.DueAtAttribute); v != "2031-05-06T07:08:13.123000000Z" {
		t.Errorf("pending request: dueAt = %q, want 2031-05-06T07:08:13.123000000Z", v)
	}
	for _, name := range append(firstVersionAttributes, dynamo.UndeliveredKeyAttribute) {
		if _, ok := req[name]; ok {
			t.Errorf("new request has the attribute %s", name)
		}
	}

	// Closed, delivery still to run: out of pending, still due.
	r.Version = 1
	c := quiet(storetest.Closed(r, storetest.Base.Add(5*time.Minute)))
	c.Effects[len(c.Effects)-2] = approval.Effect{Kind: approval.EffectDeliver, State: approval.EffectPending, Attempts: 1, Lease: "l", LeaseUntil: storetest.Base.Add(7 * time.Minute)}
	mustUpdate(t, s, c)
	req = items(t, client, table)["REQ#"+r.ID]
	if _, ok := req[dynamo.PendingKeyAttribute]; ok {
		t.Errorf("closed request: pendingPK still present")
	}
	if v, _ := attrS(req, dynamo.DueAtAttribute); v != "2031-05-06T07:15:09.123000000Z" {
		t.Errorf("closed request with a delivery to run: dueAt = %q, want 2031-05-06T07:15:09.123000000Z (its lease's end)", v)
	}
	if got := attrN(req, dynamo.VersionAttribute); got != "2" {
		t.Errorf("version after one update = %q, want 2", got)
	}
	if v, _ := attrS(req, dynamo.UndeliveredKeyAttribute); v != fmt.Sprintf("CLOSED#%d", n) {
		t.Errorf("closed request: undeliveredPK = %q, want CLOSED#%d (the closed index)", v, n)
	}
	if v, _ := attrS(req, "decisionComment"); v != "not today" {
		t.Errorf("decisionComment = %q, want %q", v, "not today")
	}

	// Everything done: in no index but the closed one.
	quiet(c)
	mustUpdate(t, s, c)
	req = items(t, client, table)["REQ#"+r.ID]
	for _, name := range []string{dynamo.PendingKeyAttribute, dynamo.DueKeyAttribute, dynamo.DueAtAttribute} {
		if _, ok := req[name]; ok {
			t.Errorf("closed request with nothing to do: %s still present", name)
		}
	}
	if v, _ := attrS(req, dynamo.UndeliveredKeyAttribute); v != fmt.Sprintf("CLOSED#%d", n) {
		t.Errorf("closed request with nothing to do: undeliveredPK = %q, want CLOSED#%d", v, n)
	}
}

// queryPartitions returns the keys in partitions of index, in index order.
func queryPartitions(t *testing.T, client *dynamodb.Client, table, index, attr string, values ...string) []string {
	t.Helper()
	var pks []string
	for _, v := range values {
		p := dynamodb.NewQueryPaginator(client, &dynamodb.QueryInput{
			TableName:                 aws.String(table),
			IndexName:                 aws.String(index),
			KeyConditionExpression:    aws.String("#k = :v"),
			ExpressionAttributeNames:  map[string]string{"#k": attr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: v}},
		})
		for p.HasMorePages() {
			page, err := p.NextPage(t.Context())
			if err != nil {
				t.Fatalf("Query %s %s: %v", index, v, err)
			}
			for _, it := range page.Items {
				pk, _ := attrS(it, "pk")
				pks = append(pks, pk)
			}
		}
	}
	return pks
}

func shards(prefix string) []string {
	var out []string
	for n := range dynamo.Shards {
		out = append(out, prefix+strconv.Itoa(n))
	}
	return out
}

// TestIndexesAreSparse queries the indexes directly: a request is in the
// pending index only while pending, in the due index only while something is
// due on it, and never in the first version's partitions.
func TestIndexesAreSparse(t *testing.T) {
	client, table := newTable(t)
	s := dynamo.New(client, table)
	pending := quiet(storetest.Fixture(storetest.Base))
	delivering := storetest.Fixture(storetest.Base.Add(time.Second))
	done := storetest.Fixture(storetest.Base.Add(2 * time.Second))
	for _, r := range []*approval.Request{pending, delivering, done} {
		mustCreate(t, s, r)
	}
	c := quiet(storetest.Closed(delivering, storetest.Base.Add(time.Minute)))
	c.Effects[len(c.Effects)-1].State = approval.EffectPending
	mustUpdate(t, s, c)
	mustUpdate(t, s, quiet(storetest.Closed(done, storetest.Base.Add(time.Minute))))

	sorted := func(pks []string) []string { slices.Sort(pks); return pks }
	want := []string{"REQ#" + pending.ID}
	if diff := cmp.Diff(want, queryPartitions(t, client, table, dynamo.PendingIndex, dynamo.PendingKeyAttribute, shards("PENDING#")...)); diff != "" {
		t.Errorf("pending index (-want +got):\n%s", diff)
	}
	want = sorted([]string{"REQ#" + pending.ID, "REQ#" + delivering.ID})
	if diff := cmp.Diff(want, sorted(queryPartitions(t, client, table, dynamo.DueIndex, dynamo.DueKeyAttribute, shards("DUE#")...))); diff != "" {
		t.Errorf("due index (-want +got):\n%s", diff)
	}
	if got := queryPartitions(t, client, table, dynamo.PendingIndex, dynamo.PendingKeyAttribute, "PENDING"); len(got) != 0 {
		t.Errorf("the first version's pending partition holds %v, want nothing", got)
	}
	if got := queryPartitions(t, client, table, dynamo.UndeliveredIndex, dynamo.UndeliveredKeyAttribute, "UNDELIVERED"); len(got) != 0 {
		t.Errorf("the first version's undelivered partition holds %v, want nothing", got)
	}
}

// idsInShard returns n new request IDs that all fall into shard 0, so that a
// test can put equal sort keys into one index partition.
func idsInShard(n int) []string {
	var out []string
	for len(out) < n {
		if id := approval.NewID(); dynamo.ShardOf(id) == 0 {
			out = append(out, id)
		}
	}
	return out
}

// TestListsPaginate lists more requests than one query page and one batch
// read hold, with requests created at the same instant in one shard and in
// several, across pages of ListPending.
func TestListsPaginate(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	dynamo.SetPaging(s, 1, 2)
	var all []*approval.Request
	sameShard := idsInShard(4)
	for i := range 12 {
		r := quiet(storetest.Fixture(storetest.Base.Add(time.Duration(i/3) * time.Second)))
		if i < 4 {
			r.ID = sameShard[i] // 0, 1, 2 created together, and 3 in the next second
		}
		r.ExpiresAt = storetest.Base.Add(time.Hour + time.Duration(i)*time.Minute)
		mustCreate(t, s, r)
		all = append(all, r)
	}
	for _, i := range []int{1, 7} {
		mustUpdate(t, s, quiet(storetest.Closed(all[i], storetest.Base.Add(time.Minute))))
	}
	var want []string
	for i := len(all) - 1; i >= 0; i-- {
		if i != 1 && i != 7 {
			want = append(want, all[i].ID)
		}
	}
	slices.SortFunc(want, func(a, b string) int {
		ra, rb := find(all, a), find(all, b)
		if c := rb.CreatedAt.Compare(ra.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b, a)
	})
	var got []string
	cursor := ""
	for page := 0; ; page++ {
		rs, next, err := s.ListPending(ctx, cursor, 2)
		if err != nil {
			t.Fatalf("ListPending page %d: %v", page, err)
		}
		if len(rs) > 2 {
			t.Fatalf("ListPending page %d: %d requests, limit 2", page, len(rs))
		}
		got = append(got, ids(rs)...)
		if next == "" {
			break
		}
		if page > 10 {
			t.Fatal("ListPending does not end")
		}
		cursor = next
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListPending over all pages: newest first, then by ID descending (-want +got):\n%s", diff)
	}

	// Due: the pending ones, by expiry; the closed ones have nothing to do.
	due, err := s.ListDue(ctx, storetest.Base.Add(2*time.Hour), 4)
	if err != nil {
		t.Fatalf("ListDue: %v", err)
	}
	if diff := cmp.Diff([]string{all[0].ID, all[2].ID, all[3].ID, all[4].ID}, ids(due)); diff != "" {
		t.Errorf("ListDue with limit 4, earliest first (-want +got):\n%s", diff)
	}
}

func find(rs []*approval.Request, id string) *approval.Request {
	for _, r := range rs {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func TestListPendingInvalidCursor(t *testing.T) {
	client, table := newTable(t)
	s := dynamo.New(client, table)
	for _, c := range []string{"not base64!", "bm8gc3BhY2U", "MjAzMS0wNS0wNiBhYmM"} {
		if _, _, err := s.ListPending(t.Context(), c, 10); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("ListPending with cursor %q: got %v, want ErrInvalid", c, err)
		}
	}
}

// TestListsIgnoreStaleIndexEntries: the lists trust the items, not the index
// (which is only eventually consistent in DynamoDB).
func TestListsIgnoreStaleIndexEntries(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	s := dynamo.New(client, table)
	decided := quiet(storetest.Fixture(storetest.Base))
	notDue := quiet(storetest.Fixture(storetest.Base.Add(time.Second)))
	mustCreate(t, s, decided)
	mustCreate(t, s, notDue)
	set := func(id, attr, value string) {
		t.Helper()
		_, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:                 aws.String(table),
			Key:                       map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "REQ#" + id}},
			UpdateExpression:          aws.String("SET #a = :v"),
			ExpressionAttributeNames:  map[string]string{"#a": attr},
			ExpressionAttributeValues: map[string]types.AttributeValue{":v": &types.AttributeValueMemberS{Value: value}},
		})
		if err != nil {
			t.Fatalf("UpdateItem: %v", err)
		}
	}
	// An item still in the pending index though no longer pending, and one
	// in the due index earlier than it is due, as an index lagging behind its
	// table would show them.
	set(decided.ID, "status", "approved")
	set(notDue.ID, dynamo.DueAtAttribute, "2031-05-06T07:08:09.123000000Z")
	got, _, err := s.ListPending(ctx, "", 10)
	if err != nil {
		t.Fatalf("ListPending: %v", err)
	}
	if diff := cmp.Diff([]string{notDue.ID}, ids(got)); diff != "" {
		t.Errorf("ListPending: the approved item is not pending (-want +got):\n%s", diff)
	}
	due, err := s.ListDue(ctx, storetest.Base.Add(time.Minute), 10)
	if err != nil {
		t.Fatalf("ListDue: %v", err)
	}
	if len(due) != 0 {
		t.Errorf("ListDue = %v, want none: nothing is due before the expiry", ids(due))
	}
}

// resend sends every PutItem twice, as the SDK does when the answer to a
// write that took effect is lost, and returns the second answer.
type resend struct {
	dynamo.API
	calls atomic.Int32
}

func (c *resend) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.calls.Add(1)
	if _, err := c.API.PutItem(ctx, in, opts...); err != nil {
		return nil, err
	}
	return c.API.PutItem(ctx, in, opts...)
}

// TestWriteSentTwice: a write sent again after it took effect fails its
// condition against its own result; the store recognises it as done.
func TestWriteSentTwice(t *testing.T) {
	ctx := t.Context()
	client, table := newTable(t)
	db := &resend{API: client}
	s := dynamo.NewWithAPI(db, table)
	r := storetest.Fixture(storetest.Base)
	c := r.Clone()
	if err := s.CreateRequest(ctx, c); err != nil || c.Version != 1 {
		t.Fatalf("CreateRequest sent twice: %v, version %d; want success at version 1", err, c.Version)
	}
	c.Title = "changed"
	if err := s.UpdateRequest(ctx, c); err != nil || c.Version != 2 {
		t.Fatalf("UpdateRequest sent twice: %v, version %d; want success at version 2", err, c.Version)
	}
	if n := db.calls.Load(); n != 2 {
		t.Errorf("PutItem calls = %d, want 2", n)
	}
	got, err := s.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, got, storetest.CmpOptions); diff != "" {
		t.Errorf("stored request (-want +got):\n%s", diff)
	}
	// Another writer's change at the same version is still refused.
	stale := r.Clone()
	stale.Version = 1
	if err := s.UpdateRequest(ctx, stale); !errors.Is(err, approval.ErrConflict) {
		t.Errorf("UpdateRequest over a stale version: got %v, want ErrConflict", err)
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
	slices.SortFunc(got, func(a, b index) int { return strings.Compare(a.Name, b.Name) })
	want := []index{
		{"due", "dueShard", "dueAt", "KEYS_ONLY"},
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
