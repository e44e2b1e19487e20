package daemon

import (
	"fmt"
	"log/slog"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/network"
	"github.com/agentiso/agentiso/internal/workspace"
)

// setupNetwork prepares the bridge and returns the manager's network
// options, or nil when networking is off. The rules themselves are applied
// by the manager from the state, before any VM is re-adopted.
func setupNetwork(cfg config.Config, log *slog.Logger) (*workspace.NetworkOptions, error) {
	if !cfg.Network.Enabled {
		log.Warn("workspace networking is off (network.enabled): workspaces get no network interface")
		return nil, nil
	}
	host, err := network.NewHost(cfg.Network.HostConfig(log))
	if err != nil {
		return nil, err
	}
	if err := host.Setup(); err != nil {
		return nil, fmt.Errorf("setting up the bridge: %w", err)
	}
	return &workspace.NetworkOptions{
		Host:                 host,
		DNS:                  cfg.Network.DNS(),
		DefaultAllowInternet: cfg.Network.DefaultAllowInternet,
		VMServicePorts:       cfg.Network.VMServicePorts,
		ReservedPorts:        cfg.DaemonPorts(),
		ForwardPortMin:       cfg.Network.ForwardPortMin,
		ForwardPortMax:       cfg.Network.ForwardPortMax,
	}, nil
}

// TeardownNetwork removes the daemon's nftables tables and its bridge, for
// uninstall. Run it with the daemon stopped and no workspace running.
func TeardownNetwork(cfg config.Config, log *slog.Logger) error {
	host, err := network.NewHost(cfg.Network.HostConfig(log))
	if err != nil {
		return err
	}
	return host.Teardown()
}
