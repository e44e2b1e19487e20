package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// TransferLimits confine file_transfer on the host.
type TransferLimits struct {
	// Dir is server.transfer_dir: every host path of a transfer resolves
	// inside it, symlinks included.
	Dir string
	// MaxBytes bounds one transfer (files.max_transfer_bytes).
	MaxBytes int64
}

// The directions of a transfer.
const (
	Upload   = "upload"   // host to guest
	Download = "download" // guest to host
)

// TransferResult is what file_transfer returns.
type TransferResult struct {
	Direction string `json:"direction"`
	// HostPath is the absolute host path, inside the transfer directory.
	HostPath   string `json:"host_path"`
	GuestPath  string `json:"guest_path"`
	Bytes      int64  `json:"bytes"`
	DurationMs int64  `json:"duration_ms"`
}

// Transfer copies a file between the host's transfer directory and
// workspace ref, streamed in chunks over the guest channel. hostPath is
// relative to the transfer directory or absolute inside it; it is opened
// through an os.Root on that directory, so no path, symlink or ".." can
// reach outside it. A host file with other hard links is refused (a link
// could bring in a file from outside), and both directions are bounded by
// MaxBytes. A download lands whole or not at all.
func (m *Manager) Transfer(ctx context.Context, c Caller, ref, direction, hostPath, guestPath string) (*TransferResult, error) {
	if direction != Upload && direction != Download {
		return nil, errdefs.Invalidf("direction: must be upload (host to workspace) or download (workspace to host)")
	}
	if err := checkGuestPath(guestPath); err != nil {
		return nil, errdefs.Invalidf("guest_%s", errdefs.Public(err))
	}
	rel, err := m.transferRel(hostPath)
	if err != nil {
		return nil, err
	}
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	_, g, err := m.liveVM(w)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(m.transfer.Dir)
	if err != nil {
		return nil, errdefs.With(errdefs.Unavailable, "host_path: the transfer directory (server.transfer_dir) is not available on the host", err)
	}
	defer root.Close()
	start := time.Now()
	var n int64
	if direction == Upload {
		n, err = m.upload(ctx, g, root, rel, guestPath)
	} else {
		n, err = m.download(ctx, g, root, rel, guestPath)
	}
	if err != nil {
		return nil, err
	}
	return &TransferResult{
		Direction: direction, HostPath: filepath.Join(m.transfer.Dir, rel), GuestPath: guestPath,
		Bytes: n, DurationMs: time.Since(start).Milliseconds(),
	}, nil
}

// transferRel turns host_path into a path relative to the transfer
// directory, refusing anything that is not lexically inside it (what
// symlinks resolve to is the os.Root's to check).
func (m *Manager) transferRel(hostPath string) (string, error) {
	if hostPath == "" {
		return "", errdefs.Invalidf("host_path: required")
	}
	rel := filepath.Clean(hostPath)
	if filepath.IsAbs(rel) {
		r, err := filepath.Rel(m.transfer.Dir, rel)
		if err != nil || !filepath.IsLocal(r) {
			return "", errdefs.Invalidf("host_path: must be inside the transfer directory %s (server.transfer_dir)", m.transfer.Dir)
		}
		rel = r
	}
	if rel == "." {
		return "", errdefs.Invalidf("host_path: names the transfer directory itself; give a file in it")
	}
	if !filepath.IsLocal(rel) {
		return "", errdefs.Invalidf("host_path: must be inside the transfer directory %s (server.transfer_dir)", m.transfer.Dir)
	}
	return rel, nil
}

// hostPathError classifies a failure to open rel in the transfer
// directory. os.Root reports a path that resolves outside it with an error
// that is no errno.
func hostPathError(err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errdefs.With(errdefs.NotFound, "host_path: no such file in the transfer directory", err)
	case errors.Is(err, fs.ErrPermission):
		return errdefs.With(errdefs.PermissionDenied, "host_path: permission denied", err)
	case errors.As(err, &errno):
		return errdefs.With(errdefs.Invalid, "host_path: "+errno.Error(), err)
	}
	return errdefs.With(errdefs.Invalid, "host_path: resolves outside the transfer directory (server.transfer_dir), symlinks included", err)
}

// upload sends rel to guestPath and returns its size.
func (m *Manager) upload(ctx context.Context, g Guest, root *os.Root, rel, guestPath string) (int64, error) {
	// Non-blocking, so a FIFO put in the directory cannot hang the call;
	// only a regular file is sent.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return 0, hostPathError(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, hostPathError(err)
	}
	if !fi.Mode().IsRegular() {
		return 0, errdefs.Invalidf("host_path: not a regular file")
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return 0, errdefs.Invalidf("host_path: the file has other hard links, which could bring in a file from outside the transfer directory; copy it instead")
	}
	if fi.Size() > m.transfer.MaxBytes {
		return 0, errdefs.Quotaf("host_path: %d bytes is more than a transfer may move (files.max_transfer_bytes = %d)", fi.Size(), m.transfer.MaxBytes)
	}
	if err := g.WriteFile(ctx, guestPath, uint32(fi.Mode().Perm()), f, fi.Size()); err != nil {
		return 0, guestError("guest_path", err)
	}
	return fi.Size(), nil
}

// errTooBig ends a download past the size limit.
var errTooBig = errors.New("larger than the transfer limit")

// limitWriter passes at most left bytes on, then fails.
type limitWriter struct {
	w    io.Writer
	left int64
	n    int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > l.left {
		return 0, errTooBig
	}
	n, err := l.w.Write(p)
	l.left -= int64(n)
	l.n += int64(n)
	return n, err
}

// download fetches guestPath into rel, through a temporary file renamed
// into place, and returns its size. The new file is 0644 whatever its mode
// in the guest: nothing from a guest becomes executable or setuid here.
func (m *Manager) download(ctx context.Context, g Guest, root *os.Root, rel, guestPath string) (_ int64, err error) {
	if fi, err := root.Lstat(rel); err == nil && fi.IsDir() {
		return 0, errdefs.Invalidf("host_path: is a directory")
	}
	if dir := filepath.Dir(rel); dir != "." {
		if err := root.MkdirAll(dir, 0o750); err != nil {
			return 0, hostPathError(err)
		}
	}
	tmp := filepath.Join(filepath.Dir(rel), ".agentiso-download-"+randomHex(8))
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, hostPathError(err)
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(tmp)
		}
	}()
	lw := &limitWriter{w: f, left: m.transfer.MaxBytes}
	if _, err := g.ReadFile(ctx, guestPath, 0, m.transfer.MaxBytes+1, lw); err != nil {
		if errors.Is(err, errTooBig) {
			return 0, errdefs.Quotaf("guest_path: the file is larger than a transfer may move (files.max_transfer_bytes = %d)", m.transfer.MaxBytes)
		}
		return 0, guestError("guest_path", err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", rel, err)
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("writing %s: %w", rel, err)
	}
	if err := root.Rename(tmp, rel); err != nil {
		return 0, hostPathError(err)
	}
	return lw.n, nil
}
