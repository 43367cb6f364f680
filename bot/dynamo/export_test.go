package dynamo

import (
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"approvalbot/bot/approval"
)

// SetPaging makes s read index queries pageSize keys at a time and items
// batchSize at a time, so that tests exercise pagination with few items.
func SetPaging(s *Store, pageSize int32, batchSize int) {
	s.pageSize, s.batchSize = pageSize, batchSize
}

// API is the client interface the store uses, for wrapping in tests.
type API = api

// NewWithAPI returns a store on table that calls db.
func NewWithAPI(db API, table string) *Store {
	return &Store{db: db, table: table, Retention: DefaultRetention}
}

// ShardOf is the shard of request id.
func ShardOf(id string) int { return shard(id) }

// ItemOf is the item CreateRequest writes for r.
func ItemOf(s *Store, r *approval.Request) (map[string]types.AttributeValue, error) {
	return s.encode(r, 1)
}

// CursorAfter is the cursor of a list that resumes after r.
func CursorAfter(r *approval.Request) string { return cursorAfter(r) }
