package schema

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeyAttributes(t *testing.T) {
	want := []string{"pk", "pendingPK", "createdAt", "undeliveredPK", "dueShard", "dueAt"}
	if diff := cmp.Diff(want, KeyAttributes()); diff != "" {
		t.Errorf("KeyAttributes (-want +got):\n%s", diff)
	}
}

// Index names are unique, and every index has both keys.
func TestIndexes(t *testing.T) {
	seen := map[string]bool{}
	for _, ix := range Indexes {
		if seen[ix.Name] {
			t.Errorf("index %q listed twice", ix.Name)
		}
		seen[ix.Name] = true
		if ix.Name == "" || ix.PartitionKey == "" || ix.SortKey == "" {
			t.Errorf("index %+v lacks a name or a key", ix)
		}
	}
}
