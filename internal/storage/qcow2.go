package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/names"
)

// topLayer is the file name of a workspace's writable layer inside its
// directory.
const topLayer = "disk.qcow2"

// Qcow2Config configures a Qcow2 backend.
type Qcow2Config struct {
	// Root holds one directory per workspace; it is created 0700.
	Root string
	// QemuImg is the qemu-img binary; empty means "qemu-img" from PATH.
	QemuImg string
	Logger  *slog.Logger
}

// Qcow2 keeps each workspace disk as a qcow2 overlay file whose backing
// file is the read-only base image: <root>/<id>/disk.qcow2, mode 0600.
type Qcow2 struct {
	root    string
	qemuImg string
	log     *slog.Logger
}

var _ Backend = (*Qcow2)(nil)

// NewQcow2 returns a qcow2 backend storing disks under cfg.Root.
func NewQcow2(cfg Qcow2Config) (*Qcow2, error) {
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("storage root %q: must be an absolute path", cfg.Root)
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("creating storage root: %w", err)
	}
	q := &Qcow2{root: filepath.Clean(cfg.Root), qemuImg: cfg.QemuImg, log: cfg.Logger}
	if q.qemuImg == "" {
		q.qemuImg = "qemu-img"
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	return q, nil
}

// Create makes id's disk as a qcow2 overlay on base. See Backend.
func (q *Qcow2) Create(ctx context.Context, id, base string, virtualSize int64) (_ string, err error) {
	if err := names.Validate("workspace id", id); err != nil {
		return "", errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	if virtualSize < 0 {
		return "", errdefs.Invalidf("disk size: %d is negative", virtualSize)
	}
	if !filepath.IsAbs(base) {
		// qemu-img would store a relative backing path, resolved against
		// the overlay's directory.
		return "", errdefs.Invalidf("base image %q: must be an absolute path", base)
	}
	baseInfo, err := q.info(ctx, base)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.With(errdefs.Unavailable, fmt.Sprintf("base image %s does not exist", base), err)
		}
		return "", fmt.Errorf("reading base image %s: %w", base, err)
	}
	if baseInfo.Format != "qcow2" {
		return "", errdefs.Unavailablef("base image %s is %s, not qcow2", base, baseInfo.Format)
	}
	if virtualSize == 0 {
		virtualSize = baseInfo.VirtualSize
	}
	if virtualSize < baseInfo.VirtualSize {
		return "", errdefs.Invalidf("disk size: %d bytes is smaller than the base image (%d bytes)", virtualSize, baseInfo.VirtualSize)
	}

	root, err := os.OpenRoot(q.root)
	if err != nil {
		return "", fmt.Errorf("opening storage root: %w", err)
	}
	defer root.Close()
	if err := root.Mkdir(id, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", errdefs.Conflictf("a disk for workspace %s already exists", id)
		}
		return "", fmt.Errorf("creating disk directory for %s: %w", id, err)
	}
	defer func() {
		if err != nil {
			if rmErr := root.RemoveAll(id); rmErr != nil {
				q.log.Warn("removing a half-made disk", "workspace", id, "err", rmErr)
			}
		}
	}()

	// Made under a temporary name and renamed: a disk under its real name
	// is always complete.
	tmp := filepath.Join(id, topLayer+".tmp")
	if _, err := hostcmd.Run(ctx, q.qemuImg, "create", "-q", "-f", "qcow2",
		"-b", base, "-F", "qcow2", filepath.Join(q.root, tmp), fmt.Sprint(virtualSize)); err != nil {
		return "", fmt.Errorf("creating overlay for %s: %w", id, err)
	}
	if err := root.Chmod(tmp, 0o600); err != nil {
		return "", fmt.Errorf("restricting overlay for %s: %w", id, err)
	}
	if err := root.Rename(tmp, filepath.Join(id, topLayer)); err != nil {
		return "", fmt.Errorf("renaming overlay for %s: %w", id, err)
	}
	q.log.Debug("disk created", "workspace", id, "base", base, "virtual_size", virtualSize)
	return q.layerPath(id), nil
}

// Path returns the path of id's overlay. See Backend.
func (q *Qcow2) Path(id string) (string, error) {
	if err := names.Validate("workspace id", id); err != nil {
		return "", errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	p := q.layerPath(id)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.NotFoundf("no disk for workspace %s", id)
		}
		return "", fmt.Errorf("checking disk of %s: %w", id, err)
	}
	return p, nil
}

// Usage reports id's virtual size and the space its layers take on the
// host. It works while a VM has the disk open.
func (q *Qcow2) Usage(ctx context.Context, id string) (Usage, error) {
	p, err := q.Path(id)
	if err != nil {
		return Usage{}, err
	}
	info, err := q.info(ctx, p)
	if err != nil {
		return Usage{}, fmt.Errorf("reading disk of %s: %w", id, err)
	}
	u := Usage{VirtualSize: info.VirtualSize}
	entries, err := os.ReadDir(filepath.Dir(p))
	if err != nil {
		return Usage{}, fmt.Errorf("listing disk layers of %s: %w", id, err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			u.Allocated += st.Blocks * 512
		}
	}
	return u, nil
}

// Destroy removes id's disk directory. See Backend.
func (q *Qcow2) Destroy(ctx context.Context, id string) error {
	if err := names.Validate("workspace id", id); err != nil {
		return errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	root, err := os.OpenRoot(q.root)
	if err != nil {
		return fmt.Errorf("opening storage root: %w", err)
	}
	defer root.Close()
	if err := root.RemoveAll(id); err != nil {
		return fmt.Errorf("removing disk of %s: %w", id, err)
	}
	return nil
}

func (q *Qcow2) layerPath(id string) string { return filepath.Join(q.root, id, topLayer) }

// imageInfo is the part of `qemu-img info --output=json` agentiso reads.
type imageInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

// info runs qemu-img info on path. -U (force-share) lets it read an image a
// running QEMU holds locked.
func (q *Qcow2) info(ctx context.Context, path string) (imageInfo, error) {
	if _, err := os.Stat(path); err != nil {
		return imageInfo{}, err
	}
	out, err := hostcmd.Run(ctx, q.qemuImg, "info", "-U", "--output=json", path)
	if err != nil {
		return imageInfo{}, err
	}
	var info imageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return imageInfo{}, fmt.Errorf("parsing qemu-img info of %s: %w", path, err)
	}
	return info, nil
}
