package e2e

import (
	"context"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type snapInfo struct {
	SnapshotID  string  `json:"snapshot_id"`
	Name        string  `json:"name"`
	WorkspaceID string  `json:"workspace_id"`
	HasMemory   bool    `json:"has_memory"`
	CreatedAt   string  `json:"created_at"`
	Parent      *string `json:"parent"`
	DiskBytes   int64   `json:"disk_bytes"`
	MemoryBytes int64   `json:"memory_bytes"`
	Forks       int     `json:"forks"`
}

type snapOut struct {
	snapInfo
	Action           string     `json:"action"`
	State            string     `json:"state"`
	RemovedSnapshots []string   `json:"removed_snapshots"`
	Snapshots        []snapInfo `json:"snapshots"`
	Count            int        `json:"count"`
	Message          string     `json:"message"`
}

type forkedFrom struct {
	SourceWorkspaceID   string `json:"source_workspace_id"`
	SourceWorkspaceName string `json:"source_workspace_name"`
	SnapshotName        string `json:"snapshot_name"`
}

type forkOut struct {
	WorkspaceID    string      `json:"workspace_id"`
	Name           string      `json:"name"`
	State          string      `json:"state"`
	ForkedFrom     *forkedFrom `json:"forked_from"`
	RequestedCount int         `json:"requested_count"`
	SuccessCount   int         `json:"success_count"`
	FailureCount   int         `json:"failure_count"`
	Workers        []struct {
		WorkspaceID string `json:"workspace_id"`
		Name        string `json:"name"`
		State       string `json:"state"`
	} `json:"workers"`
	Failures []struct {
		Name  string `json:"name"`
		Error string `json:"error"`
	} `json:"failures"`
}

// clockSkew is how far a workspace's wall clock is from the host's.
func clockSkew(ctx context.Context, t *testing.T, s *mcp.ClientSession, ws string) time.Duration {
	t.Helper()
	out := sh(ctx, t, s, ws, "date +%s.%N")
	f, err := strconv.ParseFloat(out, 64)
	if err != nil {
		t.Fatalf("date in %s: %q", ws, out)
	}
	guest := time.Unix(0, int64(f*1e9))
	return time.Duration(math.Abs(float64(time.Since(guest))))
}

func snapshot(ctx context.Context, t *testing.T, s *mcp.ClientSession, args map[string]any) snapOut {
	t.Helper()
	return call[snapOut](ctx, t, s, "snapshot", args)
}

// TestMemorySnapshotRestoreAndFork is the memory-snapshot proof: a process
// started before a memory snapshot is alive again, with its PID, after the
// workspace is restored, and in a fork; the clock is the host's, the fork
// has its own hostname and machine-id. Disk snapshots restore the disk only;
// restore drops newer snapshots; delete refuses while a fork depends on a
// snapshot; destroy leaves nothing behind.
func TestMemorySnapshotRestoreAndFork(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s := d.client(ctx)

	src := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "snap-src", "memory_mb": 256})
	sh(ctx, t, s, src.ID, "echo one > /root/a; sync")
	disk1 := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "create", "name": "disk1"})
	if disk1.SnapshotID == "" || disk1.Name != "disk1" || disk1.HasMemory || disk1.WorkspaceID != src.ID {
		t.Fatalf("snapshot create = %+v", disk1)
	}

	pid := sh(ctx, t, s, src.ID, "sleep 1000 >/dev/null 2>&1 & echo $! > /tmp/pid; echo two > /root/a; sync; cat /tmp/pid")
	machineID := sh(ctx, t, s, src.ID, "cat /etc/machine-id")
	if len(machineID) != 32 {
		t.Errorf("a new workspace's machine-id is %q; each workspace needs its own", machineID)
	}
	mem1 := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "create", "name": "mem1", "include_memory": true})
	if !mem1.HasMemory || mem1.MemoryBytes < 1<<20 {
		t.Fatalf("memory snapshot = %+v, want has_memory and a memory state", mem1)
	}
	memTaken := time.Now()
	// The workspace goes on after the snapshot.
	sh(ctx, t, s, src.ID, "kill "+pid+"; echo three > /root/a; sync")
	if out := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": src.ID, "command": "kill -0 " + pid}); out.ExitCode == 0 {
		t.Fatal("the sleep survived kill")
	}

	list := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "list"})
	if list.Count != 2 || len(list.Snapshots) != 2 {
		t.Fatalf("list = %+v, want disk1 and mem1", list)
	}
	byName := map[string]snapInfo{}
	for _, sn := range list.Snapshots {
		byName[sn.Name] = sn
	}
	if p := byName["disk1"].Parent; p != nil {
		t.Errorf("disk1's parent = %q, want none", *p)
	}
	if p := byName["mem1"].Parent; p == nil || *p != "disk1" {
		t.Errorf("mem1's parent = %v, want disk1 (the tree)", p)
	}
	if !byName["mem1"].HasMemory || byName["disk1"].HasMemory || byName["mem1"].MemoryBytes != mem1.MemoryBytes || byName["disk1"].CreatedAt == "" {
		t.Errorf("list entries: %+v", list.Snapshots)
	}
	info := call[struct {
		Snapshots []string `json:"snapshots"`
	}](ctx, t, s, "workspace_info", map[string]any{"workspace_id": src.ID})
	if strings.Join(info.Snapshots, ",") != "disk1,mem1" {
		t.Errorf("workspace_info snapshots = %v", info.Snapshots)
	}

	// Let the saved clock fall behind, so a restore that kept it would show.
	const lag = 6 * time.Second
	time.Sleep(time.Until(memTaken.Add(lag)))

	restored := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "restore", "name": "mem1"})
	if restored.State != "running" || len(restored.RemovedSnapshots) != 0 {
		t.Fatalf("restore mem1 = %+v", restored)
	}
	if got := sh(ctx, t, s, src.ID, "kill -0 "+pid+" && tr '\\0' ' ' < /proc/"+pid+"/cmdline"); !strings.HasPrefix(got, "sleep 1000") {
		t.Errorf("after restoring mem1, pid %s runs %q; want the sleep started before the snapshot", pid, got)
	}
	if got := sh(ctx, t, s, src.ID, "cat /root/a"); got != "two" {
		t.Errorf("after restoring mem1 /root/a = %q, want two", got)
	}
	if skew := clockSkew(ctx, t, s, src.ID); skew > 3*time.Second {
		t.Errorf("restored clock is %v from the host's; the guest must step it (the snapshot is %v old)", skew, lag)
	}
	if got := sh(ctx, t, s, src.ID, "cat /etc/machine-id"); got != machineID {
		t.Errorf("restoring its own snapshot changed the workspace's machine-id from %s to %s", machineID, got)
	}

	// The same through a fork.
	fork := call[forkOut](ctx, t, s, "workspace_fork", map[string]any{"workspace_id": "snap-src", "snapshot_name": "mem1", "new_name": "snap-fork"})
	if fork.Name != "snap-fork" || fork.State != "running" || fork.ForkedFrom == nil ||
		fork.ForkedFrom.SourceWorkspaceID != src.ID || fork.ForkedFrom.SnapshotName != "mem1" || fork.ForkedFrom.SourceWorkspaceName != "snap-src" {
		t.Fatalf("workspace_fork = %+v (forked_from %+v)", fork, fork.ForkedFrom)
	}
	if got := sh(ctx, t, s, fork.WorkspaceID, "kill -0 "+pid+" && tr '\\0' ' ' < /proc/"+pid+"/cmdline"); !strings.HasPrefix(got, "sleep 1000") {
		t.Errorf("in the fork, pid %s runs %q; want the sleep started before the snapshot", pid, got)
	}
	if got := sh(ctx, t, s, fork.WorkspaceID, "cat /root/a; hostname"); got != "two\nsnap-fork" {
		t.Errorf("fork: /root/a and hostname = %q, want two and snap-fork", got)
	}
	if got := sh(ctx, t, s, fork.WorkspaceID, "cat /etc/machine-id"); got == machineID || len(got) != 32 {
		t.Errorf("fork machine-id = %q, want a new one (source %s)", got, machineID)
	}
	if skew := clockSkew(ctx, t, s, fork.WorkspaceID); skew > 3*time.Second {
		t.Errorf("fork clock is %v from the host's", skew)
	}
	fi := call[struct {
		ForkedFrom *forkedFrom `json:"forked_from"`
	}](ctx, t, s, "workspace_info", map[string]any{"workspace_id": "snap-fork"})
	if fi.ForkedFrom == nil || fi.ForkedFrom.SourceWorkspaceID != src.ID || fi.ForkedFrom.SnapshotName != "mem1" {
		t.Errorf("workspace_info of the fork: forked_from = %+v", fi.ForkedFrom)
	}
	// Writes in the fork and the source stay apart.
	sh(ctx, t, s, fork.WorkspaceID, "echo fork > /root/a; sync")
	if got := sh(ctx, t, s, src.ID, "cat /root/a"); got != "two" {
		t.Errorf("a write in the fork shows in the source: %q", got)
	}

	// A snapshot a fork stands on cannot be deleted.
	if msg := callErr(ctx, t, s, "snapshot", map[string]any{"workspace_id": src.ID, "action": "delete", "name": "mem1"}); !strings.Contains(msg, "fork") || !strings.HasPrefix(msg, "name:") {
		t.Errorf("delete of a snapshot with a fork: %q", msg)
	}
	if l := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "list"}); l.Count != 2 || l.Snapshots[1].Forks != 1 {
		t.Errorf("after the refused delete: %+v", l.Snapshots)
	}

	// Restoring the older disk snapshot drops mem1 (the fork keeps its
	// disk) and boots the restored disk: the process is gone.
	back := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "restore", "name": "disk1"})
	if back.State != "running" || strings.Join(back.RemovedSnapshots, ",") != "mem1" {
		t.Fatalf("restore disk1 = %+v, want running with mem1 removed", back)
	}
	if got := sh(ctx, t, s, src.ID, "cat /root/a; test -e /tmp/pid && echo pidfile || echo none"); got != "one\nnone" {
		t.Errorf("after restoring disk1: %q, want the disk as it was (one) and a fresh boot", got)
	}
	if got := sh(ctx, t, s, fork.WorkspaceID, "cat /root/a"); got != "fork" {
		t.Errorf("restoring the source changed the fork: %q", got)
	}
	if l := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "list"}); l.Count != 1 || l.Snapshots[0].Name != "disk1" {
		t.Errorf("after restoring disk1, list = %+v", l.Snapshots)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": fork.WorkspaceID})

	// A batch of disk forks, in parallel.
	batch := call[forkOut](ctx, t, s, "workspace_fork", map[string]any{"workspace_id": src.ID, "snapshot_name": "disk1", "count": 2, "name_prefix": "wk"})
	if batch.RequestedCount != 2 || batch.SuccessCount != 2 || batch.FailureCount != 0 || len(batch.Workers) != 2 {
		t.Fatalf("batch fork = %+v", batch)
	}
	ids := map[string]bool{}
	for i, w := range batch.Workers {
		if w.State != "running" {
			t.Errorf("worker %+v is not running", w)
		}
		got := sh(ctx, t, s, w.WorkspaceID, "cat /root/a; hostname; cat /etc/machine-id")
		lines := strings.Split(got, "\n")
		if len(lines) != 3 || lines[0] != "one" || (lines[1] != "wk-1" && lines[1] != "wk-2") || lines[2] == machineID {
			t.Errorf("worker %d: %q", i, got)
		}
		if len(lines) == 3 {
			ids[lines[2]] = true
		}
	}
	if len(ids) != 2 {
		t.Errorf("the two workers share a machine-id")
	}
	for _, w := range batch.Workers {
		call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": w.WorkspaceID})
	}
	snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "delete", "name": "disk1"})
	if l := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "list"}); l.Count != 0 || l.Snapshots == nil {
		t.Errorf("after delete, list = %+v (want an empty list)", l)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": src.ID})

	assertNothingLeft(t, d)
}

// assertNothingLeft checks that no QEMU, socket, disk layer or memory state
// of the daemon remains.
func assertNothingLeft(t *testing.T, d *daemon) {
	t.Helper()
	if pids := d.QEMUPIDs(); len(pids) != 0 {
		t.Errorf("QEMU still running: %v", pids)
	}
	assertNoFiles(t, d.RunDir, ".sock", "agentiso.sock", "api.sock")
	for _, suffix := range []string{".qcow2", ".mem", ".tmp"} {
		assertNoFiles(t, filepath.Join(d.Dir, "data"), suffix, "")
	}
}
