package workspace

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/network"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/state"
)

// NetworkHost is what the manager asks of the host's networking; package
// network's Host provides it.
type NetworkHost interface {
	Subnet() netip.Prefix
	Gateway() netip.Addr
	Bridge() string
	HostInterfaces() []string
	AddTAP(name string) error
	DeleteTAP(name string) error
	Apply(rs network.Ruleset) error
	Forget(ip netip.Addr, mac net.HardwareAddr) error
	ForgetFlows(ip netip.Addr) error
}

// NetworkOptions turns workspace networking on.
type NetworkOptions struct {
	Host NetworkHost
	// DNS are the name servers of workspaces that may reach the internet.
	DNS []netip.Addr
	// DefaultAllowInternet is what a create that does not say gets.
	DefaultAllowInternet bool
	// VMServicePorts are TCP ports on the gateway VMs may reach.
	VMServicePorts []int
	// ReservedPorts are host ports no forward may take (the daemon's own).
	ReservedPorts []int
	// ForwardPortMin and ForwardPortMax bound host ports chosen for a
	// forward that names none.
	ForwardPortMin, ForwardPortMax int
	// PortFree reports whether no program listens on a host TCP port; nil
	// means trying to listen on it.
	PortFree func(port int) bool
}

// netState is the manager's networking, nil when it is off.
type netState struct {
	NetworkOptions
	// applyMu serialises building a ruleset from the state and applying
	// it, so the last apply always reflects the last change.
	applyMu sync.Mutex
	// forwardMu serialises choosing a host port and recording it.
	forwardMu sync.Mutex
}

func newNetState(o *NetworkOptions) (*netState, error) {
	if o == nil {
		return nil, nil
	}
	if o.Host == nil {
		return nil, errors.New("workspace manager: network options need a host")
	}
	if o.PortFree == nil {
		o.PortFree = portFree
	}
	return &netState{NetworkOptions: *o}, nil
}

// portFree reports whether a TCP listener could take port on every
// address: nothing of the host's listens there.
func portFree(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf(":%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// errNoNetwork refuses a network request on a host without networking.
func errNoNetwork(field string) error {
	return errdefs.Unavailablef("%s: workspace networking is off on this host (network.enabled)", field)
}

// allowInternet resolves a create request's allow_internet.
func (m *Manager) allowInternet(req *bool) (bool, error) {
	if m.net == nil {
		if req != nil && *req {
			return false, errNoNetwork("allow_internet")
		}
		return false, nil
	}
	if req == nil {
		return m.net.DefaultAllowInternet, nil
	}
	return *req, nil
}

// allocateAddress gives w (whose ID is set) a free address and its MAC, in
// the transaction that creates it. An address is free only when no lease,
// held or still releasing, has it.
func (m *Manager) allocateAddress(ctx context.Context, tx *state.Tx, w *state.Workspace) error {
	if m.net == nil {
		return nil
	}
	leases, err := tx.Leases(ctx)
	if err != nil {
		return err
	}
	taken := map[netip.Addr]bool{}
	for _, l := range leases {
		taken[l.IP] = true
	}
	ip, err := network.NextFree(m.net.Host.Subnet(), func(a netip.Addr) bool { return taken[a] })
	if errors.Is(err, network.ErrSubnetFull) {
		return errdefs.Quotaf("no free address left in the workspace subnet (network.subnet)")
	}
	if err != nil {
		return err
	}
	mac := network.MACFor(ip)
	if err := tx.HoldLease(ctx, w.ID, ip, mac); err != nil {
		return err
	}
	w.IP, w.MAC = ip.String(), mac.String()
	return nil
}

// ensureAddress gives a workspace made before networking was on an
// address, so it boots with a network like any other.
func (m *Manager) ensureAddress(ctx context.Context, w state.Workspace) (state.Workspace, error) {
	if m.net == nil || w.IP != "" {
		return w, nil
	}
	var out state.Workspace
	err := m.store.Tx(ctx, func(tx *state.Tx) error {
		if err := m.allocateAddress(ctx, tx, &w); err != nil {
			return err
		}
		var err error
		out, err = tx.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
			r.IP, r.MAC = w.IP, w.MAC
			return nil
		})
		return err
	})
	if err != nil {
		return w, err
	}
	return out, m.syncRules(ctx)
}

// addrOf is w's address and MAC; ok is false when it has none.
func addrOf(w state.Workspace) (ip netip.Addr, mac net.HardwareAddr, ok bool) {
	ip, err := netip.ParseAddr(w.IP)
	if err != nil {
		return netip.Addr{}, nil, false
	}
	mac, err = net.ParseMAC(w.MAC)
	if err != nil {
		return netip.Addr{}, nil, false
	}
	return ip, mac, true
}

// netSpec is w's VM network interface, nil when it has none.
func (m *Manager) netSpec(w state.Workspace) *qemu.NetConfig {
	ip, mac, ok := addrOf(w)
	if m.net == nil || !ok {
		return nil
	}
	return &qemu.NetConfig{TAP: network.TAPName(ip), MAC: mac.String()}
}

// guestNet is the network configuration w's guest is given: its address,
// the gateway, and name servers only when it may reach the internet.
func (m *Manager) guestNet(w state.Workspace) *protocol.NetConfig {
	ip, mac, ok := addrOf(w)
	if m.net == nil || !ok {
		return nil
	}
	n := &protocol.NetConfig{
		MAC:     mac.String(),
		Address: netip.PrefixFrom(ip, m.net.Host.Subnet().Bits()),
		Gateway: m.net.Host.Gateway(),
		DNS:     []netip.Addr{},
	}
	if w.AllowInternet {
		n.DNS = slices.Clone(m.net.DNS)
	}
	return n
}

// templateTAP is the memory template VM's TAP: its name has the prefix the
// rules match but is no VM's (TAPName is hex), so whatever the template VM
// could send or be sent is dropped. templateMAC is a MAC no VM has (the
// one of 0.0.0.0). A VM restored from the template resumes with that MAC
// in its guest and takes its own, with its address, over Configure.
const templateTAP = network.TAPPrefix + "template"

var templateMAC = network.MACFor(netip.IPv4Unspecified())

// templateNIC makes the template VM's TAP and returns its interface, or
// nil when workspaces have no network.
func (m *Manager) templateNIC() (*qemu.NetConfig, error) {
	if m.net == nil {
		return nil, nil
	}
	if err := m.net.Host.AddTAP(templateTAP); err != nil {
		return nil, fmt.Errorf("preparing the template VM's network interface: %w", err)
	}
	return &qemu.NetConfig{TAP: templateTAP, MAC: templateMAC.String()}, nil
}

// dropTemplateNIC removes the template VM's TAP.
func (m *Manager) dropTemplateNIC() {
	if m.net == nil {
		return
	}
	if err := m.net.Host.DeleteTAP(templateTAP); err != nil {
		m.log.Warn("removing the template VM's TAP", "err", err)
	}
}

// addressPooled gives pool VM w (no record; its ID set) an address and MAC
// of its own. Rules list only addresses of workspaces, so nothing passes
// its TAP until a workspace claims it.
func (m *Manager) addressPooled(ctx context.Context, w *state.Workspace) error {
	if m.net == nil {
		return nil
	}
	return m.store.Tx(ctx, func(tx *state.Tx) error { return m.allocateAddress(ctx, tx, w) })
}

// pooledAddress gives the record of a workspace made on a claimed pool VM
// (same ID) the address the VM booted with.
func (m *Manager) pooledAddress(ctx context.Context, tx *state.Tx, w *state.Workspace) error {
	if m.net == nil {
		return nil
	}
	leases, err := tx.Leases(ctx)
	if err != nil {
		return err
	}
	for _, l := range leases {
		if l.WorkspaceID == w.ID && l.State == state.LeaseHeld {
			w.IP, w.MAC = l.IP.String(), l.MAC.String()
			return nil
		}
	}
	return fmt.Errorf("pool VM %s has no address", w.ID)
}

// dropPooledAddress frees the address of a pool VM that is discarded (its
// VM already ended): the lease of an ID no workspace has.
func (m *Manager) dropPooledAddress(ctx context.Context, id string) {
	if m.net == nil {
		return
	}
	if _, err := m.store.GetWorkspace(ctx, id); err == nil {
		return // a workspace's: forget frees it
	}
	if ip, forgotten := m.releaseNetwork(ctx, id); forgotten {
		m.freeLease(ctx, ip)
	}
}

// prepareTAP makes w's TAP before its VM starts.
func (m *Manager) prepareTAP(w state.Workspace) error {
	if n := m.netSpec(w); n != nil {
		if err := m.net.Host.AddTAP(n.TAP); err != nil {
			return fmt.Errorf("preparing the network of %s: %w", w.ID, err)
		}
	}
	return nil
}

// dropTAP removes w's TAP once its VM has exited.
func (m *Manager) dropTAP(w state.Workspace) {
	if n := m.netSpec(w); n != nil {
		if err := m.net.Host.DeleteTAP(n.TAP); err != nil {
			m.log.Warn("removing a TAP", "workspace", w.ID, "err", err)
		}
	}
}

// syncRules rebuilds the ruleset from the state and applies it in one
// transaction.
func (m *Manager) syncRules(ctx context.Context) error {
	if m.net == nil {
		return nil
	}
	m.net.applyMu.Lock()
	defer m.net.applyMu.Unlock()
	rs, err := m.ruleset(ctx)
	if err != nil {
		return fmt.Errorf("building network rules: %w", err)
	}
	if err := m.net.Host.Apply(rs); err != nil {
		return fmt.Errorf("applying network rules: %w", err)
	}
	return nil
}

// ruleset is the rules the state says: every workspace holding an address,
// its internet access and allowed ports, the pairs that may talk (two
// workspaces of one session that both allow inter-VM traffic, or two
// members of one peer group), and the port forwards.
func (m *Manager) ruleset(ctx context.Context) (network.Ruleset, error) {
	h := m.net.Host
	rs := network.Ruleset{Bridge: h.Bridge(), Subnet: h.Subnet(), HostInterfaces: h.HostInterfaces()}
	for _, p := range m.net.VMServicePorts {
		rs.VMServices = append(rs.VMServices, uint16(p))
	}
	// A read in the write transaction: one consistent view.
	err := m.store.Tx(ctx, func(tx *state.Tx) error {
		leases, err := tx.Leases(ctx)
		if err != nil {
			return err
		}
		ws, err := tx.ListWorkspaces(ctx, state.WorkspaceFilter{})
		if err != nil {
			return err
		}
		pols, err := tx.NetPolicies(ctx)
		if err != nil {
			return err
		}
		groups, err := tx.PeerGroups(ctx)
		if err != nil {
			return err
		}
		fwds, err := tx.PortForwards(ctx, "")
		if err != nil {
			return err
		}
		byID := map[string]state.Workspace{}
		for _, w := range ws {
			byID[w.ID] = w
		}
		ipOf := map[string]netip.Addr{}
		for _, l := range leases {
			w, ok := byID[l.WorkspaceID]
			if l.State != state.LeaseHeld || !ok {
				continue
			}
			ipOf[w.ID] = l.IP
			vm := network.VM{TAP: network.TAPName(l.IP), MAC: l.MAC, IP: l.IP, Internet: w.AllowInternet}
			for _, p := range pols[w.ID].AllowedPorts {
				vm.AllowedPorts = append(vm.AllowedPorts, uint16(p))
			}
			rs.VMs = append(rs.VMs, vm)
		}
		var inter []state.Workspace
		for _, w := range ws {
			if _, ok := ipOf[w.ID]; ok && pols[w.ID].AllowInterVM {
				inter = append(inter, w)
			}
		}
		for i, a := range inter {
			for _, b := range inter[i+1:] {
				if a.Owner == b.Owner {
					rs.Peers = append(rs.Peers, network.Peer{A: ipOf[a.ID], B: ipOf[b.ID]})
				}
			}
		}
		for _, members := range groups {
			for i, a := range members {
				for _, b := range members[i+1:] {
					ia, oka := ipOf[a]
					ib, okb := ipOf[b]
					if oka && okb {
						rs.Peers = append(rs.Peers, network.Peer{A: ia, B: ib})
					}
				}
			}
		}
		for _, f := range fwds {
			if ip, ok := ipOf[f.WorkspaceID]; ok {
				rs.Forwards = append(rs.Forwards, network.Forward{HostPort: uint16(f.HostPort), IP: ip, GuestPort: uint16(f.GuestPort)})
			}
		}
		return nil
	})
	return rs, err
}

// releaseNetwork takes workspace id off the network: its lease becomes
// releasing, the rules lose it, its TAP goes, and the kernel forgets its
// flows and neighbour entries. It returns the lease to free once the
// workspace record is gone, or false when something is left (the lease
// then stays releasing, and the next start retries).
func (m *Manager) releaseNetwork(ctx context.Context, id string) (netip.Addr, bool) {
	if m.net == nil {
		return netip.Addr{}, false
	}
	l, err := m.store.ReleaseLease(ctx, id)
	if errdefs.Is(err, errdefs.NotFound) {
		return netip.Addr{}, false
	}
	if err != nil {
		m.log.Error("releasing an address", "workspace", id, "err", err)
		return netip.Addr{}, false
	}
	if err := m.forgetLease(ctx, l); err != nil {
		m.log.Error("taking a workspace off the network; its address stays reserved", "workspace", id, "ip", l.IP, "err", err)
		return netip.Addr{}, false
	}
	return l.IP, true
}

// forgetLease removes what is left of a releasing lease's old owner: rules,
// TAP, flows and neighbour entries, in that order, so nothing new is learnt
// meanwhile.
func (m *Manager) forgetLease(ctx context.Context, l state.Lease) error {
	if err := m.syncRules(ctx); err != nil {
		return err
	}
	if err := m.net.Host.DeleteTAP(network.TAPName(l.IP)); err != nil {
		return err
	}
	return m.net.Host.Forget(l.IP, l.MAC)
}

// freeLease deletes a lease whose owner is forgotten.
func (m *Manager) freeLease(ctx context.Context, ip netip.Addr) {
	if err := m.store.DeleteLease(ctx, ip); err != nil && !errdefs.Is(err, errdefs.NotFound) {
		m.log.Error("freeing an address", "ip", ip, "err", err)
	}
}

// recoverNetwork applies the rules the state says, before any VM is
// re-adopted: after a reboot or a flush the tables are back exactly as they
// were. It also finishes releases an earlier daemon could not.
func (m *Manager) recoverNetwork(ctx context.Context) error {
	if m.net == nil {
		return nil
	}
	if err := m.syncRules(ctx); err != nil {
		return err
	}
	m.dropTemplateNIC() // a template build the previous daemon left
	return nil
}

// finishReleases frees the addresses whose old owners can now be
// forgotten; run after interrupted destroys are finished and orphan VMs
// reaped. An address held by an ID no workspace has was a pool VM's.
func (m *Manager) finishReleases(ctx context.Context) {
	if m.net == nil {
		return
	}
	leases, err := m.store.Leases(ctx)
	if err != nil {
		m.log.Error("listing leases", "err", err)
		return
	}
	for _, l := range leases {
		if _, err := m.store.GetWorkspace(ctx, l.WorkspaceID); err == nil {
			continue // a workspace's; an unfinished destroy frees it in forget
		}
		if l.State == state.LeaseHeld {
			released, err := m.store.ReleaseLease(ctx, l.WorkspaceID)
			if err != nil {
				m.log.Error("releasing the address of a pool VM", "ip", l.IP, "err", err)
				continue
			}
			l = released
		}
		if err := m.forgetLease(ctx, l); err != nil {
			m.log.Error("an address stays reserved", "ip", l.IP, "err", err)
			continue
		}
		m.freeLease(ctx, l.IP)
		m.log.Info("address freed (an interrupted release, or a pool VM of an earlier daemon)", "ip", l.IP)
	}
}

// PortForwardInfo is one port forward as tools show it.
type PortForwardInfo struct {
	GuestPort int       `json:"guest_port"`
	HostPort  int       `json:"host_port"`
	CreatedAt time.Time `json:"created_at"`
}

// PortForwardResult is what port_forward returns.
type PortForwardResult struct {
	WorkspaceID string `json:"workspace_id"`
	Action      string `json:"action"`
	GuestPort   int    `json:"guest_port"`
	HostPort    int    `json:"host_port"`
	// GuestIP is where the forward leads.
	GuestIP string `json:"guest_ip"`
	Message string `json:"message"`
}

// PortForward adds or removes a forward from a host port to guestPort of
// the workspace. hostPort 0 on add picks a free one from the configured
// range. Host ports below 1024 and the daemon's own are refused, as is a
// port already forwarded or in use on the host.
func (m *Manager) PortForward(ctx context.Context, c Caller, ref, action string, guestPort, hostPort int) (*PortForwardResult, error) {
	switch action {
	case "add", "remove":
	default:
		return nil, errdefs.Invalidf("action: must be add or remove")
	}
	if guestPort < 1 || guestPort > 65535 {
		return nil, errdefs.Invalidf("guest_port: must be 1-65535")
	}
	if action == "add" {
		if err := m.checkHostPort(hostPort); err != nil {
			return nil, err
		}
	}
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	if m.net == nil {
		return nil, errNoNetwork("port_forward")
	}
	unlock := m.lock(w.ID)
	defer unlock()
	res := &PortForwardResult{WorkspaceID: w.ID, Action: action, GuestPort: guestPort, GuestIP: w.IP}
	if action == "remove" {
		var f state.PortForward
		err := m.store.Tx(ctx, func(tx *state.Tx) (err error) {
			f, err = tx.DeletePortForward(ctx, w.ID, guestPort)
			return err
		})
		if err != nil {
			return nil, err
		}
		if err := m.syncRules(ctx); err != nil {
			return nil, err
		}
		res.HostPort = f.HostPort
		res.Message = fmt.Sprintf("host port %d no longer forwarded", f.HostPort)
		return res, nil
	}

	m.net.forwardMu.Lock()
	defer m.net.forwardMu.Unlock()
	if hostPort == 0 {
		if hostPort, err = m.freeHostPort(ctx); err != nil {
			return nil, err
		}
	} else if !m.net.PortFree(hostPort) {
		return nil, errdefs.Conflictf("host_port: %d is in use on the host", hostPort)
	}
	err = m.store.Tx(ctx, func(tx *state.Tx) error {
		_, err := tx.AddPortForward(ctx, state.PortForward{WorkspaceID: w.ID, GuestPort: guestPort, HostPort: hostPort})
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := m.syncRules(ctx); err != nil {
		// Undo the record so the state says what the kernel does.
		_ = m.store.Tx(context.WithoutCancel(ctx), func(tx *state.Tx) error {
			_, err := tx.DeletePortForward(ctx, w.ID, guestPort)
			return err
		})
		_ = m.syncRules(context.WithoutCancel(ctx))
		return nil, err
	}
	res.HostPort = hostPort
	res.Message = fmt.Sprintf("host port %d (loopback and configured host interfaces) forwards to port %d of the workspace", hostPort, guestPort)
	return res, nil
}

// checkHostPort refuses host ports no forward may use (finding L-1).
func (m *Manager) checkHostPort(p int) error {
	switch {
	case p == 0:
		return nil
	case p < 0 || p > 65535:
		return errdefs.Invalidf("host_port: must be 1024-65535")
	case p < network.MinHostPort:
		return errdefs.Invalidf("host_port: %d is a privileged port (below %d); those stay the host's", p, network.MinHostPort)
	}
	if m.net != nil && slices.Contains(m.net.ReservedPorts, p) {
		return errdefs.Invalidf("host_port: %d is reserved for the daemon itself (its dashboard, its MCP bridge, or network.reserved_ports)", p)
	}
	return nil
}

// freeHostPort picks the lowest port of the forward range that is neither
// forwarded, reserved, nor in use on the host.
func (m *Manager) freeHostPort(ctx context.Context) (int, error) {
	fwds, err := m.store.PortForwards(ctx, "")
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, f := range fwds {
		used[f.HostPort] = true
	}
	for p := m.net.ForwardPortMin; p <= m.net.ForwardPortMax; p++ {
		if !used[p] && m.checkHostPort(p) == nil && m.net.PortFree(p) {
			return p, nil
		}
	}
	return 0, errdefs.Quotaf("host_port: no free port left in network.forward_port_min..forward_port_max")
}

// PolicyRequest changes a workspace's network policy; nil fields stay.
type PolicyRequest struct {
	AllowInternet *bool
	AllowInterVM  *bool
	AllowedPorts  *[]int
}

// maxAllowedPorts bounds a policy's allowed ports.
const maxAllowedPorts = 64

// PolicyResult is what network_policy returns: the policy now in force.
type PolicyResult struct {
	WorkspaceID string `json:"workspace_id"`
	Network
}

// NetworkPolicy changes the workspace's network policy. The new rules take
// effect in one transaction, without restarting the VM; taking internet
// access away also ends the connections it had. A running guest gets its
// name servers to match (none without internet access).
func (m *Manager) NetworkPolicy(ctx context.Context, c Caller, ref string, req PolicyRequest) (*PolicyResult, error) {
	if req.AllowedPorts != nil {
		if len(*req.AllowedPorts) > maxAllowedPorts {
			return nil, errdefs.Invalidf("allowed_ports: at most %d ports", maxAllowedPorts)
		}
		for _, p := range *req.AllowedPorts {
			if p < 1 || p > 65535 {
				return nil, errdefs.Invalidf("allowed_ports: %d is not a port (1-65535)", p)
			}
		}
	}
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	if m.net == nil {
		return nil, errNoNetwork("network_policy")
	}
	unlock := m.lock(w.ID)
	defer unlock()

	var oldW state.Workspace
	var oldP, newP state.NetPolicy
	err = m.store.Tx(ctx, func(tx *state.Tx) error {
		var err error
		if oldW, err = tx.GetWorkspace(ctx, w.ID); err != nil {
			return err
		}
		if oldP, err = tx.NetPolicy(ctx, w.ID); err != nil {
			return err
		}
		newP = oldP
		if req.AllowInterVM != nil {
			newP.AllowInterVM = *req.AllowInterVM
		}
		if req.AllowedPorts != nil {
			newP.AllowedPorts = slices.Compact(slices.Sorted(slices.Values(*req.AllowedPorts)))
		}
		if err := tx.SetNetPolicy(ctx, w.ID, newP); err != nil {
			return err
		}
		w, err = tx.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
			if req.AllowInternet != nil {
				r.AllowInternet = *req.AllowInternet
			}
			return nil
		})
		return err
	})
	if err != nil {
		return nil, err
	}
	if err := m.syncRules(ctx); err != nil {
		m.restorePolicy(ctx, oldW, oldP)
		return nil, err
	}
	if ip, _, ok := addrOf(w); ok && oldW.AllowInternet && !w.AllowInternet {
		if err := m.net.Host.ForgetFlows(ip); err != nil {
			m.log.Warn("ending the connections of a workspace that lost internet access", "workspace", w.ID, "err", err)
		}
	}
	out := &PolicyResult{WorkspaceID: w.ID, Network: Network{AllowInternet: w.AllowInternet, AllowInterVM: newP.AllowInterVM, AllowedPorts: newP.AllowedPorts}}
	if out.AllowedPorts == nil {
		out.AllowedPorts = []int{}
	}
	if w.State == state.WorkspaceRunning {
		if _, g, err := m.liveVM(w); err == nil {
			if err := g.Configure(ctx, protocol.Configure{Network: m.guestNet(w)}); err != nil {
				return nil, errdefs.With(errdefs.Unavailable,
					"the new policy is in force, but the guest did not take its new name servers; retry", err)
			}
		}
	}
	return out, nil
}

// restorePolicy puts back a policy whose rules could not be applied.
func (m *Manager) restorePolicy(ctx context.Context, w state.Workspace, p state.NetPolicy) {
	ctx = context.WithoutCancel(ctx)
	err := m.store.Tx(ctx, func(tx *state.Tx) error {
		if err := tx.SetNetPolicy(ctx, w.ID, p); err != nil {
			return err
		}
		_, err := tx.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
			r.AllowInternet = w.AllowInternet
			return nil
		})
		return err
	})
	if err == nil {
		err = m.syncRules(ctx)
	}
	if err != nil {
		m.log.Error("restoring a network policy", "workspace", w.ID, "err", err)
	}
}

// SetPeerGroup makes the given workspaces (IDs) the members of group name:
// each may reach every other, and no other workspace. An empty list
// removes the group. Teams call it with one group per team. The rules
// change in one transaction.
func (m *Manager) SetPeerGroup(ctx context.Context, name string, members []string) error {
	if err := m.store.Tx(ctx, func(tx *state.Tx) error { return tx.SetPeerGroup(ctx, name, members) }); err != nil {
		return err
	}
	return m.syncRules(ctx)
}

// networkInfo fills the network part of a workspace's info.
func (m *Manager) networkInfo(ctx context.Context, w state.Workspace, i *Info) {
	i.PortForwards = []PortForwardInfo{}
	if m.net == nil {
		return
	}
	if p, err := m.store.NetPolicy(ctx, w.ID); err == nil {
		i.Network.AllowInterVM = p.AllowInterVM
		i.Network.AllowedPorts = p.AllowedPorts
	}
	if fs, err := m.store.PortForwards(ctx, w.ID); err == nil {
		for _, f := range fs {
			i.PortForwards = append(i.PortForwards, PortForwardInfo{GuestPort: f.GuestPort, HostPort: f.HostPort, CreatedAt: f.CreatedAt})
		}
	}
}
