package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/network"
	"github.com/agentiso/agentiso/internal/testenv/netns"
)

// TestPoolAndTemplateWorkspacesTakeTheirOwnNetwork: a workspace restored
// from the memory template and one claimed from the warm pool each run
// with an address and MAC of their own (the template's VM and the pool VM
// booted before either was known), are isolated until both allow it, and
// then reach each other. A ready pool VM is listed by no rule, and a
// drained pool and a finished template build leave no TAP behind.
func TestPoolAndTemplateWorkspacesTakeTheirOwnNetwork(t *testing.T) {
	d := startDaemon(t, `
[resources]
default_memory_mb = 256

[pool]
enabled = true
size = 1
max_memory_mb = 256
template = true
`)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	ready := waitLog(t, d, "pool VM ready", 0, 5*time.Minute)
	s := d.client(ctx)

	type created struct {
		netInfo
		FromPool bool `json:"from_pool"`
	}
	tw := call[created](ctx, t, s, "workspace_create", map[string]any{"name": "net-tmpl"})
	pw := call[created](ctx, t, s, "workspace_create", map[string]any{"name": "net-pool", "from_pool": true})
	if !pw.FromPool || tw.FromPool {
		t.Fatalf("from_pool: template create %v, pool create %v", tw.FromPool, pw.FromPool)
	}
	fromTemplate := false
	for _, l := range strings.Split(d.Log(), "\n") {
		if strings.Contains(l, "workspace created") && strings.Contains(l, "name=net-tmpl") && strings.Contains(l, "from_template=true") {
			fromTemplate = true
		}
	}
	if !fromTemplate {
		t.Fatalf("net-tmpl was not restored from the memory template:\n%s", d.Log())
	}

	a := guest{t: t, ctx: ctx, s: s, ws: tw.netInfo}
	b := guest{t: t, ctx: ctx, s: s, ws: pw.netInfo}
	if a.ws.IP == b.ws.IP {
		t.Fatalf("both workspaces have %s", a.ws.IP)
	}
	for _, g := range []guest{a, b} {
		ip, err := netip.ParseAddr(g.ws.IP)
		if err != nil {
			t.Fatalf("%s has address %q", g.ws.Name, g.ws.IP)
		}
		if addr := g.ok("ip -4 -o addr show dev eth0"); !strings.Contains(addr, " "+g.ws.IP+"/") {
			t.Errorf("%s's eth0: %s, want %s", g.ws.Name, addr, g.ws.IP)
		}
		if mac := g.ok("cat /sys/class/net/eth0/address"); mac != network.MACFor(ip).String() {
			t.Errorf("%s's MAC is %s, want %s", g.ws.Name, mac, network.MACFor(ip))
		}
	}
	ping := func(from, to guest) bool { return from.sh("ping -c 1 -W 2 "+to.ws.IP).ExitCode == 0 }
	if ping(a, b) || ping(b, a) {
		t.Fatal("the two workspaces ping each other with no policy allowing it")
	}
	for _, g := range []guest{a, b} {
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": g.ws.ID, "allow_inter_vm": true})
	}
	waitFor(t, time.Minute, "the two workspaces to ping each other", func() bool { return ping(a, b) && ping(b, a) })

	// The pool refills; its new VM has an address and a TAP, and no rule.
	waitLog(t, d, "pool VM ready", ready, 5*time.Minute)
	vms := netns.IP(t, "netns", "exec", d.Netns, "nft", "list", "set", "bridge", network.TableName, "vms")
	for _, g := range []guest{a, b} {
		if !strings.Contains(vms, g.ws.IP) {
			t.Errorf("the rules do not list %s (%s):\n%s", g.ws.Name, g.ws.IP, vms)
		}
	}
	if n := strings.Count(vms, "02:a9:"); n != 2 { // every VM MAC starts so (network.MACFor)
		t.Errorf("the rules list %d VMs, want the 2 workspaces and not the ready pool VM:\n%s", n, vms)
	}
	if taps := agtLinks(t, d.Netns); len(taps) != 3 {
		t.Errorf("TAPs %v, want one per workspace and one for the ready pool VM", taps)
	}

	for _, g := range []guest{a, b} {
		call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": g.ws.ID})
	}
	d.stop() // drains the pool
	if taps := agtLinks(t, d.Netns); len(taps) != 0 {
		t.Errorf("TAPs left after the workspaces' destroy and the pool's drain: %v", taps)
	}
}

// agtLinks lists the TAPs of agentiso (and anything else named like them)
// in namespace ns.
func agtLinks(t *testing.T, ns string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(netns.IP(t, "-n", ns, "-o", "link", "show"), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && strings.HasPrefix(f[1], network.TAPPrefix) {
			out = append(out, strings.TrimSuffix(f[1], ":"))
		}
	}
	return out
}
