package daemon

import (
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Only root's connections act on the API socket, as administrator; the
// uid comes from the kernel, so nothing a client sends changes it.
func TestCLICallerFromPeerUID(t *testing.T) {
	root := cliCallerFor(0)
	if root.err != nil || !root.caller.Admin || root.caller.Actor != "cli" {
		t.Errorf("root: %+v", root)
	}
	for _, uid := range []int{-1, 1, 1000, 65534} {
		c := cliCallerFor(uid)
		if !errdefs.Is(c.err, errdefs.PermissionDenied) || c.caller.Admin {
			t.Errorf("uid %d: %+v, want a refusal", uid, c)
		}
	}
	if msg := cliCallerFor(1000).err.Error(); !strings.Contains(msg, "agentiso mcp") {
		t.Errorf("the refusal does not say what to use instead: %q", msg)
	}
}
