package qemu

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/testenv"
)

// startDiskQEMU starts a paused microvm (no kernel, so no guest runs) with
// disk as its one virtio-blk device, the way Argv attaches a root disk.
func startDiskQEMU(t *testing.T, disk string, extra ...string) *QMP {
	t.Helper()
	testenv.Require(t, "qemu", "qemu-img")
	qmpPath := filepath.Join(t.TempDir(), "qmp.sock")
	args := append([]string{
		"-machine", "microvm", "-accel", "tcg", "-m", "64M", "-nodefaults", "-no-user-config",
		"-display", "none", "-S",
		"-chardev", socketChardev("qmp", qmpPath), "-mon", "chardev=qmp,mode=control",
		"-blockdev", blockdevJSON(disk),
		"-device", "virtio-blk-device,drive=" + DiskNodeName,
	}, extra...)
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting qemu: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return dialTestQMP(t, qmpPath)
}

func qemuImg(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("qemu-img", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestSnapshotDiskSwitchesTheTop(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "a.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", disk, "64M")
	q := startDiskQEMU(t, disk)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	top, err := q.QueryDiskTop(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if top.Node != DiskNodeName || top.File != disk {
		t.Fatalf("QueryDiskTop() = %+v, want %s on %s", top, DiskNodeName, disk)
	}

	// A refused snapshot changes nothing.
	if err := q.SnapshotDisk(ctx, "no-such-node", filepath.Join(dir, "x.qcow2"), "x"); err == nil {
		t.Fatal("SnapshotDisk of a missing node succeeded")
	}
	if again, _ := q.QueryDiskTop(ctx); again != top {
		t.Fatalf("a refused snapshot moved the top to %+v", again)
	}

	next := filepath.Join(dir, "b.qcow2")
	if err := q.SnapshotDisk(ctx, top.Node, next, "nb"); err != nil {
		t.Fatal(err)
	}
	top, err = q.QueryDiskTop(ctx)
	if err != nil || top.Node != "nb" || top.File != next {
		t.Fatalf("after SnapshotDisk: %+v, %v; want nb on %s", top, err, next)
	}
	// The new overlay names the old top by its absolute path.
	if info := qemuImg(t, "info", "-U", next); !strings.Contains(info, "backing file: "+disk) {
		t.Errorf("the new top does not stand on the old one:\n%s", info)
	}
}

func TestSaveAndLoadState(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "a.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", disk, "64M")
	src := startDiskQEMU(t, disk)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// Save a machine that ran and was paused, as a workspace VM is.
	for _, cmd := range []string{"cont", "stop"} {
		if err := src.Execute(ctx, cmd, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	statePath := filepath.Join(dir, "state")
	f, err := os.OpenFile(statePath, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	info, err := src.SaveState(ctx, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(statePath)
	if info.Status != "completed" || fi.Size() == 0 {
		t.Fatalf("SaveState = %+v, file %d bytes", info, fi.Size())
	}
	if st, _ := src.QueryStatus(ctx); st.Status != "postmigrate" {
		t.Errorf("after SaveState the source is %q, want postmigrate (paused)", st.Status)
	}

	// A second machine of the same shape loads it.
	disk2 := filepath.Join(dir, "b.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", "-b", disk, "-F", "qcow2", disk2)
	dst := startDiskQEMU(t, disk2, "-incoming", "defer")
	if st, _ := dst.QueryStatus(ctx); st.Status != "inmigrate" {
		t.Fatalf("an -incoming defer machine is %q, want inmigrate", st.Status)
	}
	in, err := os.Open(statePath)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if _, err := dst.LoadState(ctx, in); err != nil {
		t.Fatal(err)
	}
	if st, _ := dst.QueryStatus(ctx); st.Status != "paused" {
		t.Errorf("after LoadState the machine is %q, want paused", st.Status)
	}
	if err := dst.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestLoadStateRefusesGarbage(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "a.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", disk, "64M")
	dst := startDiskQEMU(t, disk, "-incoming", "defer")
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("this is not a migration stream"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(garbage)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// QEMU exits on a stream it cannot load; either way it is an error.
	if _, err := dst.LoadState(ctx, f); err == nil {
		t.Fatal("LoadState accepted garbage")
	}
}

// TestStopMigrationEndsASaveLeftRunning: a save still writing its state
// file (a daemon that died mid-save leaves one running: QEMU holds the file)
// is cancelled, and the machine is left paused with its disk, not handed
// away.
//
// The save writes a regular file, as SaveMemory's does, slowed down by a
// bandwidth limit so that it is still running when StopMigration comes. Not
// a pipe nobody reads: QEMU cancels a save only between two writes, and one
// blocked on a full pipe never returns, so such a save stays "cancelling"
// for good once QEMU has filled the pipe's 64 KiB (it did, now and then,
// before migrate_cancel arrived).
func TestStopMigrationEndsASaveLeftRunning(t *testing.T) {
	dir := t.TempDir()
	disk := filepath.Join(dir, "a.qcow2")
	qemuImg(t, "create", "-q", "-f", "qcow2", disk, "64M")
	q := startDiskQEMU(t, disk)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ran, err := q.StopMigration(ctx); err != nil || ran {
		t.Fatalf("StopMigration with no migration = %v, %v", ran, err)
	}
	for _, cmd := range []string{"cont", "stop"} {
		if err := q.Execute(ctx, cmd, nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	// At 1 KiB/s the 64 MiB machine's stream (about 200 KiB, mostly zero
	// pages) takes minutes, far past this test's deadline.
	if err := q.Execute(ctx, "migrate-set-parameters", map[string]any{"max-bandwidth": 1024}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "state"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	err = q.GetFD(ctx, "slow", f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Execute(ctx, "migrate", map[string]any{"uri": "fd:slow"}, nil); err != nil {
		t.Fatal(err)
	}
	ran, err := q.StopMigration(ctx)
	if err != nil || !ran {
		t.Fatalf("StopMigration = %v, %v; want a running save ended", ran, err)
	}
	var info MigrationInfo
	if err := q.Execute(ctx, "query-migrate", nil, &info); err != nil || info.Status != "cancelled" {
		t.Fatalf("after StopMigration: %+v, %v; want cancelled", info, err)
	}
	// The machine keeps its disk: it can run and be saved again.
	if err := q.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := q.QueryStatus(ctx); st.Status != "running" {
		t.Errorf("after cont: %q", st.Status)
	}
}

// TestStreamLayersTakesAMiddleLayerOut: in base <- a <- u <- c <- top, with
// the VM holding top, u's content moves into c and c then stands on a.
func TestStreamLayersTakesAMiddleLayerOut(t *testing.T) {
	dir := t.TempDir()
	path := func(n string) string { return filepath.Join(dir, n+".qcow2") }
	qemuImg(t, "create", "-q", "-f", "qcow2", path("base"), "64M")
	prev := "base"
	for _, n := range []string{"a", "u", "c", "top"} {
		qemuImg(t, "create", "-q", "-f", "qcow2", "-b", path(prev), "-F", "qcow2", path(n))
		prev = n
	}
	if out, err := exec.Command("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 1M 2M", path("u")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	q := startDiskQEMU(t, path("top"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := q.StreamLayers(ctx, path("c"), "/no/such.qcow2"); err == nil {
		t.Fatal("StreamLayers onto a file outside the chain succeeded")
	}
	if err := q.StreamLayers(ctx, path("c"), path("a")); err != nil {
		t.Fatal(err)
	}
	if info := qemuImg(t, "info", "-U", path("c")); !strings.Contains(info, "backing file: "+path("a")+"\n") {
		t.Errorf("c does not stand on a after the stream:\n%s", info)
	}
	// c holds what u held: read c's chain without u.
	if out, err := exec.Command("qemu-io", "-r", "-U", "-f", "qcow2", "-c", "read -P 0x11 1M 2M", path("c")).CombinedOutput(); err != nil || strings.Contains(string(out), "Pattern verification failed") {
		t.Errorf("u's data is not in c: %v\n%s", err, out)
	}
	// The running VM no longer opens u.
	nodes, err := q.qcow2Nodes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := nodes[path("u")]; ok {
		t.Errorf("the VM still has u open: %v", nodes)
	}
}
