package sqlite

import "context"

// SchemaLatest is the schema version Open brings a database to.
var SchemaLatest = len(migrations)

// OpenAtVersion opens the database at path and brings its schema only up to
// version, as an older build of the program left it.
func OpenAtVersion(ctx context.Context, path string, version int) (*Store, error) {
	return open(ctx, path, migrations[:version])
}
