package workspace

import (
	"context"
	"fmt"
	"os"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/vm"
)

// Recover brings the manager in line with the world after a daemon start:
// running workspaces are re-attached (their VMs outlived the previous
// daemon), those whose VM died are marked stopped with the reason, creates
// that never finished are undone, and destroys that never finished are
// finished. No workspace that was acknowledged is lost.
func (m *Manager) Recover(ctx context.Context) error {
	// A VM that switched to a new disk layer just before the crash keeps it.
	if err := m.disks.Repair(ctx); err != nil {
		return fmt.Errorf("repairing disks: %w", err)
	}
	if err := m.recoverNetwork(ctx); err != nil {
		return fmt.Errorf("restoring network rules: %w", err)
	}
	// Before anything prunes: the template's layer is pinned.
	m.loadTemplate(ctx)
	ws, err := m.store.ListWorkspaces(ctx, state.WorkspaceFilter{})
	if err != nil {
		return fmt.Errorf("listing workspaces: %w", err)
	}
	for _, w := range ws {
		switch w.State {
		case state.WorkspaceCreating, state.WorkspaceDestroying:
			m.log.Info("finishing an interrupted create or destroy", "workspace", w.ID, "state", w.State)
			m.attachForCleanup(ctx, w)
			m.forget(w.ID)
		case state.WorkspaceRunning:
			m.reattach(ctx, w)
		default:
			// A stopped workspace may still have a VM if the daemon died
			// in the middle of stopping it: end it.
			m.attachForCleanup(ctx, w)
			if v := m.takeLive(w.ID); v != nil {
				m.log.Warn("stopping a VM left running by an interrupted stop", "workspace", w.ID)
				_ = m.stopVM(ctx, w.ID, v, false)
			}
			m.dropTAP(w)
		}
	}
	m.recoverSnapshots(ctx)
	m.reapOrphans(ctx)
	m.pruneLayers(ctx)
	m.finishReleases(ctx)
	return nil
}

// reapOrphans ends every VM and removes every disk, run directory and log
// directory that no workspace record owns: a warm-pool VM or a template
// being made when the previous daemon died, or a create that died between
// making a file and recording it. Nothing of a recorded workspace is
// touched. Run before anything new starts (Recover does).
func (m *Manager) reapOrphans(ctx context.Context) {
	ws, err := m.store.ListWorkspaces(ctx, state.WorkspaceFilter{})
	if err != nil {
		m.log.Error("listing workspaces to find orphans", "err", err)
		return // without the records, nothing is known to be an orphan
	}
	known := make(map[string]bool, len(ws))
	for _, w := range ws {
		known[w.ID] = true
	}
	seen := map[string]bool{}
	for _, dir := range []string{m.runDir, m.logDir} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() && !known[e.Name()] && names.Validate("id", e.Name()) == nil {
				seen[e.Name()] = true
			}
		}
	}
	disks, err := m.disks.Disks(ctx)
	if err != nil {
		m.log.Error("listing disks to find orphans", "err", err)
	}
	for _, id := range disks {
		if !known[id] {
			seen[id] = true
		}
	}
	// Orphan VMs are pool or template VMs: the default size, which the
	// re-attach sets up its cgroup for before the kill.
	res := m.templateResources()
	for id := range seen {
		v, err := m.runner.Attach(ctx, m.spec(state.Workspace{ID: id, VCPUs: res.VCPUs, MemoryMB: res.MemoryMB}, ""))
		if err != nil && !errdefs.Is(err, errdefs.NotFound) {
			// Attach kills a VM it identified but could not set up.
			m.log.Warn("an orphan VM could not be re-attached; it was stopped", "vm", id, "err", err)
		}
		if err == nil {
			m.log.Warn("killing an orphan VM no workspace owns (warm pool, template or interrupted create)", "vm", id, "pid", v.PID())
			m.mu.Lock()
			m.stopping[id] = true
			m.mu.Unlock()
			if err := v.Kill(); err != nil {
				m.log.Error("killing an orphan VM", "vm", id, "err", err)
			}
			m.mu.Lock()
			delete(m.stopping, id)
			m.mu.Unlock()
		}
		if err := m.disks.Destroy(ctx, id); err != nil {
			m.log.Error("removing an orphan disk", "vm", id, "err", err)
		}
		os.RemoveAll(m.logsOf(id))
		os.RemoveAll(m.spec(state.Workspace{ID: id}, "").RunDir)
		m.log.Info("orphan removed", "vm", id)
	}
}

// reattach adopts the running VM of w, or records that it is gone.
func (m *Manager) reattach(ctx context.Context, w state.Workspace) {
	disk, err := m.disks.Path(w.ID)
	if err != nil {
		m.markStopped(ctx, w.ID, "its disk is missing: "+errdefs.Public(err))
		return
	}
	v, err := m.runner.Attach(ctx, m.spec(w, disk))
	if err != nil {
		m.log.Warn("workspace VM not running after restart", "workspace", w.ID, "err", err)
		m.markStopped(ctx, w.ID, "the VM was not running when the daemon started: "+errdefs.Public(err))
		m.dropTAP(w)
		return
	}
	if v.PID() != w.PID {
		_, _ = m.store.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
			r.PID = v.PID()
			return nil
		})
	}
	m.adopt(w.ID, v)
	m.log.Info("workspace re-attached", "workspace", w.ID, "pid", v.PID())
}

// attachForCleanup attaches to a VM that may be left over so that forget
// or the caller can end it. Finding none is the normal case.
func (m *Manager) attachForCleanup(ctx context.Context, w state.Workspace) {
	v, err := m.runner.Attach(ctx, m.spec(w, ""))
	if err != nil {
		return
	}
	m.mu.Lock()
	m.live[w.ID] = v
	m.mu.Unlock()
}

// takeLive removes and returns the live VM of id.
func (m *Manager) takeLive(id string) *vm.VM {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.live[id]
	delete(m.live, id)
	return v
}

func (m *Manager) markStopped(ctx context.Context, id, reason string) {
	_, err := m.store.UpdateWorkspace(ctx, id, func(r *state.Workspace) error {
		r.State = state.WorkspaceStopped
		r.PID = 0
		r.LastError = reason
		return nil
	})
	if err != nil {
		m.log.Error("marking workspace stopped", "workspace", id, "err", err)
	}
}
