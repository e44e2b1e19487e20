package network

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// MinHostPort is the lowest host port a port forward may use: the
// privileged ports stay the host's own (finding L-1).
const MinHostPort = 1024

// Ruleset is everything the daemon's nftables tables say, as typed values:
// addresses are netip.Addr, MACs net.HardwareAddr, interface names checked
// by ValidateIfName, ports integers. Rules are built from these values
// through netlink, never from text (findings M-4, L-3). A Ruleset is a pure
// function of the state database, so the rules after a daemon restart are
// the rules before it.
type Ruleset struct {
	// Bridge is the bridge every TAP is a port of; Subnet its IPv4 subnet,
	// whose first host address is the gateway (the host).
	Bridge string
	Subnet netip.Prefix
	// HostInterfaces are the host's interfaces, besides loopback, on which
	// port forwards and a workspace's allowed inbound ports are reachable
	// (finding H-7). Empty: loopback only.
	HostInterfaces []string
	// VMServices are the TCP ports on the gateway that VMs may reach: what
	// the daemon itself serves to VMs. Everything else on the host is
	// closed to them (finding M-1).
	VMServices []uint16
	VMs        []VM
	// Peers are the pairs of VMs that may exchange traffic; every other
	// pair is isolated (finding M-2).
	Peers    []Peer
	Forwards []Forward
}

// VM is one workspace VM's network identity and policy.
type VM struct {
	TAP string
	MAC net.HardwareAddr
	IP  netip.Addr
	// Internet allows traffic to anywhere outside the bridge, through NAT.
	// Without it nothing leaves, DNS included (finding L-4).
	Internet bool
	// AllowedPorts are TCP ports of the VM that clients on the host
	// interfaces may connect to, routed without NAT.
	AllowedPorts []uint16
}

// Peer is a pair of VMs, by address, allowed to talk to each other in both
// directions.
type Peer struct{ A, B netip.Addr }

// Forward sends TCP connections to HostPort on the host (from loopback or
// a host interface) to GuestPort of the VM at IP.
type Forward struct {
	HostPort  uint16
	IP        netip.Addr
	GuestPort uint16
}

// Gateway is the host's address on the bridge.
func (rs *Ruleset) Gateway() netip.Addr { return Gateway(rs.Subnet) }

// Validate checks every value a rule will be built from. Its messages name
// the field.
func (rs *Ruleset) Validate() error {
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	add(ValidateIfName("bridge", rs.Bridge))
	if !rs.Subnet.IsValid() || !rs.Subnet.Addr().Is4() || rs.Subnet.Bits() < 8 || rs.Subnet.Bits() > 29 {
		add(fmt.Errorf("subnet: %v is not an IPv4 prefix between /8 and /29", rs.Subnet))
	}
	for i, n := range rs.HostInterfaces {
		add(ValidateIfName(fmt.Sprintf("host_interfaces[%d]", i), n))
		if n == rs.Bridge {
			add(fmt.Errorf("host_interfaces[%d]: %q is the bridge", i, n))
		}
	}
	for i, p := range rs.VMServices {
		if p == 0 {
			add(fmt.Errorf("vm_services[%d]: port 0", i))
		}
	}
	byIP := map[netip.Addr]bool{}
	taps := map[string]bool{}
	macs := map[string]bool{}
	for i, vm := range rs.VMs {
		f := fmt.Sprintf("vms[%d]", i)
		add(ValidateIfName(f+".tap", vm.TAP))
		if !bytes.HasPrefix([]byte(vm.TAP), []byte(TAPPrefix)) {
			add(fmt.Errorf("%s.tap: %q does not start with %q", f, vm.TAP, TAPPrefix))
		}
		if len(vm.MAC) != 6 || vm.MAC[0]&1 != 0 {
			add(fmt.Errorf("%s.mac: %v is not a unicast Ethernet address", f, vm.MAC))
		}
		if !vm.IP.Is4() || !rs.Subnet.Contains(vm.IP) || vm.IP == rs.Gateway() {
			add(fmt.Errorf("%s.ip: %v is not a VM address of %v", f, vm.IP, rs.Subnet))
		}
		if byIP[vm.IP] || taps[vm.TAP] || macs[vm.MAC.String()] {
			add(fmt.Errorf("%s: ip, tap or mac used by another VM", f))
		}
		byIP[vm.IP], taps[vm.TAP], macs[vm.MAC.String()] = true, true, true
		for j, p := range vm.AllowedPorts {
			if p == 0 {
				add(fmt.Errorf("%s.allowed_ports[%d]: port 0", f, j))
			}
		}
	}
	for i, p := range rs.Peers {
		if !byIP[p.A] || !byIP[p.B] || p.A == p.B {
			add(fmt.Errorf("peers[%d]: %v and %v are not two VMs of the ruleset", i, p.A, p.B))
		}
	}
	hostPorts := map[uint16]bool{}
	for i, f := range rs.Forwards {
		switch {
		case f.HostPort < MinHostPort:
			add(fmt.Errorf("forwards[%d].host_port: %d is below %d", i, f.HostPort, MinHostPort))
		case hostPorts[f.HostPort]:
			add(fmt.Errorf("forwards[%d].host_port: %d is forwarded twice", i, f.HostPort))
		}
		hostPorts[f.HostPort] = true
		if f.GuestPort == 0 {
			add(fmt.Errorf("forwards[%d].guest_port: port 0", i))
		}
		if !byIP[f.IP] {
			add(fmt.Errorf("forwards[%d].ip: %v is no VM of the ruleset", i, f.IP))
		}
	}
	return errors.Join(errs...)
}

// normalized returns a copy of rs in a canonical order, so equal rulesets
// produce identical tables.
func (rs *Ruleset) normalized() Ruleset {
	n := *rs
	n.HostInterfaces = sortedUnique(rs.HostInterfaces, cmp.Compare[string])
	n.VMServices = sortedUnique(rs.VMServices, cmp.Compare[uint16])
	n.VMs = slices.Clone(rs.VMs)
	for i := range n.VMs {
		n.VMs[i].AllowedPorts = sortedUnique(n.VMs[i].AllowedPorts, cmp.Compare[uint16])
	}
	slices.SortFunc(n.VMs, func(a, b VM) int { return a.IP.Compare(b.IP) })
	n.Peers = make([]Peer, 0, len(rs.Peers))
	for _, p := range rs.Peers {
		if p.B.Less(p.A) {
			p.A, p.B = p.B, p.A
		}
		n.Peers = append(n.Peers, p)
	}
	n.Peers = sortedUnique(n.Peers, func(a, b Peer) int {
		return cmp.Or(a.A.Compare(b.A), a.B.Compare(b.B))
	})
	n.Forwards = slices.Clone(rs.Forwards)
	slices.SortFunc(n.Forwards, func(a, b Forward) int { return cmp.Compare(a.HostPort, b.HostPort) })
	return n
}

func sortedUnique[T any](s []T, c func(a, b T) int) []T {
	s = slices.Clone(s)
	slices.SortFunc(s, c)
	return slices.CompactFunc(s, func(a, b T) bool { return c(a, b) == 0 })
}
