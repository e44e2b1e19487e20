package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	_ "modernc.org/sqlite"
)

// crashDuring issues tool on s (the session that owns the workspaces),
// kills the daemon after delay, starts a new daemon on the same state and
// returns a new client that has adopted the workspaces the crash orphaned.
// The call's own outcome is unknown by design; what the new daemon makes of
// it is what the caller checks.
func crashDuring(ctx context.Context, t *testing.T, d *daemon, s *mcp.ClientSession, tool string, args map[string]any, delay time.Duration) *mcp.ClientSession {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		s.CallTool(cctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	}()
	time.Sleep(delay)
	d.kill()
	<-done
	s.Close()
	d.start()
	next := d.client(ctx)
	call[map[string]any](ctx, t, next, "workspace_adopt", map[string]any{})
	return next
}

// stateDB opens the daemon's state read-only.
func stateDB(t *testing.T, d *daemon) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+d.StatePath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// checkLayerStore checks that the layer store holds exactly what the
// workspaces' disks and the snapshots need: every disk's top and the chain
// under it, every snapshot's layer and its chain, a memory state for each
// memory snapshot and nothing else, no half-made file and no snapshot left
// half-made in the state.
func checkLayerStore(ctx context.Context, t *testing.T, d *daemon) {
	t.Helper()
	store := filepath.Join(d.Dir, "data", "disks")
	layers := filepath.Join(store, "layers")
	want := map[string]bool{}
	chainOf := func(file string) {
		out, err := exec.CommandContext(ctx, "qemu-img", "info", "-U", "--backing-chain", "--output=json", file).Output()
		if err != nil {
			t.Errorf("qemu-img info %s: %v", file, err)
			return
		}
		var chain []struct {
			Filename string `json:"filename"`
		}
		if err := json.Unmarshal(out, &chain); err != nil {
			t.Fatal(err)
		}
		for _, c := range chain {
			if filepath.Dir(c.Filename) == layers {
				want[filepath.Base(c.Filename)] = true
			}
		}
	}
	// The memory template's layer and state, when there is one.
	if b, err := os.ReadFile(filepath.Join(d.Dir, "data", "templates", "template.json")); err == nil {
		var tmpl struct {
			Layer string `json:"layer"`
		}
		if err := json.Unmarshal(b, &tmpl); err != nil {
			t.Fatal(err)
		}
		chainOf(filepath.Join(layers, tmpl.Layer+".qcow2"))
		want[tmpl.Layer+".mem"] = true
	}
	disks, _ := os.ReadDir(filepath.Join(store, "disks"))
	for _, e := range disks {
		top, err := os.ReadFile(filepath.Join(store, "disks", e.Name(), "top"))
		if err != nil {
			t.Errorf("disk %s has no top: %v", e.Name(), err)
			continue
		}
		chainOf(filepath.Join(layers, strings.TrimSpace(string(top))+".qcow2"))
	}
	db := stateDB(t, d)
	rows, err := db.QueryContext(ctx, `SELECT layer, memory, state FROM snapshots`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var layer, st string
		var memory bool
		if err := rows.Scan(&layer, &memory, &st); err != nil {
			t.Fatal(err)
		}
		if st != "ready" {
			t.Errorf("a snapshot is still %q after recovery", st)
		}
		chainOf(filepath.Join(layers, layer+".qcow2"))
		if memory {
			want[layer+".mem"] = true
		}
	}
	entries, _ := os.ReadDir(layers)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	var wantList []string
	for f := range want {
		wantList = append(wantList, f)
	}
	slices.Sort(got)
	slices.Sort(wantList)
	if !slices.Equal(got, wantList) {
		t.Errorf("layer store holds %v, want exactly %v", got, wantList)
	}
}

// checkWorkspaces checks that every workspace is listed in a true state: the
// running ones answer, the QEMUs on the host are exactly theirs, and the
// data written before the crashes is there. It returns the running names.
func checkWorkspaces(ctx context.Context, t *testing.T, d *daemon, s *mcp.ClientSession) []string {
	t.Helper()
	type listOut struct {
		Workspaces []wsInfo `json:"workspaces"`
	}
	var running []string
	for _, w := range call[listOut](ctx, t, s, "workspace_list", map[string]any{}).Workspaces {
		switch w.State {
		case "running":
			running = append(running, w.Name)
			if got := sh(ctx, t, s, w.ID, "cat /root/data"); got != "precious" {
				t.Errorf("%s: /root/data = %q after the crash", w.Name, got)
			}
		default:
			t.Errorf("%s is %s after a crash that should not have stopped it", w.Name, w.State)
		}
	}
	if pids := d.QEMUPIDs(); len(pids) != len(running) {
		t.Errorf("%d QEMUs run for %d running workspaces (%v)", len(pids), len(running), running)
	}
	return running
}

// TestSnapshotAndForkSurviveDaemonKill kills the daemon (SIGKILL) at
// several moments of a memory snapshot and of a fork, and starts it again:
// every workspace is listed with a true state, the source VM never stopped,
// no VM, layer or memory state is orphaned, no snapshot is left half-made,
// data written before the crash is there, and a snapshot that survived is
// whole (it restores).
func TestSnapshotAndForkSurviveDaemonKill(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	d, s, src := startCrashSource(ctx, t)

	var kept []string
	for i, delay := range []time.Duration{0, 150 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond} {
		name := fmt.Sprintf("mem-%d", i)
		s = crashDuring(ctx, t, d, s, "snapshot", map[string]any{"workspace_id": src.ID, "action": "create", "name": name, "include_memory": true}, delay)
		running := checkWorkspaces(ctx, t, d, s)
		if !slices.Contains(running, "crash-src") {
			t.Fatalf("after a crash %v into a memory snapshot the source is not running", delay)
		}
		checkLayerStore(ctx, t, d)
		for _, sn := range snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "list"}).Snapshots {
			if sn.Name == name {
				kept = append(kept, name)
			}
		}
		t.Logf("crash %v into snapshot %s: kept=%v", delay, name, slices.Contains(kept, name))
	}
	if len(kept) > 0 {
		// A memory snapshot the crash let finish is whole: it restores.
		last := kept[len(kept)-1]
		r := snapshot(ctx, t, s, map[string]any{"workspace_id": src.ID, "action": "restore", "name": last})
		if r.State != "running" {
			t.Errorf("restore of %s after the crashes = %+v", last, r)
		}
	}

	for i, delay := range []time.Duration{0, 300 * time.Millisecond, 1500 * time.Millisecond} {
		name := fmt.Sprintf("crash-fork-%d", i)
		s = crashDuring(ctx, t, d, s, "workspace_fork", map[string]any{"workspace_id": src.ID, "snapshot_name": "base", "new_name": name}, delay)
		running := checkWorkspaces(ctx, t, d, s)
		checkLayerStore(ctx, t, d)
		t.Logf("crash %v into fork %s: fork survived=%v", delay, name, slices.Contains(running, name))
		if slices.Contains(running, name) {
			if got := sh(ctx, t, s, name, "hostname"); got != name {
				t.Errorf("surviving fork's hostname = %q", got)
			}
			// Keep at most 2 VMs running on this small machine.
			call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": name})
		}
	}

	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": src.ID})
	checkLayerStore(ctx, t, d)
	assertNothingLeft(t, d)

	logLinesWith(t, d.Log(), "crash", "interrupted", "left paused", "unrecorded", "re-attach", "unused layers")
}
