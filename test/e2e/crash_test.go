package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/workspace"
)

// pauseAndKill restarts the daemon with the pause point set, issues tool
// on a new session, waits until the daemon logs that it reached the point,
// kills it (SIGKILL) there and starts a clean daemon on the same state. It
// returns a session that has adopted the workspaces the crash orphaned.
func pauseAndKill(ctx context.Context, t *testing.T, d *daemon, point, tool string, args map[string]any) *mcp.ClientSession {
	t.Helper()
	d.stop()
	env := d.Env
	d.Env = append(env[:len(env):len(env)], workspace.PauseAtEnv+"="+point)
	d.start()
	d.Env = env
	s := d.client(ctx)
	call[map[string]any](ctx, t, s, "workspace_adopt", map[string]any{})
	mark := "point=" + point
	before := strings.Count(d.Log(), mark)
	done := make(chan struct{})
	go func() {
		defer close(done)
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		s.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	}()
	deadline := time.Now().Add(3 * time.Minute)
	for strings.Count(d.Log(), mark) == before {
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never reached pause point %s:\n%s", point, d.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	d.kill()
	<-done
	s.Close()
	d.start()
	next := d.client(ctx)
	call[map[string]any](ctx, t, next, "workspace_adopt", map[string]any{})
	return next
}

// TestCrashRepairAtEveryStep kills the daemon (SIGKILL) at each named step
// of a create, a memory snapshot and a fork, deterministically (the daemon
// waits at the step: workspace.PauseAtEnv), and starts it again. Each
// time: the interrupted create or fork leaves no workspace, VM, disk,
// socket or directory; the interrupted snapshot leaves no half-made
// snapshot; the source workspace runs on (also after a crash while it was
// paused for its memory snapshot) with the data written before the crash;
// the layer store holds exactly what the records need.
func TestCrashRepairAtEveryStep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	d, s, src := startCrashSource(ctx, t)
	s.Close()

	steps := []struct {
		point, tool string
		args        map[string]any
	}{
		{"create.started", "workspace_create", map[string]any{"name": "crash-new-1", "memory_mb": 256}},
		{"create.booted", "workspace_create", map[string]any{"name": "crash-new-2", "memory_mb": 256}},
		{"snapshot.recorded", "snapshot", map[string]any{"workspace_id": "crash-src", "action": "create", "name": "s1", "include_memory": true}},
		{"snapshot.saved", "snapshot", map[string]any{"workspace_id": "crash-src", "action": "create", "name": "s2", "include_memory": true}},
		{"fork.disks", "workspace_fork", map[string]any{"workspace_id": "crash-src", "snapshot_name": "base", "new_name": "crash-fork-1"}},
		{"fork.booted", "workspace_fork", map[string]any{"workspace_id": "crash-src", "snapshot_name": "base", "new_name": "crash-fork-2"}},
	}
	for _, st := range steps {
		start := time.Now()
		s = pauseAndKill(ctx, t, d, st.point, st.tool, st.args)
		running := checkWorkspaces(ctx, t, d, s)
		if !slices.Equal(running, []string{"crash-src"}) {
			t.Errorf("after a crash at %s the running workspaces are %v, want only crash-src", st.point, running)
		}
		checkLayerStore(ctx, t, d)
		var snaps []string
		for _, sn := range snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "list"}).Snapshots {
			snaps = append(snaps, sn.Name)
		}
		if !slices.Equal(snaps, []string{"base"}) {
			t.Errorf("after a crash at %s the snapshots are %v, want [base]", st.point, snaps)
		}
		assertNoStrayDirs(t, d, src.ID)
		t.Logf("crash at %s repaired (round trip %v)", st.point, time.Since(start).Round(time.Millisecond))
		s.Close()
	}
	s = d.client(ctx)
	call[map[string]any](ctx, t, s, "workspace_adopt", map[string]any{})
	// The source still snapshots and forks after all that.
	snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "create", "name": "after", "include_memory": true})
	f := call[forkOut](ctx, t, s, "workspace_fork", map[string]any{"workspace_id": src.ID, "snapshot_name": "after", "new_name": "after-fork"})
	if f.State != "running" || sh(ctx, t, s, "after-fork", "cat /root/data") != "precious" {
		t.Errorf("fork after the crashes = %+v", f)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": "after-fork"})
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": src.ID})
	checkLayerStore(ctx, t, d)
	assertNothingLeft(t, d)
	logLinesWith(t, d.Log(), "interrupted", "orphan", "left paused", "crash")
}

// startCrashSource starts a daemon with the crash tests' source workspace,
// crash-src: data written to its disk and a disk snapshot "base" of it.
func startCrashSource(ctx context.Context, t *testing.T) (*daemon, *mcp.ClientSession, wsInfo) {
	t.Helper()
	d := startDaemon(t, "")
	s := d.client(ctx)
	src := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "crash-src", "memory_mb": 256})
	sh(ctx, t, s, src.ID, "echo precious > /root/data; sync")
	snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "create", "name": "base"})
	return d, s, src
}

// logLinesWith logs the lines of log that contain any of words: what the
// restarted daemons found and repaired.
func logLinesWith(t *testing.T, log string, words ...string) {
	for _, line := range strings.Split(log, "\n") {
		for _, w := range words {
			if strings.Contains(line, w) {
				t.Log(line)
				break
			}
		}
	}
}

// assertNoStrayDirs checks that the daemon's VM run directories and
// workspace log directories are exactly those of the workspaces in want.
func assertNoStrayDirs(t *testing.T, d *daemon, want ...string) {
	t.Helper()
	for _, dir := range []string{d.RunDir + "/vms", d.Dir + "/data/workspaces"} {
		var entries []string
		list, _ := os.ReadDir(dir)
		for _, e := range list {
			entries = append(entries, e.Name())
		}
		slices.Sort(entries)
		w := slices.Clone(want)
		slices.Sort(w)
		if !slices.Equal(entries, w) {
			t.Errorf("%s holds %v, want %v", dir, entries, w)
		}
	}
}
