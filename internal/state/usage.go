package state

import (
	"context"
	"fmt"
)

// Usage is what one session's workspaces hold, in every state: a stopped
// workspace may start again at any time, so it keeps its share.
type Usage struct {
	Workspaces int
	MemoryMB   int
	DiskGB     int
}

// Add returns u plus v.
func (u Usage) Add(v Usage) Usage {
	return Usage{Workspaces: u.Workspaces + v.Workspaces, MemoryMB: u.MemoryMB + v.MemoryMB, DiskGB: u.DiskGB + v.DiskGB}
}

// UsageOf sums the workspaces owner holds. Run it in the transaction that
// creates or adopts, so the quota check and the change are atomic.
func (t *Tx) UsageOf(ctx context.Context, owner string) (Usage, error) {
	return usageOf(ctx, t.tx, owner)
}

// UsageOf sums the workspaces owner holds; for a quota check use
// Tx.UsageOf.
func (s *Store) UsageOf(ctx context.Context, owner string) (Usage, error) {
	return usageOf(ctx, s.r, owner)
}

func usageOf(ctx context.Context, q querier, owner string) (Usage, error) {
	var u Usage
	err := q.QueryRowContext(ctx,
		`SELECT COUNT(*), COALESCE(SUM(memory_mb), 0), COALESCE(SUM(disk_gb), 0) FROM workspaces WHERE owner = ?`,
		owner).Scan(&u.Workspaces, &u.MemoryMB, &u.DiskGB)
	if err != nil {
		return Usage{}, fmt.Errorf("summing workspaces of a session: %w", err)
	}
	return u, nil
}
