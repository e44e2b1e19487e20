package network

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/testenv"
	"github.com/agentiso/agentiso/internal/testenv/netns"
)

// The helpers here build small worlds of network namespaces: a "host"
// namespace with the bridge and the daemon's tables, and one namespace per
// fake VM joined to the bridge by a veth pair whose host end is named like
// the VM's TAP. The bridge cannot tell a veth from a TAP, so the rules are
// exercised exactly as with QEMU, in milliseconds. Every packet stays inside
// the namespaces the test made; t.Cleanup deletes them.

// testSubnet is the VMs' subnet in these tests.
var testSubnet = netip.MustParsePrefix("10.231.0.0/24")

// testHost is a Host in a fresh namespace with the bridge set up.
func testHost(t *testing.T, hostIfs ...string) (*Host, string) {
	t.Helper()
	testenv.Require(t, "root", "netns", "nft")
	ns := netns.New(t, "agth")
	h, err := NewHost(Config{Bridge: "br-test", Subnet: testSubnet, HostInterfaces: hostIfs, Enter: netns.Enter(t, ns)})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Setup(); err != nil {
		t.Fatal(err)
	}
	return h, ns
}

// fakeVM is a namespace standing in for a VM.
type fakeVM struct {
	ns  string
	ip  netip.Addr
	mac net.HardwareAddr
	tap string
}

// addFakeVM makes a VM at ip: its eth0 has the VM's MAC and address and a
// default route through the gateway; the host end, named like its TAP, is a
// port of the bridge.
func addFakeVM(t *testing.T, h *Host, hostNS string, addr string) fakeVM {
	t.Helper()
	a := netip.MustParseAddr(addr)
	vm := fakeVM{ns: netns.New(t, "agtv"), ip: a, mac: MACFor(a), tap: TAPName(a)}
	netns.Veth(t, hostNS, vm.tap, vm.ns, "eth0")
	netns.IP(t, "-n", hostNS, "link", "set", vm.tap, "master", h.Bridge(), "up")
	netns.IP(t, "-n", vm.ns, "link", "set", "eth0", "address", vm.mac.String(), "up")
	netns.IP(t, "-n", vm.ns, "addr", "add", fmt.Sprintf("%s/%d", a, h.Subnet().Bits()), "dev", "eth0")
	netns.IP(t, "-n", vm.ns, "route", "add", "default", "via", h.Gateway().String())
	return vm
}

func (vm fakeVM) rules(internet bool, allowed ...uint16) VM {
	return VM{TAP: vm.tap, MAC: vm.mac, IP: vm.ip, Internet: internet, AllowedPorts: allowed}
}

// listenTCP listens on addr inside namespace ns and answers every
// connection with "hello"; it counts connections.
func listenTCP(t *testing.T, ns, addr string) *atomic.Int64 {
	t.Helper()
	return netns.Serve(t, ns, addr, func(c net.Conn) {
		c.Write([]byte("hello"))
		c.Close()
	})
}

// dial connects from namespace ns to addr and reports whether "hello" came
// back within the timeout.
func dial(t *testing.T, ns, addr string, timeout time.Duration) bool {
	t.Helper()
	c, err := netns.Dial(t, ns, addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	b, _ := io.ReadAll(c)
	return string(b) == "hello"
}

// listenUDP counts datagrams whose payload starts with a marker.
func listenUDP(t *testing.T, ns, addr string) func(marker string) int {
	t.Helper()
	got := netns.Datagrams(t, ns, addr)
	var seen []string
	return func(marker string) int {
		deadline := time.After(300 * time.Millisecond)
		for {
			select {
			case s, ok := <-got:
				if !ok {
					goto count
				}
				seen = append(seen, s)
				continue
			case <-deadline:
			}
			break
		}
	count:
		n := 0
		for _, s := range seen {
			if strings.HasPrefix(s, marker) {
				n++
			}
		}
		return n
	}
}

// sendFrame sends a raw Ethernet frame out of ifname in namespace ns.
func sendFrame(t *testing.T, ns, ifname string, frame []byte) {
	t.Helper()
	netns.Do(t, ns, func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(fd)
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			t.Error(err)
			return
		}
		if err := unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}); err != nil {
			t.Error(err)
		}
	})
}

// listenEcho listens on addr in namespace ns and echoes what it reads.
func listenEcho(t *testing.T, ns, addr string) *atomic.Int64 {
	t.Helper()
	return netns.Serve(t, ns, addr, func(c net.Conn) {
		defer c.Close()
		io.Copy(c, c)
	})
}

// dialKeep opens a connection from namespace ns that the test keeps.
func dialKeep(t *testing.T, ns, addr string) net.Conn {
	t.Helper()
	c, err := netns.Dial(t, ns, addr, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes s and reports whether it came back in time.
func roundTrip(c net.Conn, s string) bool {
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(s)); err != nil {
		return false
	}
	b := make([]byte, len(s))
	_, err := io.ReadFull(c, b)
	return err == nil && string(b) == s
}

// sendUDP sends one datagram from namespace ns.
func sendUDP(t *testing.T, ns, addr, payload string) {
	t.Helper()
	netns.Do(t, ns, func() {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		c.Write([]byte(payload))
	})
}
