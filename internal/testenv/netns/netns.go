// Package netns builds small worlds of network namespaces for tests: a
// namespace the test owns (deleted by t.Cleanup even when the test fails),
// veth pairs between such namespaces, and code, listeners and connections
// run inside one. It only ever touches namespaces and links the test made
// through it, so every packet a test sends stays inside them.
//
// It is test support: only _test.go files import it, never the daemon.
package netns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/testenv"
)

// New creates a network namespace named prefix plus a random suffix, with
// loopback up, and returns its name. It is deleted when the test ends,
// after every cleanup registered later (such as a daemon's running in it).
func New(t testing.TB, prefix string) string {
	t.Helper()
	testenv.Require(t, "root", "netns")
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	IP(t, "netns", "add", name)
	t.Cleanup(func() { _, _ = hostcmd.Run(context.Background(), "ip", "netns", "del", name) })
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// IP runs iproute2 with args, fails the test on error and returns its
// output.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := hostcmd.Run(ctx, "ip", args...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// Veth creates a veth pair with end a in namespace nsA and end b in
// namespace nsB, both down; the pair goes with either namespace.
func Veth(t testing.TB, nsA, a, nsB, b string) {
	t.Helper()
	IP(t, "-n", nsA, "link", "add", a, "type", "veth", "peer", "name", b, "netns", nsB)
}

// Link joins namespaces nsA and nsB with a veth pair, a in nsA with address
// addrA (a prefix, "192.0.2.1/24") and b in nsB with addrB, both up.
func Link(t testing.TB, nsA, a, addrA, nsB, b, addrB string) {
	t.Helper()
	Veth(t, nsA, a, nsB, b)
	IP(t, "-n", nsA, "addr", "add", addrA, "dev", a)
	IP(t, "-n", nsA, "link", "set", a, "up")
	IP(t, "-n", nsB, "addr", "add", addrB, "dev", b)
	IP(t, "-n", nsB, "link", "set", b, "up")
}

// Addresses of the world Outside builds.
const (
	UpHost    = "198.51.100.1" // the host namespace on up0, towards the internet
	UpInet    = "198.51.100.2" // the internet namespace on wan0
	LANHost   = "192.0.2.1"    // the host namespace on lan0
	LANClient = "192.0.2.2"    // the lan namespace on eth0
)

// Outside gives namespace host an outside world in two new namespaces: an
// "internet" (inet) behind host's default route through up0 (UpHost) and
// wan0 (UpInet), and a "lan" on host's lan0 (LANHost) whose eth0
// (LANClient) routes through host. Servers go on inet's loopback.
func Outside(t testing.TB, host string) (inet, lan string) {
	t.Helper()
	inet, lan = New(t, "agi"), New(t, "agl")
	Link(t, host, "up0", UpHost+"/24", inet, "wan0", UpInet+"/24")
	IP(t, "-n", host, "route", "add", "default", "via", UpInet)
	Link(t, host, "lan0", LANHost+"/24", lan, "eth0", LANClient+"/24")
	IP(t, "-n", lan, "route", "add", "default", "via", LANHost)
	return inet, lan
}

// Do runs fn on a thread in namespace name. Sockets fn opens stay in that
// namespace when used from other goroutines afterwards.
func Do(t testing.TB, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		// The thread is never unlocked: Go ends it with the goroutine, so
		// it cannot be reused in the wrong namespace.
		runtime.LockOSThread()
		ns, err := netns.GetFromName(name)
		if err != nil {
			done <- err
			return
		}
		defer ns.Close()
		if err := netns.Set(ns); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("entering namespace %s: %v", name, err)
	}
}

// Enter returns a function that runs work in namespace name, in the shape
// of network.Config.Enter.
func Enter(t testing.TB, name string) func(func() error) error {
	return func(fn func() error) error {
		var err error
		Do(t, name, func() { err = fn() })
		return err
	}
}

// Listen listens on addr ("tcp4", "tcp"...) in namespace ns; the listener
// is closed when the test ends.
func Listen(t testing.TB, ns, network, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	Do(t, ns, func() { ln, err = net.Listen(network, addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Serve listens on TCP addr in namespace ns and runs handle on every
// connection in a goroutine of its own, until the test ends. It returns the
// number of connections accepted so far.
func Serve(t testing.TB, ns, addr string, handle func(net.Conn)) *atomic.Int64 {
	t.Helper()
	ln := Listen(t, ns, "tcp4", addr)
	var n atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			go handle(c)
		}
	}()
	return &n
}

// ListenPacket listens on UDP addr in namespace ns; the socket is closed
// when the test ends.
func ListenPacket(t testing.TB, ns, addr string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	var err error
	Do(t, ns, func() { pc, err = net.ListenPacket("udp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

// Datagrams listens on UDP addr in namespace ns and delivers each
// datagram's payload on the channel, which is closed when the socket is
// (at the end of the test).
func Datagrams(t testing.TB, ns, addr string) <-chan string {
	t.Helper()
	pc := ListenPacket(t, ns, addr)
	got := make(chan string, 1024)
	go func() {
		defer close(got)
		buf := make([]byte, 2048)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- string(buf[:n])
		}
	}()
	return got
}

// Dial connects from namespace ns to TCP addr within timeout.
func Dial(t testing.TB, ns, addr string, timeout time.Duration) (net.Conn, error) {
	t.Helper()
	var c net.Conn
	var err error
	Do(t, ns, func() { c, err = net.DialTimeout("tcp4", addr, timeout) })
	return c, err
}
