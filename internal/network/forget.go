package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Forget removes what the kernel still remembers of the VM that had ip and
// mac: its connection-tracking entries (either direction, NAT included),
// its neighbour (ARP) entries and bridge forwarding entries, and then checks
// that none is left. Only when Forget succeeds may the address and MAC go to
// another VM, so a new workspace never inherits an old one's flows or
// neighbour entries (the analogue of finding L-6's CID reuse window). Its
// rules and TAP must be gone first, so nothing new is learnt meanwhile.
func (h *Host) Forget(ip netip.Addr, mac net.HardwareAddr) error {
	if !ip.Is4() {
		return fmt.Errorf("forget: %v is not an IPv4 address", ip)
	}
	return h.do(func() error {
		if err := forgetFlows(ip); err != nil {
			return err
		}
		if err := forgetNeighbours(ip, mac); err != nil {
			return err
		}
		n, err := flowsOf(ip)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("forget %v: %d connection-tracking entries remain", ip, n)
		}
		left, err := neighboursOf(ip, mac)
		if err != nil {
			return err
		}
		if len(left) > 0 {
			return fmt.Errorf("forget %v: %d neighbour entries remain", ip, len(left))
		}
		return nil
	})
}

// ipFilters select a conntrack entry that involves ip in any position.
func ipFilters(ip netip.Addr) ([]netlink.CustomConntrackFilter, error) {
	var fs []netlink.CustomConntrackFilter
	for _, t := range []netlink.ConntrackFilterType{
		netlink.ConntrackOrigSrcIP, netlink.ConntrackOrigDstIP,
		netlink.ConntrackReplySrcIP, netlink.ConntrackReplyDstIP,
	} {
		f := &netlink.ConntrackFilter{}
		if err := f.AddIP(t, ip.AsSlice()); err != nil {
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func forgetFlows(ip netip.Addr) error {
	fs, err := ipFilters(ip)
	if err != nil {
		return err
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, fs...); err != nil {
		return fmt.Errorf("deleting connection-tracking entries of %v: %w", ip, err)
	}
	return nil
}

// flowsOf counts the conntrack entries that involve ip.
func flowsOf(ip netip.Addr) (int, error) {
	fs, err := ipFilters(ip)
	if err != nil {
		return 0, err
	}
	flows, err := netlink.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		return 0, fmt.Errorf("listing connection-tracking entries: %w", err)
	}
	n := 0
	for _, fl := range flows {
		for _, f := range fs {
			if f.MatchConntrackFlow(fl) {
				n++
				break
			}
		}
	}
	return n, nil
}

// FlowsOf counts the connection-tracking entries that involve ip, in the
// Host's namespace.
func (h *Host) FlowsOf(ip netip.Addr) (int, error) {
	var n int
	err := h.do(func() (err error) {
		n, err = flowsOf(ip)
		return err
	})
	return n, err
}

func forgetNeighbours(ip netip.Addr, mac net.HardwareAddr) error {
	ns, err := neighboursOf(ip, mac)
	if err != nil {
		return err
	}
	for _, n := range ns {
		var del error
		if n.Family == unix.AF_BRIDGE {
			del = netlink.NeighDel(&n)
		} else {
			del = netlink.NeighDel(&netlink.Neigh{LinkIndex: n.LinkIndex, Family: n.Family, IP: n.IP})
		}
		if del != nil && !isGone(del) {
			return fmt.Errorf("deleting neighbour entry of %v: %w", ip, del)
		}
	}
	return nil
}

// neighboursOf lists the ARP entries for ip and the bridge forwarding
// entries for mac, on every interface.
func neighboursOf(ip netip.Addr, mac net.HardwareAddr) ([]netlink.Neigh, error) {
	var out []netlink.Neigh
	arp, err := netlink.NeighList(0, unix.AF_INET)
	if err != nil {
		return nil, fmt.Errorf("listing neighbours: %w", err)
	}
	for _, n := range arp {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip {
			out = append(out, n)
		}
	}
	if len(mac) == 0 {
		return out, nil
	}
	fdb, err := netlink.NeighList(0, unix.AF_BRIDGE)
	if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
		return nil, fmt.Errorf("listing bridge forwarding entries: %w", err)
	}
	for _, n := range fdb {
		if n.HardwareAddr.String() == mac.String() {
			out = append(out, n)
		}
	}
	return out, nil
}

// ForgetFlows removes the connection-tracking entries that involve ip, so
// that a policy change (internet access taken away) also ends the
// connections the old policy let through.
func (h *Host) ForgetFlows(ip netip.Addr) error {
	if !ip.Is4() {
		return fmt.Errorf("forget flows: %v is not an IPv4 address", ip)
	}
	return h.do(func() error { return forgetFlows(ip) })
}
