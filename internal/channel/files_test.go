package channel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest"
)

func TestFileRoundTrip(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "new", "parents", "script.sh")

	content := "#!/bin/sh\necho hi\n"
	if err := p.c.WriteFile(ctx, path, 0o755, strings.NewReader(content), int64(len(content))); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	info, err := p.c.ReadFile(ctx, path, 0, 0, &got)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != content || info.Size != int64(len(content)) || info.Mode != 0o755 || info.MtimeNs == 0 {
		t.Errorf("read back %q, info %+v", got.String(), info)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "new", "parents")); fi.Mode().Perm() != 0o755 {
		t.Errorf("parent directory mode %v, want 0755", fi.Mode().Perm())
	}

	// Replacing the file without a mode keeps its mode; unknown size is fine.
	if err := p.c.WriteFile(ctx, path, 0, strings.NewReader("v2"), -1); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode after a rewrite %v, want 0755 kept", fi.Mode().Perm())
	}
	// A new file without a mode is 0644.
	plain := filepath.Join(dir, "plain")
	if err := p.c.WriteFile(ctx, plain, 0, strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(plain); fi.Mode().Perm() != 0o644 || fi.Size() != 0 {
		t.Errorf("new empty file: mode %v size %d", fi.Mode().Perm(), fi.Size())
	}
}

// pseudoRandom is a reproducible stream of n bytes that is not held in memory.
func pseudoRandom(n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), n)
}

func TestFileLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB transfer")
	}
	p := newPair(t, guest.Options{}, channel.Options{})
	// 64 MiB takes well under a second on an idle host; the bound is for a
	// loaded CI machine and the race detector, not a speed claim.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "big")
	sent := sha256.New()
	if err := p.c.WriteFile(ctx, path, 0, io.TeeReader(pseudoRandom(size), sent), size); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != size {
		t.Fatalf("guest file: %v, %v", fi, err)
	}
	read := sha256.New()
	info, err := p.c.ReadFile(ctx, path, 0, 0, read)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != size || !bytes.Equal(sent.Sum(nil), read.Sum(nil)) {
		t.Errorf("64 MiB round trip changed the data (info %+v)", info)
	}
}

func TestFileOffsetLimit(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	path := filepath.Join(t.TempDir(), "digits")
	os.WriteFile(path, []byte("0123456789"), 0o600)
	tests := []struct {
		offset, limit int64
		want          string
	}{
		{0, 0, "0123456789"},
		{3, 4, "3456"},
		{8, 100, "89"},
		{10, 0, ""},
		{50, 5, ""},
	}
	for _, tt := range tests {
		var got bytes.Buffer
		info, err := p.c.ReadFile(testCtx(t), path, tt.offset, tt.limit, &got)
		if err != nil {
			t.Fatalf("offset %d limit %d: %v", tt.offset, tt.limit, err)
		}
		if got.String() != tt.want || info.Size != 10 || info.Mode != 0o600 {
			t.Errorf("offset %d limit %d: %q (info %+v), want %q", tt.offset, tt.limit, got.String(), info, tt.want)
		}
	}
}

func TestFileErrors(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	dir := t.TempDir()
	afile := filepath.Join(dir, "afile")
	os.WriteFile(afile, []byte("x"), 0o644)

	read := func(path string) error {
		_, err := p.c.ReadFile(ctx, path, 0, 0, io.Discard)
		return err
	}
	write := func(path string) error {
		return p.c.WriteFile(ctx, path, 0, strings.NewReader("data"), 4)
	}
	tests := []struct {
		name  string
		err   error
		class errdefs.Class
		text  string
	}{
		{"missing file", read(filepath.Join(dir, "missing")), errdefs.NotFound, "reading " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{"directory", read(dir), errdefs.Invalid, "is a directory"},
		{"device", read("/dev/null"), errdefs.Invalid, "not a regular file"},
		{"relative path", read("etc/passwd"), errdefs.Invalid, "path: must be absolute"},
		{"parent is a file", write(filepath.Join(afile, "child")), errdefs.Invalid, "not a directory"},
		{"onto a directory", write(dir), errdefs.Invalid, dir + ": is a directory"},
		{"size mismatch", p.c.WriteFile(ctx, filepath.Join(dir, "short"), 0, strings.NewReader("abc"), 10), errdefs.Invalid, "got 3 bytes, announced 10"},
		{"too much data", p.c.WriteFile(ctx, filepath.Join(dir, "long"), 0, strings.NewReader("abcdef"), 2), errdefs.Invalid, "more than the announced 2 bytes"},
	}
	for _, tt := range tests {
		if !errdefs.Is(tt.err, tt.class) || !strings.Contains(errdefs.Public(tt.err), tt.text) {
			t.Errorf("%s: %v (class %v), want %v saying %q", tt.name, tt.err, errdefs.ClassOf(tt.err), tt.class, tt.text)
		}
	}
	for _, name := range []string{"short", "long"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("a refused upload left %s behind", name)
		}
	}
	if entries, _ := filepath.Glob(filepath.Join(dir, ".agentiso-*")); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

// failingReader fails after some data.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.ErrClosedPipe
	}
	k := min(len(p), r.n)
	r.n -= k
	return k, nil
}

// An upload the host cannot finish leaves nothing in the guest.
func TestFileWriteAbandoned(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "partial")
	err := p.c.WriteFile(testCtx(t), path, 0, &failingReader{n: 300 << 10}, -1)
	if err == nil || !strings.Contains(err.Error(), io.ErrClosedPipe.Error()) {
		t.Fatalf("WriteFile with a failing reader: %v", err)
	}
	// The guest learns of it when the stream ends, a moment later.
	var entries []os.DirEntry
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if entries, _ = os.ReadDir(dir); len(entries) == 0 {
			return
		}
	}
	t.Errorf("an abandoned upload left %v", entries)
}
