package memory_test

import (
	"testing"

	"approvalbot/bot/approval"
	"approvalbot/bot/approval/storetest"
	"approvalbot/internal/testing/memory"
)

func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) approval.Store { return memory.NewStore() })
}
