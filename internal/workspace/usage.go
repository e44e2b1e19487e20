package workspace

import (
	"context"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/storage"
)

// usageTTL is how long a disk's measured usage is reused. Measuring runs
// qemu-img once per workspace, and the dashboard's live list asks every
// second: a few seconds' staleness in "disk used" costs nothing.
const usageTTL = 5 * time.Second

// usageCache remembers recent disk usage measurements by workspace ID.
type usageCache struct {
	mu sync.Mutex
	m  map[string]cachedUsage
}

type cachedUsage struct {
	u  storage.Usage
	at time.Time
}

// diskUsage returns workspace id's disk usage, measured at most usageTTL
// ago.
func (m *Manager) diskUsage(ctx context.Context, id string) (storage.Usage, error) {
	c := &m.usage
	c.mu.Lock()
	if e, ok := c.m[id]; ok && time.Since(e.at) < usageTTL {
		c.mu.Unlock()
		return e.u, nil
	}
	c.mu.Unlock()
	u, err := m.disks.Usage(ctx, id)
	if err != nil {
		return u, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]cachedUsage{}
	}
	// Forget workspaces that are gone, now and then.
	if len(c.m) > 64 {
		for k, e := range c.m {
			if time.Since(e.at) >= usageTTL {
				delete(c.m, k)
			}
		}
	}
	c.m[id] = cachedUsage{u: u, at: time.Now()}
	c.mu.Unlock()
	return u, nil
}
