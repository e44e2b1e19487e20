package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGuestImportsNoHostMachinery is a repository invariant: the binary that
// runs inside every VM links none of the host's machinery (state database,
// MCP, nftables, netlink, QEMU control). Less code in the guest is less to
// attack, and the guest has no business with any of it.
func TestGuestImportsNoHostMachinery(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	forbidden := []string{
		"modernc.org/sqlite",
		"github.com/modelcontextprotocol/",
		"github.com/google/nftables",
		"github.com/vishvananda/",
		"github.com/mdlayher/netlink",
		"github.com/agentiso/agentiso/internal/state",
		"github.com/agentiso/agentiso/internal/network",
		"github.com/agentiso/agentiso/internal/qemu",
		"github.com/agentiso/agentiso/internal/vm",
		"github.com/agentiso/agentiso/internal/workspace",
		"github.com/agentiso/agentiso/internal/mcpserver",
		"net/http",
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps returned %d packages; the check would prove nothing", len(deps))
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("agentiso-guest depends on %s", d)
			}
		}
	}
}
