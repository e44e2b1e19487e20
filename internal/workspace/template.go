package workspace

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/cleanup"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/vm"
)

// templateFile names the record of the current memory template in
// TemplateOptions.Dir.
const templateFile = "template.json"

// TemplateOptions configure the memory template: the saved memory of a
// freshly booted base VM, made once per image, guest, QEMU and VM size.
// A create of that size restores it (like a fork of a memory snapshot)
// instead of booting a kernel: ~10x faster under TCG.
type TemplateOptions struct {
	// Enabled makes the manager build the template in the background and
	// restore it for creates it can serve.
	Enabled bool
	// Dir holds the template's record (the layer and memory state live in
	// the storage backend).
	Dir string
	// Salt is what else a saved state depends on beyond the image and the
	// VM size: the accelerator and the QEMU binary.
	Salt string
}

// template is a built memory template.
type template struct {
	// Key is the hash of everything the saved state depends on; a record
	// with another key is stale.
	Key string `json:"key"`
	// Layer is the frozen disk layer the state was saved with.
	Layer string `json:"layer"`
	// Resources is the VM size the state has: the only size it serves.
	Resources Resources `json:"resources"`
	// NIC says whether the saved VM had a network interface: a saved
	// state restores only into a VM with the same devices.
	NIC     bool      `json:"nic"`
	Created time.Time `json:"created"`
}

// templateResources is the size of the template: the configured defaults,
// which is what a create without sizes asks for.
func (m *Manager) templateResources() Resources {
	return Resources{VCPUs: m.limits.DefaultVCPUs, MemoryMB: m.limits.DefaultMemoryMB, DiskGB: m.limits.DefaultDiskGB}
}

// templateKey hashes what a saved state depends on: the image (kernel,
// initrd with the guest agent, root filesystem, kernel arguments), the
// salt (accelerator, QEMU), the VM size and whether VMs have a network
// interface (workspace networking on or off).
func (m *Manager) templateKey(res Resources) string {
	mf := m.image.Manifest
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s\x00%d/%d/%d\x00nic=%t",
		mf.Hash, mf.Rootfs, mf.Kernel, mf.Initrd, mf.GuestAgentSHA256,
		strings.Join(m.image.KernelArgs(), " "), m.template.Salt,
		res.VCPUs, res.MemoryMB, res.DiskGB, m.net != nil)
	return hex.EncodeToString(h.Sum(nil))
}

// loadTemplate reads the template record at start-up. A record whose key
// no longer matches (a new image, guest, QEMU or size) is stale: it is
// removed, and Prune removes its layer.
func (m *Manager) loadTemplate(ctx context.Context) {
	if m.template.Dir == "" {
		return
	}
	path := filepath.Join(m.template.Dir, templateFile)
	os.Remove(path + ".tmp") // a write a crash cut short
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			m.log.Warn("reading the memory template record", "err", err)
		}
		return
	}
	var t template
	why := ""
	switch {
	case json.Unmarshal(b, &t) != nil:
		why = "its record is unreadable"
	case !m.template.Enabled:
		why = "templates are disabled (pool.template)"
	case t.Key != m.templateKey(m.templateResources()):
		why = "the image, guest, QEMU or default VM size changed"
	default:
		if _, err := m.disks.Layer(ctx, t.Layer); err != nil {
			why = "its layer is missing"
		} else if mp, err := m.disks.MemoryPath(t.Layer); err != nil {
			why = "its memory state is missing"
		} else if _, err := os.Stat(mp); err != nil {
			why = "its memory state is missing"
		}
	}
	if why != "" {
		m.log.Info("memory template is stale; it goes and a new one is built", "reason", why)
		os.Remove(path)
		return
	}
	m.tmplMu.Lock()
	m.tmpl = &t
	m.tmplMu.Unlock()
	m.log.Info("memory template loaded", "layer", t.Layer, "vcpus", t.Resources.VCPUs, "memory_mb", t.Resources.MemoryMB, "disk_gb", t.Resources.DiskGB)
}

// templateFor returns the template that can serve a create of size res,
// or nil and the reason a cold boot is needed.
func (m *Manager) templateFor(res Resources) (*template, string) {
	if !m.template.Enabled {
		return nil, ""
	}
	m.tmplMu.Lock()
	t := m.tmpl
	m.tmplMu.Unlock()
	if t == nil {
		m.kickTemplate()
		return nil, "the memory template is not built yet"
	}
	if t.Resources != res {
		return nil, fmt.Sprintf("the memory template serves vcpus=%d memory_mb=%d disk_gb=%d only", t.Resources.VCPUs, t.Resources.MemoryMB, t.Resources.DiskGB)
	}
	return t, ""
}

// dropTemplate forgets t after a restore of it failed, so the next creates
// boot cold while a new one is built.
func (m *Manager) dropTemplate(t *template) {
	m.tmplMu.Lock()
	if m.tmpl == t {
		m.tmpl = nil
		os.Remove(filepath.Join(m.template.Dir, templateFile))
	}
	m.tmplMu.Unlock()
	m.pruneLayers(context.Background())
	m.kickTemplate()
}

// templatePins are the layers the template needs kept: the built one's and
// the one being made (pinned before its memory is saved, so a concurrent
// Prune never takes the state file).
func (m *Manager) templatePins() []string {
	m.tmplMu.Lock()
	defer m.tmplMu.Unlock()
	var out []string
	if m.tmpl != nil {
		out = append(out, m.tmpl.Layer)
	}
	if m.tmplPending != "" {
		out = append(out, m.tmplPending)
	}
	return out
}

// kickTemplate asks the background loop to build a template.
func (m *Manager) kickTemplate() {
	if !m.template.Enabled {
		return
	}
	select {
	case m.tmplKick <- struct{}{}:
	default:
	}
}

// templateLoop builds the template whenever there is none, until ctx ends.
func (m *Manager) templateLoop(ctx context.Context) {
	for {
		m.tmplMu.Lock()
		have := m.tmpl != nil
		m.tmplMu.Unlock()
		if !have {
			m.setBuilding(true)
			err := m.buildTemplate(ctx)
			m.setBuilding(false)
			if err != nil && ctx.Err() == nil {
				m.log.Error("building the memory template; creates boot cold meanwhile", "err", err)
				select { // do not spin on a persistent failure
				case <-ctx.Done():
				case <-time.After(time.Minute):
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-m.tmplKick:
		}
	}
}

func (m *Manager) setBuilding(b bool) {
	m.tmplMu.Lock()
	m.tmplBuilding = b
	m.tmplMu.Unlock()
}

// awaitTemplate waits, at most templateWait, while the template is being
// built: the pool's VMs then come from it, and the two boots do not share
// the host's CPUs.
func (m *Manager) awaitTemplate(ctx context.Context) {
	deadline := time.Now().Add(templateWait)
	for time.Now().Before(deadline) {
		m.tmplMu.Lock()
		building := m.tmplBuilding
		m.tmplMu.Unlock()
		if !building {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// templateWait bounds how long the pool waits for a template build.
const templateWait = 3 * time.Minute

// buildTemplate boots a VM of the template size on a fresh disk, pauses it
// as soon as its guest answers, freezes its disk and saves its memory with
// the frozen layer, then ends the VM and keeps the layer and state. The VM
// holds a slot of vm.max_total_vms while it runs, like a pool VM.
func (m *Manager) buildTemplate(ctx context.Context) (err error) {
	res := m.templateResources()
	if !m.reservePoolSlot(ctx, false) {
		return errors.New("no VM slot free for the template (vm.max_total_vms); retrying later")
	}
	defer m.releasePoolSlot()
	start := time.Now()
	id := uuid.NewString()
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() { m.discardVM(id, nil) })
	size := m.diskBytes(res)
	disk, err := m.disks.Create(ctx, id, m.image.RootfsPath(), size)
	if err != nil {
		return fmt.Errorf("creating the template disk: %w", err)
	}
	spec := m.spec(state.Workspace{ID: id, VCPUs: res.VCPUs, MemoryMB: res.MemoryMB}, disk)
	if spec.Net, err = m.templateNIC(); err != nil {
		return err
	}
	if spec.Net != nil {
		cu.Add(m.dropTemplateNIC)
	}
	v, err := m.runner.Start(ctx, spec)
	if err != nil {
		return fmt.Errorf("booting the template VM: %w", err)
	}
	cu.Add(func() { _ = v.Kill() })
	layer, err := m.disks.Top(id)
	if err != nil {
		return err
	}
	m.tmplMu.Lock()
	m.tmplPending = layer
	m.tmplMu.Unlock()
	defer func() {
		m.tmplMu.Lock()
		m.tmplPending = ""
		m.tmplMu.Unlock()
	}()
	if err := v.Pause(ctx); err != nil {
		return err
	}
	frozen, err := m.disks.Freeze(ctx, id, v.FreezeDisk)
	if err != nil {
		return fmt.Errorf("freezing the template disk: %w", err)
	}
	if frozen != layer {
		return fmt.Errorf("the template disk froze layer %s, expected %s", frozen, layer)
	}
	mp, err := m.disks.MemoryPath(frozen)
	if err != nil {
		return err
	}
	mem, err := v.SaveMemory(ctx, mp)
	if err != nil {
		return fmt.Errorf("saving the template memory: %w", err)
	}
	t := &template{Key: m.templateKey(res), Layer: frozen, Resources: res, NIC: spec.Net != nil, Created: time.Now().UTC()}
	if err := writeFileAtomic(filepath.Join(m.template.Dir, templateFile), t); err != nil {
		return err
	}
	m.tmplMu.Lock()
	m.tmpl = t
	m.tmplMu.Unlock()
	// The VM and its own top layer go; the frozen layer stays, pinned.
	m.discardVM(id, v)
	if spec.Net != nil {
		m.dropTemplateNIC()
	}
	cu.Release()
	m.log.Info("memory template built", "layer", frozen, "took", time.Since(start).Round(time.Millisecond),
		"memory_bytes", mem.Bytes, "vcpus", res.VCPUs, "memory_mb", res.MemoryMB, "disk_gb", res.DiskGB)
	return nil
}

// discardVM ends VM id (v, or the one found by its ID) and removes its
// disk and directories: the undo of a template or pool VM.
func (m *Manager) discardVM(id string, v *vm.VM) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if v == nil {
		res := m.templateResources() // the size of every template and pool VM
		v, _ = m.runner.Attach(ctx, m.spec(state.Workspace{ID: id, VCPUs: res.VCPUs, MemoryMB: res.MemoryMB}, ""))
	}
	if v != nil {
		if err := v.Kill(); err != nil {
			m.log.Error("killing VM", "vm", id, "err", err)
		}
	}
	if err := m.disks.Destroy(ctx, id); err != nil {
		m.log.Error("removing disk", "vm", id, "err", err)
	}
	m.dropPooledAddress(ctx, id)
	os.RemoveAll(m.logsOf(id))
	os.RemoveAll(m.spec(state.Workspace{ID: id}, "").RunDir)
}

// diskBytes is the virtual size of a new disk of size res.
func (m *Manager) diskBytes(res Resources) int64 {
	return max(int64(res.DiskGB)*gib, m.image.Manifest.RootfsVirtualSize)
}

// writeFileAtomic writes v as JSON to path through a temporary file and a
// rename, so a crash leaves the old record or the new one.
func writeFileAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err == nil {
		err = f.Sync()
		f.Close()
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}
