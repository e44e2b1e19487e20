package guest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

func TestFindPort(t *testing.T) {
	sys := t.TempDir()
	for dev, name := range map[string]string{"vport0p0": "", "vport1p1": "org.qemu.guest_agent.0", "vport1p2": protocol.PortName} {
		os.MkdirAll(filepath.Join(sys, dev), 0o755)
		os.WriteFile(filepath.Join(sys, dev, "name"), []byte(name+"\n"), 0o644)
	}
	got, err := findPort(sys, "/dev", protocol.PortName)
	if err != nil || got != "/dev/vport1p2" {
		t.Errorf("findPort = %q, %v; want /dev/vport1p2", got, err)
	}
	if _, err := findPort(sys, "/dev", "org.other"); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("missing port: %v, want NotFound", err)
	}
	if _, err := findPort(filepath.Join(sys, "nope"), "/dev", protocol.PortName); err == nil {
		t.Error("no sysfs directory: no error")
	}
}
