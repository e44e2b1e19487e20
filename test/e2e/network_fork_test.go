package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/network"
)

// TestForksOfAMemorySnapshotTakeTheirOwnAddress: a memory snapshot carries
// its VM's network identity (eth0's address and MAC are in guest memory).
// Each fork of it gets its own address and MAC from the daemon and the
// guest applies them after resuming, so two forks of one snapshot are two
// hosts on the bridge: isolated until a policy lets them talk, then able to
// reach each other, each at its own address. The anti-spoofing rules know
// only the forks' new addresses, so a fork still speaking with the source's
// identity could reach nothing.
func TestForksOfAMemorySnapshotTakeTheirOwnAddress(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	s := d.client(ctx)

	srcInfo := call[netInfo](ctx, t, s, "workspace_create", map[string]any{"name": "nf-src", "memory_mb": 256})
	src := guest{t: t, ctx: ctx, s: s, ws: srcInfo}
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": src.ws.ID, "path": "/root/nettool.py", "content": nettool})
	// A server started before the snapshot resumes in every fork.
	src.background("python3 /root/nettool.py echo_server 8001")
	src.tool("wait_port 8001")
	call[snapOut](ctx, t, s, "snapshot", map[string]any{"workspace_id": src.ws.ID, "action": "create", "name": "mem", "include_memory": true})
	// Two VMs are enough: the source's address stays held while it is stopped.
	call[map[string]any](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": src.ws.ID})

	var forks []guest
	seen := map[string]string{src.ws.IP: src.ws.Name}
	for _, name := range []string{"nf-1", "nf-2"} {
		f := call[forkOut](ctx, t, s, "workspace_fork", map[string]any{"workspace_id": src.ws.ID, "snapshot_name": "mem", "new_name": name})
		g := guest{t: t, ctx: ctx, s: s, ws: call[netInfo](ctx, t, s, "workspace_info", map[string]any{"workspace_id": f.WorkspaceID})}
		ip, err := netip.ParseAddr(g.ws.IP)
		if err != nil {
			t.Fatalf("%s has address %q", name, g.ws.IP)
		}
		if other, dup := seen[g.ws.IP]; dup {
			t.Fatalf("%s got %s, the address of %s", name, g.ws.IP, other)
		}
		seen[g.ws.IP] = name
		if addr := g.ok("ip -4 -o addr show dev eth0"); !strings.Contains(addr, " "+g.ws.IP+"/") || strings.Contains(addr, " "+src.ws.IP+"/") {
			t.Errorf("%s's eth0 after resuming: %s (its address %s, the source's %s)", name, addr, g.ws.IP, src.ws.IP)
		}
		if mac := g.ok("cat /sys/class/net/eth0/address"); mac != network.MACFor(ip).String() {
			t.Errorf("%s's MAC is %s, want %s", name, mac, network.MACFor(ip))
		}
		g.tool("wait_port 8001") // the resumed server
		forks = append(forks, g)
	}
	a, b := forks[0], forks[1]
	ping := func(from, to guest) bool {
		return from.sh("ping -c 1 -W 2 "+to.ws.IP).ExitCode == 0
	}

	// The forks took the source's processes, not a way around the policy.
	if ping(a, b) || ping(b, a) {
		t.Fatal("two forks ping each other with no policy allowing it")
	}
	if got := a.tool("tcp " + b.ws.IP + " 8001 2"); !strings.HasPrefix(got, "closed") {
		t.Fatalf("a fork reached the other's server with no policy: %s", got)
	}

	for _, g := range forks {
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": g.ws.ID, "allow_inter_vm": true})
	}
	waitFor(t, time.Minute, "the forks to ping each other", func() bool { return ping(a, b) && ping(b, a) })
	if got := a.tool("tcp " + b.ws.IP + " 8001 5"); got != "open" {
		t.Errorf("%s cannot reach the resumed server of %s at its own address: %s", a.ws.Name, b.ws.Name, got)
	}
	// Each answers at its own address only: the source's is not theirs.
	if got := a.tool("tcp " + src.ws.IP + " 8001 2"); !strings.HasPrefix(got, "closed") {
		t.Errorf("the source's address answers while the source is stopped: %s", got)
	}

	call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": b.ws.ID, "allow_inter_vm": false})
	if ping(a, b) {
		t.Error("the forks still ping each other after one withdrew")
	}
}
