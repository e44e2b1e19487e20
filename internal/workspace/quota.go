package workspace

import (
	"context"
	"errors"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/session"
	"github.com/agentiso/agentiso/internal/state"
)

// quotas are the per-session quotas from the limits.
func (m *Manager) quotas() session.Quotas {
	return session.Quotas{
		Workspaces: m.limits.MaxWorkspacesPerSession,
		MemoryMB:   m.limits.MaxMemoryMBPerSession,
		DiskGB:     m.limits.MaxDiskGBPerSession,
	}
}

// admit checks, inside tx, that owner may have n more workspaces of size
// res: within its session quotas and within the host's VM maximum. Call it
// in the transaction that inserts them, so the check and the insert are one
// step (finding H-11, and the nested-budget race of H-10).
func (m *Manager) admit(ctx context.Context, tx *state.Tx, owner string, res Resources, n int) error {
	used, err := tx.UsageOf(ctx, owner)
	if err != nil {
		return err
	}
	add := state.Usage{Workspaces: n, MemoryMB: n * res.MemoryMB, DiskGB: n * res.DiskGB}
	if err := m.quotas().Check(used, add); err != nil {
		return err
	}
	all, err := tx.CountWorkspaces(ctx, "")
	if err != nil {
		return err
	}
	// Warm-pool VMs hold slots too; the pool shrinks first.
	if held := m.makeRoom(all, n); all+n+held > m.limits.MaxTotalVMs {
		return errdefs.Quotaf("the host has %d workspaces and %d VMs starting; %d more would exceed its maximum of %d (vm.max_total_vms)", all, held, n, m.limits.MaxTotalVMs)
	}
	return nil
}

// check refuses limits that would refuse everything: a field left out when
// the manager was wired.
func (l Limits) check() error {
	if l.MaxWorkspacesPerSession < 1 || l.MaxMemoryMBPerSession < 1 || l.MaxDiskGBPerSession < 1 ||
		l.MaxTotalVMs < 1 || l.StaleSession <= 0 || l.MaxSnapshotsPerWorkspace < 1 {
		return errors.New("workspace manager: the session quotas, the VM maximum, the stale threshold and the snapshot cap must be positive")
	}
	return nil
}
