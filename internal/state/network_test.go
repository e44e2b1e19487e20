package state

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

var (
	ipA  = netip.MustParseAddr("10.99.0.2")
	macA = net.HardwareAddr{2, 0xa9, 10, 99, 0, 2}
)

// An address stays taken from the moment it is held until its releasing
// lease is deleted: a workspace that is gone does not free it by itself.
func TestLeaseLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s)
	w1 := newWorkspace(t, s, owner.ID, "a")
	w2 := newWorkspace(t, s, owner.ID, "b")
	hold := func(id string) error {
		return s.Tx(ctx, func(tx *Tx) error { return tx.HoldLease(ctx, id, ipA, macA) })
	}
	if err := hold(w1.ID); err != nil {
		t.Fatal(err)
	}
	wantClass(t, hold(w2.ID), errdefs.Conflict)
	err := s.Tx(ctx, func(tx *Tx) error {
		return tx.HoldLease(ctx, w1.ID, netip.MustParseAddr("10.99.0.3"), net.HardwareAddr{2, 0xa9, 10, 99, 0, 3})
	})
	wantClass(t, err, errdefs.Conflict) // one held address per workspace

	// Deleting a held lease is refused: it must be released first.
	wantClass(t, s.DeleteLease(ctx, ipA), errdefs.NotFound)
	l, err := s.ReleaseLease(ctx, w1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if l.IP != ipA || l.MAC.String() != macA.String() || l.State != LeaseReleasing {
		t.Errorf("released lease = %+v", l)
	}
	if err := s.DeleteWorkspace(ctx, w1.ID); err != nil {
		t.Fatal(err)
	}
	// Still releasing: not free.
	wantClass(t, hold(w2.ID), errdefs.Conflict)
	all, err := s.Leases(ctx)
	if err != nil || len(all) != 1 || all[0].State != LeaseReleasing {
		t.Fatalf("leases = %+v, %v", all, err)
	}
	if err := s.DeleteLease(ctx, ipA); err != nil {
		t.Fatal(err)
	}
	if err := hold(w2.ID); err != nil {
		t.Fatalf("a freed address is not reusable: %v", err)
	}
	_, err = s.ReleaseLease(ctx, w1.ID)
	wantClass(t, err, errdefs.NotFound)
}

func TestNetPolicyAndPortForwards(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s)
	w := newWorkspace(t, s, owner.ID, "a")
	other := newWorkspace(t, s, owner.ID, "b")

	p, err := s.NetPolicy(ctx, w.ID)
	if err != nil || p.AllowInterVM || len(p.AllowedPorts) != 0 {
		t.Fatalf("default policy = %+v, %v", p, err)
	}
	set := func(p NetPolicy) error {
		return s.Tx(ctx, func(tx *Tx) error { return tx.SetNetPolicy(ctx, w.ID, p) })
	}
	if err := set(NetPolicy{AllowInterVM: true, AllowedPorts: []int{8080, 22, 8080}}); err != nil {
		t.Fatal(err)
	}
	p, _ = s.NetPolicy(ctx, w.ID)
	if diff := cmp.Diff(NetPolicy{AllowInterVM: true, AllowedPorts: []int{22, 8080}}, p); diff != "" {
		t.Errorf("policy (-want +got):\n%s", diff)
	}
	wantClass(t, set(NetPolicy{AllowedPorts: []int{70000}}), errdefs.Invalid)
	p, _ = s.NetPolicy(ctx, w.ID)
	if len(p.AllowedPorts) != 2 {
		t.Errorf("a refused policy changed the stored one: %+v", p)
	}

	add := func(id string, g, h int) error {
		return s.Tx(ctx, func(tx *Tx) error {
			_, err := tx.AddPortForward(ctx, PortForward{WorkspaceID: id, GuestPort: g, HostPort: h})
			return err
		})
	}
	if err := add(w.ID, 8080, 28080); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		id        string
		g, h      int
		class     errdefs.Class
		wantField string
	}{
		{other.ID, 80, 28080, errdefs.Conflict, "host_port"},
		{w.ID, 8080, 28081, errdefs.Conflict, "guest_port"},
		{w.ID, 81, 80, errdefs.Invalid, "host_port"},
		{w.ID, 0, 28082, errdefs.Invalid, "guest_port"},
	} {
		err := add(c.id, c.g, c.h)
		wantClass(t, err, c.class)
		if !strings.HasPrefix(errdefs.Public(err), c.wantField+":") {
			t.Errorf("error %q does not name %s", errdefs.Public(err), c.wantField)
		}
	}
	fs, _ := s.PortForwards(ctx, "")
	if len(fs) != 1 || fs[0].HostPort != 28080 || fs[0].GuestPort != 8080 {
		t.Errorf("forwards = %+v", fs)
	}
	err = s.Tx(ctx, func(tx *Tx) error {
		_, err := tx.DeletePortForward(ctx, w.ID, 9999)
		return err
	})
	wantClass(t, err, errdefs.NotFound)

	// The forwards, policy and group membership go with the workspace.
	if err := s.Tx(ctx, func(tx *Tx) error { return tx.SetPeerGroup(ctx, "team1", []string{w.ID, other.ID}) }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteWorkspace(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if fs, _ := s.PortForwards(ctx, ""); len(fs) != 0 {
		t.Errorf("forwards outlived their workspace: %+v", fs)
	}
	var groups map[string][]string
	var pols map[string]NetPolicy
	_ = s.Tx(ctx, func(tx *Tx) error {
		groups, _ = tx.PeerGroups(ctx)
		pols, _ = tx.NetPolicies(ctx)
		return nil
	})
	if diff := cmp.Diff(map[string][]string{"team1": {other.ID}}, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if len(pols) != 0 {
		t.Errorf("policies outlived their workspace: %+v", pols)
	}
	err = s.Tx(context.Background(), func(tx *Tx) error { return tx.SetPeerGroup(ctx, "team1", []string{"nope"}) })
	wantClass(t, err, errdefs.NotFound)
}
