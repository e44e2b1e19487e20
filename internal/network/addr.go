package network

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// MACFor is the fixed MAC of the VM at ip: locally administered, unicast,
// and carrying the address (02:a9:<ip>), so the MAC is unique exactly when
// the IP is and both are recycled together.
func MACFor(ip netip.Addr) net.HardwareAddr {
	b := ip.As4()
	return net.HardwareAddr{0x02, 0xa9, b[0], b[1], b[2], b[3]}
}

// ErrSubnetFull is returned by NextFree when every address is taken.
var ErrSubnetFull = errors.New("no free address left in the subnet")

// Gateway is the host's address on the bridge: the subnet's first host
// address.
func Gateway(subnet netip.Prefix) netip.Addr { return subnet.Masked().Addr().Next() }

// NextFree returns the lowest address of subnet that VMs may use and taken
// does not hold: not the network address, not the gateway, not the
// broadcast address.
func NextFree(subnet netip.Prefix, taken func(netip.Addr) bool) (netip.Addr, error) {
	if !subnet.Addr().Is4() {
		return netip.Addr{}, fmt.Errorf("subnet %s is not IPv4", subnet)
	}
	subnet = subnet.Masked()
	gw := Gateway(subnet)
	for a := gw.Next(); subnet.Contains(a); a = a.Next() {
		if !subnet.Contains(a.Next()) {
			break // the broadcast address
		}
		if !taken(a) {
			return a, nil
		}
	}
	return netip.Addr{}, ErrSubnetFull
}
