package workspace

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// memGuest is a guest whose files live in a map: the host side of a
// transfer is under test here, not the channel.
type memGuest struct {
	files map[string][]byte
	modes map[string]uint32
}

func (g *memGuest) Configure(context.Context, protocol.Configure) error { return nil }
func (g *memGuest) Exec(context.Context, protocol.Exec, func(protocol.Stream, string)) (*channel.ExecResult, error) {
	return nil, errdefs.Unavailablef("no exec here")
}
func (g *memGuest) WriteFile(_ context.Context, path string, mode uint32, r io.Reader, size int64) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return errdefs.Invalidf("upload of %s: got %d bytes, announced %d", path, len(b), size)
	}
	g.files[path], g.modes[path] = b, mode
	return nil
}
func (g *memGuest) ReadFile(_ context.Context, path string, offset, limit int64, w io.Writer) (*protocol.FileInfo, error) {
	b, ok := g.files[path]
	if !ok {
		return nil, errdefs.NotFoundf("reading %s: no such file or directory", path)
	}
	if limit > 0 && int64(len(b)) > limit {
		b = b[:limit]
	}
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	return &protocol.FileInfo{Size: int64(len(g.files[path]))}, nil
}

func transferSetup(t *testing.T) (*Manager, *memGuest, *os.Root, string, string) {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "transfer")
	outside := filepath.Join(base, "secret")
	for _, d := range []string{dir, outside, filepath.Join(dir, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(outside, "key"), []byte("secret"), 0o600)
	os.WriteFile(filepath.Join(dir, "in.bin"), []byte("\x00\x01binary\xff"), 0o755)
	os.Symlink(filepath.Join(outside, "key"), filepath.Join(dir, "abs-link"))
	os.Symlink("../secret/key", filepath.Join(dir, "rel-link"))
	os.Symlink("../secret", filepath.Join(dir, "dir-link"))
	os.Symlink("in.bin", filepath.Join(dir, "inside-link"))
	os.Link(filepath.Join(outside, "key"), filepath.Join(dir, "hard-link"))
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600)
	m := &Manager{transfer: TransferLimits{Dir: dir, MaxBytes: 1 << 20}}
	g := &memGuest{files: map[string][]byte{}, modes: map[string]uint32{}}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { root.Close() })
	return m, g, root, dir, outside
}

func TestTransferHostPathConfinedToTheTransferDir(t *testing.T) {
	m, g, root, dir, outside := transferSetup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		hostPath string
		class    errdefs.Class
		text     string
	}{
		{"", errdefs.Invalid, "host_path: required"},
		{"../secret/key", errdefs.Invalid, "inside the transfer directory"},
		{filepath.Join(outside, "key"), errdefs.Invalid, "inside the transfer directory"},
		{dir, errdefs.Invalid, "transfer directory itself"},
		{"/", errdefs.Invalid, "inside the transfer directory"},
		{"abs-link", errdefs.Invalid, "resolves outside"},
		{"rel-link", errdefs.Invalid, "resolves outside"},
		{"dir-link/key", errdefs.Invalid, "resolves outside"},
		{"hard-link", errdefs.Invalid, "hard links"},
		{"fifo", errdefs.Invalid, "not a regular file"},
		{"sub", errdefs.Invalid, "not a regular file"},
		{"missing", errdefs.NotFound, "no such file"},
	} {
		rel, err := m.transferRel(tc.hostPath)
		if err == nil {
			_, err = m.upload(ctx, g, root, rel, "/dst")
		}
		if !errdefs.Is(err, tc.class) || !strings.Contains(errdefs.Public(err), tc.text) || !strings.HasPrefix(errdefs.Public(err), "host_path") {
			t.Errorf("upload of %q: %v, want %s naming host_path and saying %q", tc.hostPath, err, tc.class, tc.text)
		}
		if strings.Contains(errdefs.Public(err), "secret") {
			t.Errorf("upload of %q: the error shows where the link leads: %q", tc.hostPath, errdefs.Public(err))
		}
	}
	if len(g.files) != 0 {
		t.Fatalf("a refused upload reached the guest: %v", g.files)
	}

	for _, hp := range []string{"in.bin", filepath.Join(dir, "in.bin"), "inside-link", "sub/../in.bin"} {
		rel, err := m.transferRel(hp)
		if err != nil {
			t.Fatalf("%q: %v", hp, err)
		}
		n, err := m.upload(ctx, g, root, rel, "/dst")
		if err != nil || n != 9 || string(g.files["/dst"]) != "\x00\x01binary\xff" || g.modes["/dst"] != 0o755 {
			t.Errorf("upload of %q: %d, %v; guest has %q mode %o", hp, n, err, g.files["/dst"], g.modes["/dst"])
		}
	}
}

func TestTransferDownload(t *testing.T) {
	m, g, root, dir, outside := transferSetup(t)
	ctx := context.Background()
	g.files["/src"] = bytes.Repeat([]byte("x"), 1000)
	for _, hp := range []string{"out/new.bin", "dir-link/key", "abs-link", "../escape"} {
		rel, err := m.transferRel(hp)
		if err == nil {
			_, err = m.download(ctx, g, root, rel, "/src")
		}
		switch hp {
		case "out/new.bin":
			if b, _ := os.ReadFile(filepath.Join(dir, "out/new.bin")); err != nil || len(b) != 1000 {
				t.Errorf("download to %s: %v, %d bytes", hp, err, len(b))
			}
			if fi, _ := os.Stat(filepath.Join(dir, "out/new.bin")); fi.Mode().Perm()&0o111 != 0 {
				t.Errorf("a downloaded file is executable: %v", fi.Mode())
			}
		case "abs-link":
			// The link itself is replaced; what it pointed to is untouched.
			if err != nil {
				t.Errorf("download over a link inside the directory: %v", err)
			}
		default:
			if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "host_path") {
				t.Errorf("download to %q: %v, want an Invalid host_path error", hp, err)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "key")); string(b) != "secret" {
		t.Errorf("a download changed a file outside the transfer directory: %q", b)
	}

	g.files["/big"] = make([]byte, 2<<20)
	rel, _ := m.transferRel("big.bin")
	if _, err := m.download(ctx, g, root, rel, "/big"); !errdefs.Is(err, errdefs.Quota) || !strings.Contains(errdefs.Public(err), "files.max_transfer_bytes") {
		t.Errorf("download over the limit: %v", err)
	}
	if _, err := m.download(ctx, g, root, rel, "/missing"); !errdefs.Is(err, errdefs.NotFound) || !strings.HasPrefix(errdefs.Public(err), "guest_path") {
		t.Errorf("download of a missing file: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() == "big.bin" || strings.HasPrefix(e.Name(), ".agentiso-download") {
			t.Errorf("a failed download left %s behind", e.Name())
		}
	}
	os.WriteFile(filepath.Join(dir, "huge"), make([]byte, 2<<20), 0o644)
	rel, _ = m.transferRel("huge")
	if _, err := m.upload(ctx, g, root, rel, "/huge"); !errdefs.Is(err, errdefs.Quota) {
		t.Errorf("upload over the limit: %v", err)
	}
}
