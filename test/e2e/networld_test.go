package e2e

import (
	"encoding/binary"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/testenv/netns"
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

// Addresses of the outside world, besides netns.Outside's.
const (
	webIP = "203.0.113.10" // "example.test"
	dnsIP = "203.0.113.53"
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
	w := &netWorld{}
	prepare := func(d string) {
		w.daemonNS = d
		w.inet, w.lan = netns.Outside(t, d)
		netns.IP(t, "-n", w.inet, "addr", "add", webIP+"/32", "dev", "lo")
		netns.IP(t, "-n", w.inet, "addr", "add", dnsIP+"/32", "dev", "lo")
		serveHello(t, w.inet, webIP+":80")
		w.serveDNS(t)
	}
	return w, prepare
}

// serveHello answers every TCP connection on addr in namespace ns with an
// HTTP response whose body is "hello".
func serveHello(t *testing.T, ns, addr string) {
	t.Helper()
	netns.Serve(t, ns, addr, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1024)
		c.Read(buf)
		c.Write([]byte("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	})
}

// dialRead connects from namespace ns to addr, sends a request and reports
// whether an answer came back in time.
func dialRead(t *testing.T, ns, addr string, timeout time.Duration) bool {
	t.Helper()
	c, err := netns.Dial(t, ns, addr, timeout)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	b, _ := io.ReadAll(c)
	return len(b) > 0
}

// serveDNS answers every A question on dnsIP:53 with webIP, and counts the
// questions.
func (w *netWorld) serveDNS(t *testing.T) {
	t.Helper()
	pc := netns.ListenPacket(t, w.inet, dnsIP+":53")
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
