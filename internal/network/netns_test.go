package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/testenv"
)

// The helpers here build small worlds of network namespaces: a "host"
// namespace with the bridge and the daemon's tables, and one namespace per
// fake VM joined to the bridge by a veth pair whose host end is named like
// the VM's TAP. The bridge cannot tell a veth from a TAP, so the rules are
// exercised exactly as with QEMU, in milliseconds. Every packet stays inside
// the namespaces the test made; t.Cleanup deletes them.

// testSubnet is the VMs' subnet in these tests.
var testSubnet = netip.MustParsePrefix("10.231.0.0/24")

// newNS creates a network namespace with loopback up and returns its name.
func newNS(t *testing.T, prefix string) string {
	t.Helper()
	testenv.Require(t, "root", "netns")
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	ip(t, "netns", "add", name)
	t.Cleanup(func() {
		_, _ = hostcmd.Run(context.Background(), "ip", "netns", "del", name)
	})
	ip(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// ip runs iproute2 with args and fails the test on error.
func ip(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := hostcmd.Run(ctx, "ip", args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// inNS runs fn on a thread in namespace name. Sockets fn opens stay in that
// namespace when used from other goroutines afterwards.
func inNS(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var setErr error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		// The thread is never unlocked: Go ends it with the goroutine, so
		// it cannot be reused in the wrong namespace.
		ns, err := netns.GetFromName(name)
		if err != nil {
			setErr = err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			setErr = err
			return
		}
		fn()
	}()
	<-done
	if setErr != nil {
		t.Fatalf("entering namespace %s: %v", name, setErr)
	}
}

// enter is a Config.Enter that runs the Host's work in namespace name.
func enter(t *testing.T, name string) func(func() error) error {
	return func(fn func() error) error {
		var err error
		inNS(t, name, func() { err = fn() })
		return err
	}
}

// testHost is a Host in a fresh namespace with the bridge set up.
func testHost(t *testing.T, hostIfs ...string) (*Host, string) {
	t.Helper()
	testenv.Require(t, "root", "netns", "nft")
	ns := newNS(t, "agth")
	h, err := NewHost(Config{Bridge: "br-test", Subnet: testSubnet, HostInterfaces: hostIfs, Enter: enter(t, ns)})
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
	vm := fakeVM{ns: newNS(t, "agtv"), ip: a, mac: MACFor(a), tap: TAPName(a)}
	ip(t, "-n", hostNS, "link", "add", vm.tap, "type", "veth", "peer", "name", "eth0", "netns", vm.ns)
	ip(t, "-n", hostNS, "link", "set", vm.tap, "master", h.Bridge(), "up")
	ip(t, "-n", vm.ns, "link", "set", "eth0", "address", vm.mac.String(), "up")
	ip(t, "-n", vm.ns, "addr", "add", fmt.Sprintf("%s/%d", a, h.Subnet().Bits()), "dev", "eth0")
	ip(t, "-n", vm.ns, "route", "add", "default", "via", h.Gateway().String())
	return vm
}

func (vm fakeVM) rules(internet bool, allowed ...uint16) VM {
	return VM{TAP: vm.tap, MAC: vm.mac, IP: vm.ip, Internet: internet, AllowedPorts: allowed}
}

// listenTCP listens on addr inside namespace ns and answers every
// connection with "hello"; it counts connections.
func listenTCP(t *testing.T, ns, addr string) *atomic.Int64 {
	t.Helper()
	var ln net.Listener
	var err error
	inNS(t, ns, func() { ln, err = net.Listen("tcp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	return &n
}

// dial connects from namespace ns to addr and reports whether "hello" came
// back within the timeout.
func dial(t *testing.T, ns, addr string, timeout time.Duration) bool {
	t.Helper()
	var ok bool
	inNS(t, ns, func() {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		b, _ := io.ReadAll(c)
		ok = string(b) == "hello"
	})
	return ok
}

// listenUDP counts datagrams whose payload starts with a marker.
func listenUDP(t *testing.T, ns, addr string) func(marker string) int {
	t.Helper()
	var pc net.PacketConn
	var err error
	inNS(t, ns, func() { pc, err = net.ListenPacket("udp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got := make(chan string, 1024)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
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
	inNS(t, ns, func() {
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
	var ln net.Listener
	var err error
	inNS(t, ns, func() { ln, err = net.Listen("tcp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return &n
}

// dialKeep opens a connection from namespace ns that the test keeps.
func dialKeep(t *testing.T, ns, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	inNS(t, ns, func() { c, err = net.DialTimeout("tcp4", addr, 3*time.Second) })
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
	inNS(t, ns, func() {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		c.Write([]byte(payload))
	})
}
