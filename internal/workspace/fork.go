package workspace

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/state"
)

// defaultForkPrefix names the forks of a batch without name_prefix, as the
// original system did: worker-1, worker-2...
const defaultForkPrefix = "worker"

// Fork makes new, independent workspaces from one of the workspace's
// snapshots: req.Count of them (1-20), booted in parallel, each with its own
// top layer on the snapshot's layer. Forks of a memory snapshot resume its
// processes. Every fork takes a fresh identity (entropy, clock, machine-id,
// hostname) before anything else runs in it, and records its lineage
// (forked_from). The forks count against the session's workspace quota,
// checked with their creation in one transaction: either all fit or none is
// made. A fork that fails to boot is removed and reported; with Count 1 its
// error is the result.
func (m *Manager) Fork(ctx context.Context, c Caller, ref string, req ForkRequest) (*ForkResult, error) {
	forkNames, err := forkNames(req)
	if err != nil {
		return nil, err
	}
	src, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	if err := names.Validate("snapshot_name", req.SnapshotName); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if err := m.checkFreeSpace(ctx, 0, "fork"); err != nil {
		return nil, err
	}

	// The source's lock keeps the snapshot (and its layer) in place until
	// every fork's disk stands on it.
	unlockSrc := m.lock(src.ID)
	if src, err = m.store.GetWorkspace(ctx, src.ID); err != nil || !c.mayAct(src) {
		unlockSrc()
		return nil, errNoWorkspace() // gone, or adopted by another session meanwhile
	}
	snap, err := m.store.GetSnapshot(ctx, src.ID, req.SnapshotName)
	if err != nil {
		unlockSrc()
		if errdefs.Is(err, errdefs.NotFound) {
			return nil, errdefs.NotFoundf("snapshot_name: the workspace has no such snapshot")
		}
		return nil, err
	}
	if snap.State != state.SnapshotReady {
		unlockSrc()
		return nil, errdefs.Conflictf("snapshot_name: the snapshot is still being made")
	}
	incoming := ""
	if snap.Memory {
		if incoming, err = m.disks.MemoryPath(snap.Layer); err != nil {
			unlockSrc()
			return nil, err
		}
	}
	internet := src.AllowInternet
	if req.AllowInternet != nil {
		if internet, err = m.allowInternet(req.AllowInternet); err != nil {
			unlockSrc()
			return nil, err
		}
	}
	forks, err := m.recordForks(ctx, c, src, snap, forkNames, internet)
	if err != nil {
		unlockSrc()
		return nil, err
	}
	res := &ForkResult{SourceWorkspaceID: src.ID, SourceWorkspaceName: src.Name, SnapshotName: snap.Name, Forks: []Info{}, Failures: []ForkFailure{}}
	var mu sync.Mutex
	var firstErr error
	fail := func(i int, w state.Workspace, err error) {
		m.forget(w.ID)
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
		res.Failures = append(res.Failures, ForkFailure{Index: i + 1, Name: w.Name, Error: errdefs.Public(err)})
		m.log.Warn("fork failed", "source", src.ID, "fork", w.ID, "err", err)
	}
	ready := make([]bool, len(forks))
	for i, w := range forks {
		if _, err := m.disks.Branch(ctx, w.ID, snap.Layer); err != nil {
			fail(i, w, fmt.Errorf("creating the disk of %s: %w", w.ID, err))
			continue
		}
		ready[i] = true
	}
	m.pausePoint(ctx, "fork.disks")
	unlockSrc()

	// Boots are CPU-bound (under TCG especially): as many at once as
	// there are CPUs, at least two.
	sem := make(chan struct{}, max(2, runtime.NumCPU()))
	infos := make([]*Info, len(forks))
	var wg sync.WaitGroup
	for i, w := range forks {
		if !ready[i] {
			continue
		}
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			info, err := m.bootFork(ctx, w, incoming)
			if err != nil {
				fail(i, w, err)
				return
			}
			info.ForkedFrom.SourceWorkspaceName = src.Name
			infos[i] = info
		})
	}
	wg.Wait()
	for _, info := range infos {
		if info != nil {
			res.Forks = append(res.Forks, *info)
		}
	}
	if len(forks) == 1 && firstErr != nil {
		return nil, errdefs.With(errdefs.ClassOf(firstErr), "fork failed: "+errdefs.Public(firstErr), firstErr)
	}
	m.log.Info("workspaces forked", "source", src.ID, "snapshot", snap.Name, "memory", snap.Memory,
		"made", len(res.Forks), "failed", len(res.Failures), "session", c.SessionID)
	return res, nil
}

// forkNames are the names of the forks req asks for.
func forkNames(req ForkRequest) ([]string, error) {
	count := req.Count
	if count == 0 {
		count = 1
	}
	if count < 1 || count > MaxForks {
		return nil, errdefs.Invalidf("count: must be 1..%d", MaxForks)
	}
	if req.NewName != "" {
		if count > 1 {
			return nil, errdefs.Invalidf("new_name: names a single fork; with count > 1 use name_prefix")
		}
		if err := names.Validate("new_name", req.NewName); err != nil {
			return nil, errdefs.Invalidf("%v", err)
		}
		return []string{req.NewName}, nil
	}
	if req.NamePrefix == "" && count == 1 {
		return []string{"fork-" + randomHex(4)}, nil
	}
	prefix := req.NamePrefix
	if prefix == "" {
		prefix = defaultForkPrefix
	}
	out := make([]string, count)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i+1)
		if err := names.Validate("name_prefix", out[i]); err != nil {
			return nil, errdefs.Invalidf("%v", err)
		}
	}
	return out, nil
}

// recordForks creates the forks' records, state "creating", after checking
// the session's quotas (workspaces, memory, disk: each fork is the source's
// size) and the host's VM maximum in the same transaction. Each gets its
// own address; internet is their internet access.
func (m *Manager) recordForks(ctx context.Context, c Caller, src state.Workspace, snap state.Snapshot, forkNames []string, internet bool) ([]state.Workspace, error) {
	var out []state.Workspace
	err := m.store.Tx(ctx, func(tx *state.Tx) error {
		out = out[:0]
		res := Resources{VCPUs: src.VCPUs, MemoryMB: src.MemoryMB, DiskGB: src.DiskGB}
		if err := m.admit(ctx, tx, c.SessionID, res, len(forkNames)); err != nil {
			if errdefs.Is(err, errdefs.Quota) {
				return errdefs.With(errdefs.Quota, "count: "+errdefs.Public(err), err)
			}
			return err
		}
		for _, name := range forkNames {
			rec := state.Workspace{
				ID: uuid.NewString(), Name: name, Owner: c.SessionID, State: state.WorkspaceCreating,
				BaseImage: src.BaseImage, VCPUs: src.VCPUs, MemoryMB: src.MemoryMB, DiskGB: src.DiskGB,
				AllowInternet: internet,
				ForkedFrom:    &state.ForkedFrom{WorkspaceID: src.ID, SnapshotName: snap.Name},
			}
			// Its own address and MAC: the guest takes them over the
			// channel after resuming (a memory snapshot still carries the
			// source's).
			if err := m.allocateAddress(ctx, tx, &rec); err != nil {
				return err
			}
			w, err := tx.CreateWorkspace(ctx, rec)
			if err != nil {
				return err
			}
			out = append(out, w)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := m.syncRules(ctx); err != nil {
		for _, w := range out {
			m.forget(w.ID)
		}
		return nil, err
	}
	return out, nil
}

// bootFork boots fork w on its disk (resuming the memory state at incoming
// when set), with a new machine-id, and records it running.
func (m *Manager) bootFork(ctx context.Context, w state.Workspace, incoming string) (*Info, error) {
	unlock := m.lock(w.ID)
	defer unlock()
	start := time.Now()
	v, err := m.bootFrom(ctx, w, incoming, newMachineID())
	if err != nil {
		return nil, err
	}
	m.pausePoint(ctx, "fork.booted")
	w, err = m.markRunning(ctx, w.ID, v, time.Since(start))
	if err != nil {
		return nil, err
	}
	return m.info(ctx, w, true), nil
}
