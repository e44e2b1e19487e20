package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// layerFiles counts the files in the daemon's layer store.
func layerFiles(t *testing.T, d *daemon) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(d.dir, "data", "disks", "layers"))
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
