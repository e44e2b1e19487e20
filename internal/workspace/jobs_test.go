package workspace

import (
	"fmt"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// A guest image older than the daemon refuses the new messages as unknown:
// the caller learns to rebuild the image rather than that its input was
// invalid.
func TestOpErrorOfAnOlderGuest(t *testing.T) {
	old := fmt.Errorf("starting /bin/sh in the background: %w",
		(&protocol.Error{Class: "invalid", Message: fmt.Sprintf("decoding frame: %v %q", protocol.ErrUnknownType, "job_start")}).Classified())
	err := opError("command", old)
	if !errdefs.Is(err, errdefs.Unavailable) || !strings.Contains(errdefs.Public(err), "rebuild the guest image") {
		t.Errorf("opError = %v (%s)", err, errdefs.Public(err))
	}
	plain := errdefs.NotFoundf("job_id: no job 3 in this workspace")
	if err := opError("job_id", plain); !errdefs.Is(err, errdefs.NotFound) || errdefs.Public(err) != "job_id: no job 3 in this workspace" {
		t.Errorf("opError of an ordinary refusal = %v", errdefs.Public(err))
	}
}
