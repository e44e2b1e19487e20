package config

import (
	"fmt"
	"log/slog"
	"net/netip"

	"github.com/agentiso/agentiso/internal/network"
)

// Network configures workspace networking.
type Network struct {
	Enabled bool   `toml:"enabled" comment:"Give each workspace a network interface on the bridge. Off: workspaces have no network device at all."`
	Bridge  string `toml:"bridge" comment:"The bridge the daemon creates (if missing) and owns."`
	Subnet  string `toml:"subnet" comment:"IPv4 subnet of the workspaces; the bridge takes its first address."`
	// HostInterfaces scope port forwards (finding H-7).
	HostInterfaces []string `toml:"host_interfaces" comment:"Interfaces besides loopback on which port forwards and allowed inbound ports are reachable. Empty: loopback only."`
	DNSServers     []string `toml:"dns_servers" comment:"Name servers of workspaces that may reach the internet (at most 3). Others get none."`
	// DefaultAllowInternet is what workspace_create gives when the call
	// does not say; off means a workspace reaches nothing outside.
	DefaultAllowInternet bool  `toml:"default_allow_internet" comment:"Internet access of a workspace whose create call does not say."`
	VMServicePorts       []int `toml:"vm_service_ports" comment:"TCP ports on the bridge address that workspaces may reach: services the daemon runs for them. Everything else on the host is closed to them."`
	// ReservedPorts are the daemon's own ports (finding L-1).
	ReservedPorts  []int `toml:"reserved_ports" comment:"Host ports no port forward may take, besides those below 1024 and the dashboard's and MCP bridge's own ports (always reserved, wherever they are configured)."`
	ForwardPortMin int   `toml:"forward_port_min" comment:"Lowest host port given to a port forward that names none."`
	ForwardPortMax int   `toml:"forward_port_max" comment:"Highest host port given to a port forward that names none."`
}

func defaultNetwork() Network {
	return Network{
		Enabled:        true,
		Bridge:         "br-agentiso",
		Subnet:         "10.99.0.0/16",
		HostInterfaces: []string{},
		DNSServers:     []string{"1.1.1.1", "8.8.8.8"},
		VMServicePorts: []int{},
		ReservedPorts:  []int{3100, 7070},
		ForwardPortMin: 20000,
		ForwardPortMax: 29999,
	}
}

// SubnetPrefix is Subnet parsed; call it on a validated configuration.
func (n Network) SubnetPrefix() netip.Prefix {
	p, _ := netip.ParsePrefix(n.Subnet)
	return p.Masked()
}

// HostConfig is the host networking this configuration describes, in the
// process's own network namespace; call it on a validated configuration.
func (n Network) HostConfig(log *slog.Logger) network.Config {
	return network.Config{Bridge: n.Bridge, Subnet: n.SubnetPrefix(), HostInterfaces: n.HostInterfaces, Logger: log}
}

// DNS is DNSServers parsed; call it on a validated configuration.
func (n Network) DNS() []netip.Addr {
	out := make([]netip.Addr, 0, len(n.DNSServers))
	for _, s := range n.DNSServers {
		if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func (n Network) validate(p *problems) {
	if err := network.ValidateIfName("network.bridge", n.Bridge); err != nil {
		p.add(err.Error())
	}
	if pre, err := netip.ParsePrefix(n.Subnet); err != nil || !pre.Addr().Is4() || pre.Bits() < 8 || pre.Bits() > 29 {
		p.addf("network.subnet", "%q is not an IPv4 prefix between /8 and /29", n.Subnet)
	}
	for i, name := range n.HostInterfaces {
		if err := network.ValidateIfName(fmt.Sprintf("network.host_interfaces[%d]", i), name); err != nil {
			p.add(err.Error())
		}
		if name == n.Bridge || name == "lo" {
			p.addf(fmt.Sprintf("network.host_interfaces[%d]", i), "%q is always handled (loopback) or is the bridge", name)
		}
	}
	if len(n.DNSServers) > 3 {
		p.addf("network.dns_servers", "%d servers is more than 3", len(n.DNSServers))
	}
	for i, s := range n.DNSServers {
		if a, err := netip.ParseAddr(s); err != nil || !a.Is4() || a.IsUnspecified() {
			p.addf(fmt.Sprintf("network.dns_servers[%d]", i), "%q is not an IPv4 address", s)
		}
	}
	for i, port := range n.VMServicePorts {
		p.intRange(fmt.Sprintf("network.vm_service_ports[%d]", i), int64(port), 1, 65535)
	}
	for i, port := range n.ReservedPorts {
		p.intRange(fmt.Sprintf("network.reserved_ports[%d]", i), int64(port), 1, 65535)
	}
	p.intRange("network.forward_port_min", int64(n.ForwardPortMin), network.MinHostPort, 65535)
	p.intRange("network.forward_port_max", int64(n.ForwardPortMax), network.MinHostPort, 65535)
	p.atMost("network.forward_port_min", int64(n.ForwardPortMin), "network.forward_port_max", int64(n.ForwardPortMax))
}
