package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

func TestExitCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{errors.New("boom"), ExitError},
		{errdefs.Invalidf("name: bad"), ExitUsage},
		{errdefs.NotFoundf("no such workspace"), ExitNotFound},
		{errdefs.Conflictf("stopped"), ExitConflict},
		{errdefs.Unavailablef("later"), ExitUnavailable},
		{errdefs.With(errdefs.Timeout, "slow", nil), ExitTimeout},
		{errdefs.PermissionDeniedf("no"), ExitRefused},
		{errdefs.With(errdefs.Quota, "full", nil), ExitRefused},
		{errdefs.With(errdefs.RateLimited, "slow down", nil), ExitRefused},
		{fmt.Errorf("%w: cannot connect", ErrUnreachable), ExitUnreachable},
		{fmt.Errorf("exec: %w", context.Canceled), ExitInterrupted},
	} {
		if got := ExitCode(tc.err); got != tc.want {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 68 << 20: "68.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPrintTables(t *testing.T) {
	var b bytes.Buffer
	parent := "s1"
	list := []workspace.SnapshotInfo{
		{ID: "s1", Name: "base", CreatedAt: time.Now()},
		{ID: "s2", Name: "later", Parent: &parent, HasMemory: true, MemoryBytes: 68 << 20, Forks: 2, CreatedAt: time.Now()},
	}
	if err := PrintSnapshots(&b, list); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[2], "base") || !strings.Contains(lines[2], "68.0 MiB") {
		t.Errorf("snapshot table:\n%s", b.String())
	}
	b.Reset()
	PrintWorkspaces(&b, []workspace.Info{{ID: "0123456789abcdef", Name: "w", State: "running", UptimeSecs: 61,
		ForkedFrom: &workspace.ForkedFrom{SourceWorkspaceID: "fedcba9876543210", SnapshotName: "base"}}})
	if !strings.Contains(b.String(), "01234567 ") || !strings.Contains(b.String(), "1m1s") || !strings.Contains(b.String(), "fedcba98@base") {
		t.Errorf("workspace table:\n%s", b.String())
	}
}
