package vm

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/image"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/storage"
	"github.com/agentiso/agentiso/internal/testenv"
)

// layeredSpec is testSpec and the layer store its overlay is on, for tests
// that snapshot it.
func layeredSpec(t testing.TB, id string) (Spec, *storage.Qcow2) {
	t.Helper()
	testenv.Require(t, "root", "qemu", "qemu-img", "image")
	img, err := image.Load(testenv.ImageDir())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	disks, err := storage.NewQcow2(storage.Qcow2Config{Root: filepath.Join(dir, "disks")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	disk, err := disks.Create(ctx, id, img.RootfsPath(), 0)
	if err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		ID: id, VCPUs: 1, MemoryMB: 256,
		Kernel: img.KernelPath(), Initrd: img.InitrdPath(), KernelArgs: img.KernelArgs(),
		Disk: disk, RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "logs"),
	}
	t.Cleanup(func() { killStrays(t, spec) })
	return spec, disks
}

func mustExec(t *testing.T, ctx context.Context, v *VM, script string) string {
	t.Helper()
	out, code, err := testExec(ctx, v.Channel(), "/bin/sh", "-c", script)
	if err != nil || code != 0 {
		t.Fatalf("exec %q: exit %d, %v (output %q)", script, code, err, out)
	}
	return strings.TrimSpace(out)
}

// TestMemorySnapshotResumesProcesses saves a running VM's memory with a
// frozen disk layer, changes the VM, and resumes the saved state in a new
// QEMU: the process started before the snapshot is alive there, with the
// same PID, and the disk is as it was at the snapshot.
func TestMemorySnapshotResumesProcesses(t *testing.T) {
	spec, disks := layeredSpec(t, "memsnap")
	r := newTestRunner(t, nil)
	v := startTestVM(t, r, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	pid := mustExec(t, ctx, v, "sleep 1000 >/dev/null 2>&1 & echo $! > /root/pid; echo before > /root/state; sync; cat /root/pid")

	if err := v.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	frozen, err := disks.Freeze(ctx, spec.ID, v.FreezeDisk)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := disks.MemoryPath(frozen)
	if err != nil {
		t.Fatal(err)
	}
	info, err := v.SaveMemory(ctx, mem)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("memory state: %d bytes written in %v", info.Bytes, info.Took)
	if info.Bytes < 1<<20 {
		t.Errorf("memory state of %d bytes for a 256 MiB guest", info.Bytes)
	}

	// The source goes on, on its new top layer.
	mustExec(t, ctx, v, "kill "+pid+"; echo after > /root/state; sync")
	if top, _ := disks.Path(spec.ID); top == spec.Disk {
		t.Fatal("the VM's disk did not move to a new top layer")
	}

	restoredDisk, err := disks.Branch(ctx, "restored", frozen)
	if err != nil {
		t.Fatal(err)
	}
	rspec := spec
	rspec.ID = "memsnap-r"
	rspec.Disk = restoredDisk
	rspec.RunDir = filepath.Join(filepath.Dir(spec.RunDir), "run-r")
	rspec.LogDir = filepath.Join(filepath.Dir(spec.RunDir), "logs-r")
	rspec.Incoming = mem
	t.Cleanup(func() { killStrays(t, rspec) })
	rv := startTestVM(t, r, rspec)
	boot := rv.Boot()
	t.Logf("restored: qemu start to ready %v (loading the state %v)", boot.Ready, boot.LoadState)
	if boot.LoadState <= 0 {
		t.Errorf("BootInfo.LoadState = %v for a restored VM", boot.LoadState)
	}

	if got := mustExec(t, ctx, rv, "kill -0 "+pid+" && cat /proc/"+pid+"/cmdline | tr '\\0' ' '"); !strings.HasPrefix(got, "sleep 1000") {
		t.Errorf("pid %s in the restored VM runs %q, want the sleep started before the snapshot", pid, got)
	}
	if got := mustExec(t, ctx, rv, "cat /root/state"); got != "before" {
		t.Errorf("restored disk says %q, want the state at the snapshot", got)
	}
	// The restored VM writes to its own top, not to the frozen layer.
	mustExec(t, ctx, rv, "echo restored > /root/state; sync")
	if got := mustExec(t, ctx, v, "cat /root/state"); got != "after" {
		t.Errorf("source disk says %q after the restored VM wrote", got)
	}
}

// TestAttachResumesAPausedVM: a daemon that dies while a VM is paused for a
// snapshot must not leave it paused for ever; the next one resumes it.
func TestAttachResumesAPausedVM(t *testing.T) {
	spec := testSpec(t, "paused1")
	r := newTestRunner(t, nil)
	v := startTestVM(t, r, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := v.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	v.Detach()
	v2, err := r.Attach(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v2.Kill() })
	st, err := v2.QMP().QueryStatus(ctx)
	if err != nil || st.Status != "running" {
		t.Fatalf("after Attach the VM is %+v, %v; want running", st, err)
	}
	if got := mustExec(t, ctx, v2, "echo alive"); got != "alive" {
		t.Fatalf("exec after re-attach = %q", got)
	}
}

// TestAttachResumesAPausedVMMidOutput is TestAttachResumesAPausedVM with
// the guest writing to the channel when the VM is paused, and a daemon slow
// to connect the channel after resuming it: the guest writes while no
// connection is there. QEMU took no notice of the old connection ending
// while the VM was paused, so without the reset of the port (see
// resetChannelPort) that write throttles the port for good.
func TestAttachResumesAPausedVMMidOutput(t *testing.T) {
	spec := testSpec(t, "paused2")
	r := newTestRunner(t, nil)
	v := startTestVM(t, r, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startWriter(t, ctx, v)
	if err := v.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	v.Detach()
	slow := newTestRunner(t, func(c *Config) {
		c.Dial = func(ctx context.Context, path string) (Channel, error) {
			time.Sleep(time.Second)
			return testDial(ctx, path)
		}
	})
	v2, err := slow.Attach(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v2.Kill() })
	if got := mustExec(t, ctx, v2, "echo alive"); got != "alive" {
		t.Fatalf("exec after re-attach = %q", got)
	}
}

// TestAttachAfterChannelLostWhilePaused: a channel connection that ends
// while the VM is paused leaves QEMU's port state stale (it saw no
// disconnect) and, once the guest writes, throttled for good. Attaching to
// the running VM later must still reach the guest.
func TestAttachAfterChannelLostWhilePaused(t *testing.T) {
	spec := testSpec(t, "lostpaused")
	r := newTestRunner(t, nil)
	v := startTestVM(t, r, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	startWriter(t, ctx, v)
	if err := v.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	v.Channel().Close()
	if err := v.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	// Let the guest write into the port that lost its connection.
	time.Sleep(time.Second)
	v.Detach()
	v2, err := r.Attach(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v2.Kill() })
	if got := mustExec(t, ctx, v2, "echo alive"); got != "alive" {
		t.Fatalf("exec after re-attach = %q", got)
	}
}

// startWriter starts a command in v's guest that writes output as fast as
// it can, and returns once the output flows: from then on the guest keeps
// writing to the channel until the command is killed.
func startWriter(t *testing.T, ctx context.Context, v *VM) {
	t.Helper()
	c, ok := v.Channel().(*channel.Client)
	if !ok {
		t.Fatal("not a channel.Client")
	}
	h, err := c.StartExec(ctx, protocol.Exec{Argv: []string{"/bin/sh", "-c", "yes tick"}, MaxOutputBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	flowing := make(chan struct{})
	var once sync.Once
	go func() {
		defer h.Close()
		// It ends with an error when the channel goes.
		h.Wait(func(protocol.Stream, string) { once.Do(func() { close(flowing) }) })
	}()
	select {
	case <-flowing:
	case <-ctx.Done():
		t.Fatal("the writer wrote nothing")
	}
}

func TestNodeName(t *testing.T) {
	for in, want := range map[string]string{
		"/x/layers/0123456789abcdef0123456789abcdef.qcow2": "n0123456789abcdef0123456789abcd",
		"/x/a.b,c.qcow2": "na_b_c",
	} {
		if got := nodeName(in); got != want || len(got) > 31 {
			t.Errorf("nodeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// BenchmarkSnapshotAndFork measures, on one running source VM: a disk
// snapshot (the VM moves onto a new top layer), a memory snapshot (paused,
// disk frozen, memory saved, resumed), and a fork from each (a new top on
// the frozen layer, QEMU start to the guest answering: a cold boot for the
// disk snapshot, a resumed state for the memory one). Only the source and
// one fork run at a time.
func BenchmarkSnapshotAndFork(b *testing.B) {
	spec, disks := layeredSpec(b, "bench-src")
	r := newTestRunner(b, func(c *Config) { c.Logger = nil; c.BootTimeout = 2 * time.Minute })
	v := startTestVM(b, r, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()

	var diskLayer, memLayer string
	b.Run("snapshot-disk", func(b *testing.B) {
		for b.Loop() {
			l, err := disks.Freeze(ctx, spec.ID, v.FreezeDisk)
			if err != nil {
				b.Fatal(err)
			}
			diskLayer = l
		}
	})
	b.Run("snapshot-memory", func(b *testing.B) {
		var paused time.Duration
		var bytes int64
		for b.Loop() {
			start := time.Now()
			if err := v.Pause(ctx); err != nil {
				b.Fatal(err)
			}
			l, err := disks.Freeze(ctx, spec.ID, v.FreezeDisk)
			if err != nil {
				b.Fatal(err)
			}
			mem, _ := disks.MemoryPath(l)
			info, err := v.SaveMemory(ctx, mem)
			if err != nil {
				b.Fatal(err)
			}
			if err := v.Resume(ctx); err != nil {
				b.Fatal(err)
			}
			paused += time.Since(start)
			bytes = info.Bytes
			memLayer = l
		}
		b.ReportMetric(float64(paused.Milliseconds())/float64(b.N), "paused-ms/op")
		b.ReportMetric(float64(bytes)/(1<<20), "state-MiB")
	})
	fork := func(b *testing.B, layer string, memory bool) {
		n := 0
		for b.Loop() {
			n++
			id := fmt.Sprintf("bench-fork-%d-%v", n, memory)
			disk, err := disks.Branch(ctx, id, layer)
			if err != nil {
				b.Fatal(err)
			}
			fs := spec
			fs.ID, fs.Disk = id, disk
			fs.RunDir = filepath.Join(filepath.Dir(spec.RunDir), "run-"+id)
			fs.LogDir = filepath.Join(filepath.Dir(spec.RunDir), "logs-"+id)
			if memory {
				fs.Incoming, _ = disks.MemoryPath(layer)
			}
			fv, err := r.Start(ctx, fs)
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := fv.Kill(); err != nil {
				b.Fatal(err)
			}
			disks.Destroy(ctx, id)
			b.StartTimer()
		}
	}
	b.Run("fork-disk", func(b *testing.B) { fork(b, diskLayer, false) })
	b.Run("fork-memory", func(b *testing.B) { fork(b, memLayer, true) })
}
