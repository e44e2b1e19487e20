package channel_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every session, stream and command a test starts ends with it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
