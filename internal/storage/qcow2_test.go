package storage_test

import (
	"context"
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

func TestQcow2Layout(t *testing.T) {
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
	ctx := context.Background()
	p, err := b.Create(ctx, "ws1", base, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(root, "ws1", "disk.qcow2"); p != want {
		t.Errorf("Create() = %q, want %q", p, want)
	}
	// The overlay names its base by absolute path and format.
	out, err := hostcmd.Run(ctx, "qemu-img", "info", "-U", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "backing file: "+base) || !strings.Contains(string(out), "backing file format: qcow2") {
		t.Errorf("overlay does not name its base by path and format:\n%s", out)
	}
	for _, dir := range []string{root, filepath.Dir(p)} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", dir, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("workspace directory holds %d files, want only the overlay", len(entries))
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
