package workspace

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/cleanup"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/vm"
)

// PoolOptions configure the warm pool: VMs booted ahead of time (from the
// memory template when there is one) that workspace_create with from_pool
// claims. Pool VMs have the default size; they hold slots of
// vm.max_total_vms like workspaces (finding H-11 at run time).
type PoolOptions struct {
	Enabled bool
	// Size is how many VMs the pool keeps ready.
	Size int
	// MaxMemoryMB bounds the guest memory the ready VMs hold together; it
	// lowers the effective size when the default size does not fit.
	MaxMemoryMB int
}

// pooled is a ready pool VM: no record, its own ID (which its workspace
// keeps when claimed), its disk, its guest renewed.
type pooled struct {
	id string
	v  *vm.VM
}

// poolState is the pool's bookkeeping, under Manager.poolMu.
type poolState struct {
	ready []*pooled
	// booting counts the VM slots held by boots under way (a pool fill
	// or the template build); claiming those held by claimed VMs whose
	// record is not written yet.
	booting, claiming int
	// cancelFill ends the pool fill under way, if any; fillCancelled says
	// a create took its slot (its QEMU is being killed).
	cancelFill    context.CancelFunc
	fillCancelled bool
}

// poolTarget is how many ready VMs the pool aims for: pool.size, lowered
// to what pool.max_memory_mb holds.
func (m *Manager) poolTarget() int {
	if !m.pool.Enabled {
		return 0
	}
	per := m.limits.DefaultMemoryMB
	if per < 1 {
		return 0
	}
	return min(m.pool.Size, m.pool.MaxMemoryMB/per)
}

// poolHeld is the VM slots the pool and the template build hold. Call with
// poolMu held.
func (m *Manager) poolHeld() int {
	n := len(m.ps.ready) + m.ps.booting + m.ps.claiming
	if m.ps.fillCancelled {
		n--
	}
	return n
}

// reservePoolSlot takes one VM slot for a VM that has no record (a pool VM
// or the template), if the host's VM maximum leaves one: the workspaces
// and everything the pool holds stay within vm.max_total_vms. forPool
// also requires the pool to be below its target. The count and the
// reservation are one step with every create's admit (the same
// transaction lock, then poolMu).
func (m *Manager) reservePoolSlot(ctx context.Context, forPool bool) bool {
	ok := false
	_ = m.store.Tx(ctx, func(tx *state.Tx) error {
		all, err := tx.CountWorkspaces(ctx, "")
		if err != nil {
			return err
		}
		m.poolMu.Lock()
		defer m.poolMu.Unlock()
		if forPool && len(m.ps.ready)+m.ps.booting >= m.poolTarget() {
			return nil
		}
		if all+m.poolHeld()+1 > m.limits.MaxTotalVMs {
			return nil
		}
		m.ps.booting++
		ok = true
		return nil
	})
	return ok
}

func (m *Manager) releasePoolSlot() {
	m.poolMu.Lock()
	m.ps.booting--
	m.poolMu.Unlock()
}

// makeRoom gives up pool VMs until n more workspaces fit beside what the
// pool holds under vm.max_total_vms: the pool shrinks before a create is
// refused. Ready VMs go first, then the fill under way is cancelled (its
// QEMU is killed at once). It returns how many slots the pool still holds.
// Call inside the admitting transaction.
func (m *Manager) makeRoom(all, n int) int {
	m.poolMu.Lock()
	var drop []*pooled
	for all+n+m.poolHeld() > m.limits.MaxTotalVMs && len(m.ps.ready) > 0 {
		drop = append(drop, m.ps.ready[0])
		m.ps.ready = m.ps.ready[1:]
	}
	if all+n+m.poolHeld() > m.limits.MaxTotalVMs && m.ps.cancelFill != nil {
		m.ps.cancelFill()
		m.ps.cancelFill = nil
		m.ps.fillCancelled = true
		m.log.Info("pool VM boot cancelled to make room for a workspace (vm.max_total_vms)")
	}
	held := m.poolHeld()
	m.poolMu.Unlock()
	for _, p := range drop {
		m.log.Info("pool VM given up to make room for a workspace (vm.max_total_vms)", "vm", p.id)
		go m.discardVM(p.id, p.v)
	}
	return held
}

// claimPooled takes a ready pool VM for a create of size res, or returns
// nil and the reason there is none to take. The VM's slot stays counted
// (claiming) until the caller calls claimed.
func (m *Manager) claimPooled(res Resources) (*pooled, string) {
	if !m.pool.Enabled {
		return nil, "the warm pool is disabled (pool.enabled)"
	}
	if res != m.templateResources() {
		return nil, "pool VMs have the default size; the requested size differs"
	}
	m.poolMu.Lock()
	defer m.poolMu.Unlock()
	for len(m.ps.ready) > 0 {
		p := m.ps.ready[0]
		m.ps.ready = m.ps.ready[1:]
		select {
		case <-p.v.Done():
			go m.discardVM(p.id, nil) // died while waiting; its files go
			continue
		default:
		}
		m.ps.claiming++
		m.kickPool()
		return p, ""
	}
	m.kickPool()
	return nil, "the warm pool is empty"
}

// unclaim ends a claim's hold on its slot: call it inside the transaction
// that records the VM's workspace, before admit counts it as a workspace.
func (m *Manager) unclaim() {
	m.poolMu.Lock()
	m.ps.claiming--
	m.poolMu.Unlock()
}

// giveBack returns a claimed VM the create could not use to the pool;
// held says whether its claim still holds a slot.
func (m *Manager) giveBack(p *pooled, held bool) {
	m.poolMu.Lock()
	if held {
		m.ps.claiming--
	}
	m.ps.ready = append(m.ps.ready, p)
	m.poolMu.Unlock()
}

func (m *Manager) kickPool() {
	select {
	case m.poolKick <- struct{}{}:
	default:
	}
}

// poolLoop keeps the pool at its target, one boot at a time (boots are
// CPU-bound), until ctx ends; a claim, a pool VM's death and a periodic
// check wake it.
func (m *Manager) poolLoop(ctx context.Context) {
	for {
		m.awaitTemplate(ctx)
		for ctx.Err() == nil && m.reservePoolSlot(ctx, true) {
			fctx, cancel := context.WithCancel(ctx)
			m.poolMu.Lock()
			m.ps.cancelFill = cancel
			m.poolMu.Unlock()
			p, err := m.bootPooled(fctx)
			m.poolMu.Lock()
			m.ps.booting--
			m.ps.cancelFill = nil
			m.ps.fillCancelled = false
			if err == nil {
				m.ps.ready = append(m.ps.ready, p)
			}
			n := len(m.ps.ready)
			m.poolMu.Unlock()
			cancel()
			if err != nil {
				if ctx.Err() == nil && fctx.Err() == nil {
					m.log.Error("booting a pool VM", "err", err)
					select {
					case <-ctx.Done():
					case <-time.After(30 * time.Second):
					}
				}
				break
			}
			m.log.Info("pool VM ready", "vm", p.id, "ready", n, "boot_ms", p.v.Boot().Ready.Milliseconds())
			go m.watchPooled(p)
		}
		select {
		case <-ctx.Done():
			return
		case <-m.poolKick:
		case <-time.After(10 * time.Second):
		}
	}
}

// watchPooled drops a ready pool VM that exits on its own.
func (m *Manager) watchPooled(p *pooled) {
	<-p.v.Done()
	m.poolMu.Lock()
	found := false
	for i, q := range m.ps.ready {
		if q == p {
			m.ps.ready = append(m.ps.ready[:i], m.ps.ready[i+1:]...)
			found = true
			break
		}
	}
	m.poolMu.Unlock()
	if found {
		m.log.Warn("a ready pool VM exited; it is replaced", "vm", p.id)
		m.discardVM(p.id, nil)
		m.kickPool()
	}
}

// bootPooled makes one pool VM of the default size: restored from the
// memory template when there is one, else booted cold; either way with a
// fresh identity.
func (m *Manager) bootPooled(ctx context.Context) (_ *pooled, err error) {
	res := m.templateResources()
	id := uuid.NewString()
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() { m.discardVM(id, nil) })
	w := state.Workspace{ID: id, VCPUs: res.VCPUs, MemoryMB: res.MemoryMB}
	// Its own address, MAC and TAP from the start (a VM cannot gain a NIC
	// later); the rules let nothing through it until a workspace claims it.
	if err := m.addressPooled(ctx, &w); err != nil {
		return nil, err
	}
	v, err := m.startFresh(ctx, w, res)
	if err != nil {
		return nil, err
	}
	cu.Add(func() { _ = v.Kill() })
	if err := m.renew(ctx, v, newMachineID()); err != nil {
		return nil, err
	}
	cu.Release()
	return &pooled{id: id, v: v}, nil
}

// startFresh makes the disk of w (size res) and starts its VM: restored
// from the memory template when it serves res, else booted cold (with the
// reason logged). The guest is not configured or renewed yet; the VM is
// not adopted.
func (m *Manager) startFresh(ctx context.Context, w state.Workspace, res Resources) (*vm.VM, error) {
	t, why := m.templateFor(res)
	if t != nil && t.NIC != (m.spec(w, "").Net != nil) {
		// Networking seam: a workspace with a network interface cannot
		// resume a state saved without one (or the reverse).
		t, why = nil, "the memory template's network interface does not match this workspace's"
	}
	if err := m.prepareTAP(w); err != nil {
		return nil, err
	}
	if t != nil {
		v, err := m.restoreTemplate(ctx, w, t)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		m.log.Warn("restoring the memory template failed; booting cold and building a new template", "workspace", w.ID, "err", err)
		m.dropTemplate(t)
		if err := m.disks.Destroy(ctx, w.ID); err != nil {
			return nil, err
		}
	} else if why != "" {
		m.log.Info("booting cold", "workspace", w.ID, "reason", why)
	}
	disk, err := m.disks.Create(ctx, w.ID, m.image.RootfsPath(), m.diskBytes(res))
	if err != nil {
		return nil, fmt.Errorf("creating disk of %s: %w", w.ID, err)
	}
	return m.runner.Start(ctx, m.spec(w, disk))
}

// restoreTemplate gives w a disk on the template's layer and resumes the
// template's memory on it.
func (m *Manager) restoreTemplate(ctx context.Context, w state.Workspace, t *template) (*vm.VM, error) {
	disk, err := m.disks.Branch(ctx, w.ID, t.Layer)
	if err != nil {
		return nil, err
	}
	spec := m.spec(w, disk)
	if spec.Incoming, err = m.disks.MemoryPath(t.Layer); err != nil {
		return nil, err
	}
	return m.runner.Start(ctx, spec)
}

// drainPool ends every pool VM and the fill under way: at shutdown pool
// VMs do not outlive the daemon (they have no record).
func (m *Manager) drainPool() {
	m.poolMu.Lock()
	ready := m.ps.ready
	m.ps.ready = nil
	if m.ps.cancelFill != nil {
		m.ps.cancelFill()
	}
	m.poolMu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ready {
		wg.Go(func() { m.discardVM(p.id, p.v) })
	}
	wg.Wait()
	if len(ready) > 0 {
		m.log.Info("warm pool drained", "vms", len(ready))
	}
}

// PoolStatus reports how many pool VMs are ready and how many the pool
// aims for.
func (m *Manager) PoolStatus() (ready, target int) {
	m.poolMu.Lock()
	defer m.poolMu.Unlock()
	return len(m.ps.ready), m.poolTarget()
}
