package network

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/agentiso/agentiso/internal/testenv"
	"github.com/agentiso/agentiso/internal/testenv/netns"
)

// A port forward reaches the VM from loopback on the host and from a
// configured host interface, and from nowhere else: not from an interface
// that is not configured, not from another VM.
func TestH7_PortForwardOnlyFromLoopbackAndHostInterfaces(t *testing.T) {
	w := newWorld(t)
	served := listenTCP(t, w.b.ns, ":8080")
	rs := w.base
	rs.Forwards = []Forward{{HostPort: 28080, IP: w.b.ip, GuestPort: 8080}}
	w.apply(t, rs)

	if !dial(t, w.host, "127.0.0.1:28080", 3*time.Second) {
		t.Error("the forward does not work from loopback")
	}
	if !dial(t, w.lan, addr(w.lanHost, 28080), 3*time.Second) {
		t.Error("the forward does not work from the configured host interface")
	}
	before := served.Load()
	if dial(t, w.inet, addr(w.upIP, 28080), quick) {
		t.Error("the forward works from an interface that is not configured")
	}
	if dial(t, w.a.ns, addr(w.h.Gateway(), 28080), quick) {
		t.Error("another VM reaches the forward through the gateway")
	}
	if dial(t, w.a.ns, addr(w.b.ip, 8080), quick) {
		t.Error("the forward opened the VM to other VMs")
	}
	if served.Load() != before {
		t.Error("the VM's server saw a connection that should have been refused")
	}

	// Removed with the rules: nothing answers any more.
	w.apply(t, w.base)
	if dial(t, w.host, "127.0.0.1:28080", quick) {
		t.Error("the forward still works after it was removed")
	}
}

// A VM's allowed inbound ports are reachable, routed, from a configured host
// interface only; its other ports are not.
func TestAllowedPortsFromHostInterfacesOnly(t *testing.T) {
	w := newWorld(t)
	listenTCP(t, w.b.ns, ":8080")
	listenTCP(t, w.b.ns, ":8081")
	netns.IP(t, "-n", w.inet, "route", "add", w.h.Subnet().String(), "via", w.upIP.String())
	netns.IP(t, "-n", w.lan, "route", "add", w.h.Subnet().String(), "via", w.lanHost.String())

	if dial(t, w.lan, addr(w.b.ip, 8080), quick) {
		t.Fatal("a VM port was reachable with no allowed ports")
	}
	rs := w.base
	rs.VMs = []VM{w.a.rules(false), w.b.rules(false, 8080)}
	w.apply(t, rs)
	if !dial(t, w.lan, addr(w.b.ip, 8080), 3*time.Second) {
		t.Error("an allowed port is not reachable from the host interface")
	}
	if dial(t, w.lan, addr(w.b.ip, 8081), quick) {
		t.Error("a port that is not allowed is reachable")
	}
	if dial(t, w.inet, addr(w.b.ip, 8080), quick) {
		t.Error("an allowed port is reachable from an interface that is not configured")
	}
}

// The daemon's tables leave everything else alone: another program's
// table survives every apply and the removal of ours, and traffic that
// does not touch the bridge (here routed between two other interfaces)
// flows with our tables loaded.
func TestL2_OtherTablesAndTrafficUntouched(t *testing.T) {
	w := newWorld(t)
	nft(t, w.host, "add", "table", "ip", "someone_else")
	nft(t, w.host, "add", "chain", "ip", "someone_else", "c", "{ type filter hook forward priority 10 ; policy accept ; }")
	nft(t, w.host, "add", "rule", "ip", "someone_else", "c", "counter", "accept")
	before := nft(t, w.host, "list", "table", "ip", "someone_else")

	netns.IP(t, "-n", w.inet, "route", "add", "192.0.2.0/24", "via", w.upIP.String())
	listenTCP(t, w.lan, ":7000")
	if !dial(t, w.inet, "192.0.2.2:7000", 3*time.Second) {
		t.Error("traffic routed between two other interfaces was blocked by our tables")
	}

	w.apply(t, sampleLike(w))
	if err := w.h.RemoveRules(); err != nil {
		t.Fatal(err)
	}
	after := strings.ReplaceAll(nft(t, w.host, "list", "table", "ip", "someone_else"), "\n", " ")
	beforeFlat := strings.ReplaceAll(before, "\n", " ")
	// The counter moved (traffic passed it); the structure must not have.
	if strip(after) != strip(beforeFlat) {
		t.Errorf("another table changed:\nbefore %s\nafter  %s", beforeFlat, after)
	}
	out := nft(t, w.host, "list", "tables")
	if strings.Contains(out, TableName) {
		t.Errorf("our tables remain after RemoveRules:\n%s", out)
	}
	// Removing again is not an error.
	if err := w.h.RemoveRules(); err != nil {
		t.Fatal(err)
	}
}

func sampleLike(w *world) Ruleset {
	rs := w.base
	rs.VMs = []VM{w.a.rules(true, 22), w.b.rules(false)}
	rs.Peers = []Peer{{A: w.a.ip, B: w.b.ip}}
	rs.Forwards = []Forward{{HostPort: 20000, IP: w.a.ip, GuestPort: 22}}
	return rs
}

// strip removes counter values from an nft listing.
func strip(s string) string {
	f := strings.Fields(s)
	for i := range f {
		if i > 0 && (f[i-1] == "packets" || f[i-1] == "bytes") {
			f[i] = "N"
		}
	}
	return strings.Join(f, " ")
}

// An address is recycled only after the kernel has forgotten its old
// owner: Forget removes the connection-tracking and neighbour entries and
// reports success only when none is left (finding L-6's analogue).
func TestL6_ForgetClearsFlowsAndNeighbours(t *testing.T) {
	w := newWorld(t)
	rs := w.base
	rs.VMs = []VM{w.a.rules(true), w.b.rules(false)}
	w.apply(t, rs)
	listenTCP(t, w.inet, addr(w.inetIP, 80))
	if !dial(t, w.a.ns, addr(w.inetIP, 80), 3*time.Second) {
		t.Fatal("no traffic to make state from")
	}
	sendUDP(t, w.a.ns, addr(w.inetIP, 53), "x")
	listenTCP(t, w.a.ns, ":22")
	if !dial(t, w.host, addr(w.a.ip, 22), 3*time.Second) {
		t.Fatal("the host cannot reach the VM")
	}
	n, err := w.h.FlowsOf(w.a.ip)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no connection-tracking entries were made; the test proves nothing")
	}
	if neighbour(t, w.host, w.a.ip) == "" {
		t.Fatal("no neighbour entry was made; the test proves nothing")
	}

	// As the manager does: rules first, then the port, then Forget.
	w.apply(t, Ruleset{Bridge: w.base.Bridge, Subnet: w.base.Subnet, VMs: []VM{w.b.rules(false)}})
	netns.IP(t, "-n", w.host, "link", "del", w.a.tap)
	if n, _ := w.h.FlowsOf(w.a.ip); n == 0 || neighbourEntries(t, w, w.a) == 0 {
		t.Fatal("removing rules and port already cleared the state; the test proves nothing about Forget")
	}
	if err := w.h.Forget(w.a.ip, w.a.mac); err != nil {
		t.Fatal(err)
	}
	if n, _ := w.h.FlowsOf(w.a.ip); n != 0 {
		t.Errorf("%d connection-tracking entries left", n)
	}
	if n := neighbourEntries(t, w, w.a); n != 0 {
		t.Errorf("%d neighbour entries left", n)
	}
	if out := nft(t, w.host, "list", "ruleset"); strings.Contains(out, w.a.ip.String()) || strings.Contains(out, w.a.tap) {
		t.Errorf("the rules still name the forgotten VM:\n%s", out)
	}
}

// neighbourEntries counts the host's neighbour and forwarding entries of
// vm, in any state.
func neighbourEntries(t *testing.T, w *world, vm fakeVM) int {
	t.Helper()
	var n []netlink.Neigh
	var err error
	netns.Do(t, w.host, func() { n, err = neighboursOf(vm.ip, vm.mac) })
	if err != nil {
		t.Fatal(err)
	}
	return len(n)
}

func TestRulesetValidate(t *testing.T) {
	a := netip.MustParseAddr("10.231.0.2")
	good := func() Ruleset {
		return Ruleset{Bridge: "br0", Subnet: testSubnet, VMs: []VM{{TAP: TAPName(a), MAC: MACFor(a), IP: a}}}
	}
	if err := func() *Ruleset { r := good(); return &r }().Validate(); err != nil {
		t.Fatalf("valid ruleset refused: %v", err)
	}
	for _, c := range []struct {
		name, want string
		mod        func(*Ruleset)
	}{
		{"bridge with a quote", "bridge:", func(r *Ruleset) { r.Bridge = `br"; drop` }},
		{"long bridge", "bridge:", func(r *Ruleset) { r.Bridge = "a-very-long-bridge-name" }},
		{"ipv6 subnet", "subnet:", func(r *Ruleset) { r.Subnet = netip.MustParsePrefix("fd00::/64") }},
		{"host interface with space", "host_interfaces[0]:", func(r *Ruleset) { r.HostInterfaces = []string{"eth 0"} }},
		{"host interface is the bridge", "host_interfaces[0]:", func(r *Ruleset) { r.HostInterfaces = []string{"br0"} }},
		{"tap without prefix", "vms[0].tap:", func(r *Ruleset) { r.VMs[0].TAP = "tap0" }},
		{"multicast mac", "vms[0].mac:", func(r *Ruleset) { r.VMs[0].MAC[0] = 1 }},
		{"ip outside subnet", "vms[0].ip:", func(r *Ruleset) { r.VMs[0].IP = netip.MustParseAddr("10.9.9.9") }},
		{"ip is the gateway", "vms[0].ip:", func(r *Ruleset) { r.VMs[0].IP = Gateway(testSubnet) }},
		{"duplicate vm", "vms[1]:", func(r *Ruleset) { r.VMs = append(r.VMs, r.VMs[0]) }},
		{"unknown peer", "peers[0]:", func(r *Ruleset) { r.Peers = []Peer{{A: a, B: netip.MustParseAddr("10.231.0.9")}} }},
		{"privileged host port", "forwards[0].host_port:", func(r *Ruleset) { r.Forwards = []Forward{{HostPort: 80, IP: a, GuestPort: 80}} }},
		{"forward to nobody", "forwards[0].ip:", func(r *Ruleset) {
			r.Forwards = []Forward{{HostPort: 2000, IP: netip.MustParseAddr("10.231.0.9"), GuestPort: 80}}
		}},
		{"port 0", "forwards[0].guest_port:", func(r *Ruleset) { r.Forwards = []Forward{{HostPort: 2000, IP: a}} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := good()
			r.VMs[0].MAC = append(r.VMs[0].MAC[:0:0], r.VMs[0].MAC...)
			c.mod(&r)
			err := r.Validate()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate() = %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// AddTAP makes a TAP that is a port of the bridge and up; it is idempotent,
// refuses a name that is not an interface name, and DeleteTAP removes it.
// Teardown removes the tables and the bridge.
func TestTAPLifecycleAndTeardown(t *testing.T) {
	h, ns := testHost(t)
	name := TAPName(netip.MustParseAddr("10.231.0.5"))
	for range 2 {
		if err := h.AddTAP(name); err != nil {
			t.Fatal(err)
		}
	}
	out := netns.IP(t, "-n", ns, "-d", "link", "show", name)
	for _, want := range []string{"master " + h.Bridge(), "tun type tap", "UP"} {
		if !strings.Contains(out, want) {
			t.Errorf("TAP lacks %q:\n%s", want, out)
		}
	}
	if err := h.AddTAP("bad name"); err == nil || !strings.Contains(err.Error(), "tap:") {
		t.Errorf("AddTAP accepted a bad name: %v", err)
	}
	if err := h.DeleteTAP(name); err != nil {
		t.Fatal(err)
	}
	// The gateway's MAC is fixed, whatever ports come and go.
	if out := netns.IP(t, "-n", ns, "link", "show", h.Bridge()); !strings.Contains(out, MACFor(h.Gateway()).String()) {
		t.Errorf("the bridge's MAC is not the fixed one:\n%s", out)
	}
	if ok, _ := h.HasLink(name); ok {
		t.Error("the TAP is still there")
	}
	if err := h.DeleteTAP(name); err != nil {
		t.Errorf("deleting a missing TAP: %v", err)
	}
	if err := h.Apply(Ruleset{Bridge: h.Bridge(), Subnet: h.Subnet()}); err != nil {
		t.Fatal(err)
	}
	if err := h.Teardown(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.HasLink(h.Bridge()); ok {
		t.Error("the bridge survived Teardown")
	}
	if out := nft(t, ns, "list", "tables"); strings.Contains(out, TableName) {
		t.Errorf("tables survived Teardown: %s", out)
	}
}

// Setup refuses to take over an interface of the bridge's name that is not
// a bridge.
func TestSetupRefusesANonBridge(t *testing.T) {
	testenv.Require(t, "root", "netns")
	ns := netns.New(t, "agth")
	netns.IP(t, "-n", ns, "link", "add", "br-test", "type", "veth", "peer", "name", "other0")
	h, err := NewHost(Config{Bridge: "br-test", Subnet: testSubnet, Enter: netns.Enter(t, ns)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Setup(); err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Errorf("Setup over a dummy interface: %v", err)
	}
}
