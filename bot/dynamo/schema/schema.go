// Package schema names the keys and indexes of the approvals table in
// DynamoDB: the one place they are written. The store (bot/dynamo) reads and
// writes items by these names, and the CDK app (infra/) creates the table from
// them, so that the deployed table and the code that uses it cannot disagree.
// It imports nothing, so the CDK app can use it without the rest of the bot.
package schema

import "slices"

// The table's keys and the attributes its indexes are defined on. Every one is
// of type S except TTLAttribute (N).
const (
	// KeyAttribute is the table's partition key: "REQ#<id>" for a request;
	// "TOK#<hex sha256 of the token>" for a token of the first version (only
	// read, never written any more). The table has no sort key.
	KeyAttribute = "pk"
	// TTLAttribute holds, in epoch seconds (type N), when DynamoDB may delete
	// the item: its expiry plus the retention period.
	TTLAttribute = "ttl"
	// PendingIndex is the sparse index of pending requests.
	PendingIndex = "pending"
	// UndeliveredIndex is the sparse index "undelivered": the first version
	// kept there, under "UNDELIVERED", its closed requests whose outcome had
	// not reached the workflow; it now holds every closed request, under
	// "CLOSED#<shard>", and the audit journal, under "CHANGED#<shard>". A
	// table can gain only one index per stack update (CloudFormation), so the
	// index is reused under its old name.
	UndeliveredIndex = "undelivered"
	// DueIndex is the sparse index of requests that something is due on (an
	// expiry, an effect to run again): the sweep's one due index.
	DueIndex = "due"
	// PendingKeyAttribute is PendingIndex's partition key, present only on
	// pending requests: "PENDING#<shard>" (the first version wrote
	// "PENDING").
	PendingKeyAttribute = "pendingPK"
	// UndeliveredKeyAttribute is UndeliveredIndex's partition key.
	UndeliveredKeyAttribute = "undeliveredPK"
	// DueKeyAttribute is DueIndex's partition key, "DUE#<shard>", present only
	// while something is due on the request.
	DueKeyAttribute = "dueShard"
	// DueAtAttribute is DueIndex's sort key: when the request is next due, in
	// the form of CreatedAtAttribute.
	DueAtAttribute = "dueAt"
	// CreatedAtAttribute is the sort key of PendingIndex and
	// UndeliveredIndex: a request's creation time, fixed-width UTC RFC 3339
	// with nine fraction digits (2031-05-06T07:08:09.123000000Z), so that byte
	// order is time order.
	CreatedAtAttribute = "createdAt"
)

// Index is one global secondary index of the table. Its keys are strings and
// it projects keys only.
type Index struct {
	Name         string
	PartitionKey string
	SortKey      string
}

// Indexes are the table's global secondary indexes, in the order they were
// added (CloudFormation adds at most one per stack update).
var Indexes = []Index{
	{Name: PendingIndex, PartitionKey: PendingKeyAttribute, SortKey: CreatedAtAttribute},
	{Name: UndeliveredIndex, PartitionKey: UndeliveredKeyAttribute, SortKey: CreatedAtAttribute},
	{Name: DueIndex, PartitionKey: DueKeyAttribute, SortKey: DueAtAttribute},
}

// KeyAttributes are every attribute the table and its indexes are keyed on
// (their AttributeDefinitions), the table's partition key first.
func KeyAttributes() []string {
	attrs := []string{KeyAttribute}
	for _, ix := range Indexes {
		for _, a := range []string{ix.PartitionKey, ix.SortKey} {
			if !slices.Contains(attrs, a) {
				attrs = append(attrs, a)
			}
		}
	}
	return attrs
}
