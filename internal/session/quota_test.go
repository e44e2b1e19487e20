package session

import (
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
)

func TestQuotasCheck(t *testing.T) {
	q := Quotas{Workspaces: 3, MemoryMB: 1024, DiskGB: 30}
	one := state.Usage{Workspaces: 1, MemoryMB: 512, DiskGB: 10}
	for _, tc := range []struct {
		name      string
		used, add state.Usage
		want      string
	}{
		{"empty", state.Usage{}, one, ""},
		{"exactly full", one, one, ""},
		{"count", state.Usage{Workspaces: 3, MemoryMB: 300, DiskGB: 3}, state.Usage{Workspaces: 1, MemoryMB: 1, DiskGB: 1},
			"this session has 3 workspaces; 1 more would exceed its quota of 3 (resources.max_workspaces_per_session)"},
		{"memory", one, state.Usage{Workspaces: 1, MemoryMB: 513, DiskGB: 1},
			"this session's workspaces have 512 MiB of memory; 513 MiB more would exceed its quota of 1024 MiB (resources.max_memory_mb_per_session)"},
		{"disk", one, state.Usage{Workspaces: 1, MemoryMB: 1, DiskGB: 21},
			"this session's workspaces have 10 GiB of disk; 21 GiB more would exceed its quota of 30 GiB (resources.max_disk_gb_per_session)"},
		{"several at once", state.Usage{}, state.Usage{Workspaces: 4, MemoryMB: 4, DiskGB: 4}, "4 more would exceed its quota of 3"},
	} {
		err := q.Check(tc.used, tc.add)
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if !errdefs.Is(err, errdefs.Quota) || !strings.Contains(errdefs.Public(err), tc.want) {
			t.Errorf("%s: %v, want a Quota error saying %q", tc.name, err, tc.want)
		}
	}
}
