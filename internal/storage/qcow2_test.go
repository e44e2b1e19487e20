package storage_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/storage"
	"github.com/agentiso/agentiso/internal/storage/storagetest"
	"github.com/agentiso/agentiso/internal/testenv"
)

const baseSize = 64 << 20

// baseDir holds the base image; TestMain removes it.
var baseDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if baseDir != "" {
		os.RemoveAll(baseDir)
	}
	os.Exit(code)
}

// baseOnce builds one read-only base image per test binary; the suite
// checks that no backend ever changes it.
var baseOnce = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "agentiso-storage-base-")
	if err != nil {
		return "", err
	}
	baseDir = dir
	p := filepath.Join(dir, "base.qcow2")
	ctx := context.Background()
	if _, err := hostcmd.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", p, fmt.Sprint(baseSize)); err != nil {
		return "", err
	}
	if _, err := hostcmd.Run(ctx, "qemu-io", "-f", "qcow2", "-c",
		fmt.Sprintf("write -P 0x%x 0 %d", storagetest.BasePattern, storagetest.PatternLen), p); err != nil {
		return "", err
	}
	return p, os.Chmod(p, 0o444)
})

// qemuIO runs one qemu-io command on the image at path. Reads open it
// read-only (-r). It reports whether a read's pattern check passed.
func qemuIO(t *testing.T, path, cmd string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"-f", "qcow2", "-c", cmd, path}
	if strings.HasPrefix(cmd, "read") {
		args = append([]string{"-r"}, args...)
	}
	out, err := hostcmd.Run(ctx, "qemu-io", args...)
	if strings.Contains(string(out), "Pattern verification failed") {
		return false
	}
	if err != nil {
		t.Fatalf("qemu-io %s: %v", cmd, err)
	}
	return true
}

func TestQcow2Conformance(t *testing.T) {
	testenv.Require(t, "qemu-img")
	storagetest.Run(t, storagetest.Harness{
		New: func(t *testing.T) storage.Backend {
			b, err := storage.NewQcow2(storage.Qcow2Config{Root: filepath.Join(t.TempDir(), "disks")})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		Base: func(t *testing.T) string {
			p, err := baseOnce()
			if err != nil {
				t.Fatalf("making the base image: %v", err)
			}
			return p
		},
		BaseSize: baseSize,
		Write: func(t *testing.T, path string, off, n int64, b byte) {
			qemuIO(t, path, fmt.Sprintf("write -P 0x%x %d %d", b, off, n))
		},
		Holds: func(t *testing.T, path string, off, n int64, b byte) bool {
			return qemuIO(t, path, fmt.Sprintf("read -P 0x%x %d %d", b, off, n))
		},
	})
}

func newQcow2(t testing.TB) (*storage.Qcow2, string, string) {
	t.Helper()
	testenv.Require(t, "qemu-img")
	base, err := baseOnce()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(t.TempDir(), "disks")
	b, err := storage.NewQcow2(storage.Qcow2Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	return b, root, base
}

func TestQcow2Layout(t *testing.T) {
	b, root, base := newQcow2(t)
	ctx := context.Background()
	p, err := b.Create(ctx, "ws1", base, 0)
	if err != nil {
		t.Fatal(err)
	}
	top, err := b.Top("ws1")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "layers", top+".qcow2"); p != want {
		t.Errorf("Create() = %q, want %q", p, want)
	}
	if ptr, err := os.ReadFile(filepath.Join(root, "disks", "ws1", "top")); err != nil || strings.TrimSpace(string(ptr)) != top {
		t.Errorf("top pointer = %q, %v; want %s", ptr, err, top)
	}
	// The layer names its base by absolute path and format.
	out, err := hostcmd.Run(ctx, "qemu-img", "info", "-U", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "backing file: "+base) || !strings.Contains(string(out), "backing file format: qcow2") {
		t.Errorf("layer does not name its base by path and format:\n%s", out)
	}
	for _, dir := range []string{root, filepath.Join(root, "layers"), filepath.Join(root, "disks"), filepath.Join(root, "disks", "ws1")} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", dir, fi.Mode().Perm())
		}
	}
	for _, f := range []string{p, filepath.Join(root, "disks", "ws1", "top")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", f, fi.Mode().Perm(), err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "layers")); len(entries) != 1 {
		t.Errorf("the layer store holds %d files, want only the new top", len(entries))
	}
}

// qemuLive does what QEMU's blockdev-snapshot-sync does to the disk files:
// it creates the new top on the current one.
func qemuLive(t *testing.T, b *storage.Qcow2, id string) func(context.Context, string) error {
	return func(ctx context.Context, newTop string) error {
		cur, err := b.Path(id)
		if err != nil {
			return err
		}
		_, err = hostcmd.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", cur, "-F", "qcow2", newTop)
		return err
	}
}

func TestQcow2LiveFreeze(t *testing.T) {
	b, root, base := newQcow2(t)
	ctx := context.Background()
	old, err := b.Create(ctx, "live", base, 0)
	if err != nil {
		t.Fatal(err)
	}
	oldTop, _ := b.Top("live")

	// A VM that fails to switch leaves everything as it was, including no
	// half-made file.
	_, err = b.Freeze(ctx, "live", func(ctx context.Context, newTop string) error {
		os.WriteFile(newTop, []byte("partial"), 0o644)
		return errors.New("qmp: refused")
	})
	if err == nil {
		t.Fatal("Freeze succeeded although the VM did not switch")
	}
	if p, _ := b.Path("live"); p != old {
		t.Errorf("a failed live Freeze moved the top to %s", p)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "layers")); len(entries) != 1 {
		t.Errorf("a failed live Freeze left %d files in the layer store", len(entries))
	}

	var newTop string
	frozen, err := b.Freeze(ctx, "live", func(ctx context.Context, p string) error {
		newTop = p
		return qemuLive(t, b, "live")(ctx, p)
	})
	if err != nil {
		t.Fatal(err)
	}
	if frozen != oldTop {
		t.Errorf("froze %s, want the old top %s", frozen, oldTop)
	}
	if p, _ := b.Path("live"); p != newTop || filepath.Dir(newTop) != filepath.Join(root, "layers") {
		t.Errorf("top is %s, want the VM's new top %s in the layer store", p, newTop)
	}
	if fi, err := os.Stat(newTop); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the VM-made top has mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

// TestQcow2RepairRecordsASwitchACrashInterrupted: a VM switched to a new top
// (blockdev-snapshot-sync) and the daemon died before it recorded that.
func TestQcow2RepairRecordsASwitchACrashInterrupted(t *testing.T) {
	b, root, base := newQcow2(t)
	ctx := context.Background()
	if _, err := b.Create(ctx, "crash", base, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "bystander", base, 0); err != nil {
		t.Fatal(err)
	}
	before, _ := b.Top("bystander")
	newTop := filepath.Join(root, "layers", "00112233445566778899aabbccddeeff.qcow2")
	if err := qemuLive(t, b, "crash")(ctx, newTop); err != nil {
		t.Fatal(err)
	}
	// A layer left half-made by a crash.
	if err := os.WriteFile(filepath.Join(root, "layers", "ffeeddccbbaa99887766554433221100.qcow2.tmp"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	if p, _ := b.Path("crash"); p != newTop {
		t.Errorf("after Repair the top is %s, want the one the VM switched to", p)
	}
	if after, _ := b.Top("bystander"); after != before {
		t.Error("Repair changed another disk")
	}
	removed, err := b.Prune(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || !strings.HasSuffix(removed[0], ".tmp") {
		t.Errorf("Prune removed %v, want only the half-made layer (the frozen one is under a disk)", removed)
	}
}

func TestNewQcow2RejectsRelativeRoot(t *testing.T) {
	if _, err := storage.NewQcow2(storage.Qcow2Config{Root: "disks"}); err == nil {
		t.Fatal("NewQcow2 accepted a relative root")
	}
}

func BenchmarkQcow2Create(b *testing.B) {
	testenv.Require(b, "qemu-img")
	base, err := baseOnce()
	if err != nil {
		b.Fatal(err)
	}
	s, err := storage.NewQcow2(storage.Qcow2Config{Root: filepath.Join(b.TempDir(), "disks")})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; b.Loop(); i++ {
		id := fmt.Sprintf("ws%d", i)
		if _, err := s.Create(ctx, id, base, 0); err != nil {
			b.Fatal(err)
		}
		if err := s.Destroy(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}
