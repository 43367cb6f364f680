package dynamo

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"approvalbot/bot/approval"
)

// The audit trail on DynamoDB. A request's chain is the "audit" attribute of
// its item (written with it, in the same PutItem, kept as long as the
// request). Beside the requests:
//
//	AUDJ#<id>#<seq>   the audit journal: one small item per write of a
//	                  request with a trail (undeliveredPK "CHANGED#<shard>",
//	                  createdAt: when it was written; kept JournalRetention),
//	                  so that a checkpoint finds the requests whose chains
//	                  grew without reading the table
//	AUDIT#CKPT#<n>    checkpoint n of the global chain ("entry")
//	AUDIT#LAST        the newest checkpoint's number and entry
//
// The journal is written in parallel with the request, so it costs a write
// but no time; a journal item whose request write failed names a head that
// never was, which is harmless (a checkpoint reads the heads from the
// requests), and a journal write that fails only delays the checkpoint of
// that request to its next write.

// JournalRetention is how long the audit journal's items are kept: long
// enough for any checkpoint to have read them.
const JournalRetention = 7 * 24 * time.Hour

// journalSettle is how long AuditChanged leaves the newest journal items
// alone: the index is eventually consistent, and writers' clocks differ a
// little.
const journalSettle = 2 * time.Minute

// journalItem is an item of the audit journal.
type journalItem struct {
	PK            string `dynamodbav:"pk"`
	Kind          string `dynamodbav:"kind"`
	RequestID     string `dynamodbav:"requestId"`
	UndeliveredPK string `dynamodbav:"undeliveredPK"`
	CreatedAt     string `dynamodbav:"createdAt"`
	TTL           int64  `dynamodbav:"ttl"`
}

// checkpointItem is a checkpoint, or (LAST) the pointer to the newest.
type checkpointItem struct {
	PK    string `dynamodbav:"pk"`
	Kind  string `dynamodbav:"kind"`
	Seq   int    `dynamodbav:"seq"`
	Entry string `dynamodbav:"entry"`
	TTL   int64  `dynamodbav:"ttl,omitempty"`
}

func journalKey(id string, seq int) string { return journalPrefix + id + "#" + strconv.Itoa(seq) }
func checkpointKey(seq int) string         { return checkpointPrefix + strconv.Itoa(seq) }

// journalID reads the request ID of a journal item's key.
func journalID(pk string) (string, bool) {
	rest, ok := strings.CutPrefix(pk, journalPrefix)
	if !ok {
		return "", false
	}
	id, _, ok := strings.Cut(rest, "#")
	return id, ok && id != ""
}

// journal records that r (about to be written, with a trail) has changed.
func (s *Store) journal(ctx context.Context, r *approval.Request) error {
	now := time.Now()
	item, err := attributevalue.MarshalMap(journalItem{
		PK: journalKey(r.ID, r.Head().Seq), Kind: "journal", RequestID: r.ID,
		UndeliveredPK: changedShard(shard(r.ID)), CreatedAt: formatTime(now), TTL: now.Add(JournalRetention).Unix(),
	})
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item})
	return err
}

// withJournal runs write and, when r has a trail, the journal write beside
// it, and returns write's error. A failed journal write is not an error of
// the write: it only delays the request's next checkpoint.
func (s *Store) withJournal(ctx context.Context, r *approval.Request, write func() error) error {
	if len(r.Audit) == 0 {
		return write()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.journal(ctx, r)
	}()
	err := write()
	<-done
	return err
}

// ReadAudit returns a page of the audit log: the chains of the requests and
// the checkpoints, in the table's order, read with a Scan of q.Limit items
// (100 for 0 or less) from the cursor on. A request's entries come together,
// in the order of its chain; entries before q.Since are left out.
func (s *Store) ReadAudit(ctx context.Context, q approval.AuditQuery) ([]approval.AuditEntry, string, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	in := &dynamodb.ScanInput{
		TableName:                &s.table,
		Limit:                    aws.Int32(int32(min(limit, 1000))),
		ProjectionExpression:     aws.String("#pk, #audit, #entry"),
		FilterExpression:         aws.String("attribute_exists(#audit) OR begins_with(#pk, :ckpt)"),
		ExpressionAttributeNames: map[string]string{"#pk": KeyAttribute, "#audit": "audit", "#entry": "entry"},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":ckpt": str(checkpointPrefix),
		},
		ConsistentRead: aws.Bool(true),
	}
	if q.Cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(q.Cursor)
		if err != nil || len(b) == 0 {
			return nil, "", approval.Invalidf("cursor", "cursor %q is not a cursor of the audit log", q.Cursor)
		}
		in.ExclusiveStartKey = keyOf(string(b))
	}
	out, err := s.db.Scan(ctx, in)
	if err != nil {
		return nil, "", fmt.Errorf("read audit: %w", err)
	}
	var entries []approval.AuditEntry
	keep := func(line string) error {
		e, err := approval.ParseAuditEntry([]byte(line))
		if err != nil {
			return err
		}
		if q.Since.IsZero() || !e.At.Before(q.Since) {
			entries = append(entries, e)
		}
		return nil
	}
	for _, item := range out.Items {
		var it struct {
			PK    string   `dynamodbav:"pk"`
			Audit []string `dynamodbav:"audit"`
			Entry string   `dynamodbav:"entry"`
		}
		if err := attributevalue.UnmarshalMap(item, &it); err != nil {
			return nil, "", fmt.Errorf("read audit: decode %s: %w", it.PK, err)
		}
		lines := it.Audit
		if it.Entry != "" {
			lines = []string{it.Entry}
		}
		for _, line := range lines {
			if err := keep(line); err != nil {
				return nil, "", fmt.Errorf("read audit: %s: %w", it.PK, err)
			}
		}
	}
	next := ""
	if pk, ok := out.LastEvaluatedKey[KeyAttribute].(*types.AttributeValueMemberS); ok {
		next = base64.RawURLEncoding.EncodeToString([]byte(pk.Value))
	}
	return entries, next, nil
}

// AuditChanged returns the heads of the requests the audit journal names
// after mark (a journal time) and up to journalSettle before now, read from
// the requests with consistent reads, and the journal time up to which they
// are covered. It queries every journal shard in parallel.
func (s *Store) AuditChanged(ctx context.Context, mark string, now time.Time, limit int) ([]approval.AuditHead, string, error) {
	if limit <= 0 {
		limit = defaultLimit
	}
	lo := ""
	if mark != "" {
		t, err := time.Parse(timeLayout, mark)
		if err != nil {
			return nil, "", fmt.Errorf("audit changed: mark %q: %w", mark, approval.ErrInvalid)
		}
		lo = formatTime(t.Add(time.Nanosecond))
	}
	hi := formatTime(now.Add(-journalSettle))
	var qs []indexQuery
	for n := range Shards {
		qs = append(qs, indexQuery{
			index: UndeliveredIndex, keyAttr: UndeliveredKeyAttribute, key: changedShard(n), sortAttr: CreatedAtAttribute,
			order: earliestFirst, lo: lo, hi: hi, n: 4 * limit, id: journalID,
		})
	}
	found, err := s.queryAll(ctx, qs)
	if err != nil {
		return nil, "", fmt.Errorf("audit changed: %w", err)
	}
	var all []entry
	for _, f := range found {
		all = append(all, f...)
	}
	if len(all) == 0 {
		return nil, mark, nil
	}
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.sort, b.sort) })
	// Take whole instants, oldest first, until limit requests are named:
	// the mark is the last instant taken.
	var keys []string
	seen := map[string]bool{}
	end := ""
	for i, e := range all {
		if len(keys) >= limit && e.sort != all[i-1].sort {
			break
		}
		end = e.sort
		if !seen[e.id] {
			seen[e.id] = true
			keys = append(keys, requestKey(e.id))
		}
	}
	items, err := s.batchGet(ctx, keys)
	if err != nil {
		return nil, "", fmt.Errorf("audit changed: %w", err)
	}
	var heads []approval.AuditHead
	for _, pk := range keys {
		item, ok := items[pk]
		if !ok {
			continue // a journal item of a request never written (a failed create)
		}
		r, err := decodeRequest(item)
		if err != nil {
			return nil, "", fmt.Errorf("audit changed: %w", err)
		}
		h := r.Head()
		if ttl, ok := item[TTLAttribute].(*types.AttributeValueMemberN); ok {
			if sec, err := strconv.ParseInt(ttl.Value, 10, 64); err == nil {
				h.KeepUntil = time.Unix(sec, 0).UTC()
			}
		}
		heads = append(heads, h)
	}
	return heads, end, nil
}

// LastCheckpoint returns the newest checkpoint: the one AUDIT#LAST names, or
// a later one whose pointer was not written.
func (s *Store) LastCheckpoint(ctx context.Context) (approval.AuditEntry, error) {
	var last checkpointItem
	err := s.get(ctx, lastCheckpoint, &last)
	if err != nil && !errors.Is(err, approval.ErrNotFound) {
		return approval.AuditEntry{}, fmt.Errorf("last checkpoint: %w", err)
	}
	for {
		var next checkpointItem
		err := s.get(ctx, checkpointKey(last.Seq+1), &next)
		if errors.Is(err, approval.ErrNotFound) {
			break
		}
		if err != nil {
			return approval.AuditEntry{}, fmt.Errorf("last checkpoint: %w", err)
		}
		last = next
	}
	if last.Seq == 0 {
		return approval.AuditEntry{}, fmt.Errorf("last checkpoint: %w", approval.ErrNotFound)
	}
	e, err := approval.ParseAuditEntry([]byte(last.Entry))
	if err != nil {
		return approval.AuditEntry{}, fmt.Errorf("last checkpoint %d: %w", last.Seq, err)
	}
	return e, nil
}

// AddCheckpoint stores checkpoint e (conditional on its key being new:
// ErrConflict otherwise), kept until e.KeepUntil (or Retention from now),
// and then points AUDIT#LAST at it.
func (s *Store) AddCheckpoint(ctx context.Context, e approval.AuditEntry) error {
	line, _ := e.MarshalJSON()
	keep := e.KeepUntil
	if keep.IsZero() {
		keep = time.Now().Add(s.retention())
	}
	it := checkpointItem{PK: checkpointKey(e.Seq), Kind: "checkpoint", Seq: e.Seq, Entry: string(line), TTL: keep.Unix()}
	item, err := attributevalue.MarshalMap(it)
	if err != nil {
		return fmt.Errorf("add checkpoint %d: %w", e.Seq, err)
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                &s.table,
		Item:                     item,
		ConditionExpression:      aws.String("attribute_not_exists(#pk)"),
		ExpressionAttributeNames: map[string]string{"#pk": KeyAttribute},
	})
	if _, failed := conditionFailed(err); failed {
		return fmt.Errorf("add checkpoint %d: %w", e.Seq, approval.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("add checkpoint %d: %w", e.Seq, err)
	}
	it.PK, it.Kind, it.TTL = lastCheckpoint, "checkpoint-pointer", 0
	if item, err = attributevalue.MarshalMap(it); err != nil {
		return fmt.Errorf("add checkpoint %d: %w", e.Seq, err)
	}
	// The pointer is a shortcut: when it is not written (a failure, or a
	// later checkpoint's pointer is there), LastCheckpoint still finds the
	// newest checkpoint by looking past the one it names.
	s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:                 &s.table,
		Item:                      item,
		ConditionExpression:       aws.String("attribute_not_exists(#pk) OR #seq < :seq"),
		ExpressionAttributeNames:  map[string]string{"#pk": KeyAttribute, "#seq": "seq"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":seq": num(int64(e.Seq))},
	})
	return nil
}
