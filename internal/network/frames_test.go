package network

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/testenv/netns"
)

// Hand-built frames for the spoofing tests: a VM can put anything on the
// wire, so the tests do too.

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

func ethernet(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := make([]byte, 0, 14+len(payload))
	f = append(f, dst...)
	f = append(f, src...)
	f = binary.BigEndian.AppendUint16(f, etherType)
	return append(f, payload...)
}

// udpFrame is an Ethernet frame carrying an IPv4 UDP datagram (UDP
// checksum 0: none, which IPv4 allows).
func udpFrame(dstMAC, srcMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	udp = append(udp, payload...)
	iph := make([]byte, 20)
	iph[0] = 0x45
	binary.BigEndian.PutUint16(iph[2:], uint16(20+len(udp)))
	iph[8] = 64
	iph[9] = unix.IPPROTO_UDP
	s, d := src.As4(), dst.As4()
	copy(iph[12:], s[:])
	copy(iph[16:], d[:])
	binary.BigEndian.PutUint16(iph[10:], checksum(iph))
	return ethernet(dstMAC, srcMAC, unix.ETH_P_IP, append(iph, udp...))
}

func checksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// arpFrame is an ARP packet for IPv4 over Ethernet.
func arpFrame(ethDst, ethSrc net.HardwareAddr, op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	p := make([]byte, 8, 28)
	binary.BigEndian.PutUint16(p[0:], 1)
	binary.BigEndian.PutUint16(p[2:], unix.ETH_P_IP)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:], op)
	s, d := spa.As4(), tpa.As4()
	p = append(p, sha...)
	p = append(p, s[:]...)
	p = append(p, tha...)
	p = append(p, d[:]...)
	return ethernet(ethDst, ethSrc, unix.ETH_P_ARP, p)
}

// arpReplies listens on ifname in namespace ns for ARP replies that say
// where ip is, for the duration, and returns the MACs they named.
func arpReplies(t *testing.T, ns, ifname string, ip netip.Addr, d time.Duration, send func()) []net.HardwareAddr {
	t.Helper()
	var fd int
	var err error
	netns.Do(t, ns, func() {
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return
		}
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(ifname); err != nil {
			return
		}
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	tv := unix.NsecToTimeval((50 * time.Millisecond).Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	send()
	var macs []net.HardwareAddr
	buf := make([]byte, 128)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil || n < 42 {
			continue
		}
		p := buf[14:n]
		if binary.BigEndian.Uint16(p[6:]) != 2 {
			continue
		}
		if spa, _ := netip.AddrFromSlice(p[14:18]); spa == ip {
			macs = append(macs, net.HardwareAddr(append([]byte(nil), p[8:14]...)))
		}
	}
	return macs
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
