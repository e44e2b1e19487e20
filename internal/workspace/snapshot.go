package workspace

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agentiso/agentiso/internal/cleanup"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/storage"
	"github.com/agentiso/agentiso/internal/vm"
)

// mib is one MiB in bytes.
const mib = 1 << 20

// renewer is the guest channel's Renew (package channel): a fresh instance
// identity for a guest resumed from a memory state or booted from a fork.
type renewer interface {
	Renew(ctx context.Context, machineID string) error
}

// SnapshotCreate freezes the workspace's disk as a snapshot named
// req.Name. A running workspace keeps running: its disk moves onto a new
// top layer (and with IncludeMemory it is paused while its memory is saved,
// which a restore or fork later resumes). A stopped workspace can take disk
// snapshots only. The per-workspace cap and the host's free-space reserve
// are checked first (M-19); any failure leaves no snapshot.
func (m *Manager) SnapshotCreate(ctx context.Context, c Caller, ref string, req SnapshotRequest) (*SnapshotInfo, error) {
	if err := names.Validate("name", req.Name); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	w, unlock, err := m.lockForAction(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	defer unlock()
	var v *vm.VM
	switch w.State {
	case state.WorkspaceRunning:
		m.mu.Lock()
		v = m.live[w.ID]
		m.mu.Unlock()
		if v == nil {
			return nil, errdefs.Unavailablef("workspace_id: the workspace's VM is not attached")
		}
	case state.WorkspaceStopped, state.WorkspaceError:
		if req.IncludeMemory {
			return nil, errdefs.Conflictf("include_memory: the workspace is %s; a memory snapshot needs it running (start it, or snapshot the disk only)", displayState(w.State))
		}
	default:
		return nil, errdefs.Conflictf("workspace_id: the workspace is %s and cannot be snapshotted", displayState(w.State))
	}
	var need int64
	if req.IncludeMemory {
		need = int64(w.MemoryMB) * mib // the state is at most the guest's memory
	}
	if err := m.checkFreeSpace(ctx, need, "snapshot"); err != nil {
		return nil, err
	}
	layer, err := m.disks.Top(w.ID)
	if err != nil {
		return nil, fmt.Errorf("finding the disk of %s: %w", w.ID, err)
	}

	var snap state.Snapshot
	err = m.store.Tx(ctx, func(tx *state.Tx) error {
		n, err := tx.CountSnapshots(ctx, w.ID)
		if err != nil {
			return err
		}
		if n >= m.limits.MaxSnapshotsPerWorkspace {
			return errdefs.Quotaf("name: the workspace already has %d snapshots, the most allowed (storage.max_snapshots_per_workspace); delete one first", n)
		}
		snap, err = tx.CreateSnapshot(ctx, state.Snapshot{WorkspaceID: w.ID, Name: req.Name, Layer: layer, Memory: req.IncludeMemory})
		return err
	})
	if err != nil {
		return nil, err
	}
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() {
		bg := context.WithoutCancel(ctx)
		if err := m.store.DeleteSnapshot(bg, snap.ID); err != nil {
			m.log.Error("removing a failed snapshot's record", "workspace", w.ID, "err", err)
		}
		m.pruneLayers(bg)
		m.compact(bg, w.ID) // the layer may have been frozen before the failure
	})

	m.pausePoint(ctx, "snapshot.recorded")
	start := time.Now()
	var frozen string
	var mem vm.MemoryInfo
	switch {
	case v == nil:
		frozen, err = m.disks.Freeze(ctx, w.ID, nil)
	case !req.IncludeMemory:
		frozen, err = m.disks.Freeze(ctx, w.ID, v.FreezeDisk)
	default:
		frozen, mem, err = m.saveRunning(ctx, v, w.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshotting %s: %w", w.ID, err)
	}
	if frozen != layer {
		return nil, fmt.Errorf("snapshotting %s: froze layer %s, expected %s", w.ID, frozen, layer)
	}
	info, err := m.disks.Layer(ctx, frozen)
	if err != nil {
		return nil, fmt.Errorf("sizing the snapshot of %s: %w", w.ID, err)
	}
	if err := m.store.FinishSnapshot(ctx, snap.ID, info.Allocated, mem.Bytes); err != nil {
		return nil, err
	}
	cu.Release()
	m.log.Info("snapshot created", "workspace", w.ID, "snapshot", snap.Name, "memory", req.IncludeMemory,
		"took", time.Since(start).Round(time.Millisecond), "paused_for", mem.Took.Round(time.Millisecond), "memory_bytes", mem.Bytes)
	return &SnapshotInfo{
		ID: snap.ID, Name: snap.Name, WorkspaceID: w.ID, HasMemory: snap.Memory, CreatedAt: snap.CreatedAt,
		DiskBytes: info.Allocated, MemoryBytes: mem.Bytes,
	}, nil
}

// saveRunning pauses v, freezes its disk and saves its memory with the
// frozen layer, and lets it run again. The disk and memory agree: nothing
// runs between the freeze and the save.
func (m *Manager) saveRunning(ctx context.Context, v *vm.VM, id string) (frozen string, mem vm.MemoryInfo, err error) {
	if err := v.Pause(ctx); err != nil {
		return "", mem, err
	}
	paused := time.Now()
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rerr := v.Resume(rctx); rerr != nil {
			m.log.Error("resuming a VM after a snapshot", "workspace", id, "err", rerr)
			err = errors.Join(err, errdefs.With(errdefs.Unavailable, "the VM could not be resumed after the snapshot", rerr))
		}
		mem.Took = time.Since(paused)
	}()
	frozen, err = m.disks.Freeze(ctx, id, v.FreezeDisk)
	if err != nil {
		return "", mem, err
	}
	path, err := m.disks.MemoryPath(frozen)
	if err != nil {
		return "", mem, err
	}
	mem, err = v.SaveMemory(ctx, path)
	if err == nil {
		m.pausePoint(ctx, "snapshot.saved")
	}
	return frozen, mem, err
}

// SnapshotList returns the workspace's snapshots, oldest first, each with
// its parent, so the list is the tree of the workspace's history.
func (m *Manager) SnapshotList(ctx context.Context, c Caller, ref string) ([]SnapshotInfo, error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	snaps, err := m.store.ListSnapshots(ctx, w.ID)
	if err != nil {
		return nil, err
	}
	byLayer := map[string]string{}
	for _, s := range snaps {
		if s.State == state.SnapshotReady {
			byLayer[s.Layer] = s.Name
		}
	}
	out := []SnapshotInfo{}
	for _, s := range snaps {
		if s.State != state.SnapshotReady {
			continue // being made; not usable yet
		}
		info := SnapshotInfo{
			ID: s.ID, Name: s.Name, WorkspaceID: w.ID, HasMemory: s.Memory, CreatedAt: s.CreatedAt,
			DiskBytes: s.DiskBytes, MemoryBytes: s.MemoryBytes,
		}
		if p := m.parentSnapshot(ctx, s.Layer, byLayer); p != "" {
			info.Parent = &p
		}
		forks, err := m.forksOf(ctx, w.ID, s.Layer)
		if err != nil {
			return nil, err
		}
		info.Forks = forks
		out = append(out, info)
	}
	return out, nil
}

// parentSnapshot is the nearest snapshot under layer in its chain, by name.
func (m *Manager) parentSnapshot(ctx context.Context, layer string, byLayer map[string]string) string {
	for cur := layer; ; {
		li, err := m.disks.Layer(ctx, cur)
		if err != nil || li.Parent == "" {
			return ""
		}
		if name, ok := byLayer[li.Parent]; ok {
			return name
		}
		cur = li.Parent
	}
}

// forksOf counts the workspaces other than owner whose disks stand on layer.
func (m *Manager) forksOf(ctx context.Context, owner, layer string) (int, error) {
	deps, err := m.disks.Dependents(ctx, layer)
	if err != nil {
		return 0, fmt.Errorf("finding the forks of a snapshot: %w", err)
	}
	n := 0
	for _, d := range deps {
		if d != owner {
			n++
		}
	}
	return n, nil
}

// SnapshotDelete removes a snapshot. It refuses while a fork's disk stands
// on the snapshot's layer. The layer itself goes when nothing needs it (the
// workspace's own disk may still stand on it).
func (m *Manager) SnapshotDelete(ctx context.Context, c Caller, ref, name string) error {
	if err := names.Validate("name", name); err != nil {
		return errdefs.Invalidf("%v", err)
	}
	w, unlock, err := m.lockForAction(ctx, c, ref)
	if err != nil {
		return err
	}
	defer unlock()
	snap, err := m.store.GetSnapshot(ctx, w.ID, name)
	if err != nil {
		return err
	}
	if snap.State != state.SnapshotReady {
		return errdefs.Conflictf("name: the snapshot is still being made")
	}
	forks, err := m.forksOf(ctx, w.ID, snap.Layer)
	if err != nil {
		return err
	}
	if forks > 0 {
		// A count, never names: a fork may belong to another session now.
		return errdefs.Conflictf("name: %d forked workspace(s) depend on this snapshot; destroy them before deleting it", forks)
	}
	if err := m.store.DeleteSnapshot(ctx, snap.ID); err != nil {
		return err
	}
	m.pruneLayers(ctx)
	m.compact(ctx, w.ID)
	m.log.Info("snapshot deleted", "workspace", w.ID, "snapshot", name)
	return nil
}

// SnapshotRestore puts the workspace back to a snapshot: its disk becomes
// a new top on the snapshot's layer and every snapshot newer than it is
// dropped (forks of those keep their disks). A memory snapshot resumes the
// VM as it was, processes and all, so the workspace runs afterwards; a disk
// snapshot boots the restored disk if the workspace was running. A
// restore that booted the workspace tells the OnStarted function.
func (m *Manager) SnapshotRestore(ctx context.Context, c Caller, ref, name string) (_ *RestoreResult, err error) {
	if err := names.Validate("name", name); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	w, unlock, err := m.lockForAction(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	booted := false
	// Deferred before unlock, so it runs after it.
	defer func() {
		if booted {
			m.started(ctx, w.ID)
		}
	}()
	defer unlock()
	switch w.State {
	case state.WorkspaceRunning, state.WorkspaceStopped, state.WorkspaceError:
	default:
		return nil, errdefs.Conflictf("workspace_id: the workspace is %s and cannot be restored", displayState(w.State))
	}
	snap, err := m.store.GetSnapshot(ctx, w.ID, name)
	if err != nil {
		return nil, err
	}
	if snap.State != state.SnapshotReady {
		return nil, errdefs.Conflictf("name: the snapshot is still being made")
	}
	wasRunning := w.State == state.WorkspaceRunning

	// What runs now is discarded: no need to stop it gently.
	m.mu.Lock()
	v := m.live[w.ID]
	m.mu.Unlock()
	if v != nil {
		if err := m.stopVM(ctx, w.ID, v, false); err != nil {
			return nil, fmt.Errorf("stopping %s for a restore: %w", w.ID, err)
		}
	}
	if w, err = m.store.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
		r.State = state.WorkspaceStopped
		r.PID = 0
		return nil
	}); err != nil {
		return nil, err
	}
	if _, err := m.disks.Branch(ctx, w.ID, snap.Layer); err != nil {
		return nil, fmt.Errorf("restoring the disk of %s: %w", w.ID, err)
	}

	// Newer snapshots describe a history the workspace no longer has.
	all, err := m.store.ListSnapshots(ctx, w.ID)
	if err != nil {
		return nil, err
	}
	removed := []string{}
	for _, s := range all {
		if s.ID != snap.ID && s.CreatedAt.After(snap.CreatedAt) {
			if err := m.store.DeleteSnapshot(ctx, s.ID); err != nil {
				return nil, err
			}
			removed = append(removed, s.Name)
		}
	}
	m.pruneLayers(ctx)

	res := &RestoreResult{WorkspaceID: w.ID, Name: snap.Name, State: string(state.WorkspaceStopped), HasMemory: snap.Memory, RemovedSnapshots: removed}
	if snap.Memory || wasRunning {
		incoming := ""
		if snap.Memory {
			if incoming, err = m.disks.MemoryPath(snap.Layer); err != nil {
				return nil, err
			}
		}
		start := time.Now()
		v, err := m.bootFrom(ctx, w, incoming, "")
		if err != nil {
			_, _ = m.store.UpdateWorkspace(context.WithoutCancel(ctx), w.ID, func(r *state.Workspace) error {
				r.LastError = errdefs.Public(err)
				return nil
			})
			return nil, fmt.Errorf("starting %s after the restore (its disk is restored): %w", w.ID, err)
		}
		if _, err := m.markRunning(ctx, w.ID, v, time.Since(start)); err != nil {
			return nil, err
		}
		booted = true
		res.State = string(state.WorkspaceRunning)
	}
	res.Message = fmt.Sprintf("restored to snapshot %s", snap.Name)
	if snap.Memory {
		res.Message += "; the VM resumed where the snapshot was taken"
	}
	if len(removed) > 0 {
		res.Message += fmt.Sprintf("; %d newer snapshot(s) removed", len(removed))
	}
	m.log.Info("snapshot restored", "workspace", w.ID, "snapshot", snap.Name, "removed", removed)
	return res, nil
}

// bootFrom starts w's VM on its disk, resuming the memory state at
// incoming when set, and gives the guest its identity: Renew first (fresh
// entropy, the host's clock, and machineID unless empty), then Configure.
// A fork (incoming and a new machineID) drops the source's instance
// environment between the two (hooks.go).
// It starts watching the VM; it does not change state.
func (m *Manager) bootFrom(ctx context.Context, w state.Workspace, incoming, machineID string) (*vm.VM, error) {
	disk, err := m.disks.Path(w.ID)
	if err != nil {
		return nil, fmt.Errorf("finding disk of %s: %w", w.ID, err)
	}
	if err := m.prepareTAP(w); err != nil {
		return nil, err
	}
	spec := m.spec(w, disk)
	spec.Incoming = incoming
	v, err := m.runner.Start(ctx, spec)
	if err != nil {
		return nil, err
	}
	if err := m.renew(ctx, v, machineID); err != nil {
		_ = v.Kill()
		return nil, err
	}
	// A new instance resumed from another workspace's memory (a fork: it
	// takes a new machine-id) must not keep that workspace's credentials.
	if incoming != "" && machineID != "" {
		if err := m.dropInstanceEnv(ctx, v); err != nil {
			_ = v.Kill()
			return nil, err
		}
	}
	if err := m.configure(ctx, v, w); err != nil {
		_ = v.Kill()
		return nil, err
	}
	m.adopt(w.ID, v)
	return v, nil
}

// renew gives v's guest a fresh instance identity (protocol.Renew); an
// empty machineID keeps the one it has.
func (m *Manager) renew(ctx context.Context, v *vm.VM, machineID string) error {
	g, ok := v.Channel().(renewer)
	if !ok {
		return errors.New("guest channel does not support renew")
	}
	if err := g.Renew(ctx, machineID); err != nil {
		return fmt.Errorf("renewing the identity of %s: %w", v.ID(), err)
	}
	return nil
}

// markRunning records that w runs on v.
func (m *Manager) markRunning(ctx context.Context, id string, v *vm.VM, boot time.Duration) (state.Workspace, error) {
	w, err := m.store.UpdateWorkspace(ctx, id, func(r *state.Workspace) error {
		r.State = state.WorkspaceRunning
		r.PID = v.PID()
		r.StartedAt = time.Now()
		r.BootTimeMs = boot.Milliseconds()
		r.LastError = ""
		return nil
	})
	if err != nil {
		_ = m.stopVM(context.WithoutCancel(ctx), id, v, false)
		return state.Workspace{}, fmt.Errorf("recording running state of %s: %w", id, err)
	}
	return w, nil
}

// checkFreeSpace refuses work that would leave the storage filesystem with
// less free space than the configured reserve, need bytes included (M-19).
func (m *Manager) checkFreeSpace(ctx context.Context, need int64, what string) error {
	sp, err := m.disks.Space(ctx)
	if err != nil {
		return err
	}
	if reserve, crossed := reserveCrossed(sp, need, m.limits.MinFreeBytes, m.limits.MinFreePercent); crossed {
		m.log.Warn("refused: the storage free-space reserve would be crossed", "what", what,
			"free", sp.Free, "need", need, "reserve", reserve)
		return errdefs.Quotaf("%s refused: the host's disk is nearly full (less than the free-space reserve of storage.min_free_bytes / storage.min_free_percent would remain); delete snapshots or workspaces", what)
	}
	return nil
}

// reserveCrossed reports whether using need more bytes of sp would leave
// less free than the reserve: the larger of minFree bytes and minPercent of
// the filesystem.
func reserveCrossed(sp storage.Space, need, minFree int64, minPercent int) (reserve int64, crossed bool) {
	reserve = max(minFree, sp.Total/100*int64(minPercent))
	return reserve, sp.Free-need < reserve
}

// compact keeps workspace id's chain short: every frozen layer under its
// disk that no snapshot names and no other disk stands on (a deleted
// snapshot's, or one a failed or interrupted snapshot froze) is squashed
// into the layer above it, by the running VM when there is one. So a chain
// has at most one layer per snapshot, plus the layers it shares with forks,
// however many snapshots were made and deleted. The caller holds id's lock
// (or runs before requests are served).
func (m *Manager) compact(ctx context.Context, id string) {
	snaps, err := m.store.ListSnapshots(ctx, "")
	if err != nil {
		m.log.Error("listing snapshots to compact a disk", "workspace", id, "err", err)
		return
	}
	named := map[string]bool{}
	for _, s := range snaps {
		named[s.Layer] = true
	}
	squashed := 0
	for tries := 0; tries < 64; tries++ {
		chain, err := m.disks.Chain(ctx, id)
		if err != nil {
			m.log.Error("reading a disk's chain", "workspace", id, "err", err)
			return
		}
		var target string
		for _, l := range chain {
			if named[l] {
				continue
			}
			deps, err := m.disks.Dependents(ctx, l)
			if err != nil {
				m.log.Error("finding a layer's disks", "workspace", id, "err", err)
				return
			}
			if len(deps) == 1 && deps[0] == id {
				target = l
				break
			}
		}
		if target == "" {
			break
		}
		var live func(context.Context, string, string) error
		m.mu.Lock()
		if v := m.live[id]; v != nil {
			live = v.StreamLayers
		}
		m.mu.Unlock()
		if err := m.disks.Squash(ctx, id, target, live); err != nil {
			m.log.Error("squashing an unnamed disk layer", "workspace", id, "layer", target, "err", err)
			break
		}
		squashed++
	}
	if squashed > 0 {
		m.log.Info("disk chain shortened", "workspace", id, "layers_squashed", squashed)
		m.pruneLayers(ctx)
	}
}

// pruneLayers removes the disk layers and memory states that no workspace
// and no snapshot needs any more.
func (m *Manager) pruneLayers(ctx context.Context) {
	snaps, err := m.store.ListSnapshots(ctx, "")
	if err != nil {
		m.log.Error("listing snapshots to prune layers", "err", err)
		return
	}
	pins := make(map[string]storage.Pin, len(snaps))
	for _, s := range snaps {
		p := pins[s.Layer]
		p.Memory = p.Memory || s.Memory
		pins[s.Layer] = p
	}
	for _, l := range m.templatePins() {
		pins[l] = storage.Pin{Memory: true}
	}
	removed, err := m.disks.Prune(ctx, pins)
	if err != nil {
		m.log.Error("pruning layers", "err", err)
	}
	if len(removed) > 0 {
		m.log.Info("unused layers removed", "files", removed)
	}
}

// recoverSnapshots settles snapshots a crash left half-made: one whose
// layer was frozen becomes ready if it was a disk snapshot (the layer is
// complete: QEMU switched atomically); a memory snapshot's state may be cut
// short, so it is dropped, as is every snapshot whose layer was never
// frozen. Run after the storage's Repair.
func (m *Manager) recoverSnapshots(ctx context.Context) {
	snaps, err := m.store.ListSnapshots(ctx, "")
	if err != nil {
		m.log.Error("listing snapshots to recover", "err", err)
		return
	}
	for _, s := range snaps {
		if s.State != state.SnapshotCreating {
			continue
		}
		frozen := false
		if chain, err := m.disks.Chain(ctx, s.WorkspaceID); err == nil {
			frozen = slices.Contains(chain, s.Layer)
		}
		if frozen && !s.Memory {
			info, err := m.disks.Layer(ctx, s.Layer)
			if err == nil {
				err = m.store.FinishSnapshot(ctx, s.ID, info.Allocated, 0)
			}
			if err == nil {
				m.log.Info("finished a disk snapshot a crash interrupted", "workspace", s.WorkspaceID, "snapshot", s.Name)
				continue
			}
			m.log.Error("finishing an interrupted snapshot", "workspace", s.WorkspaceID, "snapshot", s.Name, "err", err)
		}
		if err := m.store.DeleteSnapshot(ctx, s.ID); err != nil {
			m.log.Error("removing an interrupted snapshot", "workspace", s.WorkspaceID, "snapshot", s.Name, "err", err)
			continue
		}
		m.log.Warn("removed a snapshot a crash interrupted", "workspace", s.WorkspaceID, "snapshot", s.Name, "memory", s.Memory, "frozen", frozen)
		if frozen {
			m.compact(ctx, s.WorkspaceID)
		}
	}
}

// newMachineID returns a random machine-id: 32 hex digits, never all zero.
func newMachineID() string {
	var b [16]byte
	for {
		rand.Read(b[:])
		if b != [16]byte{} {
			return hex.EncodeToString(b[:])
		}
	}
}
