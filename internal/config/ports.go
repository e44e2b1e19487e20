package config

import (
	"net"
	"slices"
	"strconv"
)

// DaemonPorts are the TCP ports the daemon itself listens on, or would
// with its other services turned on: network.reserved_ports, the
// dashboard's listen port and the MCP bridge's port (bridge.port, or the
// port of bridge.listen). No port forward may take one of them (finding
// L-1), whatever reserved_ports lists. Sorted, each once; call it on a
// validated configuration.
func (c Config) DaemonPorts() []int {
	out := slices.Clone(c.Network.ReservedPorts)
	for _, addr := range []string{c.Dashboard.Listen, c.Bridge.Listen} {
		if p, ok := listenPort(addr); ok {
			out = append(out, p)
		}
	}
	if c.Bridge.Port > 0 {
		out = append(out, c.Bridge.Port)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// listenPort is the port of a host:port address.
func listenPort(addr string) (int, bool) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, false
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return 0, false
	}
	return p, true
}
