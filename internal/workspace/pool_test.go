package workspace

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/state"
)

// TestH11_PoolSlotsCountAgainstTheVMCap checks the warm pool's run-time
// bookkeeping against vm.max_total_vms on a real state store: the pool's
// target is bounded by pool.max_memory_mb, the pool reserves a slot only
// when the cap leaves one, and a create that needs the pool's slot takes
// it by cancelling the pool's boot under way.
func TestH11_PoolSlotsCountAgainstTheVMCap(t *testing.T) {
	ctx := context.Background()
	st, err := state.Open(ctx, filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m := &Manager{
		store: st, log: slog.New(slog.DiscardHandler),
		limits:   Limits{MaxTotalVMs: 2, DefaultMemoryMB: 256},
		pool:     PoolOptions{Enabled: true, Size: 3, MaxMemoryMB: 512},
		poolKick: make(chan struct{}, 1),
	}
	if got := m.poolTarget(); got != 2 {
		t.Fatalf("poolTarget() = %d, want 2 (512 MiB / 256 MiB bounds size 3)", got)
	}
	if !m.reservePoolSlot(ctx, true) || !m.reservePoolSlot(ctx, true) {
		t.Fatal("two pool slots under a cap of 2 were refused")
	}
	if m.reservePoolSlot(ctx, true) || m.reservePoolSlot(ctx, false) {
		t.Fatal("a third slot was reserved beyond the cap of 2")
	}
	// A create of one: nothing ready to give up and no boot to cancel.
	if held := m.makeRoom(0, 1); held != 2 {
		t.Fatalf("makeRoom with nothing to give up: held %d, want 2", held)
	}
	cancelled := false
	m.ps.cancelFill = func() { cancelled = true }
	if held := m.makeRoom(0, 1); held != 1 || !cancelled {
		t.Fatalf("makeRoom: held %d, cancelled %v; want the boot under way given up", held, cancelled)
	}
	// The cancelled boot no longer counts; a workspace recorded in that
	// slot leaves none for the pool.
	sess, err := st.CreateSession(ctx, state.Session{Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateWorkspace(ctx, state.Workspace{Name: "w", Owner: sess.ID, State: state.WorkspaceRunning, BaseImage: "default", VCPUs: 1, MemoryMB: 256, DiskGB: 1}); err != nil {
		t.Fatal(err)
	}
	if m.reservePoolSlot(ctx, true) {
		t.Fatal("a pool slot was reserved with one workspace and one pool boot at a cap of 2")
	}
	m.releasePoolSlot()
	m.ps.fillCancelled = false
	m.releasePoolSlot()
	if !m.reservePoolSlot(ctx, true) {
		t.Fatal("a freed slot was not reserved again")
	}
}

// TestTemplateServesOnlyItsSize: a create of another size boots cold and
// says why; a disabled template is no reason to log.
func TestTemplateServesOnlyItsSize(t *testing.T) {
	m := &Manager{template: TemplateOptions{Enabled: true}, tmplKick: make(chan struct{}, 1)}
	if tm, why := m.templateFor(Resources{1, 256, 4}); tm != nil || why != "the memory template is not built yet" {
		t.Errorf("no template: %v, %q", tm, why)
	}
	m.tmpl = &template{Resources: Resources{1, 256, 4}}
	if tm, _ := m.templateFor(Resources{1, 256, 4}); tm != m.tmpl {
		t.Error("the template did not serve its own size")
	}
	if tm, why := m.templateFor(Resources{2, 256, 4}); tm != nil || !strings.Contains(why, "serves vcpus=1 memory_mb=256 disk_gb=4 only") {
		t.Errorf("another size: %v, %q", tm, why)
	}
	m.template.Enabled = false
	if tm, why := m.templateFor(Resources{1, 256, 4}); tm != nil || why != "" {
		t.Errorf("disabled: %v, %q", tm, why)
	}
}
