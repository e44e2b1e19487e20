package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"

	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/vm"
)

// VMOOMScoreAdj is the OOM score adjustment the host gives a VM's QEMU once
// its memory limit is confirmed (finding H-9): a host short of memory then
// prefers other victims to a VM that cannot grow past its limit anyway. A
// VM whose limit is not in force keeps the default 0. The group's own OOM
// killer still ends QEMU at the limit: unlike -1000, -500 leaves it
// killable.
const VMOOMScoreAdj = -500

// qemuBaseTasks is the threads a VM's QEMU may have besides one per vCPU:
// its block I/O worker pool (up to 64 threads), main loop, RCU and signal
// threads, with room to spare. Measured under TCG: 6 to 13 in use.
const qemuBaseTasks = 96

// VMLimits derives a VM's cgroup limits from its size (finding H-8):
// memory is the guest's plus what QEMU needs beside it (and, under TCG,
// its translated-code cache); CPU time is one core per vCPU; tasks are
// QEMU's threads.
func VMLimits(spec vm.Spec, cfg config.Config, accel qemu.Accel) cgroup.Limits {
	mb := spec.MemoryMB + cfg.Resources.VMMemoryOverheadMB
	if accel == qemu.AccelTCG {
		mb += cfg.VM.TCGCacheMB
	}
	return cgroup.Limits{
		MemoryBytes: int64(mb) << 20,
		Tasks:       qemuBaseTasks + int64(spec.VCPUs),
		CPUs:        spec.VCPUs,
	}
}

// confiner puts every VM's QEMU into a cgroup of its own with its limits
// before the guest runs, and removes the group when QEMU exits. Its methods
// are the vm runner's AfterStart and AfterExit hooks.
type confiner struct {
	// cgroups is nil when the host has no usable cgroups; why says why.
	cgroups  *cgroup.Manager
	why      error
	required bool
	limits   func(vm.Spec) cgroup.Limits
	// setOOMScore sets a process's oom_score_adj (setOOMScoreAdj).
	setOOMScore func(pid, adj int) error
	log         *slog.Logger
}

// newConfiner prepares the VMs' parent cgroup. A host without usable
// cgroups is not an error here: with resources.cgroup_required every VM
// then fails to start (fail closed), without it every VM runs unlimited
// with a warning.
func newConfiner(cfg config.Config, accel qemu.Accel, log *slog.Logger) *confiner {
	c := &confiner{
		required:    cfg.Resources.CgroupRequired,
		limits:      func(s vm.Spec) cgroup.Limits { return VMLimits(s, cfg, accel) },
		setOOMScore: setOOMScoreAdj,
		log:         log,
	}
	c.cgroups, c.why = cgroup.New(cgroup.Options{Parent: cfg.Resources.CgroupParent})
	switch {
	case c.why == nil:
		log.Info("vm resource limits", "cgroups", c.cgroups.Layout().String(), "parent", cfg.Resources.CgroupParent)
	case c.required:
		log.Error("no VM can start: their resource limits cannot be applied (resources.cgroup_required)", "err", c.why)
	default:
		log.Warn("VMs run without resource limits (resources.cgroup_required = false)", "err", c.why)
	}
	return c
}

// afterStart confines the QEMU of spec, pid, then lowers its OOM score.
func (c *confiner) afterStart(_ context.Context, spec vm.Spec, pid int) error {
	err := c.why
	if err == nil {
		err = c.cgroups.Apply(spec.ID, pid, c.limits(spec))
	}
	if err != nil {
		if c.required {
			return errdefs.With(errdefs.Unavailable,
				"resources: this host cannot apply the VM's memory, CPU and process limits, and resources.cgroup_required is set; `agentiso check` on the host says why", err)
		}
		c.log.Warn("vm runs without its resource limits (resources.cgroup_required = false)", "vm", spec.ID, "err", err)
		return nil
	}
	// Finding H-9: only now that the memory limit is confirmed in force.
	// Lowering a score needs CAP_SYS_RESOURCE; without it QEMU keeps the
	// default, which is safe.
	if err := c.setOOMScore(pid, VMOOMScoreAdj); err != nil {
		c.log.Warn("qemu keeps the default oom score", "vm", spec.ID, "err", err)
	}
	return nil
}

// afterExit removes the cgroup of a VM whose QEMU has exited.
func (c *confiner) afterExit(spec vm.Spec) { c.release(spec.ID) }

// release removes VM id's cgroup, if any.
func (c *confiner) release(id string) {
	if c.cgroups == nil {
		return
	}
	if err := c.cgroups.Remove(id); err != nil {
		c.log.Warn("removing vm cgroup", "vm", id, "err", err)
	}
}

func setOOMScoreAdj(pid, adj int) error {
	path := "/proc/" + strconv.Itoa(pid) + "/oom_score_adj"
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.WriteString(strconv.Itoa(adj)); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
