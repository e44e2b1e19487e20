package workspace

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/network"
	"github.com/agentiso/agentiso/internal/state"
)

// fakeHost is a NetworkHost that keeps the last ruleset applied.
type fakeHost struct{ applied *network.Ruleset }

func (*fakeHost) Subnet() netip.Prefix     { return netip.MustParsePrefix("10.50.0.0/24") }
func (*fakeHost) Gateway() netip.Addr      { return netip.MustParseAddr("10.50.0.1") }
func (*fakeHost) Bridge() string           { return "br-test" }
func (*fakeHost) HostInterfaces() []string { return []string{"lan0"} }
func (*fakeHost) AddTAP(string) error      { return nil }
func (*fakeHost) DeleteTAP(string) error   { return nil }
func (h *fakeHost) Apply(rs network.Ruleset) error {
	if err := rs.Validate(); err != nil {
		return err
	}
	h.applied = &rs
	return nil
}
func (*fakeHost) Forget(netip.Addr, net.HardwareAddr) error { return nil }
func (*fakeHost) ForgetFlows(netip.Addr) error              { return nil }

// The ruleset is what the state says: every workspace holding an address,
// a pair allowed only when both of one session allow inter-VM traffic or
// both are in one peer group (a team), internet access per workspace, the
// forwards, and nothing of an address being released.
func TestRulesetFromState(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	host := &fakeHost{}
	ns, err := newNetState(&NetworkOptions{Host: host, VMServicePorts: []int{3100}})
	if err != nil {
		t.Fatal(err)
	}
	m := &Manager{store: st, net: ns, log: slog.New(slog.DiscardHandler)}

	s1, err := st.CreateSession(ctx, state.Session{UID: 1000, Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := st.CreateSession(ctx, state.Session{UID: 1000, Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	ws := map[string]state.Workspace{}
	create := func(name, owner string, internet bool) state.Workspace {
		t.Helper()
		err := st.Tx(ctx, func(tx *state.Tx) error {
			w := state.Workspace{ID: uuid.NewString(), Name: name, Owner: owner, BaseImage: "default",
				VCPUs: 1, MemoryMB: 256, DiskGB: 1, AllowInternet: internet}
			if err := m.allocateAddress(ctx, tx, &w); err != nil {
				return err
			}
			w, err := tx.CreateWorkspace(ctx, w)
			ws[name] = w
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return ws[name]
	}
	policy := func(name string, interVM bool) {
		t.Helper()
		if err := st.Tx(ctx, func(tx *state.Tx) error {
			return tx.SetNetPolicy(ctx, ws[name].ID, state.NetPolicy{AllowInterVM: interVM})
		}); err != nil {
			t.Fatal(err)
		}
	}
	create("w1", s1.ID, false)
	create("w2", s1.ID, true)
	create("w3", s1.ID, false)
	create("w4", s2.ID, false)
	create("w5", s1.ID, false)
	policy("w1", true)
	policy("w2", true)
	policy("w4", true) // another session's: no pair with w1 or w2
	if err := m.SetPeerGroup(ctx, "team-x", []string{ws["w3"].ID, ws["w4"].ID}); err != nil {
		t.Fatal(err)
	}
	if err := st.Tx(ctx, func(tx *state.Tx) error {
		_, err := tx.AddPortForward(ctx, state.PortForward{WorkspaceID: ws["w1"].ID, GuestPort: 80, HostPort: 20001})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ReleaseLease(ctx, ws["w5"].ID); err != nil {
		t.Fatal(err)
	}
	if err := m.syncRules(ctx); err != nil {
		t.Fatal(err)
	}
	rs := host.applied
	ip := func(name string) netip.Addr { return netip.MustParseAddr(ws[name].IP) }

	var vms []string
	for _, vm := range rs.VMs {
		vms = append(vms, vm.IP.String())
		if vm.Internet != (vm.IP == ip("w2")) {
			t.Errorf("%v: internet = %v", vm.IP, vm.Internet)
		}
		if vm.MAC.String() != network.MACFor(vm.IP).String() || vm.TAP != network.TAPName(vm.IP) {
			t.Errorf("%v: MAC %v, TAP %s", vm.IP, vm.MAC, vm.TAP)
		}
	}
	want := []string{ws["w1"].IP, ws["w2"].IP, ws["w3"].IP, ws["w4"].IP}
	slices.Sort(vms)
	slices.Sort(want)
	if !slices.Equal(vms, want) {
		t.Errorf("VMs %v, want %v (w5's address is being released)", vms, want)
	}
	pair := func(a, b string) network.Peer {
		p := network.Peer{A: ip(a), B: ip(b)}
		if p.B.Less(p.A) {
			p.A, p.B = p.B, p.A
		}
		return p
	}
	var peers []network.Peer
	for _, p := range rs.Peers {
		if p.B.Less(p.A) {
			p.A, p.B = p.B, p.A
		}
		peers = append(peers, p)
	}
	wantPeers := []network.Peer{pair("w1", "w2"), pair("w3", "w4")}
	cmpPeer := func(a, b network.Peer) int {
		if c := a.A.Compare(b.A); c != 0 {
			return c
		}
		return a.B.Compare(b.B)
	}
	slices.SortFunc(peers, cmpPeer)
	slices.SortFunc(wantPeers, cmpPeer)
	if !slices.Equal(peers, wantPeers) {
		t.Errorf("peers %v, want %v", peers, wantPeers)
	}
	if len(rs.Forwards) != 1 || rs.Forwards[0] != (network.Forward{HostPort: 20001, IP: ip("w1"), GuestPort: 80}) {
		t.Errorf("forwards %+v", rs.Forwards)
	}
	if !slices.Equal(rs.VMServices, []uint16{3100}) || rs.Bridge != "br-test" || !slices.Equal(rs.HostInterfaces, []string{"lan0"}) {
		t.Errorf("host part: %+v", rs)
	}

	// The released address is not handed out again while it is releasing.
	w6 := create("w6", s1.ID, false)
	if w6.IP == ws["w5"].IP {
		t.Errorf("w6 got %s, an address still being released", w6.IP)
	}
}
