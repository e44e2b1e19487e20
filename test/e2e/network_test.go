package e2e

import (
	"context"
	_ "embed"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/network"
	"github.com/agentiso/agentiso/internal/testdaemon"
	"github.com/agentiso/agentiso/internal/testenv/netns"
)

//go:embed testdata/nettool.py
var nettool string

type netInfo struct {
	ID      string `json:"workspace_id"`
	Name    string `json:"name"`
	State   string `json:"state"`
	IP      string `json:"ip"`
	Network struct {
		AllowInternet bool  `json:"allow_internet"`
		AllowInterVM  bool  `json:"allow_inter_vm"`
		AllowedPorts  []int `json:"allowed_ports"`
	} `json:"network"`
	PortForwards []struct {
		GuestPort int `json:"guest_port"`
		HostPort  int `json:"host_port"`
	} `json:"port_forwards"`
}

type forwardOut struct {
	WorkspaceID string `json:"workspace_id"`
	GuestPort   int    `json:"guest_port"`
	HostPort    int    `json:"host_port"`
}

// gateway is the bridge's address in networkConfig's subnet; its MAC is
// network.MACFor(gateway).
var gateway = netip.MustParseAddr("10.77.0.1")

// guest runs commands in one workspace through the exec tool.
type guest struct {
	t   *testing.T
	ctx context.Context
	s   *mcp.ClientSession
	ws  netInfo
}

func (g guest) sh(cmd string) execResult {
	g.t.Helper()
	return call[execResult](g.ctx, g.t, g.s, "exec", map[string]any{"workspace_id": g.ws.ID, "command": cmd, "timeout_secs": 300})
}

// ok runs cmd, fails the test if it fails, and returns its trimmed stdout.
func (g guest) ok(cmd string) string {
	g.t.Helper()
	r := g.sh(cmd)
	if r.ExitCode != 0 {
		g.t.Fatalf("%s in %s: exit %d\nstdout: %s\nstderr: %s", cmd, g.ws.Name, r.ExitCode, r.Stdout, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

func (g guest) tool(args string) string { return g.ok("python3 /root/nettool.py " + args) }

// background starts cmd detached from the exec call.
func (g guest) background(cmd string) {
	g.t.Helper()
	g.ok("setsid sh -c '" + cmd + "' >/dev/null 2>&1 </dev/null &")
}

// TestNetworkFromGuests drives real guests through the MCP tools and proves
// the network posture with packets they send: isolation between VMs, the
// host closed to them, no egress without internet access and NAT with it,
// spoofed frames and ARP dropped, no listener in a guest, port forwards
// scoped to loopback and configured interfaces, rules restored exactly by a
// restart, and addresses recycled only after the kernel forgot their owner.
// The daemon, its bridge, TAPs, rules and VMs, the "internet" and the "lan"
// all live in namespaces the test made.
func TestNetworkFromGuests(t *testing.T) {
	world, prepare := newNetWorld(t)
	d := startDaemonIn(t, "", networkConfig, daemonOpts{}, prepare)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	s := d.client(ctx)

	create := func(name string) guest {
		ws := call[netInfo](ctx, t, s, "workspace_create", map[string]any{"name": name, "memory_mb": 384})
		g := guest{t: t, ctx: ctx, s: s, ws: ws}
		t.Cleanup(func() { logConsoleOnFailure(t, s, ws.ID, name) })
		call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws.ID, "path": "/root/nettool.py", "content": nettool})
		return g
	}
	a, b := create("net-a"), create("net-b")
	for _, g := range []guest{a, b} {
		ip, err := netip.ParseAddr(g.ws.IP)
		if err != nil || !netip.MustParsePrefix("10.77.0.0/24").Contains(ip) || ip == gateway {
			t.Fatalf("%s got address %q", g.ws.Name, g.ws.IP)
		}
		if g.ws.Network.AllowInternet {
			t.Fatalf("%s has internet access by default", g.ws.Name)
		}
		addr := g.ok("ip -4 -o addr show dev eth0")
		if !strings.Contains(addr, g.ws.IP+"/24") {
			t.Fatalf("%s's eth0: %s", g.ws.Name, addr)
		}
		if route := g.ok("ip route show default"); !strings.Contains(route, "via "+gateway.String()) {
			t.Fatalf("%s's default route: %s", g.ws.Name, route)
		}
		if mac := g.ok("cat /sys/class/net/eth0/address"); mac != network.MACFor(netip.MustParseAddr(g.ws.IP)).String() {
			t.Fatalf("%s's MAC is %s", g.ws.Name, mac)
		}
	}
	if a.ws.IP == b.ws.IP {
		t.Fatal("two workspaces share an address")
	}
	bootID := a.ok("cat /proc/sys/kernel/random/boot_id")

	t.Run("L4_NoEgressWithoutInternet", func(t *testing.T) {
		if rc := a.ok("cat /etc/resolv.conf"); strings.Contains(rc, "nameserver") {
			t.Errorf("resolv.conf of a workspace without internet names a server:\n%s", rc)
		}
		if r := a.sh("getent hosts example.test"); r.ExitCode == 0 {
			t.Errorf("a name resolved without internet access: %s", r.Stdout)
		}
		if got := a.tool("dns_query " + dnsIP + " 2"); got != "no answer" {
			t.Errorf("DNS to the internet without internet access: %s", got)
		}
		if got := a.tool("dns_query " + gateway.String() + " 1"); got != "no answer" {
			t.Errorf("DNS to the host without internet access: %s", got)
		}
		if got := a.tool("tcp " + webIP + " 80 2"); got != "closed timed out" {
			t.Errorf("TCP to the internet without internet access: %s", got)
		}
		if n := world.dnsQueries.Load(); n != 0 {
			t.Errorf("the internet's name server got %d queries from a workspace without internet access", n)
		}
	})

	t.Run("InternetThroughNATWhenAllowed", func(t *testing.T) {
		type policyOut struct {
			AllowInternet bool  `json:"allow_internet"`
			AllowInterVM  bool  `json:"allow_inter_vm"`
			AllowedPorts  []int `json:"allowed_ports"`
		}
		pol := call[policyOut](ctx, t, s, "network_policy", map[string]any{"workspace_id": a.ws.ID, "allow_internet": true})
		if !pol.AllowInternet || pol.AllowInterVM || pol.AllowedPorts == nil {
			t.Errorf("network_policy result: %+v", pol)
		}
		if rc := a.ok("cat /etc/resolv.conf"); !strings.Contains(rc, "nameserver "+dnsIP) {
			t.Errorf("resolv.conf after allowing internet:\n%s", rc)
		}
		if got := a.ok("getent hosts example.test"); !strings.HasPrefix(got, webIP) {
			t.Errorf("example.test resolved to %q", got)
		}
		if got := a.ok("curl -sS -m 10 http://example.test/"); got != "hello" {
			t.Errorf("curl through NAT: %q", got)
		}
		if a.ok("cat /proc/sys/kernel/random/boot_id") != bootID {
			t.Error("the workspace rebooted for a policy change")
		}
		if got := b.tool("tcp " + webIP + " 80 2"); got != "closed timed out" {
			t.Errorf("internet access for A let B out: %s", got)
		}
		// Taken away again: DNS and TCP stop, resolv.conf is emptied.
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": a.ws.ID, "allow_internet": false})
		before := world.dnsQueries.Load()
		if got := a.tool("dns_query " + dnsIP + " 2"); got != "no answer" {
			t.Errorf("DNS after internet access was taken away: %s", got)
		}
		if world.dnsQueries.Load() != before {
			t.Error("a query reached the name server after internet access was taken away")
		}
		if rc := a.ok("cat /etc/resolv.conf"); strings.Contains(rc, "nameserver") {
			t.Errorf("resolv.conf still names a server:\n%s", rc)
		}
	})

	t.Run("M1_HostClosedToGuests", func(t *testing.T) {
		serveHello(t, d.Netns, "0.0.0.0:3998")
		serveHello(t, d.Netns, "0.0.0.0:3999") // vm_service_ports
		if got := a.tool("tcp " + gateway.String() + " 3998 2"); !strings.HasPrefix(got, "closed") {
			t.Errorf("a guest reached a host service: %s", got)
		}
		if got := a.tool("tcp " + netns.UpHost + " 3999 2"); !strings.HasPrefix(got, "closed") {
			t.Errorf("a guest reached a served port on another host address: %s", got)
		}
		if got := a.tool("tcp " + gateway.String() + " 3999 5"); got != "open" {
			t.Errorf("a guest cannot reach what the daemon serves to VMs: %s", got)
		}
	})

	t.Run("M2_GuestsIsolatedUnlessAllowed", func(t *testing.T) {
		b.background("python3 /root/nettool.py echo_server 8001")
		b.background("python3 -m http.server 8000")
		b.tool("wait_port 8001")
		b.tool("wait_port 8000")
		if got := a.tool("tcp " + b.ws.IP + " 8000 2"); !strings.HasPrefix(got, "closed") {
			t.Fatalf("A reached B with no policy: %s", got)
		}
		// Both must allow it; one side alone is not enough.
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": a.ws.ID, "allow_inter_vm": true})
		if got := a.tool("tcp " + b.ws.IP + " 8000 2"); !strings.HasPrefix(got, "closed") {
			t.Fatalf("A reached B although only A allows inter-VM traffic: %s", got)
		}
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": b.ws.ID, "allow_inter_vm": true})
		// A's failed ARP for B may be cached for a few seconds.
		waitFor(t, time.Minute, "A to reach B with both allowing it", func() bool {
			return a.tool("tcp "+b.ws.IP+" 8000 3") == "open"
		})

		// An established connection dies with the policy that allowed it.
		a.background("python3 /root/nettool.py keep_talking " + b.ws.IP + " 8001 /root/talk.log")
		waitFor(t, time.Minute, "the connection to carry data", func() bool {
			return strings.Count(a.ok("cat /root/talk.log 2>/dev/null || true"), "ok") >= 3
		})
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": b.ws.ID, "allow_inter_vm": false})
		cut := len(strings.Fields(a.ok("cat /root/talk.log")))
		var lines []string
		waitFor(t, time.Minute, "three more round trips", func() bool {
			lines = strings.Fields(a.ok("cat /root/talk.log"))
			return len(lines) >= cut+4
		})
		// The one in flight when the policy changed may have made it.
		after := lines[cut+1:]
		for _, l := range after {
			if l == "ok" {
				t.Fatalf("data crossed an established connection after the policy was removed: %v", lines[cut:])
			}
		}
		if got := a.tool("tcp " + b.ws.IP + " 8000 2"); !strings.HasPrefix(got, "closed") {
			t.Errorf("A reaches B after the policy was removed: %s", got)
		}
	})

	t.Run("C2_M11_L8_ScanFindsNoGuestListener", func(t *testing.T) {
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": b.ws.ID, "allow_inter_vm": true})
		start := time.Now()
		var found []string
		for first := 1; first <= 65535; first += 16384 { // four calls, each well within exec's timeout
			found = append(found, strings.Fields(a.tool(fmt.Sprintf("scan %s %d %d 500", b.ws.IP, first, min(first+16383, 65535))))...)
		}
		open := strings.Join(found, " ")
		t.Logf("scanned 65535 TCP ports of B from A in %v", time.Since(start).Round(time.Second))
		// The test's own servers (8000, 8001) must show up: the scan sees
		// what listens. Nothing of agentiso's may.
		if open != "8000 8001" {
			t.Errorf("open TCP ports on B: %q, want only the test's 8000 8001", open)
		}
		udp := b.ok("cat /proc/net/udp /proc/net/udp6 | awk 'NR>1 && $1 != \"sl\"' | wc -l")
		if udp != "0" {
			t.Errorf("B has %s UDP sockets:\n%s", udp, b.ok("cat /proc/net/udp /proc/net/udp6"))
		}
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": b.ws.ID, "allow_inter_vm": false})
	})

	t.Run("H6_SpoofedFramesFromAGuestDropped", func(t *testing.T) {
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": a.ws.ID, "allow_internet": true})
		got := countUDP(t, world.inet, webIP+":9999")
		a.tool(fmt.Sprintf("spoof %s %s %s %s 9999", network.MACFor(gateway), a.ws.IP, b.ws.IP, webIP))
		time.Sleep(time.Second)
		for marker, want := range map[string]int{"own": 1, "spoofed-ip": 0, "spoofed-mac": 0} {
			if n := got(marker); n != want {
				t.Errorf("%s: %d datagrams reached the internet, want %d", marker, n, want)
			}
		}
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": a.ws.ID, "allow_internet": false})
	})

	t.Run("M3_ARPFromAGuestLimited", func(t *testing.T) {
		netns.IP(t, "-n", d.Netns, "neigh", "flush", "all")
		a.tool("arp_claim " + b.ws.IP + " " + gateway.String())
		time.Sleep(500 * time.Millisecond)
		if out := netns.IP(t, "-n", d.Netns, "neigh", "show", b.ws.IP); strings.Contains(out, a.ok("cat /sys/class/net/eth0/address")) {
			t.Errorf("the host believes B's address is at A's MAC: %s", out)
		}
		if got := a.tool("arp_ask " + a.ws.IP + " " + b.ws.IP + " 2"); got != "" {
			t.Errorf("ARP for isolated B was answered by %s", got)
		}
		// The probe itself works: the gateway answers for itself.
		if got := a.tool("arp_ask " + a.ws.IP + " " + gateway.String() + " 2"); !strings.Contains(got, network.MACFor(gateway).String()) {
			t.Errorf("the gateway did not answer ARP for itself: %q", got)
		}
	})

	var fwd, cFwd forwardOut
	var c guest
	t.Run("H7_L1_PortForward", func(t *testing.T) {
		fwd = call[forwardOut](ctx, t, s, "port_forward", map[string]any{"workspace_id": b.ws.ID, "action": "add", "guest_port": 8000})
		if fwd.HostPort < 21000 || fwd.HostPort > 21099 {
			t.Fatalf("port_forward chose host port %d, outside the configured range", fwd.HostPort)
		}
		hp := fmt.Sprint(fwd.HostPort)
		waitFor(t, time.Minute, "the forward from loopback", func() bool { return dialRead(t, d.Netns, "127.0.0.1:"+hp, 3*time.Second) })
		if !dialRead(t, world.lan, netns.LANHost+":"+hp, 5*time.Second) {
			t.Error("the forward does not work from the configured host interface")
		}
		if dialRead(t, world.inet, netns.UpHost+":"+hp, 2*time.Second) {
			t.Error("the forward works from an interface that is not configured")
		}
		if got := a.tool("tcp " + gateway.String() + " " + hp + " 2"); !strings.HasPrefix(got, "closed") {
			t.Errorf("another guest reaches the forward: %s", got)
		}
		info := call[netInfo](ctx, t, s, "workspace_info", map[string]any{"workspace_id": b.ws.ID})
		if len(info.PortForwards) != 1 || info.PortForwards[0].HostPort != fwd.HostPort || info.PortForwards[0].GuestPort != 8000 {
			t.Errorf("workspace_info port_forwards = %+v", info.PortForwards)
		}

		serveHello(t, d.Netns, "0.0.0.0:21050") // something of the host's
		for _, c := range []struct {
			args map[string]any
			want string
		}{
			{map[string]any{"guest_port": 22, "host_port": 80}, "host_port: 80 is a privileged port"},
			{map[string]any{"guest_port": 22, "host_port": 1023}, "host_port: 1023 is a privileged port"},
			{map[string]any{"guest_port": 22, "host_port": 7070}, "host_port: 7070 is reserved"},
			{map[string]any{"guest_port": 22, "host_port": 3100}, "host_port: 3100 is reserved"},
			{map[string]any{"guest_port": 22, "host_port": fwd.HostPort}, "host_port: " + hp + " is already forwarded"},
			{map[string]any{"guest_port": 22, "host_port": 21050}, "host_port: 21050 is in use on the host"},
			{map[string]any{"guest_port": 8000, "host_port": 21051}, "guest_port: 8000 of this workspace is already forwarded"},
			{map[string]any{"guest_port": 0}, "guest_port:"},
			{map[string]any{"guest_port": 70000}, "guest_port:"},
		} {
			c.args["workspace_id"], c.args["action"] = b.ws.ID, "add"
			if msg := callErr(ctx, t, s, "port_forward", c.args); !strings.Contains(msg, c.want) {
				t.Errorf("port_forward %v: %q, want it to say %q", c.args, msg, c.want)
			}
		}
		if msg := callErr(ctx, t, s, "port_forward", map[string]any{"workspace_id": b.ws.ID, "action": "open", "guest_port": 1}); !strings.Contains(msg, "action:") {
			t.Errorf("bad action: %q", msg)
		}
		info = call[netInfo](ctx, t, s, "workspace_info", map[string]any{"workspace_id": b.ws.ID})
		if len(info.PortForwards) != 1 {
			t.Errorf("refused requests changed the forwards: %+v", info.PortForwards)
		}
		if msg := callErr(ctx, t, s, "network_policy", map[string]any{"workspace_id": b.ws.ID, "allowed_ports": []int{0}}); !strings.Contains(msg, "allowed_ports:") {
			t.Errorf("bad allowed_ports: %q", msg)
		}
	})

	t.Run("L6_DestroyForgetsBeforeReuse", func(t *testing.T) {
		// Make state to forget: a flow through the forward and neighbours.
		if !dialRead(t, d.Netns, fmt.Sprintf("127.0.0.1:%d", fwd.HostPort), 5*time.Second) {
			t.Fatal("no flow to B through the forward")
		}
		host, err := network.NewHost(network.Config{Bridge: "br-agentiso", Subnet: netip.MustParsePrefix("10.77.0.0/24"),
			Enter: netns.Enter(t, d.Netns)})
		if err != nil {
			t.Fatal(err)
		}
		bIP := netip.MustParseAddr(b.ws.IP)
		if n, err := host.FlowsOf(bIP); err != nil || n == 0 {
			t.Fatalf("B has %d flows (%v): the test would prove nothing", n, err)
		}
		call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": b.ws.ID})
		if n, err := host.FlowsOf(bIP); err != nil || n != 0 {
			t.Errorf("%d connection-tracking entries of B survived its destroy (%v)", n, err)
		}
		if out := strings.TrimSpace(netns.IP(t, "-n", d.Netns, "neigh", "show", b.ws.IP)); out != "" {
			t.Errorf("neighbour entry of B survived its destroy: %s", out)
		}
		rules := netns.IP(t, "netns", "exec", d.Netns, "nft", "list", "ruleset")
		for _, gone := range []string{b.ws.IP, network.TAPName(bIP), fmt.Sprintf("dport %d", fwd.HostPort)} {
			if strings.Contains(rules, gone) {
				t.Errorf("rules still mention %q after B's destroy", gone)
			}
		}
		if ok, _ := host.HasLink(network.TAPName(bIP)); ok {
			t.Error("B's TAP survived its destroy")
		}
		if dialRead(t, d.Netns, fmt.Sprintf("127.0.0.1:%d", fwd.HostPort), 2*time.Second) {
			t.Error("B's forward survived its destroy")
		}
		// Only then is the address free: the next workspace gets it.
		c = create("net-c")
		if c.ws.IP != b.ws.IP {
			t.Errorf("net-c got %s; B's forgotten address %s was free", c.ws.IP, b.ws.IP)
		}
		if got := c.tool("tcp " + webIP + " 80 2"); !strings.HasPrefix(got, "closed") {
			t.Errorf("the new owner of B's address inherited B's policy: %s", got)
		}
	})

	t.Run("RestartRestoresExactRules", func(t *testing.T) {
		call[map[string]any](ctx, t, s, "network_policy", map[string]any{"workspace_id": a.ws.ID, "allow_internet": true, "allowed_ports": []int{8080, 22}})
		c.background("python3 -m http.server 8000")
		c.tool("wait_port 8000")
		cFwd = call[forwardOut](ctx, t, s, "port_forward", map[string]any{"workspace_id": c.ws.ID, "action": "add", "guest_port": 8000})
		before := listTables(t, d.Netns)
		d.stop()
		// As after a reboot or a flush: the kernel has no rules at all.
		netns.IP(t, "netns", "exec", d.Netns, "nft", "delete", "table", "bridge", network.TableName)
		netns.IP(t, "netns", "exec", d.Netns, "nft", "delete", "table", "inet", network.TableName)
		d.start()
		after := listTables(t, d.Netns)
		if stripTableHandle(before) != stripTableHandle(after) {
			t.Errorf("rules after restart differ:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		for _, want := range []string{a.ws.IP + " . 8080", fmt.Sprintf("dport %d", cFwd.HostPort)} {
			if !strings.Contains(netns.IP(t, "netns", "exec", d.Netns, "nft", "list", "ruleset"), want) {
				t.Errorf("restored rules lack %q", want)
			}
		}
		// The workspaces belong to the session before the restart; the
		// host side shows the rules at work.
		if !dialRead(t, d.Netns, fmt.Sprintf("127.0.0.1:%d", cFwd.HostPort), 10*time.Second) {
			t.Error("the port forward does not work after the restart")
		}
	})

}

// logConsoleOnFailure logs the tail of a workspace's console when the test
// failed, while the workspace is still there to ask.
func logConsoleOnFailure(t *testing.T, s *mcp.ClientSession, id, name string) {
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "workspace_logs", Arguments: map[string]any{"workspace_id": id, "log_type": "all", "max_lines": 60}})
	if err == nil && !res.IsError {
		t.Logf("%s's console and QEMU log:\n%s", name, testdaemon.Text(res))
	}
}

// stripTableHandle removes the tables' own handles, which the kernel
// numbers per namespace; everything inside a table is numbered from 1.
func stripTableHandle(s string) string {
	return tableHandle.ReplaceAllString(s, `"name": "agentiso"`)
}

var tableHandle = regexp.MustCompile(`"name": "agentiso", "handle": \d+`)

// listTables is the daemon's two tables as nft -j lists them.
func listTables(t *testing.T, ns string) string {
	t.Helper()
	return netns.IP(t, "netns", "exec", ns, "nft", "-j", "list", "table", "bridge", network.TableName) +
		netns.IP(t, "netns", "exec", ns, "nft", "-j", "list", "table", "inet", network.TableName)
}

// countUDP counts datagrams on addr in namespace ns by payload.
func countUDP(t *testing.T, ns, addr string) func(marker string) int {
	t.Helper()
	got := netns.Datagrams(t, ns, addr)
	seen := map[string]int{}
	return func(marker string) int {
		for {
			select {
			case m, ok := <-got:
				if !ok {
					return seen[marker]
				}
				seen[m]++
				continue
			default:
			}
			return seen[marker]
		}
	}
}
