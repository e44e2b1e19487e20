package config

import (
	"slices"
	"testing"
)

// TestL1_DaemonPortsFollowTheConfig: the ports no forward may take include
// the dashboard's and the bridge's wherever they are configured, even when
// reserved_ports leaves them out.
func TestL1_DaemonPortsFollowTheConfig(t *testing.T) {
	c := Default()
	if got := c.DaemonPorts(); !slices.Equal(got, []int{3100, 7070}) {
		t.Fatalf("defaults: %v; want [3100 7070]", got)
	}
	c.Network.ReservedPorts = []int{9000}
	c.Dashboard.Listen = "127.0.0.1:8181"
	c.Bridge.Port = 3999
	if got := c.DaemonPorts(); !slices.Equal(got, []int{3999, 8181, 9000}) {
		t.Fatalf("moved ports: %v; want [3999 8181 9000]", got)
	}
	c.Network.ReservedPorts = nil
	c.Bridge.Listen = "127.0.0.1:4444"
	c.Dashboard.Listen = "[::1]:8181"
	if got := c.DaemonPorts(); !slices.Equal(got, []int{3999, 4444, 8181}) {
		t.Fatalf("bridge.listen and an IPv6 dashboard: %v; want [3999 4444 8181]", got)
	}
}
