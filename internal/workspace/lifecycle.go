package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/cleanup"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/vm"
)

// gib is one GiB in bytes.
const gib = 1 << 30

// Create makes a workspace for c: a row in state "creating", a disk layer on
// the base image, a booted VM whose guest answers, then "running". Any
// failure undoes every step; the caller sees one clear error.
func (m *Manager) Create(ctx context.Context, c Caller, req CreateRequest) (*Info, error) {
	res, err := m.resources(req)
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		req.Name = "ws-" + randomHex(4)
	}
	if err := names.Validate("name", req.Name); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if req.BaseImage != "" && req.BaseImage != m.image.Manifest.Name {
		return nil, errdefs.Invalidf("base_image: only %q is available on this host", m.image.Manifest.Name)
	}
	allowInternet, err := m.allowInternet(req.AllowInternet)
	if err != nil {
		return nil, err
	}

	if req.FromPool {
		p, why := m.claimPooled(res)
		if p != nil {
			return m.createFromPool(ctx, c, req, res, p, allowInternet)
		}
		m.log.Info("from_pool: no pool VM for this create; it boots", "reason", why)
	}

	var w state.Workspace
	err = m.store.Tx(ctx, func(tx *state.Tx) error {
		if err := m.admit(ctx, tx, c.SessionID, res, 1); err != nil {
			return err
		}
		rec := state.Workspace{
			ID: uuid.NewString(), Name: req.Name, Owner: c.SessionID, State: state.WorkspaceCreating,
			BaseImage: m.image.Manifest.Name, VCPUs: res.VCPUs, MemoryMB: res.MemoryMB, DiskGB: res.DiskGB,
			AllowInternet: allowInternet,
		}
		if err := m.allocateAddress(ctx, tx, &rec); err != nil {
			return err
		}
		w, err = tx.CreateWorkspace(ctx, rec)
		return err
	})
	if err != nil {
		return nil, err
	}

	unlock := m.lock(w.ID)
	defer unlock()
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() { m.forget(w.ID) })
	if err := m.syncRules(ctx); err != nil {
		return nil, err
	}

	start := time.Now()
	// From the memory template when it serves this size, else a cold boot.
	v, err := m.startFresh(ctx, w, res)
	if err != nil {
		return nil, err
	}
	m.pausePoint(ctx, "create.started")
	// Every workspace is its own instance: its own machine-id (the image
	// has none), a reseeded RNG, the host's clock; then its hostname.
	if err := m.renew(ctx, v, newMachineID()); err != nil {
		_ = v.Kill()
		return nil, err
	}
	if err := m.configure(ctx, v, w); err != nil {
		_ = v.Kill()
		return nil, err
	}
	m.adopt(w.ID, v)
	bootMs := time.Since(start).Milliseconds()
	m.pausePoint(ctx, "create.booted")

	w, err = m.store.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
		r.State = state.WorkspaceRunning
		r.PID = v.PID()
		r.StartedAt = time.Now()
		r.BootTimeMs = bootMs
		r.LastError = ""
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recording running state of %s: %w", w.ID, err)
	}
	cu.Release()
	m.log.Info("workspace created", "workspace", w.ID, "name", w.Name, "session", c.SessionID, "boot_ms", bootMs,
		"from_template", v.Spec().Incoming != "")
	return m.info(ctx, w, true), nil
}

// createFromPool makes the workspace on the claimed pool VM p: its record
// takes the VM's ID (so a restarted daemon finds the VM), the guest takes
// the workspace's identity (fresh entropy, clock, machine-id, hostname),
// and it runs. The pool VM already has the requested size (claimPooled).
// A create the quotas refuse gives the VM back to the pool.
//
// The pool VM booted with an address, MAC and TAP of its own that no rule
// let through; the workspace takes them (never one shared with another
// VM), the rules now list it, and the guest applies them over Configure.
func (m *Manager) createFromPool(ctx context.Context, c Caller, req CreateRequest, res Resources, p *pooled, allowInternet bool) (*Info, error) {
	start := time.Now()
	var w state.Workspace
	held := true
	err := m.store.Tx(ctx, func(tx *state.Tx) error {
		if held {
			m.unclaim() // from here the VM counts as the workspace admit adds
			held = false
		}
		if err := m.admit(ctx, tx, c.SessionID, res, 1); err != nil {
			return err
		}
		rec := state.Workspace{
			ID: p.id, Name: req.Name, Owner: c.SessionID, State: state.WorkspaceCreating,
			BaseImage: m.image.Manifest.Name, VCPUs: res.VCPUs, MemoryMB: res.MemoryMB, DiskGB: res.DiskGB,
			AllowInternet: allowInternet, FromPool: true,
		}
		if err := m.pooledAddress(ctx, tx, &rec); err != nil {
			return err
		}
		var err error
		w, err = tx.CreateWorkspace(ctx, rec)
		return err
	})
	if err != nil {
		m.giveBack(p, held)
		return nil, err
	}
	unlock := m.lock(w.ID)
	defer unlock()
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() { m.forget(w.ID) })
	m.adopt(w.ID, p.v) // forget ends it on failure
	if err := m.syncRules(ctx); err != nil {
		return nil, err
	}
	if err := m.renew(ctx, p.v, newMachineID()); err != nil {
		return nil, err
	}
	if err := m.configure(ctx, p.v, w); err != nil {
		return nil, err
	}
	w, err = m.markRunning(ctx, w.ID, p.v, time.Since(start))
	if err != nil {
		return nil, err
	}
	cu.Release()
	m.log.Info("workspace created from the warm pool", "workspace", w.ID, "name", w.Name, "session", c.SessionID, "claim_ms", w.BootTimeMs)
	return m.info(ctx, w, true), nil
}

// forget removes every trace of workspace id: VM, disk, logs, run
// directory and row. It is the undo of Create and the body of Destroy;
// every step tolerates what is already gone.
func (m *Manager) forget(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m.mu.Lock()
	v := m.live[id]
	m.mu.Unlock()
	if v != nil {
		if err := m.stopVM(ctx, id, v, false); err != nil {
			m.log.Error("killing VM", "workspace", id, "err", err)
		}
	}
	freed, forgotten := m.releaseNetwork(ctx, id)
	if err := m.disks.Destroy(ctx, id); err != nil {
		m.log.Error("removing disk", "workspace", id, "err", err)
	}
	os.RemoveAll(m.logsOf(id))
	os.RemoveAll(m.spec(state.Workspace{ID: id}, "").RunDir)
	if err := m.store.DeleteWorkspace(ctx, id); err != nil && !errdefs.Is(err, errdefs.NotFound) {
		m.log.Error("deleting workspace record", "workspace", id, "err", err)
	} else if forgotten {
		m.freeLease(ctx, freed)
	}
	// Its snapshots went with the record; their layers go unless forks
	// stand on them.
	m.pruneLayers(ctx)
	m.kickPool() // a VM slot may be free again
}

// resources applies defaults and bounds to the requested VM size.
func (m *Manager) resources(req CreateRequest) (Resources, error) {
	l := m.limits
	r := Resources{VCPUs: req.VCPUs, MemoryMB: req.MemoryMB, DiskGB: req.DiskGB}
	if r.VCPUs == 0 {
		r.VCPUs = l.DefaultVCPUs
	}
	if r.MemoryMB == 0 {
		r.MemoryMB = l.DefaultMemoryMB
	}
	if r.DiskGB == 0 {
		r.DiskGB = l.DefaultDiskGB
	}
	var errs []error
	if r.VCPUs < 1 || r.VCPUs > l.MaxVCPUs {
		errs = append(errs, fmt.Errorf("vcpus: must be 1..%d", l.MaxVCPUs))
	}
	if r.MemoryMB < l.MinMemoryMB || r.MemoryMB > l.MaxMemoryMB {
		errs = append(errs, fmt.Errorf("memory_mb: must be %d..%d", l.MinMemoryMB, l.MaxMemoryMB))
	}
	if r.DiskGB < 1 || r.DiskGB > l.MaxDiskGB {
		errs = append(errs, fmt.Errorf("disk_gb: must be 1..%d", l.MaxDiskGB))
	}
	if err := errors.Join(errs...); err != nil {
		return Resources{}, errdefs.Invalidf("%v", err)
	}
	return r, nil
}

// Start boots a stopped workspace on its disk as it was left, then tells
// the OnStarted function (hooks.go).
func (m *Manager) Start(ctx context.Context, c Caller, ref string) (_ *Info, err error) {
	w, unlock, err := m.lockForAction(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	// Deferred before unlock, so it runs after it.
	defer func() {
		if err == nil {
			m.started(ctx, w.ID)
		}
	}()
	defer unlock()
	switch w.State {
	case state.WorkspaceStopped, state.WorkspaceError:
	case state.WorkspaceRunning:
		return nil, errdefs.Conflictf("workspace_id: the workspace is already running")
	default:
		return nil, errdefs.Conflictf("workspace_id: the workspace is %s and cannot be started", displayState(w.State))
	}
	if w, err = m.ensureAddress(ctx, w); err != nil {
		return nil, err
	}
	start := time.Now()
	v, err := m.boot(ctx, w)
	if err != nil {
		_, _ = m.store.UpdateWorkspace(context.WithoutCancel(ctx), w.ID, func(r *state.Workspace) error {
			r.LastError = errdefs.Public(err)
			return nil
		})
		return nil, err
	}
	w, err = m.store.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
		r.State = state.WorkspaceRunning
		r.PID = v.PID()
		r.StartedAt = time.Now()
		r.BootTimeMs = time.Since(start).Milliseconds()
		r.LastError = ""
		return nil
	})
	if err != nil {
		_ = m.stopVM(context.Background(), w.ID, v, false)
		return nil, fmt.Errorf("recording running state of %s: %w", w.ID, err)
	}
	return m.info(ctx, w, true), nil
}

// Stop shuts a running workspace down gracefully; its disk stays.
func (m *Manager) Stop(ctx context.Context, c Caller, ref string) (*Info, error) {
	w, unlock, err := m.lockForAction(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if w.State != state.WorkspaceRunning {
		return nil, errdefs.Conflictf("workspace_id: the workspace is %s, not running", displayState(w.State))
	}
	m.mu.Lock()
	v := m.live[w.ID]
	m.mu.Unlock()
	if v != nil {
		if err := m.stopVM(ctx, w.ID, v, true); err != nil {
			return nil, fmt.Errorf("stopping %s: %w", w.ID, err)
		}
	}
	m.dropTAP(w)
	w, err = m.store.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
		r.State = state.WorkspaceStopped
		r.PID = 0
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m.info(ctx, w, true), nil
}

// Destroy stops the workspace's VM and removes its disk, logs and record.
// The record first moves to "destroying", so a daemon that dies half-way
// finishes the job when it starts again.
func (m *Manager) Destroy(ctx context.Context, c Caller, ref string) error {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return err
	}
	unlock := m.lock(w.ID)
	defer unlock()
	if _, err := m.store.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
		if !c.mayAct(*r) { // adopted by another session meanwhile
			return errNoWorkspace()
		}
		r.State = state.WorkspaceDestroying
		return nil
	}); err != nil {
		return err
	}
	m.forget(w.ID)
	m.log.Info("workspace destroyed", "workspace", w.ID, "session", c.SessionID)
	return nil
}

// List returns c's workspaces and then the orphans c may adopt (owned
// false), optionally only those in one state. An admin gets every
// session's workspaces.
func (m *Manager) List(ctx context.Context, c Caller, stateFilter string) ([]Info, error) {
	f := state.WorkspaceFilter{Owner: c.SessionID}
	if c.Admin {
		f.Owner = ""
	}
	if stateFilter != "" {
		f.States = []state.WorkspaceState{state.WorkspaceState(stateFilter)}
	}
	ws, err := m.store.ListWorkspaces(ctx, f)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(ws))
	for _, w := range ws {
		out = append(out, *m.infoFor(ctx, c, w))
	}
	if c.Admin {
		return out, nil // the orphans are in the list already
	}
	orphans, err := m.orphans(ctx, c, f.States)
	if err != nil {
		return nil, err
	}
	for _, w := range orphans {
		out = append(out, *m.info(ctx, w, false))
	}
	return out, nil
}

// Info describes one of c's workspaces.
func (m *Manager) Info(ctx context.Context, c Caller, ref string) (*Info, error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	return m.infoFor(ctx, c, w), nil
}

// Logs returns the tails of the workspace's console log and QEMU's stderr.
func (m *Manager) Logs(ctx context.Context, c Caller, ref, logType string, maxLines int) (*Logs, error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	var out Logs
	if logType == "console" || logType == "all" {
		if out.Console, err = vm.ConsoleTail(m.logsOf(w.ID), maxLines); err != nil {
			return nil, fmt.Errorf("reading console log of %s: %w", w.ID, err)
		}
	}
	if logType == "stderr" || logType == "all" {
		if out.Stderr, err = vm.QEMULogTail(m.logsOf(w.ID), maxLines); err != nil {
			return nil, fmt.Errorf("reading qemu log of %s: %w", w.ID, err)
		}
	}
	return &out, nil
}

// info shapes a record for callers; owned says whether the caller owns it.
func (m *Manager) info(ctx context.Context, w state.Workspace, owned bool) *Info {
	i := &Info{
		ID: w.ID, Name: w.Name, State: string(w.State), IP: w.IP, BaseImage: w.BaseImage,
		Resources:  Resources{VCPUs: w.VCPUs, MemoryMB: w.MemoryMB, DiskGB: w.DiskGB},
		Network:    Network{AllowInternet: w.AllowInternet, AllowedPorts: []int{}},
		Owned:      owned,
		CreatedAt:  w.CreatedAt,
		BootTimeMs: w.BootTimeMs,
		FromPool:   w.FromPool,
		LastError:  w.LastError,
	}
	if w.State == state.WorkspaceRunning && !w.StartedAt.IsZero() {
		t := w.StartedAt
		i.StartedAt = &t
		i.UptimeSecs = int64(time.Since(t).Seconds())
	}
	if w.ForkedFrom != nil {
		i.ForkedFrom = &ForkedFrom{SourceWorkspaceID: w.ForkedFrom.WorkspaceID, SnapshotName: w.ForkedFrom.SnapshotName}
	}
	m.networkInfo(ctx, w, i)
	if u, err := m.diskUsage(ctx, w.ID); err == nil {
		i.DiskUsedBytes = u.Allocated
	}
	i.Snapshots = []string{}
	if snaps, err := m.store.ListSnapshots(ctx, w.ID); err == nil {
		for _, s := range snaps {
			if s.State == state.SnapshotReady {
				i.Snapshots = append(i.Snapshots, s.Name)
			}
		}
	}
	return i
}

// infoFor shapes a record for c: an admin also sees whose it is.
func (m *Manager) infoFor(ctx context.Context, c Caller, w state.Workspace) *Info {
	i := m.info(ctx, w, w.Owner == c.SessionID)
	if c.Admin {
		i.OwnerSession = w.Owner
	}
	return i
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lockForAction resolves ref for c, takes the workspace's lock and reads the
// workspace again under it: one adopted by another session meanwhile is no
// longer c's to act on. The caller runs unlock when done; on error nothing
// is held.
func (m *Manager) lockForAction(ctx context.Context, c Caller, ref string) (state.Workspace, func(), error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return state.Workspace{}, nil, err
	}
	unlock := m.lock(w.ID)
	if w, err = m.store.GetWorkspace(ctx, w.ID); err != nil {
		unlock()
		return state.Workspace{}, nil, err
	}
	if !c.mayAct(w) { // adopted by another session meanwhile
		unlock()
		return state.Workspace{}, nil, errNoWorkspace()
	}
	return w, unlock, nil
}
