package guest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/protocol"
)

// netConfigTimeout bounds configuring the interface.
const netConfigTimeout = 30 * time.Second

// arphrdEther is the type (in /sys/class/net/<if>/type) of an Ethernet
// interface.
const arphrdEther = "1"

// runIP runs iproute2's ip with argv. The guest links no netlink package
// (a repository invariant): the image's ip does the work.
func runIP(ctx context.Context, args ...string) error {
	_, err := hostcmd.Run(ctx, "ip", args...)
	return err
}

// configureNetwork gives the interface with n's MAC its address, route and
// name servers. A VM restored from another VM's snapshot still carries that
// VM's MAC on its one Ethernet interface: it takes the new MAC first, so the
// host's anti-spoofing rules (which know only the new one) let it speak.
func (a *Agent) configureNetwork(n *protocol.NetConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), netConfigTimeout)
	defer cancel()
	mac, err := net.ParseMAC(n.MAC)
	if err != nil {
		return errdefs.Invalidf("network.mac: not a MAC address")
	}
	dev, found, err := a.interfaceFor(mac)
	if err != nil {
		return err
	}
	ip := a.opts.RunIP
	if !found {
		if err := ip(ctx, "link", "set", "dev", dev, "down"); err != nil {
			return fmt.Errorf("taking %s down: %w", dev, err)
		}
		if err := ip(ctx, "link", "set", "dev", dev, "address", mac.String()); err != nil {
			return fmt.Errorf("giving %s its MAC: %w", dev, err)
		}
	}
	steps := [][]string{
		{"link", "set", "dev", dev, "up"},
		{"-4", "addr", "flush", "dev", dev},
		{"addr", "add", n.Address.String(), "dev", dev},
		{"route", "replace", "default", "via", n.Gateway.String(), "dev", dev},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			return fmt.Errorf("configuring %s: %w", dev, err)
		}
	}
	return writeFileAtomic(filepath.Join(a.opts.EtcDir, "resolv.conf"), resolvConf(n))
}

// resolvConf is /etc/resolv.conf for n. Without name servers it says so,
// and the resolver has nothing to ask.
func resolvConf(n *protocol.NetConfig) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by agentiso; network_policy changes it.\n")
	if len(n.DNS) == 0 {
		b.WriteString("# No name servers: this workspace has no internet access.\n")
	}
	for _, d := range n.DNS {
		fmt.Fprintf(&b, "nameserver %s\n", d)
	}
	return b.Bytes()
}

// interfaceFor finds the interface with mac. found is false when none has
// it and the one Ethernet interface there is returned instead; more than one
// candidate, or none, is an error.
func (a *Agent) interfaceFor(mac net.HardwareAddr) (dev string, found bool, err error) {
	dir := a.opts.SysClassNet
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", false, fmt.Errorf("listing network interfaces: %w", err)
	}
	var ether []string
	for _, e := range entries {
		name := e.Name()
		typ, err := os.ReadFile(filepath.Join(dir, name, "type"))
		if err != nil || strings.TrimSpace(string(typ)) != arphrdEther || name == "lo" {
			continue
		}
		addr, err := os.ReadFile(filepath.Join(dir, name, "address"))
		if err != nil {
			continue
		}
		if hw, err := net.ParseMAC(strings.TrimSpace(string(addr))); err == nil && bytes.Equal(hw, mac) {
			return name, true, nil
		}
		ether = append(ether, name)
	}
	if len(ether) != 1 {
		return "", false, errdefs.NotFoundf("network.mac: no interface has this MAC (%d other Ethernet interfaces)", len(ether))
	}
	return ether[0], false, nil
}
