package e2e

import (
	"encoding/binary"
	"io"
	"net"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// netWorld is the outside of a daemon under test, all in namespaces the
// test made: an "internet" namespace behind the daemon's default route
// (up0, not a configured host interface) with a web server and a name
// server, and a "lan" namespace on the configured host interface lan0.
type netWorld struct {
	daemonNS string
	inet     string
	lan      string
	// dnsQueries counts the questions the name server got.
	dnsQueries atomic.Int64
}

// Addresses of the outside world.
const (
	upHost    = "198.51.100.1" // the daemon's namespace, towards the internet
	upInet    = "198.51.100.2"
	webIP     = "203.0.113.10" // "example.test"
	dnsIP     = "203.0.113.53"
	lanHost   = "192.0.2.1" // the daemon's namespace on lan0
	lanClient = "192.0.2.2"
)

// networkConfig is the daemon's [network] section for a netWorld.
const networkConfig = `
[network]
subnet = "10.77.0.0/24"
host_interfaces = ["lan0"]
dns_servers = ["` + dnsIP + `"]
vm_service_ports = [3999]
reserved_ports = [3100, 7070]
forward_port_min = 21000
forward_port_max = 21099
`

// newNetWorld builds the outside world around the daemon's namespace; pass
// its prepare to startDaemonIn.
func newNetWorld(t *testing.T) (*netWorld, func(string)) {
	t.Helper()
	w := &netWorld{inet: newNetns(t, "agi"), lan: newNetns(t, "agl")}
	prepare := func(d string) {
		w.daemonNS = d
		run(t, "ip", "-n", d, "link", "add", "up0", "type", "veth", "peer", "name", "wan0", "netns", w.inet)
		run(t, "ip", "-n", d, "addr", "add", upHost+"/24", "dev", "up0")
		run(t, "ip", "-n", d, "link", "set", "up0", "up")
		run(t, "ip", "-n", d, "route", "add", "default", "via", upInet)
		run(t, "ip", "-n", w.inet, "addr", "add", upInet+"/24", "dev", "wan0")
		run(t, "ip", "-n", w.inet, "link", "set", "wan0", "up")
		run(t, "ip", "-n", w.inet, "addr", "add", webIP+"/32", "dev", "lo")
		run(t, "ip", "-n", w.inet, "addr", "add", dnsIP+"/32", "dev", "lo")

		run(t, "ip", "-n", d, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", w.lan)
		run(t, "ip", "-n", d, "addr", "add", lanHost+"/24", "dev", "lan0")
		run(t, "ip", "-n", d, "link", "set", "lan0", "up")
		run(t, "ip", "-n", w.lan, "addr", "add", lanClient+"/24", "dev", "eth0")
		run(t, "ip", "-n", w.lan, "link", "set", "eth0", "up")
		run(t, "ip", "-n", w.lan, "route", "add", "default", "via", lanHost)

		serveHello(t, w.inet, webIP+":80")
		w.serveDNS(t)
	}
	return w, prepare
}

// inNS runs fn on a thread in namespace name; sockets it opens stay there.
func inNS(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
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

// serveHello answers every TCP connection on addr in namespace ns with an
// HTTP response whose body is "hello".
func serveHello(t *testing.T, ns, addr string) {
	t.Helper()
	var ln net.Listener
	var err error
	inNS(t, ns, func() { ln, err = net.Listen("tcp4", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 1024)
				c.Read(buf)
				c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
			}()
		}
	}()
}

// dialRead connects from namespace ns to addr, sends a request and reports
// whether an answer came back in time.
func dialRead(t *testing.T, ns, addr string, timeout time.Duration) bool {
	t.Helper()
	var ok bool
	inNS(t, ns, func() {
		c, err := net.DialTimeout("tcp4", addr, timeout)
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		b, _ := io.ReadAll(c)
		ok = len(b) > 0
	})
	return ok
}

// serveDNS answers every A question on dnsIP:53 with webIP, and counts the
// questions.
func (w *netWorld) serveDNS(t *testing.T) {
	t.Helper()
	var pc net.PacketConn
	var err error
	inNS(t, w.inet, func() { pc, err = net.ListenPacket("udp4", dnsIP+":53") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			w.dnsQueries.Add(1)
			if resp := dnsAnswer(buf[:n], net.ParseIP(webIP).To4()); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
}

// dnsAnswer answers a one-question query with one A record (or an empty
// answer for other types), or nil for what is not a query.
func dnsAnswer(q []byte, a net.IP) []byte {
	if len(q) < 12 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	i := 12
	for i < len(q) && q[i] != 0 {
		i += int(q[i]) + 1
	}
	if i+5 > len(q) {
		return nil
	}
	qEnd := i + 5
	qtype := binary.BigEndian.Uint16(q[i+1:])
	resp := append([]byte(nil), q[:qEnd]...)
	resp[2] = 0x81 // response, recursion desired
	resp[3] = 0x80 // recursion available, no error
	binary.BigEndian.PutUint16(resp[8:], 0)
	binary.BigEndian.PutUint16(resp[10:], 0)
	if qtype != 1 {
		binary.BigEndian.PutUint16(resp[6:], 0)
		return resp
	}
	binary.BigEndian.PutUint16(resp[6:], 1)
	resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
	return append(resp, a...)
}
