package e2e

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestTeamFromBaseSnapshot: team create with base_snapshot makes every
// member a fork of that snapshot of the caller's workspace (its files, its
// lineage), each with a bridge token of its own; a base_snapshot that
// names no snapshot of the caller's is refused and leaves nothing; the
// snapshot stays pinned while members stand on it, and destroy releases it.
func TestTeamFromBaseSnapshot(t *testing.T) {
	d := startDaemon(t, bridgeConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	s := d.client(ctx)

	golden := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "golden"})
	sh(ctx, t, s, "golden", `echo prepared > /root/marker`)
	call[map[string]any](ctx, t, s, "snapshot", map[string]any{"workspace_id": "golden", "action": "create", "name": "base", "include_memory": true})

	roles := []map[string]any{{"name": "dev", "role": "coder"}}
	for _, c := range []struct{ base, want string }{
		{"golden", "base_snapshot: must be {workspace}/{snapshot}"},
		{"golden/nosuch", "base_snapshot: the workspace has no such snapshot"},
		{"elsewhere/base", "base_snapshot: no such workspace in this session"},
	} {
		msg := callErr(ctx, t, s, "team", map[string]any{"action": "create", "name": "bs", "roles": roles, "base_snapshot": c.base})
		if !strings.HasPrefix(msg, c.want) {
			t.Errorf("base_snapshot %q: %q; want %q", c.base, msg, c.want)
		}
	}
	if msg := callErr(ctx, t, s, "team", map[string]any{"action": "status", "name": "bs"}); !strings.Contains(msg, "no such team") {
		t.Fatalf("a refused create left a team: %q", msg)
	}

	info := call[teamInfo](ctx, t, s, "team", map[string]any{"action": "create", "name": "bs", "roles": roles, "base_snapshot": "golden/base"})
	if info.State != "ready" || len(info.Members) != 1 || info.Members[0].State != "running" || info.UsedVMs != 1 {
		t.Fatalf("create from a base snapshot: %+v", info)
	}
	if got := sh(ctx, t, s, "bs-dev", `cat /root/marker; hostname`); got != "prepared\nbs-dev" {
		t.Fatalf("the member holds %q; want the snapshot's file and its own hostname", got)
	}
	type lineage struct {
		ForkedFrom *forkedFrom `json:"forked_from"`
	}
	wi := call[lineage](ctx, t, s, "workspace_info", map[string]any{"workspace_id": "bs-dev"})
	if wi.ForkedFrom == nil || wi.ForkedFrom.SourceWorkspaceID != golden.ID || wi.ForkedFrom.SnapshotName != "base" {
		t.Fatalf("the member's lineage: %+v", wi.ForkedFrom)
	}
	a := newBridgeAgent(ctx, t, s, "bs-dev")
	var names []string
	a.run(&names, "", "list")
	if len(names) == 0 {
		t.Fatal("the member's bridge token lists no tools")
	}

	if msg := callErr(ctx, t, s, "snapshot", map[string]any{"workspace_id": "golden", "action": "delete", "name": "base"}); !strings.Contains(msg, "depend on this snapshot") {
		t.Fatalf("deleting the base snapshot under a member: %q", msg)
	}
	des := call[struct {
		DestroyedWorkspaces []string `json:"destroyed_workspaces"`
	}](ctx, t, s, "team", map[string]any{"action": "destroy", "name": "bs"})
	if strings.Join(des.DestroyedWorkspaces, ",") != "bs-dev" {
		t.Fatalf("destroy: %+v", des)
	}
	call[map[string]any](ctx, t, s, "snapshot", map[string]any{"workspace_id": "golden", "action": "delete", "name": "base"})
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": golden.ID})
}
