package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// layerFiles counts the files in the daemon's layer store.
func layerFiles(t *testing.T, d *daemon) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.Dir, "data", "disks", "layers"))
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestM19_SnapshotCapAndBadInput: a workspace may keep at most
// storage.max_snapshots_per_workspace snapshots; forks count against the
// session's workspace quota, all or none; every bad input is a tool error
// that names its field and changes nothing; another session's workspace is
// invisible, with one answer that echoes nothing (L-16).
func TestM19_SnapshotCapAndBadInput(t *testing.T) {
	d := startDaemon(t, `
[storage]
max_snapshots_per_workspace = 2

[resources]
max_workspaces_per_session = 2

# Refused forks count against the create-class rate limit (5 a minute by
# default); this test makes nine create-class calls.
[limits]
create_per_min = 20
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "l16-secret-ws", "memory_mb": 256})
	// Disk snapshots of a stopped workspace need no VM.
	call[wsInfo](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": ws.ID})
	msg := callErr(ctx, t, s, "snapshot", map[string]any{"workspace_id": ws.ID, "action": "create", "name": "m", "include_memory": true})
	if !strings.HasPrefix(msg, "include_memory:") {
		t.Errorf("memory snapshot of a stopped workspace: %q", msg)
	}

	for _, n := range []string{"s1", "s2"} {
		snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "create", "name": n})
	}
	files := layerFiles(t, d)
	msg = callErr(ctx, t, s, "snapshot", map[string]any{"workspace_id": ws.ID, "action": "create", "name": "s3"})
	if !strings.Contains(msg, "storage.max_snapshots_per_workspace") {
		t.Errorf("snapshot past the cap: %q, want it to name storage.max_snapshots_per_workspace", msg)
	}
	if l := snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "list"}); l.Count != 2 {
		t.Errorf("after the refusal list = %+v", l.Snapshots)
	}
	if n := layerFiles(t, d); n != files {
		t.Errorf("a refused snapshot changed the layer store: %d files, was %d", n, files)
	}
	snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "delete", "name": "s1"})
	snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "create", "name": "s3"})

	for _, tc := range []struct {
		tool  string
		args  map[string]any
		field string
	}{
		{"snapshot", map[string]any{"workspace_id": ws.ID, "action": "explode"}, "action:"},
		{"snapshot", map[string]any{"workspace_id": ws.ID, "action": "create"}, "name:"},
		{"snapshot", map[string]any{"workspace_id": ws.ID, "action": "create", "name": "../etc"}, "name:"},
		{"snapshot", map[string]any{"workspace_id": ws.ID, "action": "create", "name": "s2"}, "name:"},
		{"snapshot", map[string]any{"workspace_id": ws.ID, "action": "restore", "name": "nope"}, "name:"},
		{"snapshot", map[string]any{"workspace_id": ws.ID, "action": "delete", "name": "nope"}, "name:"},
		{"snapshot", map[string]any{"workspace_id": ws.ID, "action": "list", "include_memory": true}, "include_memory:"},
		{"snapshot", map[string]any{"workspace_id": "no-such-ws", "action": "list"}, "workspace_id:"},
		{"workspace_fork", map[string]any{"workspace_id": ws.ID, "snapshot_name": "s2", "count": 21}, "count:"},
		{"workspace_fork", map[string]any{"workspace_id": ws.ID, "snapshot_name": "s2", "count": 2, "new_name": "x"}, "new_name:"},
		{"workspace_fork", map[string]any{"workspace_id": ws.ID, "snapshot_name": "s2", "count": 2, "name_prefix": "-x"}, "name_prefix:"},
		{"workspace_fork", map[string]any{"workspace_id": ws.ID, "snapshot_name": "nope"}, "snapshot_name:"},
		{"workspace_fork", map[string]any{"workspace_id": ws.ID}, "snapshot_name:"},
		{"workspace_fork", map[string]any{"workspace_id": ws.ID, "snapshot_name": "s2", "new_name": "l16-secret-ws"}, "name:"},
		// One workspace exists and at most two are allowed: two forks
		// would pass the quota, so none is made.
		{"workspace_fork", map[string]any{"workspace_id": ws.ID, "snapshot_name": "s2", "count": 2}, "count:"},
	} {
		msg := callErr(ctx, t, s, tc.tool, tc.args)
		// A missing required field is refused by the MCP schema check,
		// which names it in its own words.
		if !strings.HasPrefix(msg, tc.field) && !strings.Contains(msg, `missing properties: ["`+strings.TrimSuffix(tc.field, ":")+`"]`) {
			t.Errorf("%s(%v): error %q does not start with %q", tc.tool, tc.args, msg, tc.field)
		}
	}
	type listOut struct {
		Workspaces []wsInfo `json:"workspaces"`
	}
	if l := call[listOut](ctx, t, s, "workspace_list", map[string]any{}); len(l.Workspaces) != 1 {
		t.Errorf("refused forks left workspaces: %+v", l.Workspaces)
	}
	if l := snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "list"}); l.Count != 2 || l.Snapshots[0].Name != "s2" || l.Snapshots[1].Name != "s3" {
		t.Errorf("after the refusals list = %+v", l.Snapshots)
	}

	// Another session sees none of it, and learns nothing from the errors.
	other := d.client(ctx)
	for _, args := range []map[string]any{
		{"workspace_id": ws.ID, "action": "list"},
		{"workspace_id": "l16-secret-ws", "action": "restore", "name": "s2"},
		{"workspace_id": "l16-secret-ws", "action": "delete", "name": "s2"},
		{"workspace_id": "l16-secret-ws", "action": "create", "name": "mine"},
	} {
		msg := callErr(ctx, t, other, "snapshot", args)
		if msg != "workspace_id: no such workspace in this session" {
			t.Errorf("another session's snapshot(%v): %q", args, msg)
		}
	}
	msg = callErr(ctx, t, other, "workspace_fork", map[string]any{"workspace_id": ws.ID, "snapshot_name": "s2"})
	if msg != "workspace_id: no such workspace in this session" {
		t.Errorf("another session's fork: %q", msg)
	}
	if l := snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "list"}); l.Count != 2 {
		t.Errorf("another session changed the snapshots: %+v", l.Snapshots)
	}

	// Restoring a stopped workspace to a disk snapshot leaves it stopped.
	r := snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "restore", "name": "s2"})
	if r.State != "stopped" || strings.Join(r.RemovedSnapshots, ",") != "s3" {
		t.Errorf("restore of a stopped workspace = %+v", r)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
	assertNothingLeft(t, d)
}

// TestM19_FreeSpaceGuard: with the free-space reserve above what the host
// has, snapshots are refused before anything is written.
func TestM19_FreeSpaceGuard(t *testing.T) {
	d := startDaemon(t, `
[storage]
min_free_bytes = 1152921504606846976
`)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "full", "memory_mb": 256})
	files := layerFiles(t, d)
	for _, mem := range []bool{false, true} {
		msg := callErr(ctx, t, s, "snapshot", map[string]any{"workspace_id": ws.ID, "action": "create", "name": "s", "include_memory": mem})
		if !strings.Contains(msg, "nearly full") || !strings.Contains(msg, "storage.min_free_bytes") {
			t.Errorf("snapshot on a full host (memory %v): %q", mem, msg)
		}
	}
	if l := snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "list"}); l.Count != 0 {
		t.Errorf("refused snapshots were recorded: %+v", l.Snapshots)
	}
	if n := layerFiles(t, d); n != files {
		t.Errorf("refused snapshots changed the layer store: %d files, was %d", n, files)
	}
	// The workspace is untouched and running.
	if got := sh(ctx, t, s, ws.ID, "echo ok"); got != "ok" {
		t.Errorf("exec after the refusals: %q", got)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
	assertNothingLeft(t, d)
}

// TestSnapshotChainStaysShort: an agent that keeps taking a new snapshot and
// deleting the previous one must not grow its disk chain without bound. The
// layers of deleted snapshots are merged into the layer above them (by the
// running VM, and offline when stopped), and what the disk and a memory
// snapshot above a merged layer hold is unchanged by it.
func TestSnapshotChainStaysShort(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "chain", "memory_mb": 256})
	marks := func(n int) string {
		out := ""
		for i := range n {
			out += fmt.Sprintf("%d\n", i)
		}
		return strings.TrimSpace(out)
	}
	pid := ""
	for i := range 6 {
		sh(ctx, t, s, ws.ID, fmt.Sprintf("echo %d > /root/mark-%d; sync", i, i))
		args := map[string]any{"workspace_id": ws.ID, "action": "create", "name": fmt.Sprintf("c-%d", i)}
		if i == 3 {
			pid = sh(ctx, t, s, ws.ID, "sleep 1000 >/dev/null 2>&1 & echo $!")
			args["include_memory"] = true
		}
		snapshot(ctx, t, s, args)
		// Delete the previous snapshot, except the memory snapshot c-3:
		// deleting c-2 merges its layer into c-3's, under a saved memory.
		if prev := i - 1; prev >= 0 && prev != 3 {
			snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "delete", "name": fmt.Sprintf("c-%d", prev)})
		}
	}
	var left []string
	for _, sn := range snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "list"}).Snapshots {
		left = append(left, sn.Name)
	}
	if strings.Join(left, ",") != "c-3,c-5" {
		t.Fatalf("snapshots left: %v", left)
	}
	// c-3's and c-5's layers, c-3's memory state and the top: the deleted
	// snapshots' layers were merged away.
	if n := layerFiles(t, d); n != 4 {
		t.Errorf("layer store holds %d files, want 4", n)
	}
	if got := sh(ctx, t, s, ws.ID, "cat /root/mark-*"); got != marks(6) {
		t.Errorf("marks after merging = %q", got)
	}
	r := snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "restore", "name": "c-3"})
	if r.State != "running" {
		t.Fatalf("restore c-3 = %+v", r)
	}
	if got := sh(ctx, t, s, ws.ID, "cat /root/mark-*; kill -0 "+pid+" && echo alive"); got != marks(4)+"\nalive" {
		t.Errorf("after restoring c-3 over a merged layer: %q", got)
	}

	// Offline: stopped, the same merge runs without a VM.
	snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "create", "name": "c-6"})
	call[wsInfo](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": ws.ID})
	snapshot(ctx, t, s, map[string]any{"workspace_id": ws.ID, "action": "delete", "name": "c-3"})
	if n := layerFiles(t, d); n != 2 {
		t.Errorf("after an offline delete the layer store holds %d files, want c-6's layer and the top", n)
	}
	call[wsInfo](ctx, t, s, "workspace_start", map[string]any{"workspace_id": ws.ID})
	if got := sh(ctx, t, s, ws.ID, "cat /root/mark-*"); got != marks(4) {
		t.Errorf("marks after the offline merge = %q", got)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
	assertNothingLeft(t, d)
}
