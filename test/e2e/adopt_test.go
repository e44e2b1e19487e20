package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// adoptOut is workspace_adopt's answer.
type adoptOut struct {
	Adopted []struct {
		ID    string `json:"workspace_id"`
		Name  string `json:"name"`
		State string `json:"state"`
		Owned bool   `json:"owned"`
	} `json:"adopted"`
	Skipped []struct {
		ID     string `json:"workspace_id"`
		Name   string `json:"name"`
		Reason string `json:"reason"`
	} `json:"skipped"`
	Count int `json:"count"`
}

// waitForOrphans lists from s until n workspaces show as orphans (owned
// false): a closed client's session ends a moment after it goes.
func waitForOrphans(ctx context.Context, t *testing.T, s *mcp.ClientSession, n int) listed {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := call[listed](ctx, t, s, "workspace_list", map[string]any{})
		orphans := 0
		for _, w := range l.Workspaces {
			if !w.Owned {
				orphans++
			}
		}
		if orphans == n {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("workspace_list shows %d orphans after 30s, want %d: %+v", orphans, n, l)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func owned(l listed) (mine, orphans []string) {
	for _, w := range l.Workspaces {
		if w.Owned {
			mine = append(mine, w.Name)
		} else {
			orphans = append(orphans, w.Name)
		}
	}
	return mine, orphans
}

// TestL12_AdoptOrphansAndForceFromAStaleSession follows workspaces from a
// session that disconnects to one that adopts them (one by one and all at
// once), and from that session, once it has been silent longer than
// server.stale_session_secs, to a third that must use force. A live
// session's workspaces can neither be seen nor taken, with or without
// force, and the refusal is the answer for a workspace that does not exist.
func TestL12_AdoptOrphansAndForceFromAStaleSession(t *testing.T) {
	const stale = 5 * time.Second
	d := startDaemonWith(t, "stale_session_secs = 5", "")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	a := d.client(ctx)
	w1 := call[wsInfo](ctx, t, a, "workspace_create", map[string]any{"name": "orphan-1"})
	w2 := call[wsInfo](ctx, t, a, "workspace_create", map[string]any{"name": "orphan-2"})
	call[map[string]any](ctx, t, a, "file_write", map[string]any{"workspace_id": w1.ID, "path": "/root/mark", "content": "left by a\n"})
	call[wsInfo](ctx, t, a, "workspace_stop", map[string]any{"workspace_id": w2.ID})

	b, c := d.client(ctx), d.client(ctx)
	if l := call[listed](ctx, t, b, "workspace_list", map[string]any{}); l.Count != 0 {
		t.Fatalf("b sees a live session's workspaces: %+v", l)
	}
	unknown := callErr(ctx, t, b, "workspace_adopt", map[string]any{"workspace_id": "never-existed"})
	if !strings.Contains(unknown, "no such workspace") {
		t.Fatalf("adopting a missing workspace: %q", unknown)
	}
	for _, args := range []map[string]any{
		{"workspace_id": w1.ID}, {"workspace_id": "orphan-1", "force": true},
	} {
		if msg := callErr(ctx, t, b, "workspace_adopt", args); msg != unknown {
			t.Errorf("adopting from a live session (%v): %q, want the answer for a missing workspace %q", args, msg, unknown)
		}
	}
	if r := call[adoptOut](ctx, t, b, "workspace_adopt", map[string]any{"force": true}); r.Count != 0 || len(r.Skipped) != 0 {
		t.Errorf("adopting all from a live session: %+v, want nothing", r)
	}

	// a goes away: its workspaces are orphans, listed to b, usable after adoption.
	a.Close()
	l := waitForOrphans(ctx, t, b, 2)
	if _, orphans := owned(l); len(orphans) != 2 {
		t.Fatalf("orphans %v", orphans)
	}
	if msg := callErr(ctx, t, b, "exec", map[string]any{"workspace_id": w1.ID, "command": "true"}); msg != unknown {
		t.Errorf("exec on an orphan before adopting: %q", msg)
	}
	one := call[adoptOut](ctx, t, b, "workspace_adopt", map[string]any{"workspace_id": "orphan-1"})
	if one.Count != 1 || one.Adopted[0].ID != w1.ID || !one.Adopted[0].Owned || one.Adopted[0].State != "running" {
		t.Fatalf("adopting orphan-1: %+v", one)
	}
	got := call[execResult](ctx, t, b, "exec", map[string]any{"workspace_id": "orphan-1", "command": "cat /root/mark"})
	if got.Stdout != "left by a\n" {
		t.Fatalf("the adopted workspace's file: %q", got.Stdout)
	}
	if msg := callErr(ctx, t, b, "workspace_adopt", map[string]any{"workspace_id": w1.ID}); !strings.Contains(msg, "already belongs to this session") {
		t.Errorf("adopting one's own workspace: %q", msg)
	}
	all := call[adoptOut](ctx, t, b, "workspace_adopt", map[string]any{})
	if all.Count != 1 || all.Adopted[0].Name != "orphan-2" || all.Adopted[0].State != "stopped" {
		t.Fatalf("adopting all: %+v, want orphan-2 (stopped)", all)
	}
	if mine, orphans := owned(call[listed](ctx, t, b, "workspace_list", map[string]any{})); len(mine) != 2 || len(orphans) != 0 {
		t.Fatalf("b's list after adopting: mine %v, orphans %v", mine, orphans)
	}

	// b is connected but falls silent. While it is recent, c can neither
	// see nor take its workspaces; once stale, only with force.
	if l := call[listed](ctx, t, c, "workspace_list", map[string]any{}); l.Count != 0 {
		t.Fatalf("c sees b's workspaces while b is live: %+v", l)
	}
	if msg := callErr(ctx, t, c, "workspace_adopt", map[string]any{"workspace_id": w1.ID, "force": true}); msg != unknown {
		t.Errorf("force adopt from a live session: %q, want %q", msg, unknown)
	}
	time.Sleep(stale + 2*time.Second)
	if _, orphans := owned(call[listed](ctx, t, c, "workspace_list", map[string]any{})); len(orphans) != 2 {
		t.Fatalf("c's list once b is stale: orphans %v, want b's two", orphans)
	}
	if msg := callErr(ctx, t, c, "workspace_adopt", map[string]any{"workspace_id": w1.ID}); !strings.Contains(msg, "pass force: true") {
		t.Errorf("adopting from a stale session without force: %q", msg)
	}
	skip := call[adoptOut](ctx, t, c, "workspace_adopt", map[string]any{})
	if skip.Count != 0 || len(skip.Skipped) != 2 || !strings.Contains(skip.Skipped[0].Reason, "pass force: true") {
		t.Errorf("adopting all from a stale session without force: %+v", skip)
	}
	forced := call[adoptOut](ctx, t, c, "workspace_adopt", map[string]any{"workspace_id": w1.ID, "force": true})
	if forced.Count != 1 || forced.Adopted[0].ID != w1.ID {
		t.Fatalf("force adopt from a stale session: %+v", forced)
	}
	if got := call[execResult](ctx, t, c, "exec", map[string]any{"workspace_id": w1.ID, "command": "cat /root/mark"}); got.Stdout != "left by a\n" {
		t.Fatalf("after force adopt: %q", got.Stdout)
	}
	// b has lost orphan-1 and kept orphan-2; it is live again, so c no longer sees orphan-2.
	if msg := callErr(ctx, t, b, "exec", map[string]any{"workspace_id": w1.ID, "command": "true"}); msg != unknown {
		t.Errorf("b's exec on a workspace taken from it: %q", msg)
	}
	if mine, orphans := owned(call[listed](ctx, t, b, "workspace_list", map[string]any{})); len(mine) != 1 || mine[0] != "orphan-2" || len(orphans) != 0 {
		t.Errorf("b's list after the takeover: mine %v, orphans %v", mine, orphans)
	}
	if _, orphans := owned(call[listed](ctx, t, c, "workspace_list", map[string]any{})); len(orphans) != 0 {
		t.Errorf("c still sees orphans of a live b: %v", orphans)
	}
	call[map[string]any](ctx, t, c, "workspace_destroy", map[string]any{"workspace_id": w1.ID})
	call[map[string]any](ctx, t, b, "workspace_destroy", map[string]any{"workspace_id": w2.ID})
}

// TestQuotaRefusals checks the per-session memory quota on create and on
// adoption: a refusal names the setting, and changes nothing.
func TestQuotaRefusals(t *testing.T) {
	d := startDaemon(t, "\n[resources]\nmax_memory_mb_per_session = 768\n")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	a, b := d.client(ctx), d.client(ctx)
	q1 := call[wsInfo](ctx, t, a, "workspace_create", map[string]any{"name": "quota-1", "memory_mb": 512})
	msg := callErr(ctx, t, a, "workspace_create", map[string]any{"name": "quota-2", "memory_mb": 512})
	if !strings.Contains(msg, "512 MiB more would exceed its quota of 768 MiB (resources.max_memory_mb_per_session)") {
		t.Fatalf("create beyond the memory quota: %q", msg)
	}
	if l := call[listed](ctx, t, a, "workspace_list", map[string]any{}); l.Count != 1 {
		t.Fatalf("a refused create left %+v", l)
	}
	qb := call[wsInfo](ctx, t, b, "workspace_create", map[string]any{"name": "quota-b", "memory_mb": 512})

	a.Close()
	waitForOrphans(ctx, t, b, 1)
	msg = callErr(ctx, t, b, "workspace_adopt", map[string]any{"workspace_id": q1.ID})
	if !strings.Contains(msg, "(resources.max_memory_mb_per_session)") || strings.Contains(msg, "quota-1") {
		t.Fatalf("adopt beyond the memory quota: %q", msg)
	}
	all := call[adoptOut](ctx, t, b, "workspace_adopt", map[string]any{})
	if all.Count != 0 || len(all.Skipped) != 1 || all.Skipped[0].ID != q1.ID || !strings.Contains(all.Skipped[0].Reason, "resources.max_memory_mb_per_session") {
		t.Fatalf("adopt all beyond the quota: %+v", all)
	}
	if mine, orphans := owned(call[listed](ctx, t, b, "workspace_list", map[string]any{})); len(mine) != 1 || len(orphans) != 1 {
		t.Fatalf("after refused adoptions: mine %v, orphans %v", mine, orphans)
	}
	call[map[string]any](ctx, t, b, "workspace_destroy", map[string]any{"workspace_id": qb.ID})
	if r := call[adoptOut](ctx, t, b, "workspace_adopt", map[string]any{"workspace_id": q1.ID}); r.Count != 1 {
		t.Fatalf("adopt within the quota: %+v", r)
	}
	call[map[string]any](ctx, t, b, "workspace_destroy", map[string]any{"workspace_id": q1.ID})
}

// TestAdoptAfterDaemonCrash checks that a daemon killed with its sessions
// open does not leave their workspaces hidden behind sessions that can
// never come back: the next daemon ends those sessions when it starts, and
// the agent, reconnecting, adopts its workspace without force, data intact.
func TestAdoptAfterDaemonCrash(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	a := d.client(ctx)
	ws := call[wsInfo](ctx, t, a, "workspace_create", map[string]any{"name": "survivor"})
	call[map[string]any](ctx, t, a, "file_write", map[string]any{"workspace_id": ws.ID, "path": "/root/mark", "content": "before the crash\n"})

	d.kill()
	d.start()

	b := d.client(ctx)
	l := call[listed](ctx, t, b, "workspace_list", map[string]any{})
	if l.Count != 1 || l.Workspaces[0].ID != ws.ID || l.Workspaces[0].Owned || l.Workspaces[0].State != "running" {
		t.Fatalf("after the crash the new session lists %+v, want survivor as a running orphan", l)
	}
	r := call[adoptOut](ctx, t, b, "workspace_adopt", map[string]any{})
	if r.Count != 1 || r.Adopted[0].ID != ws.ID {
		t.Fatalf("adopting after the crash: %+v", r)
	}
	if got := call[execResult](ctx, t, b, "exec", map[string]any{"workspace_id": ws.ID, "command": "cat /root/mark"}); got.Stdout != "before the crash\n" {
		t.Fatalf("after adopting: %q", got.Stdout)
	}
	call[map[string]any](ctx, t, b, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
}
