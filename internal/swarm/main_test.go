package swarm

import (
	"testing"

	"go.uber.org/goleak"
)

// Every worker goroutine a run starts ends before Run returns, cancelled
// or not.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
