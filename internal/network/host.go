// Package network is the host side of workspace networking: the bridge, one
// TAP per VM, the addresses VMs get, and the daemon's nftables tables.
//
// Posture (fail closed). A VM reaches nothing unless a rule lets it:
//   - frames from a VM must carry its own MAC and IPv4 address, or be ARP
//     about that address only; everything else it sends is dropped in the
//     bridge family, where bridged traffic is seen (findings H-6, M-3);
//   - two VMs exchange frames only if a policy lists the pair; the check is
//     stateless, so no connection survives a policy change (M-2);
//   - the host is closed to VMs except the ports the daemon serves (M-1);
//   - nothing leaves the host from a VM, DNS included, unless the VM may
//     reach the internet, and then only through NAT (L-4);
//   - port forwards DNAT only connections made on the host through loopback
//     or arriving on configured host interfaces (H-7).
//
// The rules are a pure function of a Ruleset, which the workspace manager
// builds from the state database; every change replaces the daemon's two
// tables in one netlink transaction. Tables of other programs are never
// read or written, and the base chains accept whatever does not concern the
// bridge, so the host's own traffic is left alone (L-2).
//
// A Host works in the network namespace of the thread that calls it (the
// daemon's), or wherever Config.Enter runs its work, so tests run whole
// hosts inside namespaces they made. The package itself never switches
// namespaces: the daemon's service unit forbids it (RestrictNamespaces).
package network

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Config is where a Host works.
type Config struct {
	// Bridge is the bridge device; it is created if missing.
	Bridge string
	// Subnet is the VMs' IPv4 subnet; the bridge gets its first host
	// address, the gateway.
	Subnet netip.Prefix
	// HostInterfaces are the interfaces, besides loopback, on which port
	// forwards and allowed inbound ports are reachable.
	HostInterfaces []string
	// Enter, when set, runs each piece of the Host's work where the Host
	// works (tests: on a thread inside a namespace they made); nil runs it
	// on the calling goroutine, in the process's own namespace. Netlink
	// sockets, /dev/net/tun and /proc/sys/net act in the namespace of the
	// thread that opens them.
	Enter  func(fn func() error) error
	Logger *slog.Logger
}

// Host sets up and tears down the host side of workspace networking.
type Host struct {
	cfg Config
	log *slog.Logger
}

// NewHost returns a Host for cfg. It changes nothing; call Setup.
func NewHost(cfg Config) (*Host, error) {
	var errs []error
	if err := ValidateIfName("bridge", cfg.Bridge); err != nil {
		errs = append(errs, err)
	}
	if !cfg.Subnet.IsValid() || !cfg.Subnet.Addr().Is4() {
		errs = append(errs, fmt.Errorf("subnet: %v is not an IPv4 prefix", cfg.Subnet))
	}
	for i, n := range cfg.HostInterfaces {
		if err := ValidateIfName(fmt.Sprintf("host_interfaces[%d]", i), n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("network: %w", err)
	}
	cfg.Subnet = cfg.Subnet.Masked()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Host{cfg: cfg, log: cfg.Logger}, nil
}

// Gateway is the host's address on the bridge.
func (h *Host) Gateway() netip.Addr { return Gateway(h.cfg.Subnet) }

// Subnet is the VMs' subnet.
func (h *Host) Subnet() netip.Prefix { return h.cfg.Subnet }

// Bridge is the bridge's name.
func (h *Host) Bridge() string { return h.cfg.Bridge }

// HostInterfaces are the configured host interfaces.
func (h *Host) HostInterfaces() []string { return append([]string(nil), h.cfg.HostInterfaces...) }

// do runs fn where the Host works (see Config.Enter).
func (h *Host) do(fn func() error) error {
	if h.cfg.Enter == nil {
		return fn()
	}
	return h.cfg.Enter(fn)
}

// Setup creates the bridge if it is missing, gives it the gateway address,
// brings it up and sets its sysctls: forwarding for packets from VMs and
// on the uplinks (the default route's interfaces and the host interfaces),
// no proxy ARP, ARP answered only for the bridge's own address, loopback
// routing for port forwards from loopback, and no IPv6 on the bridge.
func (h *Host) Setup() error {
	return h.do(h.setup)
}

func (h *Host) setup() error {
	br, err := netlink.LinkByName(h.cfg.Bridge)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		br = &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: h.cfg.Bridge}}
		if err := netlink.LinkAdd(br); err != nil {
			return fmt.Errorf("creating bridge %s: %w", h.cfg.Bridge, err)
		}
		if br, err = netlink.LinkByName(h.cfg.Bridge); err != nil {
			return fmt.Errorf("finding bridge %s: %w", h.cfg.Bridge, err)
		}
		h.log.Info("bridge created", "bridge", h.cfg.Bridge)
	case err != nil:
		return fmt.Errorf("finding bridge %s: %w", h.cfg.Bridge, err)
	case br.Type() != "bridge":
		return fmt.Errorf("%s exists and is a %s, not a bridge", h.cfg.Bridge, br.Type())
	}
	// A fixed MAC: a bridge left to choose takes its lowest port's, so the
	// gateway's MAC would change under the VMs whenever a VM comes or goes
	// (and the kernel would flush every neighbour entry with it).
	gw := h.Gateway()
	if mac := MACFor(gw); br.Attrs().HardwareAddr.String() != mac.String() {
		if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
			return fmt.Errorf("setting the MAC of %s: %w", h.cfg.Bridge, err)
		}
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(h.cfg.Subnet.Bits(), 32)}}
	if err := netlink.AddrReplace(br, addr); err != nil {
		return fmt.Errorf("giving %s the address %v: %w", h.cfg.Bridge, addr, err)
	}
	// IPv6 off first, so the bridge never sends router or neighbour
	// solicitations to VMs. Hosts without IPv6 have no such file.
	if err := writeSysctl("ipv6/conf/"+h.cfg.Bridge+"/disable_ipv6", "1"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, s := range [][2]string{
		{"ipv4/conf/" + h.cfg.Bridge + "/forwarding", "1"},
		{"ipv4/conf/" + h.cfg.Bridge + "/proxy_arp", "0"},
		{"ipv4/conf/" + h.cfg.Bridge + "/arp_ignore", "1"},
		{"ipv4/conf/" + h.cfg.Bridge + "/arp_announce", "2"},
		{"ipv4/conf/" + h.cfg.Bridge + "/route_localnet", "1"},
	} {
		if err := writeSysctl(s[0], s[1]); err != nil {
			return err
		}
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return fmt.Errorf("bringing %s up: %w", h.cfg.Bridge, err)
	}
	return h.enableUplinks()
}

// enableUplinks turns on IPv4 forwarding on the interfaces replies from the
// internet and connections to forwarded ports arrive on: those of the
// default routes and the configured host interfaces. Forwarding is set per
// interface, never host-wide.
func (h *Host) enableUplinks() error {
	names := map[string]bool{}
	for _, n := range h.cfg.HostInterfaces {
		names[n] = true
	}
	routes, err := netlink.RouteListFiltered(unix.AF_INET, &netlink.Route{Dst: nil}, netlink.RT_FILTER_DST)
	if err != nil {
		return fmt.Errorf("listing default routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil && !r.Dst.IP.IsUnspecified() {
			continue
		}
		if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
			names[l.Attrs().Name] = true
		}
	}
	for n := range names {
		if n == h.cfg.Bridge || ValidateIfName("uplink", n) != nil {
			continue
		}
		err := writeSysctl("ipv4/conf/"+n+"/forwarding", "1")
		if errors.Is(err, os.ErrNotExist) {
			h.log.Warn("host interface does not exist (yet)", "interface", n)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Apply replaces the daemon's nftables tables with rs (see the package
// function Apply), refreshing uplink forwarding first: a default route may
// have moved since Setup.
func (h *Host) Apply(rs Ruleset) error {
	return h.do(func() error {
		if err := h.enableUplinks(); err != nil {
			return err
		}
		return Apply(rs)
	})
}

// RemoveRules deletes the daemon's tables.
func (h *Host) RemoveRules() error { return h.do(Remove) }

// Teardown removes the tables and the bridge, for uninstall. TAPs of running
// VMs lose their bridge with it; the caller stops VMs first.
func (h *Host) Teardown() error {
	return h.do(func() error {
		if err := Remove(); err != nil {
			return err
		}
		br, err := netlink.LinkByName(h.cfg.Bridge)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("finding bridge %s: %w", h.cfg.Bridge, err)
		}
		if err := netlink.LinkDel(br); err != nil {
			return fmt.Errorf("deleting bridge %s: %w", h.cfg.Bridge, err)
		}
		return nil
	})
}

// AddTAP makes the persistent TAP name a port of the bridge and brings it
// up. QEMU attaches to it by name. A TAP of that name left over (a VM that
// crashed) is reused.
func (h *Host) AddTAP(name string) error {
	if err := ValidateIfName("tap", name); err != nil {
		return err
	}
	return h.do(func() error {
		br, err := netlink.LinkByName(h.cfg.Bridge)
		if err != nil {
			return fmt.Errorf("finding bridge %s: %w", h.cfg.Bridge, err)
		}
		tap, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			t := &netlink.Tuntap{
				LinkAttrs: netlink.LinkAttrs{Name: name},
				Mode:      netlink.TUNTAP_MODE_TAP,
				Flags:     netlink.TUNTAP_DEFAULTS | netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
			}
			if err := netlink.LinkAdd(t); err != nil {
				return fmt.Errorf("creating TAP %s: %w", name, err)
			}
			tap, err = netlink.LinkByName(name)
		}
		if err != nil {
			return fmt.Errorf("finding TAP %s: %w", name, err)
		}
		if tap.Type() != "tuntap" {
			return fmt.Errorf("%s exists and is a %s, not a TAP", name, tap.Type())
		}
		if err := netlink.LinkSetMaster(tap, br); err != nil {
			return fmt.Errorf("adding %s to bridge %s: %w", name, h.cfg.Bridge, err)
		}
		if err := netlink.LinkSetUp(tap); err != nil {
			return fmt.Errorf("bringing %s up: %w", name, err)
		}
		return nil
	})
}

// DeleteTAP removes the TAP name; one that does not exist is not an error.
func (h *Host) DeleteTAP(name string) error {
	if err := ValidateIfName("tap", name); err != nil {
		return err
	}
	return h.do(func() error {
		l, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("finding TAP %s: %w", name, err)
		}
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("deleting TAP %s: %w", name, err)
		}
		return nil
	})
}

// HasLink reports whether an interface of that name exists.
func (h *Host) HasLink(name string) (bool, error) {
	var ok bool
	err := h.do(func() error {
		_, err := netlink.LinkByName(name)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	return ok, err
}

// writeSysctl writes /proc/sys/net/<key>; key must come from this package,
// with interface names that passed ValidateIfName.
func writeSysctl(key, value string) error {
	p := filepath.Join("/proc/sys/net", key)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("setting %s: %w", p, err)
	}
	defer f.Close()
	if _, err := f.WriteString(value); err != nil {
		return fmt.Errorf("setting %s: %w", p, err)
	}
	return nil
}

// isNoSuchProcess reports an ESRCH/ENOENT from netlink deletes.
func isGone(err error) bool {
	return errors.Is(err, syscall.ESRCH) || errors.Is(err, syscall.ENOENT) || errors.Is(err, os.ErrNotExist)
}
