package session

import (
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
)

// Quotas bound what one session's workspaces hold together, in every
// state.
type Quotas struct {
	Workspaces int
	MemoryMB   int
	DiskGB     int
}

// Check reports whether a session that holds used may take add more. A
// refusal is a Quota error that names the configuration key; it never names
// a workspace.
func (q Quotas) Check(used, add state.Usage) error {
	after := used.Add(add)
	switch {
	case after.Workspaces > q.Workspaces:
		return errdefs.Quotaf("this session has %d workspaces; %d more would exceed its quota of %d (resources.max_workspaces_per_session)",
			used.Workspaces, add.Workspaces, q.Workspaces)
	case after.MemoryMB > q.MemoryMB:
		return errdefs.Quotaf("this session's workspaces have %d MiB of memory; %d MiB more would exceed its quota of %d MiB (resources.max_memory_mb_per_session)",
			used.MemoryMB, add.MemoryMB, q.MemoryMB)
	case after.DiskGB > q.DiskGB:
		return errdefs.Quotaf("this session's workspaces have %d GiB of disk; %d GiB more would exceed its quota of %d GiB (resources.max_disk_gb_per_session)",
			used.DiskGB, add.DiskGB, q.DiskGB)
	}
	return nil
}
