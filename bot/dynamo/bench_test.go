package dynamo_test

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/bot/dynamo"
	"approvalbot/internal/testing/dynamotest"
	"approvalbot/internal/testing/mototest"
)

// counting is a DynamoDB client that counts its calls by operation.
type counting struct {
	dynamo.API
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls[op]++
}

func (c *counting) Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error) {
	c.count("Query")
	return c.API.Query(ctx, in, opts...)
}

func (c *counting) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	c.count("BatchGetItem")
	return c.API.BatchGetItem(ctx, in, opts...)
}

func (c *counting) GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error) {
	c.count("GetItem")
	return c.API.GetItem(ctx, in, opts...)
}

func (c *counting) PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	c.count("PutItem")
	return c.API.PutItem(ctx, in, opts...)
}

func (c *counting) Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error) {
	c.count("Scan")
	return c.API.Scan(ctx, in, opts...)
}

// take returns the calls counted since the last take, and starts again.
func (c *counting) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = map[string]int{}
	return out
}

func describeCalls(calls map[string]int) string {
	var parts []string
	total := 0
	for op, n := range calls {
		parts = append(parts, fmt.Sprintf("%s %d", op, n))
		total += n
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d calls (%s)", total, strings.Join(parts, ", "))
}

// benchPending is how many pending requests BenchmarkListCalls10k stores
// (and a tenth as many closed ones).
var benchPending = flag.Int("bench.pending", 10_000, "pending requests of BenchmarkListCalls10k")

// BenchmarkListCalls10k counts the DynamoDB calls of the lists with 10,000
// requests pending (and 1,000 closed) on moto: a page of 50 of the pending
// list, first and deep; of the closed list; of the pending list filtered by
// an approver of one request in ten; and the sweep's batch of 100 due
// requests. It reports calls per operation; moto's timings say nothing of
// DynamoDB's.
//
//	go test -run '^$' -bench ListCalls10k -benchtime 1x -timeout 2h ./bot/dynamo/
//
// Storing the requests in moto takes most of the time (minutes).
func BenchmarkListCalls10k(b *testing.B) {
	ctx := context.Background()
	client, table := newBenchTable(b)
	st := dynamo.New(client, table)
	start := storetest.Base.Add(-24 * time.Hour)
	pending := *benchPending
	var (
		items []map[string]types.AttributeValue
		reqs  []*approval.Request
	)
	for i := range pending + pending/10 {
		r := quiet(storetest.Fixture(start.Add(time.Duration(i) * time.Second)))
		if i%10 == 0 {
			r.Approvers = append(r.Approvers, "dana@example.com")
		}
		if i >= pending {
			r = quiet(storetest.Closed(r, start.Add(time.Duration(i)*time.Second+time.Minute)))
		}
		reqs = append(reqs, r)
		item, err := dynamo.ItemOf(st, r)
		if err != nil {
			b.Fatal(err)
		}
		items = append(items, item)
	}
	t0 := time.Now()
	for stored := 0; len(items) > 0; stored += 25 {
		if stored%2000 == 0 {
			b.Logf("stored %d requests in %v", stored, time.Since(t0).Round(time.Second))
		}
		n := min(25, len(items))
		var reqs []types.WriteRequest
		for _, it := range items[:n] {
			reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: it}})
		}
		items = items[n:]
		for len(reqs) > 0 {
			out, err := client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{table: reqs}})
			if err != nil {
				b.Fatal(err)
			}
			reqs = out.UnprocessedItems[table]
		}
	}
	c := &counting{API: client, calls: map[string]int{}}
	cs := dynamo.NewWithAPI(c, table)
	report := func(name string, want int, fn func() (int, error)) {
		b.Helper()
		c.take()
		t0 := time.Now()
		got, err := fn()
		d := time.Since(t0)
		calls := c.take()
		if err != nil || got != want {
			b.Fatalf("%s: %d requests, %v; want %d", name, got, err, want)
		}
		total := 0
		for _, n := range calls {
			total += n
		}
		b.ReportMetric(float64(total), "calls-"+name)
		b.Logf("%-28s %3d requests: %s, %v on moto", name, got, describeCalls(calls), d.Round(time.Millisecond))
	}
	for b.Loop() {
		report("pending-first-page", 50, func() (int, error) {
			rs, _, err := cs.List(ctx, approval.Query{Limit: 50})
			return len(rs), err
		})
		// The cursor after the request that ends page 100 (the 5,000th
		// newest), as paging there would give it.
		cursor := dynamo.CursorAfter(reqs[max(pending-5000, 50)])
		report("pending-page-101", 50, func() (int, error) {
			rs, _, err := cs.List(ctx, approval.Query{Limit: 50, Cursor: cursor})
			return len(rs), err
		})
		report("closed-first-page", 50, func() (int, error) {
			rs, _, err := cs.List(ctx, approval.Query{Status: approval.StatusClosed, Limit: 50})
			return len(rs), err
		})
		report("pending-of-approver", 20, func() (int, error) {
			rs, _, err := cs.List(ctx, approval.Query{Approver: approval.Identity{ID: "dana@example.com"}, Limit: 50})
			return len(rs), err
		})
		report("due-batch-of-100", 100, func() (int, error) {
			rs, err := cs.ListDue(ctx, start.Add(48*time.Hour), 100)
			return len(rs), err
		})
	}
}

// newBenchTable is newTable for a benchmark.
func newBenchTable(b *testing.B) (*dynamodb.Client, string) {
	b.Helper()
	srv := mototest.Start(b)
	client := dynamodb.NewFromConfig(srv.Config(b))
	name := mototest.UniqueName("approvals-bench-")
	if err := dynamotest.CreateTable(context.Background(), client, name); err != nil {
		b.Fatalf("CreateTable: %v", err)
	}
	return client, name
}
