package config

import (
	"net/netip"
	"slices"

	"github.com/agentiso/agentiso/internal/network"
)

// Bridge configures the MCP bridge: a streamable-HTTP MCP endpoint for
// agents inside workspaces, each authenticated by its workspace's token.
type Bridge struct {
	Enabled bool `toml:"enabled" comment:"Serve the MCP bridge and give team members tokens for it."`
	Port    int  `toml:"port" comment:"TCP port on the network bridge's address (the workspaces' gateway); list it in network.vm_service_ports so workspaces may reach it."`
	// Listen overrides the address (tests, hosts without networking).
	Listen string `toml:"listen" comment:"host:port to listen on instead of the bridge's address and port. Empty: the bridge's address."`
	// Tools is the allowlist a team gets when its create names none.
	Tools []string `toml:"tools" comment:"Tools a member's token allows unless its team's create gives bridge_tools."`
}

func defaultBridge() Bridge {
	return Bridge{Enabled: false, Port: 3100, Listen: "", Tools: []string{"exec", "file_read", "file_write", "file_list", "vault", "team"}}
}

// BridgeListen is the address the MCP bridge listens on; call it on a
// validated configuration.
func (c Config) BridgeListen() string {
	if c.Bridge.Listen != "" {
		return c.Bridge.Listen
	}
	return netip.AddrPortFrom(network.Gateway(c.Network.SubnetPrefix()), uint16(c.Bridge.Port)).String()
}

func (c Config) validateBridge(p *problems) {
	b := c.Bridge
	if !b.Enabled {
		return
	}
	p.intRange("bridge.port", int64(b.Port), 1024, 65535)
	if b.Listen == "" {
		if !c.Network.Enabled {
			p.addf("bridge.listen", "required when workspace networking is off (network.enabled = false)")
		} else if !slices.Contains(c.Network.VMServicePorts, b.Port) {
			p.addf("bridge.port", "must be listed in network.vm_service_ports, or workspaces cannot reach the bridge")
		}
	}
	if len(b.Tools) == 0 {
		p.addf("bridge.tools", "must list at least one tool")
	}
}
