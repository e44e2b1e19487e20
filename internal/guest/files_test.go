package guest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestAppendFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	fill := func(s string) func(*os.File) error {
		return func(f *os.File) error { _, err := f.WriteString(s); return err }
	}
	if err := appendFile(p, 0, fill("one\n")); err != nil {
		t.Fatal(err)
	}
	if err := appendFile(p, 0o600, fill("two\n")); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	fi, _ := os.Stat(p)
	if string(b) != "one\ntwo\n" || fi.Mode().Perm() != 0o600 {
		t.Errorf("after two appends: %q, mode %v", b, fi.Mode().Perm())
	}
}

func TestWriteAtomicCleansUpOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("old"), 0o644)
	err := writeAtomic(p, 0o644, func(f *os.File) error {
		f.WriteString("half of the new")
		return errors.New("upload broke")
	})
	if err == nil {
		t.Fatal("writeAtomic succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("the old file changed to %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}

func TestWriteAtomicSetsSpecialModeBits(t *testing.T) {
	p := filepath.Join(t.TempDir(), "tool")
	if err := writeAtomic(p, 0o4755, func(*os.File) error { return nil }); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if got := fileMode(fi); got != 0o4755 {
		t.Errorf("mode %o, want 4755", got)
	}
}

func TestClassOf(t *testing.T) {
	tests := []struct {
		err  error
		want errdefs.Class
	}{
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, errdefs.NotFound},
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.EACCES}, errdefs.PermissionDenied},
		{syscall.EROFS, errdefs.PermissionDenied},
		{syscall.ENOTDIR, errdefs.Invalid},
		{syscall.ENOSPC, errdefs.Quota},
		{syscall.EEXIST, errdefs.Conflict},
		{errors.New("odd"), errdefs.Internal},
	}
	for _, tt := range tests {
		if got := classOf(tt.err); got != tt.want {
			t.Errorf("classOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	err := fsError("reading", "/x", &os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT})
	if errdefs.Public(err) != "reading /x: no such file or directory" {
		t.Errorf("public text %q", errdefs.Public(err))
	}
}
