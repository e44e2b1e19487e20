package e2e

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "modernc.org/sqlite"
)

// TestM8_SessionIdentityIsAssignedByTheDaemon checks that each connection
// gets its own session, made by the daemon: a random UUID bound to the
// connecting process's credentials (SO_PEERCRED), and that workspaces belong
// to that session. Two clients that present the same client identity still
// get two sessions; nothing a client sends names its session.
func TestM8_SessionIdentityIsAssignedByTheDaemon(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	a, cmdA := d.clientCmd(ctx)
	b, cmdB := d.clientCmd(ctx)
	ws := call[wsInfo](ctx, t, a, "workspace_create", map[string]any{"name": "m8"})
	defer call[map[string]any](ctx, t, a, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
	call[map[string]any](ctx, t, b, "workspace_list", map[string]any{})

	db, err := sql.Open("sqlite", "file:"+d.StatePath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT id, uid, pid FROM sessions WHERE ended_at = 0`)
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]string{}
	for rows.Next() {
		var id string
		var uid, pid int
		if err := rows.Scan(&id, &uid, &pid); err != nil {
			t.Fatal(err)
		}
		if _, err := uuid.Parse(id); err != nil {
			t.Errorf("session id %q is not a daemon-made UUID", id)
		}
		if uid != 0 {
			t.Errorf("session %s: uid %d, want the peer's uid 0", id, uid)
		}
		byPID[pid] = id
	}
	rows.Close()
	idA, idB := byPID[cmdA.Process.Pid], byPID[cmdB.Process.Pid]
	if idA == "" || idB == "" || idA == idB {
		t.Fatalf("sessions by peer pid = %v; want one each for shims %d and %d", byPID, cmdA.Process.Pid, cmdB.Process.Pid)
	}
	var owner string
	if err := db.QueryRowContext(ctx, `SELECT owner FROM workspaces WHERE id = ?`, ws.ID).Scan(&owner); err != nil {
		t.Fatal(err)
	}
	if owner != idA {
		t.Errorf("workspace owner = %s, want client A's session %s", owner, idA)
	}
}

// TestL16_ForeignWorkspaceErrorsEchoNothing checks that a second session
// cannot see or touch the first one's workspace, and that every refusal is
// the same text, which echoes neither the name nor the id it was given.
func TestL16_ForeignWorkspaceErrorsEchoNothing(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	a := d.client(ctx)
	b := d.client(ctx)

	ws := call[wsInfo](ctx, t, a, "workspace_create", map[string]any{"name": "private-ws"})
	type listOut struct {
		Workspaces []wsInfo `json:"workspaces"`
	}
	if l := call[listOut](ctx, t, b, "workspace_list", map[string]any{}); len(l.Workspaces) != 0 {
		t.Errorf("session b sees %+v", l.Workspaces)
	}
	unknown := callErr(ctx, t, b, "workspace_info", map[string]any{"workspace_id": "never-existed"})
	for _, ref := range []string{ws.ID, "private-ws"} {
		for _, tc := range []struct {
			tool string
			args map[string]any
		}{
			{"workspace_info", map[string]any{"workspace_id": ref}},
			{"workspace_destroy", map[string]any{"workspace_id": ref}},
			{"workspace_stop", map[string]any{"workspace_id": ref}},
			{"exec", map[string]any{"workspace_id": ref, "command": "true"}},
			{"file_read", map[string]any{"workspace_id": ref, "path": "/etc/hostname"}},
			{"workspace_adopt", map[string]any{"workspace_id": ref}},
			{"workspace_adopt", map[string]any{"workspace_id": ref, "force": true}},
		} {
			msg := callErr(ctx, t, b, tc.tool, tc.args)
			if strings.Contains(msg, "private-ws") || strings.Contains(msg, ws.ID) {
				t.Errorf("%s error echoes the foreign workspace: %q", tc.tool, msg)
			}
			if msg != unknown {
				t.Errorf("%s on a foreign workspace says %q, on a missing one %q: they must not differ", tc.tool, msg, unknown)
			}
		}
	}
	// The owner's workspace is untouched by all of that.
	if info := call[wsInfo](ctx, t, a, "workspace_info", map[string]any{"workspace_id": ws.ID}); info.State != "running" {
		t.Errorf("after b's attempts the workspace is %q", info.State)
	}
	call[map[string]any](ctx, t, a, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
}
