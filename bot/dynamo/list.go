package dynamo

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/cenkalti/backoff/v5"

	"approvalbot/bot/approval"
)

// Limits of the lists.
const (
	// defaultLimit is the page size of a list asked for limit 0 or less:
	// a list never reads everything.
	defaultLimit = 100
	// legacyScanMax bounds how many keys ListDue reads from each of the first
	// version's index partitions per call. Those partitions only shrink: no
	// item enters them any more, and every write of an item takes it out.
	legacyScanMax = 1000
	// batchGetMax is the most keys one BatchGetItem call may ask for.
	batchGetMax = 100
	// maxAttempts bounds how often a BatchGetItem with unprocessed keys is
	// sent again.
	maxAttempts = 8
)

// entry is one index entry: a request's key and the index's sort key value.
type entry struct {
	pk, id, sort string
}

// newestFirst orders entries by sort key descending, then ID descending.
func newestFirst(a, b entry) int {
	if c := strings.Compare(b.sort, a.sort); c != 0 {
		return c
	}
	return strings.Compare(b.id, a.id)
}

// earliestFirst orders entries by sort key ascending, then ID ascending.
func earliestFirst(a, b entry) int { return -newestFirst(a, b) }

// maxListRounds bounds how many rounds of index queries and item reads one
// List call makes to fill a page whose filters (approver, requester, a closed
// status) the index cannot apply: after that it answers a short page, with
// the cursor of the last entry it examined.
const maxListRounds = 4

// List returns up to q.Limit requests matching q (100 for a limit of 0 or
// less), newest first, after q.Cursor, and the cursor of the next page (""
// after the last). Pending requests are read through the pending index (and
// the first version's partition), closed ones through the closed partitions
// of the "undelivered" index. Each round queries every shard of the index in
// parallel for the next limit+1 entries after the cursor (and within Since
// and Until, as a condition on the sort key), merges them, and reads the
// limit newest with BatchGetItem; the items decide (status, approver,
// requester: the index holds keys only). A page short of the limit because
// the items did not match is filled by further rounds, at most maxListRounds.
// The cursor is the creation time and ID of the last entry examined,
// encoded.
func (s *Store) List(ctx context.Context, q approval.Query) ([]*approval.Request, string, error) {
	q = q.Normalized()
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	var after *entry
	if q.Cursor != "" {
		e, err := decodeCursor(q.Cursor)
		if err != nil {
			return nil, "", err
		}
		after = &e
	}
	var parts []string
	index, keyAttr := PendingIndex, PendingKeyAttribute
	if q.Status == approval.ListStatus(approval.StatusPending) {
		parts = append(parts, legacyPending)
		for n := range Shards {
			parts = append(parts, pendingShard(n))
		}
	} else {
		index, keyAttr = UndeliveredIndex, UndeliveredKeyAttribute
		for n := range Shards {
			parts = append(parts, closedShard(n))
		}
	}
	lo, hi := "", ""
	if !q.Since.IsZero() {
		lo = formatTime(q.Since)
	}
	if !q.Until.IsZero() {
		hi = formatTime(q.Until.Add(-time.Nanosecond))
	}
	var out []*approval.Request
	for round := 0; round < maxListRounds; round++ {
		upper := hi
		if after != nil && (upper == "" || after.sort < upper) {
			upper = after.sort
		}
		var qs []indexQuery
		for _, part := range parts {
			qs = append(qs, indexQuery{
				index: index, keyAttr: keyAttr, key: part, sortAttr: CreatedAtAttribute, order: newestFirst,
				lo: lo, hi: upper, after: after, n: limit + 1,
			})
		}
		found, err := s.queryAll(ctx, qs)
		if err != nil {
			return nil, "", fmt.Errorf("list %s requests: %w", q.Status, err)
		}
		var page []entry
		for _, f := range found {
			page = append(page, f...)
		}
		slices.SortFunc(page, newestFirst)
		more := len(page) > limit
		page = page[:min(limit, len(page))]
		rs, err := s.read(ctx, page, q.Match)
		if err != nil {
			return nil, "", fmt.Errorf("list %s requests: %w", q.Status, err)
		}
		for _, r := range rs {
			if len(out) == limit {
				// Full before the last match read: go on after the last kept.
				return out, cursorAfter(out[limit-1]), nil
			}
			out = append(out, r)
		}
		if !more {
			return out, "", nil
		}
		if len(out) == limit {
			return out, cursorAfter(out[limit-1]), nil
		}
		after = &page[len(page)-1]
	}
	return out, encodeCursor(*after), nil
}

// ListPending is List for the pending requests.
func (s *Store) ListPending(ctx context.Context, cursor string, limit int) ([]*approval.Request, string, error) {
	return s.List(ctx, approval.Query{Cursor: cursor, Limit: limit})
}

// ListDue returns up to limit requests (100 for limit 0 or less) whose DueAt
// is set and at or before now, earliest first. It queries the due index's
// shards in parallel for the limit earliest entries due at now each, merges
// them, and reads the limit earliest. It also reads, up to legacyScanMax keys
// each, the first version's "UNDELIVERED" and "PENDING" index partitions and
// keeps those of their requests that are due (an outcome to deliver, an
// expiry passed), so that the sweep writes them in the current form.
func (s *Store) ListDue(ctx context.Context, now time.Time, limit int) ([]*approval.Request, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	qs := []indexQuery{
		{index: UndeliveredIndex, keyAttr: UndeliveredKeyAttribute, key: legacyUndelivered, sortAttr: CreatedAtAttribute, order: earliestFirst, n: legacyScanMax},
		{index: PendingIndex, keyAttr: PendingKeyAttribute, key: legacyPending, sortAttr: CreatedAtAttribute, order: earliestFirst, n: legacyScanMax},
	}
	for n := range Shards {
		qs = append(qs, indexQuery{
			index: DueIndex, keyAttr: DueKeyAttribute, key: dueShard(n), sortAttr: DueAtAttribute,
			cond: "<=", bound: formatTime(now), order: earliestFirst, n: limit,
		})
	}
	found, err := s.queryAll(ctx, qs)
	if err != nil {
		return nil, fmt.Errorf("list due: %w", err)
	}
	legacy := append(found[0], found[1]...)
	var due []entry
	for _, f := range found[2:] {
		due = append(due, f...)
	}
	slices.SortFunc(due, earliestFirst)
	due = append(due[:min(limit, len(due))], legacy...)
	rs, err := s.read(ctx, due, func(r *approval.Request) bool {
		at := r.DueAt()
		return !at.IsZero() && !at.After(now)
	})
	if err != nil {
		return nil, fmt.Errorf("list due: %w", err)
	}
	slices.SortFunc(rs, func(a, b *approval.Request) int {
		return cmp.Or(a.DueAt().Compare(b.DueAt()), strings.Compare(a.ID, b.ID))
	})
	return rs[:min(limit, len(rs))], nil
}

// indexQuery asks for the first n entries of one partition of an index, in
// the order of its sort key (order says which way), optionally bounded (sort
// key cond bound), after the entry after.
type indexQuery struct {
	index, keyAttr, key, sortAttr string
	cond, bound                   string // "<=" and a sort key value, or ""
	lo, hi                        string // bounds of the sort key (inclusive), or ""
	after                         *entry
	order                         func(a, b entry) int // newestFirst or earliestFirst
	n                             int
	// id reads the request ID of an entry's table key; nil means idOf.
	id func(pk string) (string, bool)
}

// queryAll runs the queries in parallel and returns their entries, query by
// query.
func (s *Store) queryAll(ctx context.Context, qs []indexQuery) ([][]entry, error) {
	var (
		wg    sync.WaitGroup
		found = make([][]entry, len(qs))
		errs  = make([]error, len(qs))
	)
	for i, q := range qs {
		wg.Go(func() { found[i], errs[i] = s.queryIndex(ctx, q) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return found, nil
}

// queryIndex returns the first q.n entries of q's partition in q's order. It
// reads until it holds q.n entries and every entry with the sort key value of
// the last of them (the index orders entries with equal sort keys in no order
// this package relies on), then orders them by sort key and ID.
func (s *Store) queryIndex(ctx context.Context, q indexQuery) ([]entry, error) {
	n := q.n
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(q.index),
		KeyConditionExpression:    aws.String("#k = :k"),
		ExpressionAttributeNames:  map[string]string{"#k": q.keyAttr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":k": str(q.key)},
		// Forward (ascending) for an order that puts "a" before "b".
		ScanIndexForward: aws.Bool(q.order(entry{sort: "a"}, entry{sort: "b"}) < 0),
		Limit:            aws.Int32(int32(min(n+1, 1000))),
	}
	if s.pageSize > 0 {
		in.Limit = aws.Int32(s.pageSize)
	}
	switch {
	case q.cond != "":
		in.KeyConditionExpression = aws.String("#k = :k AND #s " + q.cond + " :s")
		in.ExpressionAttributeNames["#s"] = q.sortAttr
		in.ExpressionAttributeValues[":s"] = str(q.bound)
	case q.lo != "" && q.hi != "":
		if q.hi < q.lo {
			return nil, nil // an empty range
		}
		in.KeyConditionExpression = aws.String("#k = :k AND #s BETWEEN :lo AND :hi")
		in.ExpressionAttributeNames["#s"] = q.sortAttr
		in.ExpressionAttributeValues[":lo"], in.ExpressionAttributeValues[":hi"] = str(q.lo), str(q.hi)
	case q.lo != "":
		in.KeyConditionExpression = aws.String("#k = :k AND #s >= :lo")
		in.ExpressionAttributeNames["#s"] = q.sortAttr
		in.ExpressionAttributeValues[":lo"] = str(q.lo)
	case q.hi != "":
		in.KeyConditionExpression = aws.String("#k = :k AND #s <= :hi")
		in.ExpressionAttributeNames["#s"] = q.sortAttr
		in.ExpressionAttributeValues[":hi"] = str(q.hi)
	}
	idOfKey := q.id
	if idOfKey == nil {
		idOfKey = idOf
	}
	var got []entry
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("query index %s partition %s: %w", q.index, q.key, err)
		}
		last := ""
		for _, item := range out.Items {
			pk, _ := item[KeyAttribute].(*types.AttributeValueMemberS)
			sk, _ := item[q.sortAttr].(*types.AttributeValueMemberS)
			if pk == nil || sk == nil {
				continue
			}
			last = sk.Value
			id, ok := idOfKey(pk.Value)
			if !ok {
				continue
			}
			e := entry{pk: pk.Value, id: id, sort: sk.Value}
			if q.after != nil && q.order(*q.after, e) >= 0 {
				continue // at or before the cursor
			}
			got = append(got, e)
		}
		if len(out.LastEvaluatedKey) == 0 {
			break
		}
		if len(got) >= n && last != "" && last != got[n-1].sort {
			break // every entry that can be among the first n is read
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
	slices.SortFunc(got, q.order)
	return got[:min(n, len(got))], nil
}

// read reads the requests of entries with consistent reads, in the order of
// entries, skipping repeated and vanished ones and those for which keep does
// not hold (an index lags behind its table).
func (s *Store) read(ctx context.Context, entries []entry, keep func(*approval.Request) bool) ([]*approval.Request, error) {
	var keys []string
	seen := map[string]bool{}
	for _, e := range entries {
		if !seen[e.pk] {
			seen[e.pk] = true
			keys = append(keys, e.pk)
		}
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
		r, err := decodeRequest(item)
		if err != nil {
			return nil, err
		}
		if keep(r) {
			rs = append(rs, r)
		}
	}
	return rs, nil
}

// batchGet reads the items under keys with consistent reads, in parallel
// batches of at most batchGetMax keys, and returns them by partition key.
func (s *Store) batchGet(ctx context.Context, keys []string) (map[string]map[string]types.AttributeValue, error) {
	size := batchGetMax
	if s.batchSize > 0 {
		size = min(s.batchSize, batchGetMax)
	}
	var (
		mu    sync.Mutex
		found = make(map[string]map[string]types.AttributeValue, len(keys))
		wg    sync.WaitGroup
		batch [][]string
	)
	for start := 0; start < len(keys); start += size {
		batch = append(batch, keys[start:min(start+size, len(keys))])
	}
	errs := make([]error, len(batch))
	for i, b := range batch {
		wg.Go(func() {
			got, err := s.batchGetOne(ctx, b)
			mu.Lock()
			defer mu.Unlock()
			errs[i] = err
			for pk, item := range got {
				found[pk] = item
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return found, nil
}

// batchGetOne reads one batch, asking again for unprocessed keys after a
// pause that grows from 20 ms to at most 1 s, maxAttempts calls in all.
func (s *Store) batchGetOne(ctx context.Context, keys []string) (map[string]map[string]types.AttributeValue, error) {
	ask := make([]map[string]types.AttributeValue, 0, len(keys))
	for _, pk := range keys {
		ask = append(ask, keyOf(pk))
	}
	found := make(map[string]map[string]types.AttributeValue, len(keys))
	req := map[string]types.KeysAndAttributes{s.table: {Keys: ask, ConsistentRead: aws.Bool(true)}}
	attempts := 0
	batch := func() (struct{}, error) {
		attempts++
		out, err := s.db.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return struct{}{}, backoff.Permanent(err) // the SDK has retried it already
		}
		for _, item := range out.Responses[s.table] {
			if pk, ok := item[KeyAttribute].(*types.AttributeValueMemberS); ok {
				found[pk.Value] = item
			}
		}
		if req = out.UnprocessedKeys; len(req) > 0 {
			return struct{}{}, errUnprocessed
		}
		return struct{}{}, nil
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval = 20*time.Millisecond, time.Second
	_, err := backoff.Retry(ctx, batch, backoff.WithBackOff(b), backoff.WithMaxTries(maxAttempts), backoff.WithMaxElapsedTime(0))
	switch {
	case errors.Is(err, errUnprocessed):
		return nil, fmt.Errorf("batch get: keys still unprocessed after %d attempts", attempts)
	case err != nil:
		return nil, fmt.Errorf("batch get: %w", err)
	}
	return found, nil
}

// errUnprocessed is a BatchGetItem answer that left keys unprocessed.
var errUnprocessed = errors.New("keys unprocessed")

// cursorAfter is the cursor that resumes a list after request r.
func cursorAfter(r *approval.Request) string {
	return encodeCursor(entry{id: r.ID, sort: formatTime(r.CreatedAt)})
}

// encodeCursor makes the opaque cursor that resumes List after e.
func encodeCursor(e entry) string {
	return base64.RawURLEncoding.EncodeToString([]byte(e.sort + " " + e.id))
}

// decodeCursor reads a cursor made by encodeCursor.
func decodeCursor(c string) (entry, error) {
	invalid := approval.Invalidf("cursor", "cursor %q is not a cursor of this list", c)
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return entry{}, invalid
	}
	sort, id, ok := strings.Cut(string(b), " ")
	if !ok || id == "" {
		return entry{}, invalid
	}
	if _, err := time.Parse(timeLayout, sort); err != nil {
		return entry{}, invalid
	}
	return entry{pk: requestKey(id), id: id, sort: sort}, nil
}
