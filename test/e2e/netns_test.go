package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/hostcmd"
)

// newNetns creates a network namespace with loopback up, deleted when the
// test ends (after every cleanup registered later, such as the daemon's).
func newNetns(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { _, _ = hostcmd.Run(context.Background(), "ip", "netns", "del", name) })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// run runs a host program and fails the test on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := hostcmd.Run(ctx, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
