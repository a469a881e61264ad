package audit

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a FileLog leaves its sync goroutine behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
