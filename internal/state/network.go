package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
)

// LeaseState is where an address lease is in its life.
type LeaseState string

// The lease states.
const (
	// LeaseHeld: the address belongs to a workspace.
	LeaseHeld LeaseState = "held"
	// LeaseReleasing: its workspace is gone, but the address is not free
	// until the kernel has forgotten the old owner (see DeleteLease).
	LeaseReleasing LeaseState = "releasing"
)

// Lease is one IPv4 address and the MAC that goes with it.
type Lease struct {
	IP          netip.Addr
	MAC         net.HardwareAddr
	WorkspaceID string
	State       LeaseState
	UpdatedAt   time.Time
}

// NetPolicy is the part of a workspace's network policy kept beside it;
// allow_internet is Workspace.AllowInternet.
type NetPolicy struct {
	AllowInterVM bool
	// AllowedPorts are TCP ports, ascending, without duplicates.
	AllowedPorts []int
}

// PortForward sends a host port to a guest port of a workspace.
type PortForward struct {
	WorkspaceID string
	GuestPort   int
	HostPort    int
	CreatedAt   time.Time
}

// Leases returns every lease, held or releasing, by address.
func (t *Tx) Leases(ctx context.Context) ([]Lease, error) { return leases(ctx, t.tx) }

// Leases returns every lease; see Tx.Leases.
func (s *Store) Leases(ctx context.Context) ([]Lease, error) { return leases(ctx, s.r) }

func leases(ctx context.Context, q querier) ([]Lease, error) {
	rows, err := q.QueryContext(ctx, `SELECT ip, mac, workspace_id, state, updated_at FROM net_leases`)
	if err != nil {
		return nil, fmt.Errorf("listing leases: %w", err)
	}
	out, err := scanRows(rows, "lease", func(r scanner) (Lease, error) {
		var ip, mac, state string
		var l Lease
		var updated int64
		err := r.Scan(&ip, &mac, &l.WorkspaceID, &state, &updated)
		if err != nil {
			return l, err
		}
		if l.IP, err = netip.ParseAddr(ip); err != nil {
			return l, fmt.Errorf("bad address %q", ip)
		}
		if l.MAC, err = net.ParseMAC(mac); err != nil {
			return l, fmt.Errorf("bad MAC %q", mac)
		}
		l.State, l.UpdatedAt = LeaseState(state), fromNanos(updated)
		return l, nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Lease) int { return a.IP.Compare(b.IP) })
	return out, nil
}

// HoldLease records that ip and mac belong to workspace id. An address or
// MAC with any lease, held or releasing, is a Conflict: it is not free.
func (t *Tx) HoldLease(ctx context.Context, id string, ip netip.Addr, mac net.HardwareAddr) error {
	if !ip.Is4() || len(mac) != 6 || id == "" {
		return errdefs.Invalidf("lease: needs an IPv4 address, a MAC and a workspace")
	}
	_, err := t.tx.ExecContext(ctx,
		`INSERT INTO net_leases (ip, mac, workspace_id, state, updated_at) VALUES (?, ?, ?, 'held', ?)`,
		ip.String(), mac.String(), id, nanos(now()))
	switch {
	case isUnique(err, "net_leases.ip"), isUnique(err, "net_leases.mac"):
		return errdefs.Conflictf("ip: address is not free")
	case isUnique(err, "net_leases.workspace_id"):
		return errdefs.Conflictf("ip: the workspace already holds an address")
	case err != nil:
		return fmt.Errorf("recording lease: %w", err)
	}
	return nil
}

// ReleaseLease moves workspace id's held lease to releasing and returns
// it. A workspace without a held lease is NotFound.
func (t *Tx) ReleaseLease(ctx context.Context, id string) (Lease, error) {
	all, err := t.Leases(ctx)
	if err != nil {
		return Lease{}, err
	}
	for _, l := range all {
		if l.WorkspaceID == id && l.State == LeaseHeld {
			if _, err := t.tx.ExecContext(ctx,
				`UPDATE net_leases SET state = 'releasing', updated_at = ? WHERE ip = ?`,
				nanos(now()), l.IP.String()); err != nil {
				return Lease{}, fmt.Errorf("releasing lease: %w", err)
			}
			l.State = LeaseReleasing
			return l, nil
		}
	}
	return Lease{}, errdefs.NotFoundf("workspace_id: no address held")
}

// ReleaseLease runs Tx.ReleaseLease in its own transaction.
func (s *Store) ReleaseLease(ctx context.Context, id string) (Lease, error) {
	return inTx(ctx, s, func(tx *Tx) (Lease, error) { return tx.ReleaseLease(ctx, id) })
}

// DeleteLease frees ip. Only a releasing lease may be deleted: the caller
// has made sure the kernel forgot the old owner.
func (s *Store) DeleteLease(ctx context.Context, ip netip.Addr) error {
	return s.Tx(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `DELETE FROM net_leases WHERE ip = ? AND state = 'releasing'`, ip.String())
		if err != nil {
			return fmt.Errorf("deleting lease: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errdefs.NotFoundf("ip: no releasing lease")
		}
		return nil
	})
}

// NetPolicy returns workspace id's policy; a workspace that never had one
// set has the zero policy.
func (t *Tx) NetPolicy(ctx context.Context, id string) (NetPolicy, error) {
	return netPolicy(ctx, t.tx, id)
}

// NetPolicy returns workspace id's policy; see Tx.NetPolicy.
func (s *Store) NetPolicy(ctx context.Context, id string) (NetPolicy, error) {
	return netPolicy(ctx, s.r, id)
}

func netPolicy(ctx context.Context, q querier, id string) (NetPolicy, error) {
	var p NetPolicy
	err := q.QueryRowContext(ctx, `SELECT allow_inter_vm FROM net_policies WHERE workspace_id = ?`, id).Scan(&p.AllowInterVM)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return NetPolicy{}, fmt.Errorf("reading network policy: %w", err)
	}
	rows, err := q.QueryContext(ctx, `SELECT port FROM net_allowed_ports WHERE workspace_id = ? ORDER BY port`, id)
	if err != nil {
		return NetPolicy{}, fmt.Errorf("reading allowed ports: %w", err)
	}
	ports, err := scanRows(rows, "allowed ports", func(r scanner) (port int, err error) {
		err = r.Scan(&port)
		return port, err
	})
	if err != nil {
		return NetPolicy{}, err
	}
	if ports == nil {
		ports = []int{} // [] rather than null in results
	}
	p.AllowedPorts = ports
	return p, nil
}

// SetNetPolicy replaces workspace id's policy.
func (t *Tx) SetNetPolicy(ctx context.Context, id string, p NetPolicy) error {
	for _, port := range p.AllowedPorts {
		if port < 1 || port > 65535 {
			return errdefs.Invalidf("allowed_ports: %d is not a port (1-65535)", port)
		}
	}
	if _, err := t.tx.ExecContext(ctx,
		`INSERT INTO net_policies (workspace_id, allow_inter_vm) VALUES (?, ?)
		 ON CONFLICT (workspace_id) DO UPDATE SET allow_inter_vm = excluded.allow_inter_vm`,
		id, p.AllowInterVM); err != nil {
		if isForeignKey(err) {
			return errdefs.NotFoundf("workspace_id: no such workspace")
		}
		return fmt.Errorf("writing network policy: %w", err)
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM net_allowed_ports WHERE workspace_id = ?`, id); err != nil {
		return fmt.Errorf("writing allowed ports: %w", err)
	}
	for _, port := range p.AllowedPorts {
		if _, err := t.tx.ExecContext(ctx,
			`INSERT OR IGNORE INTO net_allowed_ports (workspace_id, port) VALUES (?, ?)`, id, port); err != nil {
			return fmt.Errorf("writing allowed ports: %w", err)
		}
	}
	return nil
}

// AddPortForward records a port forward. A host port forwarded already (by
// any workspace) or a guest port of this workspace forwarded already is a
// Conflict; the messages name the field, not the other workspace.
func (t *Tx) AddPortForward(ctx context.Context, f PortForward) (PortForward, error) {
	if f.GuestPort < 1 || f.GuestPort > 65535 {
		return PortForward{}, errdefs.Invalidf("guest_port: must be 1-65535")
	}
	if f.HostPort < 1024 || f.HostPort > 65535 {
		return PortForward{}, errdefs.Invalidf("host_port: must be 1024-65535")
	}
	f.CreatedAt = now()
	_, err := t.tx.ExecContext(ctx,
		`INSERT INTO port_forwards (workspace_id, guest_port, host_port, created_at) VALUES (?, ?, ?, ?)`,
		f.WorkspaceID, f.GuestPort, f.HostPort, nanos(f.CreatedAt))
	switch {
	case isUnique(err, "port_forwards.host_port"):
		return PortForward{}, errdefs.Conflictf("host_port: %d is already forwarded", f.HostPort)
	case isUnique(err, "port_forwards.workspace_id"):
		return PortForward{}, errdefs.Conflictf("guest_port: %d of this workspace is already forwarded", f.GuestPort)
	case isForeignKey(err):
		return PortForward{}, errdefs.NotFoundf("workspace_id: no such workspace")
	case err != nil:
		return PortForward{}, fmt.Errorf("recording port forward: %w", err)
	}
	return f, nil
}

// DeletePortForward removes the forward of guestPort of workspace id and
// returns it.
func (t *Tx) DeletePortForward(ctx context.Context, id string, guestPort int) (PortForward, error) {
	f := PortForward{WorkspaceID: id, GuestPort: guestPort}
	var created int64
	err := t.tx.QueryRowContext(ctx,
		`DELETE FROM port_forwards WHERE workspace_id = ? AND guest_port = ? RETURNING host_port, created_at`,
		id, guestPort).Scan(&f.HostPort, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return PortForward{}, errdefs.NotFoundf("guest_port: %d of this workspace is not forwarded", guestPort)
	}
	if err != nil {
		return PortForward{}, fmt.Errorf("deleting port forward: %w", err)
	}
	f.CreatedAt = fromNanos(created)
	return f, nil
}

// PortForwards lists the forwards of workspace id, or of every workspace
// when id is empty, by host port.
func (t *Tx) PortForwards(ctx context.Context, id string) ([]PortForward, error) {
	return portForwards(ctx, t.tx, id)
}

// PortForwards lists port forwards; see Tx.PortForwards.
func (s *Store) PortForwards(ctx context.Context, id string) ([]PortForward, error) {
	return portForwards(ctx, s.r, id)
}

func portForwards(ctx context.Context, q querier, id string) ([]PortForward, error) {
	query, args := `SELECT workspace_id, guest_port, host_port, created_at FROM port_forwards`, []any(nil)
	if id != "" {
		query, args = query+` WHERE workspace_id = ?`, []any{id}
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY host_port`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing port forwards: %w", err)
	}
	out, err := scanRows(rows, "port forward", func(r scanner) (PortForward, error) {
		var f PortForward
		var created int64
		err := r.Scan(&f.WorkspaceID, &f.GuestPort, &f.HostPort, &created)
		f.CreatedAt = fromNanos(created)
		return f, err
	})
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []PortForward{} // [] rather than null in results
	}
	return out, nil
}

// SetPeerGroup makes members (workspace IDs) the whole of group name:
// every pair of them may reach each other. An empty list deletes the group.
// Teams use one group per team.
func (t *Tx) SetPeerGroup(ctx context.Context, name string, members []string) error {
	if err := names.Validate("group", name); err != nil {
		return errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM net_peer_groups WHERE group_name = ?`, name); err != nil {
		return fmt.Errorf("writing peer group: %w", err)
	}
	for _, id := range members {
		if _, err := t.tx.ExecContext(ctx,
			`INSERT OR IGNORE INTO net_peer_groups (group_name, workspace_id) VALUES (?, ?)`, name, id); err != nil {
			if isForeignKey(err) {
				return errdefs.NotFoundf("members: no such workspace")
			}
			return fmt.Errorf("writing peer group: %w", err)
		}
	}
	return nil
}

// PeerGroups returns every group's members, sorted.
func (t *Tx) PeerGroups(ctx context.Context) (map[string][]string, error) {
	rows, err := t.tx.QueryContext(ctx, `SELECT group_name, workspace_id FROM net_peer_groups ORDER BY group_name, workspace_id`)
	if err != nil {
		return nil, fmt.Errorf("listing peer groups: %w", err)
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var g, id string
		if err := rows.Scan(&g, &id); err != nil {
			return nil, fmt.Errorf("reading peer group: %w", err)
		}
		out[g] = append(out[g], id)
	}
	return out, rows.Err()
}

// NetPolicies returns the policy of every workspace that has one set.
func (t *Tx) NetPolicies(ctx context.Context) (map[string]NetPolicy, error) {
	out := map[string]NetPolicy{}
	rows, err := t.tx.QueryContext(ctx, `SELECT workspace_id, allow_inter_vm FROM net_policies`)
	if err != nil {
		return nil, fmt.Errorf("listing network policies: %w", err)
	}
	for rows.Next() {
		var id string
		var p NetPolicy
		if err := rows.Scan(&id, &p.AllowInterVM); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading network policy: %w", err)
		}
		out[id] = p
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	prows, err := t.tx.QueryContext(ctx, `SELECT workspace_id, port FROM net_allowed_ports ORDER BY workspace_id, port`)
	if err != nil {
		return nil, fmt.Errorf("listing allowed ports: %w", err)
	}
	defer prows.Close()
	for prows.Next() {
		var id string
		var port int
		if err := prows.Scan(&id, &port); err != nil {
			return nil, fmt.Errorf("reading allowed ports: %w", err)
		}
		p := out[id]
		p.AllowedPorts = append(p.AllowedPorts, port)
		out[id] = p
	}
	return out, prows.Err()
}
