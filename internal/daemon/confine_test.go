package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/image"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/storage"
	"github.com/agentiso/agentiso/internal/testenv"
	"github.com/agentiso/agentiso/internal/vm"
)

func TestVMLimits(t *testing.T) {
	cfg := config.Default()
	cfg.Resources.VMMemoryOverheadMB = 192
	cfg.VM.TCGCacheMB = 256
	spec := vm.Spec{ID: "x", VCPUs: 2, MemoryMB: 512}
	if got, want := VMLimits(spec, cfg, qemu.AccelTCG), (cgroup.Limits{MemoryBytes: (512 + 192 + 256) << 20, Tasks: 98, CPUs: 2}); got != want {
		t.Errorf("TCG: %+v, want %+v", got, want)
	}
	if got, want := VMLimits(spec, cfg, qemu.AccelKVM), (cgroup.Limits{MemoryBytes: (512 + 192) << 20, Tasks: 98, CPUs: 2}); got != want {
		t.Errorf("KVM: %+v, want %+v", got, want)
	}
}

// testConfiner is a confiner on a cgroup parent of the test's own, removed
// when the test ends.
func testConfiner(t *testing.T, required bool) *confiner {
	t.Helper()
	testenv.Require(t, "root")
	b := make([]byte, 4)
	rand.Read(b)
	cfg := config.Default()
	cfg.Resources.CgroupParent = "agentiso-test-" + hex.EncodeToString(b)
	cfg.Resources.CgroupRequired = required
	c := newConfiner(cfg, qemu.AccelTCG, testenv.Logger(t))
	if c.why != nil {
		t.Fatalf("no usable cgroups on this host: %v", c.why)
	}
	t.Cleanup(func() {
		if err := c.cgroups.RemoveParent(); err != nil {
			t.Errorf("cgroups left behind: %v", err)
		}
	})
	return c
}

// startSleep starts a process that stands in for QEMU.
func startSleep(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "120")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func oomScoreAdj(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/oom_score_adj")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// canLowerOOMScore reports whether this process has CAP_SYS_RESOURCE,
// without which the kernel refuses to lower an OOM score.
func canLowerOOMScore(t *testing.T) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, _ := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps&(1<<24) != 0 // CAP_SYS_RESOURCE
		}
	}
	return false
}

// TestH9_OOMScoreOnlyAfterConfirmedLimit: the host lowers a VM's OOM score
// only once its memory limit is confirmed in force; a VM whose limits could
// not be applied keeps the default score, and with cgroup_required it does
// not run at all (H-8).
func TestH9_OOMScoreOnlyAfterConfirmedLimit(t *testing.T) {
	c := testConfiner(t, true)
	ctx := context.Background()
	spec := vm.Spec{ID: "h9-ok", VCPUs: 1, MemoryMB: 256}
	want := VMLimits(spec, config.Default(), qemu.AccelTCG)

	// Every score change is recorded, with what was in force at the time.
	type change struct {
		pid, adj int
		inForce  cgroup.Stats
		member   string
	}
	var changes []change
	c.setOOMScore = func(pid, adj int) error {
		st, _ := c.cgroups.Stats(spec.ID)
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		changes = append(changes, change{pid, adj, st, cgroup.ParseProcCgroup(string(b))[cgroup.Memory]})
		return setOOMScoreAdj(pid, adj)
	}

	pid := startSleep(t)
	if err := c.afterStart(ctx, spec, pid); err != nil {
		t.Fatalf("afterStart: %v", err)
	}
	if len(changes) != 1 || changes[0].pid != pid || changes[0].adj != VMOOMScoreAdj {
		t.Fatalf("score changes %+v, want one to %d for pid %d", changes, VMOOMScoreAdj, pid)
	}
	if ch := changes[0]; ch.inForce.MemoryLimitBytes != want.MemoryBytes || ch.inForce.TasksLimit != want.Tasks ||
		(c.cgroups.Layout().Version == cgroup.V1 && !strings.HasSuffix(ch.member, "/"+spec.ID)) {
		t.Errorf("the score changed before the limits were in force: %+v, want %+v", ch, want)
	}
	wantAdj := VMOOMScoreAdj
	if !canLowerOOMScore(t) {
		// This host withholds CAP_SYS_RESOURCE: the kernel refuses, the
		// score stays at the safe default, and the VM runs.
		t.Log("no CAP_SYS_RESOURCE here: the score stays 0")
		wantAdj = 0
	}
	if adj := oomScoreAdj(t, pid); adj != wantAdj {
		t.Errorf("confined: oom_score_adj = %d, want %d", adj, wantAdj)
	}
	syscallKill(pid)
	c.afterExit(spec)
	if _, err := os.Stat(c.cgroups.Dir(cgroup.Memory, spec.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("afterExit left the cgroup: %v", err)
	}

	// Limits that cannot be applied (here: refused by validation) leave
	// the score alone; required makes it an error, optional a warning.
	changes = nil
	bad := *c
	bad.limits = func(vm.Spec) cgroup.Limits { return cgroup.Limits{} }
	pid = startSleep(t)
	err := bad.afterStart(ctx, vm.Spec{ID: "h9-bad"}, pid)
	if !errdefs.Is(err, errdefs.Unavailable) || !strings.Contains(errdefs.Public(err), "resources.cgroup_required") {
		t.Errorf("required, limits not applied: %v, want Unavailable naming resources.cgroup_required", err)
	}
	bad.required = false
	if err := bad.afterStart(ctx, vm.Spec{ID: "h9-bad"}, pid); err != nil {
		t.Errorf("optional, limits not applied: %v, want a warning only", err)
	}
	bad.release("h9-bad")

	// No cgroups at all.
	none := &confiner{why: errdefs.Unavailablef("no usable cgroup hierarchy"), required: true, setOOMScore: c.setOOMScore, log: c.log}
	if err := none.afterStart(ctx, spec, pid); !errdefs.Is(err, errdefs.Unavailable) {
		t.Errorf("no cgroups, required: %v, want Unavailable", err)
	}
	none.required = false
	if err := none.afterStart(ctx, spec, pid); err != nil {
		t.Errorf("no cgroups, optional: %v", err)
	}
	none.afterExit(spec) // nothing to remove, and no panic
	if len(changes) != 0 || oomScoreAdj(t, pid) != 0 {
		t.Errorf("an unconfined process's score was changed: %+v", changes)
	}
}

func syscallKill(pid int) {
	p, _ := os.FindProcess(pid)
	p.Kill()
	p.Wait()
}

// TestH8_MemoryLimitKillsTheVMNotTheHost boots a real VM whose memory limit
// is below what its guest then uses: the kernel's OOM killer of the VM's
// own cgroup ends QEMU (its counter says so), the daemon side sees the VM
// exit and the cgroup is removed.
func TestH8_MemoryLimitKillsTheVMNotTheHost(t *testing.T) {
	testenv.Require(t, "root", "qemu", "qemu-img", "image")
	c := testConfiner(t, true)
	// Room to boot (a 512 MiB guest touches ~180 MiB doing so), not to
	// fill the guest's memory.
	const limitMB = 384
	c.limits = func(s vm.Spec) cgroup.Limits {
		return cgroup.Limits{MemoryBytes: limitMB << 20, Tasks: qemuBaseTasks + int64(s.VCPUs), CPUs: s.VCPUs}
	}
	var mu sync.Mutex
	var final cgroup.Stats
	var finalErr error
	r, err := vm.NewRunner(vm.Config{
		Accel:       qemu.AccelTCG,
		Dial:        dialGuest(testenv.Logger(t), channel.NewStreamLimit(64)),
		Logger:      testenv.Logger(t),
		BootTimeout: 90 * time.Second,
		TCGCacheMB:  64,
		AfterStart:  c.afterStart,
		AfterExit: func(s vm.Spec) {
			mu.Lock()
			final, finalErr = c.cgroups.Stats(s.ID)
			mu.Unlock()
			c.afterExit(s)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	spec := testVMSpec(t, "h8-oom", 512)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	v, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { v.Kill() })
	if adj := oomScoreAdj(t, v.PID()); adj != VMOOMScoreAdj && canLowerOOMScore(t) {
		t.Errorf("qemu's oom_score_adj = %d, want %d", adj, VMOOMScoreAdj)
	}

	// 420 MiB fits the 512 MiB guest but not QEMU in 384 MiB.
	cl := v.Channel().(*channel.Client)
	res, err := cl.Exec(ctx, protocol.Exec{Argv: []string{"python3", "-c", "x = b'a' * (420 << 20); import time; time.sleep(30)"}, MaxOutputBytes: 4096}, nil)
	if err == nil {
		t.Fatalf("the guest filled its memory and the VM lives on: %+v", res)
	}
	select {
	case <-v.Done():
	case <-ctx.Done():
		t.Fatal("the VM did not exit")
	}
	mu.Lock()
	defer mu.Unlock()
	if finalErr != nil {
		t.Fatalf("reading the cgroup's stats at exit: %v", finalErr)
	}
	t.Logf("at exit: %+v", final)
	if final.OOMKills < 1 {
		t.Errorf("the cgroup's OOM killer count is %d: QEMU was not ended by its own memory limit", final.OOMKills)
	}
	if final.MemoryPeakBytes > limitMB<<20 {
		t.Errorf("peak memory %d is above the %d MiB limit", final.MemoryPeakBytes, limitMB)
	}
	for _, ctl := range cgroup.Controllers {
		if _, err := os.Stat(c.cgroups.Dir(ctl, spec.ID)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the %s cgroup outlived the VM: %v", ctl, err)
		}
	}
}

// testVMSpec describes a VM on the test image with a fresh overlay.
func testVMSpec(t *testing.T, id string, memoryMB int) vm.Spec {
	t.Helper()
	img, err := image.Load(testenv.ImageDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	disks, err := storage.NewQcow2(storage.Qcow2Config{Root: filepath.Join(dir, "disks")})
	if err != nil {
		t.Fatal(err)
	}
	disk, err := disks.Create(context.Background(), id, img.RootfsPath(), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Keep socket paths short.
	run, err := os.MkdirTemp("/tmp", "agd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	return vm.Spec{
		ID: id, VCPUs: 1, MemoryMB: memoryMB,
		Kernel: img.KernelPath(), Initrd: img.InitrdPath(), KernelArgs: img.KernelArgs(),
		Disk: disk, RunDir: run, LogDir: filepath.Join(dir, "logs"),
	}
}
