package network

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/testenv/netns"
)

// world is a host namespace with the bridge, two fake VMs, an "internet"
// namespace behind the host's default route (up0) and a "lan" namespace on
// a configured host interface (lan0).
type world struct {
	h       *Host
	host    string
	a, b    fakeVM
	inet    string
	lan     string
	brMAC   net.HardwareAddr
	base    Ruleset
	inetIP  netip.Addr // an address in the internet namespace
	upIP    netip.Addr // the host's address towards the internet
	lanHost netip.Addr // the host's address on lan0
}

const quick = 700 * time.Millisecond

func newWorld(t *testing.T) *world {
	t.Helper()
	h, host := testHost(t, "lan0")
	w := &world{h: h, host: host,
		inetIP: netip.MustParseAddr("203.0.113.10"), upIP: netip.MustParseAddr(netns.UpHost),
		lanHost: netip.MustParseAddr(netns.LANHost)}
	w.inet, w.lan = netns.Outside(t, host)
	netns.IP(t, "-n", w.inet, "addr", "add", "203.0.113.10/32", "dev", "lo")

	w.a = addFakeVM(t, h, host, "10.231.0.2")
	w.b = addFakeVM(t, h, host, "10.231.0.3")
	netns.Do(t, host, func() {
		ifi, err := net.InterfaceByName(h.Bridge())
		if err != nil {
			t.Error(err)
			return
		}
		w.brMAC = ifi.HardwareAddr
	})
	// Setup again now that the uplinks exist: forwarding is per interface.
	if err := h.Setup(); err != nil {
		t.Fatal(err)
	}
	w.base = Ruleset{Bridge: h.Bridge(), Subnet: h.Subnet(), HostInterfaces: h.HostInterfaces(),
		VMs: []VM{w.a.rules(false), w.b.rules(false)}}
	w.apply(t, w.base)
	return w
}

func (w *world) apply(t *testing.T, rs Ruleset) {
	t.Helper()
	if err := w.h.Apply(rs); err != nil {
		t.Fatal(err)
	}
}

func addr(a netip.Addr, port int) string { return netip.AddrPortFrom(a, uint16(port)).String() }

// Two VMs on one bridge cannot reach each other unless a policy lists the
// pair; taking the pair away cuts even a connection that is already open,
// because the check is stateless (no conntrack path around it).
//
// It runs with bridged traffic hidden from the inet family (hosts without
// br_netfilter) and shown to it, so the bridge-family rules alone must
// isolate.
func TestM2_VMsIsolatedUnlessPaired(t *testing.T) {
	for _, brnf := range []string{"0", "1"} {
		t.Run("bridge-nf-call-iptables="+brnf, func(t *testing.T) {
			w := newWorld(t)
			setBridgeNF(t, w.host, brnf)
			testIsolation(t, w)
		})
	}
}

func testIsolation(t *testing.T, w *world) {
	listenTCP(t, w.b.ns, ":8080")
	echo := listenEcho(t, w.b.ns, ":8081")
	bAddr := addr(w.b.ip, 8080)

	if dial(t, w.a.ns, bAddr, quick) {
		t.Fatal("VM A reached VM B with no policy")
	}
	if dial(t, w.b.ns, addr(w.a.ip, 22), quick) {
		t.Fatal("VM B reached VM A with no policy")
	}
	paired := w.base
	paired.Peers = []Peer{{A: w.a.ip, B: w.b.ip}}
	w.apply(t, paired)
	if !dial(t, w.a.ns, bAddr, 3*time.Second) {
		t.Fatal("VM A cannot reach VM B although the pair is allowed")
	}

	// A connection open while the pair is allowed...
	conn := dialKeep(t, w.a.ns, addr(w.b.ip, 8081))
	if !roundTrip(conn, "one") {
		t.Fatal("no echo over an allowed connection")
	}
	// ...carries nothing once the pair is taken away.
	w.apply(t, w.base)
	if roundTrip(conn, "two") {
		t.Fatal("an established connection outlived the policy that allowed it")
	}
	if dial(t, w.a.ns, bAddr, quick) {
		t.Fatal("VM A reached VM B after the pair was removed")
	}
	if echo.Load() == 0 {
		t.Fatal("the echo server saw nothing")
	}
}

// VMs reach the host only on the ports the daemon serves to them, and only
// on the gateway address; DNS on the host is closed too.
func TestM1_HostClosedToVMs(t *testing.T) {
	w := newWorld(t)
	gw := w.h.Gateway()
	listenTCP(t, w.host, ":9000")
	listenTCP(t, w.host, ":9001")
	dns := listenUDP(t, w.host, ":53")

	rs := w.base
	rs.VMServices = []uint16{9001}
	w.apply(t, rs)
	if dial(t, w.a.ns, addr(gw, 9000), quick) {
		t.Error("a VM reached a host service the daemon does not serve to VMs")
	}
	if dial(t, w.a.ns, addr(w.upIP, 9001), quick) {
		t.Error("a VM reached a served port on an address other than the gateway")
	}
	if !dial(t, w.a.ns, addr(gw, 9001), 3*time.Second) {
		t.Error("a VM cannot reach the port the daemon serves to VMs")
	}
	sendUDP(t, w.a.ns, addr(gw, 53), "dns-query")
	if n := dns("dns-query"); n != 0 {
		t.Errorf("the host's DNS port got %d datagrams from a VM", n)
	}
}

// Without internet access nothing leaves: no TCP, no DNS, no other UDP.
// With it, traffic leaves through NAT. Taking it away stops new traffic at
// once.
func TestL4_NoEgressWithoutInternet(t *testing.T) {
	w := newWorld(t)
	listenTCP(t, w.inet, addr(w.inetIP, 80))
	dns := listenUDP(t, w.inet, addr(w.inetIP, 53))
	web := addr(w.inetIP, 80)

	if dial(t, w.a.ns, web, quick) {
		t.Error("TCP left a VM without internet access")
	}
	sendUDP(t, w.a.ns, addr(w.inetIP, 53), "off")
	if n := dns("off"); n != 0 {
		t.Errorf("%d DNS datagrams left a VM without internet access", n)
	}

	on := w.base
	on.VMs = []VM{w.a.rules(true), w.b.rules(false)}
	w.apply(t, on)
	if !dial(t, w.a.ns, web, 3*time.Second) {
		t.Fatal("TCP does not leave a VM with internet access")
	}
	sendUDP(t, w.a.ns, addr(w.inetIP, 53), "on")
	if n := dns("on"); n != 1 {
		t.Errorf("the DNS server got %d datagrams from a VM with internet access, want 1", n)
	}
	if dial(t, w.b.ns, web, quick) {
		t.Error("internet access for one VM let another out")
	}

	w.apply(t, w.base)
	sendUDP(t, w.a.ns, addr(w.inetIP, 53), "again-off")
	if n := dns("again-off"); n != 0 {
		t.Errorf("%d DNS datagrams left after internet access was taken away", n)
	}
}

// Frames a VM sends with another source IP or MAC are dropped, as are ARP
// packets that speak for another address. The same frame with the VM's own
// addresses gets through, so the test would see a spoofed one that did.
func TestH6_SpoofedFramesDropped(t *testing.T) {
	w := newWorld(t)
	rs := w.base
	rs.VMs = []VM{w.a.rules(true), w.b.rules(true)}
	w.apply(t, rs)
	got := listenUDP(t, w.inet, addr(w.inetIP, 9999))
	spoofMAC := net.HardwareAddr{0x02, 0x00, 0x00, 0xde, 0xad, 0x01}
	other := netip.MustParseAddr("10.231.0.77")

	for _, c := range []struct {
		marker string
		mac    net.HardwareAddr
		src    netip.Addr
		want   int
	}{
		{"own", w.a.mac, w.a.ip, 1},
		{"spoofed-ip", w.a.mac, other, 0},
		{"spoofed-mac", spoofMAC, w.a.ip, 0},
		{"as-b", w.b.mac, w.b.ip, 0},
		{"a-mac-b-ip", w.a.mac, w.b.ip, 0},
	} {
		sendFrame(t, w.a.ns, "eth0", udpFrame(w.brMAC, c.mac, c.src, w.inetIP, 40000, 9999, []byte(c.marker)))
		if n := got(c.marker); n != c.want {
			t.Errorf("%s: %d datagrams arrived, want %d", c.marker, n, c.want)
		}
	}
}

// A VM's ARP may only speak for its own address: an ARP request that
// claims VM B's address teaches the host nothing, while the same request
// with A's own address does. And nobody answers ARP for B on B's behalf
// while A and B are isolated.
func TestM3_ARPLimitedToOwnAddress(t *testing.T) {
	w := newWorld(t)
	gw := w.h.Gateway()
	zero := net.HardwareAddr{0, 0, 0, 0, 0, 0}

	// Claim B's address: the host must not learn B -> A's MAC.
	sendFrame(t, w.a.ns, "eth0", arpFrame(broadcastMAC, w.a.mac, 1, w.a.mac, w.b.ip, zero, gw))
	time.Sleep(200 * time.Millisecond)
	if m := neighbour(t, w.host, w.b.ip); m != "" {
		t.Errorf("the host learnt %v is at %s from a spoofed ARP request", w.b.ip, m)
	}
	// Same request with A's own address: learnt (the method works).
	sendFrame(t, w.a.ns, "eth0", arpFrame(broadcastMAC, w.a.mac, 1, w.a.mac, w.a.ip, zero, gw))
	time.Sleep(200 * time.Millisecond)
	if m := neighbour(t, w.host, w.a.ip); m != w.a.mac.String() {
		t.Errorf("the host did not learn A's own address from its ARP request: %q", m)
	}
	// ARP with a forged sender MAC inside an otherwise own frame.
	forged := net.HardwareAddr{0x02, 0x00, 0x00, 0xde, 0xad, 0x02}
	netns.IP(t, "-n", w.host, "neigh", "flush", "dev", w.h.Bridge())
	sendFrame(t, w.a.ns, "eth0", arpFrame(broadcastMAC, w.a.mac, 1, forged, w.a.ip, zero, gw))
	time.Sleep(200 * time.Millisecond)
	if m := neighbour(t, w.host, w.a.ip); m == forged.String() {
		t.Error("the host learnt a forged sender MAC")
	}

	// Ask for B: no answer while isolated (not from B, not from the host).
	replies := arpReplies(t, w.a.ns, "eth0", w.b.ip, time.Second, func() {
		sendFrame(t, w.a.ns, "eth0", arpFrame(broadcastMAC, w.a.mac, 1, w.a.mac, w.a.ip, zero, w.b.ip))
	})
	if len(replies) != 0 {
		t.Errorf("ARP for isolated VM B was answered by %v", replies)
	}
	// Paired, B answers for itself (the listener works).
	paired := w.base
	paired.Peers = []Peer{{A: w.a.ip, B: w.b.ip}}
	w.apply(t, paired)
	replies = arpReplies(t, w.a.ns, "eth0", w.b.ip, time.Second, func() {
		sendFrame(t, w.a.ns, "eth0", arpFrame(broadcastMAC, w.a.mac, 1, w.a.mac, w.a.ip, zero, w.b.ip))
	})
	if len(replies) == 0 || replies[0].String() != w.b.mac.String() {
		t.Errorf("paired VM B did not answer ARP for itself: %v", replies)
	}
}

// setBridgeNF sets whether bridged IPv4 traffic passes the inet hooks in
// namespace ns (it does where br_netfilter is loaded).
func setBridgeNF(t *testing.T, ns, v string) {
	t.Helper()
	var err error
	netns.Do(t, ns, func() { err = writeSysctl("bridge/bridge-nf-call-iptables", v) })
	switch {
	case errors.Is(err, os.ErrNotExist) && v == "0":
		// No br_netfilter: bridged traffic never reaches the inet hooks.
	case errors.Is(err, os.ErrNotExist):
		t.Skip("no br_netfilter on this host; the =0 case covers it")
	case err != nil:
		t.Fatal(err)
	}
}

// neighbour returns the MAC the host's ARP table holds for a, or "".
func neighbour(t *testing.T, ns string, a netip.Addr) string {
	t.Helper()
	out := netns.IP(t, "-n", ns, "neigh", "show", a.String())
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "lladdr" {
				return f[i+1]
			}
		}
	}
	return ""
}
