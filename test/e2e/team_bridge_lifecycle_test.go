package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/testdaemon"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// lifecycleBridgeConfig is bridgeConfig with the dashboard moved to port
// 7171 and nothing in reserved_ports: the daemon's own ports are still
// refused to port forwards.
const lifecycleBridgeConfig = teamConfig + `
[network]
subnet = "10.79.0.0/24"
vm_service_ports = [3999]
reserved_ports = []

[bridge]
enabled = true
port = 3999

[dashboard]
listen = "127.0.0.1:7171"
`

// bridgeToken is the bridge token in ws's exec environment ("" for none).
func bridgeToken(ctx context.Context, t *testing.T, s *mcp.ClientSession, ws string) string {
	t.Helper()
	return sh(ctx, t, s, ws, `printf %s "${AGENTISO_BRIDGE_TOKEN:-}"`)
}

// TestL7_BridgeTokenFollowsRestartsNotForks: a member that is stopped and
// started again, or restored from its memory snapshot, gets a new working
// token in its new guest and the previous one is refused; a fork of the
// member's memory snapshot holds no bridge environment, and the member's
// token, even handed to the fork explicitly, does not work from the fork
// (tokens are bound to their workspace's address, M-5), while it still
// works for the member; a member whose agent died and was started again
// by PID 1 is given a new token too. Port forwards cannot take the bridge's or the
// dashboard's port, though reserved_ports is empty (L-1).
func TestL7_BridgeTokenFollowsRestartsNotForks(t *testing.T) {
	d := startDaemon(t, lifecycleBridgeConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s := d.client(ctx)
	call[teamInfo](ctx, t, s, "team", map[string]any{"action": "create", "name": "rt",
		"roles": []map[string]any{{"name": "dev", "role": "coder"}}})
	defer call[map[string]any](ctx, t, s, "team", map[string]any{"action": "destroy", "name": "rt"})
	member := newBridgeAgent(ctx, t, s, "rt-dev")
	works := func(a bridgeAgent, token, what string) {
		t.Helper()
		var names []string
		a.run(&names, token, "list")
		if len(names) == 0 {
			t.Fatalf("%s: the bridge listed no tools", what)
		}
	}
	refused := func(a bridgeAgent, token, what string) {
		t.Helper()
		var r toolResult
		a.run(&r, token, "list")
		if r.HTTPError != 401 {
			t.Fatalf("%s: %+v; want HTTP 401", what, r)
		}
	}
	t1 := bridgeToken(ctx, t, s, "rt-dev")
	if len(t1) != 43 {
		t.Fatalf("the member holds a token of %d characters", len(t1))
	}
	works(member, "", "the member's first token")

	// L-1: the daemon's own ports, wherever the config puts them.
	for _, port := range []int{3999, 7171} {
		msg := callErr(ctx, t, s, "port_forward", map[string]any{"workspace_id": "rt-dev", "action": "add", "guest_port": 22, "host_port": port})
		if !strings.Contains(msg, "is reserved for the daemon itself") {
			t.Errorf("port_forward to the daemon's port %d: %q", port, msg)
		}
	}

	// A fork of the member's memory snapshot.
	call[map[string]any](ctx, t, s, "snapshot", map[string]any{"workspace_id": "rt-dev", "action": "create", "name": "live", "include_memory": true})
	f := call[forkOut](ctx, t, s, "workspace_fork", map[string]any{"workspace_id": "rt-dev", "snapshot_name": "live", "new_name": "rt-fork"})
	if f.State != "running" {
		t.Fatalf("fork: %+v", f)
	}
	// (Lengths only: a test log holds no token either.)
	if got := sh(ctx, t, s, "rt-fork", `printf '%s/%s' "${#AGENTISO_BRIDGE_TOKEN}" "${#AGENTISO_BRIDGE_URL}"`); got != "0/0" {
		t.Fatalf("the fork resumed with bridge variables of lengths %s (token/url); want none", got)
	}
	// The client came with the snapshot's disk; the fork is given the URL.
	if r := sh(ctx, t, s, "rt-fork", `AGENTISO_BRIDGE_URL=http://10.79.0.1:3999/mcp TOKEN='`+t1+`' python3 /root/bridge_client.py list`); r != `{"http_error": 401}` {
		t.Fatalf("the member's token used from its fork: %s", r)
	}
	works(member, "", "the member's token after the fork")
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": f.WorkspaceID})

	// Stopped and started: a new guest, a new token.
	call[wsInfo](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": "rt-dev"})
	call[wsInfo](ctx, t, s, "workspace_start", map[string]any{"workspace_id": "rt-dev"})
	t2 := bridgeToken(ctx, t, s, "rt-dev")
	if len(t2) != 43 || t2 == t1 {
		t.Fatalf("after a start the member holds a token of %d characters, new: %v", len(t2), t2 != t1)
	}
	works(member, "", "the member's token after a start")
	refused(member, t1, "the token from before the stop")

	// Restored from its memory snapshot: the guest resumes holding t1,
	// which stays refused; it is given a new one.
	call[map[string]any](ctx, t, s, "snapshot", map[string]any{"workspace_id": "rt-dev", "action": "restore", "name": "live"})
	t3 := bridgeToken(ctx, t, s, "rt-dev")
	if len(t3) != 43 || t3 == t1 || t3 == t2 {
		t.Fatalf("after a restore the member holds a token of %d characters, new: %v", len(t3), t3 != t1 && t3 != t2)
	}
	works(member, "", "the member's token after a restore")
	refused(member, t1, "the snapshot's token after the restore")
	refused(member, t2, "the token from before the restore")

	// The member's agent dies and PID 1 starts another, which holds
	// nothing in memory: the host connects to it again and gives it a new
	// token. The call that kills the agent cannot get its answer.
	kctx, kcancel := context.WithTimeout(ctx, 30*time.Second)
	testdaemon.Call[execResult](kctx, s, "exec", map[string]any{"workspace_id": "rt-dev", "timeout_secs": 20,
		"command": `for d in /proc/[0-9]*; do [ "$(tr '\0' ' ' < $d/cmdline 2>/dev/null)" = "agentiso-guest agent " ] && kill -9 ${d#/proc/}; done`})
	kcancel()
	var t4 string
	deadline := time.Now().Add(90 * time.Second)
	for {
		tctx, tcancel := context.WithTimeout(ctx, 10*time.Second)
		r, err := testdaemon.Call[execResult](tctx, s, "exec", map[string]any{"workspace_id": "rt-dev", "timeout_secs": 5,
			"command": `printf %s "${AGENTISO_BRIDGE_TOKEN:-}"`})
		tcancel()
		if t4 = r.Stdout; err == nil && len(t4) == 43 && t4 != t3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("90 s after its agent died the member holds a token of %d characters (new: %v; last error %v)", len(t4), t4 != t3, err)
		}
		time.Sleep(time.Second)
	}
	works(member, "", "the member's token after its agent was restarted")
	refused(member, t3, "the dead agent's token")
}
