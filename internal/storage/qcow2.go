package storage

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/names"
)

// The layout under a Qcow2 root:
//
//	layers/<layer>.qcow2   every layer, top or frozen, named by a random ID;
//	                       each names its parent (or the base image) as its
//	                       qcow2 backing file, by absolute path
//	layers/<layer>.mem     the memory state saved with a frozen layer
//	disks/<id>/top         the ID of workspace id's top layer
//
// Layer files never move or change their name, because QEMU records a
// layer's path in the header of the layer above it (blockdev-snapshot-sync
// writes the path the VM opened). The chain itself is read from those
// headers, so it can never disagree with what QEMU opens.
const (
	layersDirName = "layers"
	disksDirName  = "disks"
	topFileName   = "top"
	layerExt      = ".qcow2"
	memoryExt     = ".mem"
	tmpSuffix     = ".tmp"
	// maxChain bounds a walk down a chain: a loop in headers (which only a
	// damaged store could hold) must not hang the daemon.
	maxChain = 4096
)

// layerID is the form of every layer ID: 32 lowercase hex digits, so an ID
// from the state database can never name a path outside the store.
var layerID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Qcow2Config configures a Qcow2 backend.
type Qcow2Config struct {
	// Root holds the layers and disks; it is created 0700.
	Root string
	// QemuImg is the qemu-img binary; empty means "qemu-img" from PATH.
	QemuImg string
	Logger  *slog.Logger
}

// Qcow2 keeps layers as qcow2 files, each backed by the layer under it or by
// the read-only base image. Files are 0600 in 0700 directories.
type Qcow2 struct {
	root    string
	qemuImg string
	log     *slog.Logger
	// mu serialises every change to layers and top pointers, so Prune
	// never sees a layer half-made or half-switched.
	mu sync.Mutex
}

var _ Backend = (*Qcow2)(nil)

// NewQcow2 returns a qcow2 backend storing disks under cfg.Root.
func NewQcow2(cfg Qcow2Config) (*Qcow2, error) {
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("storage root %q: must be an absolute path", cfg.Root)
	}
	q := &Qcow2{root: filepath.Clean(cfg.Root), qemuImg: cfg.QemuImg, log: cfg.Logger}
	for _, d := range []string{q.root, q.layersDir(), q.disksDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating storage directory: %w", err)
		}
	}
	if q.qemuImg == "" {
		q.qemuImg = "qemu-img"
	}
	if q.log == nil {
		q.log = slog.New(slog.DiscardHandler)
	}
	return q, nil
}

// Create makes id's disk as a new top layer on base. See Backend.
func (q *Qcow2) Create(ctx context.Context, id, base string, virtualSize int64) (_ string, err error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if virtualSize < 0 {
		return "", errdefs.Invalidf("disk size: %d is negative", virtualSize)
	}
	if !filepath.IsAbs(base) {
		// qemu-img would store a relative backing path, resolved against
		// the layer's directory.
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

	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.makeDiskDir(id); err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			q.removeDiskDir(id)
		}
	}()
	top, err := q.newLayer(ctx, base, virtualSize)
	if err != nil {
		return "", fmt.Errorf("creating top layer for %s: %w", id, err)
	}
	if err := q.writeTop(id, top); err != nil {
		os.Remove(q.layerPath(top))
		return "", err
	}
	q.log.Debug("disk created", "workspace", id, "base", base, "virtual_size", virtualSize, "top", top)
	return q.layerPath(top), nil
}

// Path returns the path of id's top layer. See Backend.
func (q *Qcow2) Path(id string) (string, error) {
	top, err := q.Top(id)
	if err != nil {
		return "", err
	}
	p := q.layerPath(top)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.NotFoundf("no disk for workspace %s", id)
		}
		return "", fmt.Errorf("checking disk of %s: %w", id, err)
	}
	return p, nil
}

// Top returns the ID of id's top layer. See Backend.
func (q *Qcow2) Top(id string) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	return q.readTop(id)
}

// Usage reports id's virtual size and the space of its top and frozen
// layers. It works while a VM has the disk open.
func (q *Qcow2) Usage(ctx context.Context, id string) (Usage, error) {
	p, err := q.Path(id)
	if err != nil {
		return Usage{}, err
	}
	info, err := q.info(ctx, p)
	if err != nil {
		return Usage{}, fmt.Errorf("reading disk of %s: %w", id, err)
	}
	u := Usage{VirtualSize: info.VirtualSize, Allocated: allocated(p)}
	chain, err := q.Chain(ctx, id)
	if err != nil {
		return Usage{}, err
	}
	for _, l := range chain {
		u.Allocated += allocated(q.layerPath(l))
	}
	return u, nil
}

// Destroy removes id's top layer and top pointer. See Backend.
func (q *Qcow2) Destroy(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	top, err := q.readTop(id)
	switch {
	case err == nil:
		if err := os.Remove(q.layerPath(top)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing top layer of %s: %w", id, err)
		}
	case !errdefs.Is(err, errdefs.NotFound):
		q.log.Warn("destroying a disk whose top pointer is unreadable", "workspace", id, "err", err)
	}
	if err := q.removeDiskDir(id); err != nil {
		return fmt.Errorf("removing disk of %s: %w", id, err)
	}
	return nil
}

// Freeze makes id's top a frozen layer under a new, empty top. See Backend.
func (q *Qcow2) Freeze(ctx context.Context, id string, live func(ctx context.Context, newTop string) error) (string, error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	old, err := q.readTop(id)
	if err != nil {
		return "", err
	}
	var top string
	if live != nil {
		top = newLayerID()
		p := q.layerPath(top)
		if err := live(ctx, p); err != nil {
			// The VM did not switch: whatever it made there is unused.
			os.Remove(p)
			return "", err
		}
		// QEMU creates the file 0644; the directory keeps others out, and
		// the file is made private like every other layer.
		if err := os.Chmod(p, 0o600); err != nil {
			q.log.Warn("restricting a new top layer", "layer", top, "err", err)
		}
	} else {
		top, err = q.newLayer(ctx, q.layerPath(old), 0)
		if err != nil {
			return "", fmt.Errorf("creating top layer for %s: %w", id, err)
		}
	}
	if err := q.writeTop(id, top); err != nil {
		if live == nil {
			os.Remove(q.layerPath(top))
		} else {
			// The VM writes to the new top already; Repair records it at
			// the next start.
			q.log.Error("a running VM switched to a new top layer that could not be recorded", "workspace", id, "top", top, "err", err)
		}
		return "", err
	}
	q.log.Debug("layer frozen", "workspace", id, "frozen", old, "top", top, "live", live != nil)
	return old, nil
}

// Branch gives id a new top on a frozen layer. See Backend.
func (q *Qcow2) Branch(ctx context.Context, id, layer string) (_ string, err error) {
	if err := checkID(id); err != nil {
		return "", err
	}
	if err := checkLayer(layer); err != nil {
		return "", err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, err := os.Stat(q.layerPath(layer)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.NotFoundf("layer %s does not exist", layer)
		}
		return "", fmt.Errorf("checking layer %s: %w", layer, err)
	}
	tops, err := q.tops()
	if err != nil {
		return "", err
	}
	for _, t := range tops {
		if t == layer {
			return "", errdefs.Conflictf("layer %s is a disk's writable top, not a frozen layer", layer)
		}
	}
	old, err := q.readTop(id)
	replacing := err == nil
	if err != nil {
		if !errdefs.Is(err, errdefs.NotFound) {
			return "", err
		}
		if err := q.makeDiskDir(id); err != nil {
			return "", err
		}
		defer func() {
			if err != nil {
				q.removeDiskDir(id)
			}
		}()
	}
	top, err := q.newLayer(ctx, q.layerPath(layer), 0)
	if err != nil {
		return "", fmt.Errorf("creating top layer for %s: %w", id, err)
	}
	if err := q.writeTop(id, top); err != nil {
		os.Remove(q.layerPath(top))
		return "", err
	}
	if replacing {
		if err := os.Remove(q.layerPath(old)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// Prune removes it later: it is no disk's top any more.
			q.log.Warn("removing a replaced top layer", "workspace", id, "layer", old, "err", err)
		}
	}
	q.log.Debug("disk branched", "workspace", id, "layer", layer, "top", top, "replaced", replacing)
	return q.layerPath(top), nil
}

// Squash takes a frozen layer out of id's chain. See Backend.
func (q *Qcow2) Squash(ctx context.Context, id, layer string, live func(ctx context.Context, child, parent string) error) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := checkLayer(layer); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	top, err := q.readTop(id)
	if err != nil {
		return err
	}
	chain, err := q.chainOf(top)
	if err != nil {
		return err
	}
	i := slices.Index(chain, layer)
	if i < 0 {
		return errdefs.NotFoundf("layer %s is not under the disk of %s", layer, id)
	}
	child := top
	if i > 0 {
		child = chain[i-1]
	}
	// Any other disk standing on the layer stands on child's file too, or
	// on the layer directly: either way the layer is not id's to change.
	ids, err := q.diskIDs()
	if err != nil {
		return err
	}
	for _, other := range ids {
		if other == id {
			continue
		}
		t, err := q.readTop(other)
		if err != nil {
			continue
		}
		oc, err := q.chainOf(t)
		if err != nil {
			return err
		}
		if t == layer || slices.Contains(oc, layer) {
			return errdefs.Conflictf("layer %s is shared with another disk", layer)
		}
	}
	parent, err := readBacking(q.layerPath(layer))
	if err != nil {
		return fmt.Errorf("reading layer %s: %w", layer, err)
	}
	if parent == "" {
		return fmt.Errorf("layer %s has no backing file", layer)
	}
	childPath := q.layerPath(child)
	if live != nil {
		err = live(ctx, childPath, parent)
	} else {
		// Safe mode: what child does not hold itself and the layer held is
		// copied into child before its backing changes.
		_, err = hostcmd.Run(ctx, q.qemuImg, "rebase", "-q", "-f", "qcow2", "-b", parent, "-F", "qcow2", childPath)
	}
	if err != nil {
		return fmt.Errorf("squashing layer %s of %s: %w", layer, id, err)
	}
	// The chain is read from the headers: check that the child moved.
	if b, err := readBacking(childPath); err != nil || b != parent {
		return fmt.Errorf("squashing layer %s of %s: its child stands on %q, want %q (%v)", layer, id, b, parent, err)
	}
	q.log.Debug("layer squashed", "workspace", id, "layer", layer, "into", child, "live", live != nil)
	return nil
}

// Chain lists the frozen layers under id's top, nearest first.
func (q *Qcow2) Chain(ctx context.Context, id string) ([]string, error) {
	top, err := q.Top(id)
	if err != nil {
		return nil, err
	}
	return q.chainOf(top)
}

// chainOf lists the layers under layer, nearest first.
func (q *Qcow2) chainOf(layer string) ([]string, error) {
	var chain []string
	for cur := layer; ; {
		parent, err := q.parent(cur)
		if err != nil {
			return nil, err
		}
		if parent == "" {
			return chain, nil
		}
		chain = append(chain, parent)
		if len(chain) > maxChain {
			return nil, fmt.Errorf("layer %s: chain longer than %d (a loop?)", layer, maxChain)
		}
		cur = parent
	}
}

// Layer describes a frozen layer.
func (q *Qcow2) Layer(ctx context.Context, layer string) (LayerInfo, error) {
	if err := checkLayer(layer); err != nil {
		return LayerInfo{}, err
	}
	p := q.layerPath(layer)
	if _, err := os.Stat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return LayerInfo{}, errdefs.NotFoundf("layer %s does not exist", layer)
		}
		return LayerInfo{}, err
	}
	parent, err := q.parent(layer)
	if err != nil {
		return LayerInfo{}, err
	}
	info := LayerInfo{Parent: parent, Allocated: allocated(p)}
	if fi, err := os.Stat(q.memoryPath(layer)); err == nil {
		info.MemoryBytes = fi.Size()
	}
	return info, nil
}

// MemoryPath is where layer's memory state is kept.
func (q *Qcow2) MemoryPath(layer string) (string, error) {
	if err := checkLayer(layer); err != nil {
		return "", err
	}
	return q.memoryPath(layer), nil
}

// Dependents lists the workspaces whose disk has layer in its chain.
func (q *Qcow2) Dependents(ctx context.Context, layer string) ([]string, error) {
	if err := checkLayer(layer); err != nil {
		return nil, err
	}
	ids, err := q.diskIDs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		top, err := q.readTop(id)
		if err != nil {
			continue
		}
		chain, err := q.chainOf(top)
		if err != nil {
			return nil, err
		}
		if top == layer || slices.Contains(chain, layer) {
			out = append(out, id)
		}
	}
	return out, nil
}

// Prune removes the layers and memory states nothing needs. See Backend.
func (q *Qcow2) Prune(ctx context.Context, pins map[string]Pin) ([]string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	tops, err := q.tops()
	if err != nil {
		return nil, err
	}
	needed := map[string]bool{}
	var errs []error
	for _, l := range append(tops, pinned(pins)...) {
		if needed[l] {
			continue
		}
		if _, err := os.Stat(q.layerPath(l)); err != nil {
			continue // a pin whose layer is gone already
		}
		needed[l] = true
		chain, err := q.chainOf(l)
		if err != nil {
			// Keep everything rather than guess what this chain needs.
			return nil, fmt.Errorf("reading the chain of %s: %w", l, err)
		}
		for _, c := range chain {
			needed[c] = true
		}
	}
	entries, err := os.ReadDir(q.layersDir())
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	var removed []string
	for _, e := range entries {
		name := e.Name()
		l, ext := strings.TrimSuffix(name, filepath.Ext(name)), filepath.Ext(name)
		var drop bool
		switch {
		case strings.HasSuffix(name, tmpSuffix):
			drop = true // a layer that was never finished
		case ext == layerExt && layerID.MatchString(l):
			drop = !needed[l]
		case ext == memoryExt && layerID.MatchString(l):
			drop = !pins[l].Memory
		default:
			q.log.Warn("unknown file in the layer store", "file", name)
		}
		if !drop {
			continue
		}
		if err := os.Remove(filepath.Join(q.layersDir(), name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	if len(removed) > 0 {
		q.log.Debug("layers pruned", "removed", removed)
	}
	return removed, errors.Join(errs...)
}

// Repair records new tops that running VMs switched to just before a crash.
func (q *Qcow2) Repair(ctx context.Context) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids, err := q.diskIDs()
	if err != nil {
		return err
	}
	tops := map[string]string{} // layer -> disk
	for _, id := range ids {
		if t, err := q.readTop(id); err == nil {
			tops[t] = id
		}
	}
	entries, err := os.ReadDir(q.layersDir())
	if err != nil {
		return fmt.Errorf("listing layers: %w", err)
	}
	for _, e := range entries {
		l, ok := strings.CutSuffix(e.Name(), layerExt)
		if !ok || !layerID.MatchString(l) || tops[l] != "" {
			continue
		}
		parent, err := q.parent(l)
		if err != nil {
			q.log.Warn("reading a layer's parent", "layer", l, "err", err)
			continue
		}
		// A top is writable and never has a layer on it, except during a
		// Freeze: the VM switched to l, the pointer had yet to follow.
		if id := tops[parent]; id != "" {
			if err := q.writeTop(id, l); err != nil {
				return err
			}
			delete(tops, parent)
			tops[l] = id
			q.log.Warn("recorded a new top layer that a crash left unrecorded", "workspace", id, "top", l, "frozen", parent)
		}
	}
	return nil
}

// Space reports the free and total space of the store's filesystem.
func (q *Qcow2) Space(ctx context.Context) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(q.root, &st); err != nil {
		return Space{}, fmt.Errorf("checking free space of %s: %w", q.root, err)
	}
	return Space{Free: int64(st.Bavail) * st.Bsize, Total: int64(st.Blocks) * st.Bsize}, nil
}

func (q *Qcow2) layersDir() string              { return filepath.Join(q.root, layersDirName) }
func (q *Qcow2) disksDir() string               { return filepath.Join(q.root, disksDirName) }
func (q *Qcow2) layerPath(layer string) string  { return filepath.Join(q.layersDir(), layer+layerExt) }
func (q *Qcow2) memoryPath(layer string) string { return filepath.Join(q.layersDir(), layer+memoryExt) }
func (q *Qcow2) topPath(id string) string       { return filepath.Join(q.disksDir(), id, topFileName) }

// newLayer makes a new layer file on backing, made under a temporary name
// and renamed, so a layer under its real name is always complete. Size 0
// takes the backing's virtual size.
func (q *Qcow2) newLayer(ctx context.Context, backing string, size int64) (string, error) {
	l := newLayerID()
	tmp := q.layerPath(l) + tmpSuffix
	args := []string{"create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2", tmp}
	if size > 0 {
		args = append(args, fmt.Sprint(size))
	}
	if _, err := hostcmd.Run(ctx, q.qemuImg, args...); err != nil {
		os.Remove(tmp)
		return "", err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("restricting layer: %w", err)
	}
	if err := os.Rename(tmp, q.layerPath(l)); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("naming layer: %w", err)
	}
	return l, nil
}

// makeDiskDir creates id's directory; an existing one is a conflict.
func (q *Qcow2) makeDiskDir(id string) error {
	root, err := os.OpenRoot(q.disksDir())
	if err != nil {
		return fmt.Errorf("opening disk directory: %w", err)
	}
	defer root.Close()
	if err := root.Mkdir(id, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errdefs.Conflictf("a disk for workspace %s already exists", id)
		}
		return fmt.Errorf("creating disk directory for %s: %w", id, err)
	}
	return nil
}

func (q *Qcow2) removeDiskDir(id string) error {
	root, err := os.OpenRoot(q.disksDir())
	if err != nil {
		return fmt.Errorf("opening disk directory: %w", err)
	}
	defer root.Close()
	return root.RemoveAll(id)
}

// readTop reads id's top pointer.
func (q *Qcow2) readTop(id string) (string, error) {
	b, err := os.ReadFile(q.topPath(id))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", errdefs.NotFoundf("no disk for workspace %s", id)
		}
		return "", fmt.Errorf("reading the top layer of %s: %w", id, err)
	}
	l := strings.TrimSpace(string(b))
	if !layerID.MatchString(l) {
		return "", fmt.Errorf("the top pointer of %s holds %.40q, not a layer ID", id, l)
	}
	return l, nil
}

// writeTop points id at layer, atomically and durably.
func (q *Qcow2) writeTop(id, layer string) error {
	p := q.topPath(id)
	tmp := p + tmpSuffix
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("recording the top layer of %s: %w", id, err)
	}
	_, werr := f.WriteString(layer + "\n")
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording the top layer of %s: %w", id, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recording the top layer of %s: %w", id, err)
	}
	if d, err := os.Open(filepath.Dir(p)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Disks lists the IDs of the disks in the store.
func (q *Qcow2) Disks(ctx context.Context) ([]string, error) { return q.diskIDs() }

// diskIDs lists the workspaces that have a disk directory.
func (q *Qcow2) diskIDs() ([]string, error) {
	entries, err := os.ReadDir(q.disksDir())
	if err != nil {
		return nil, fmt.Errorf("listing disks: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && names.Validate("id", e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// tops lists every disk's top layer.
func (q *Qcow2) tops() ([]string, error) {
	ids, err := q.diskIDs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ids {
		t, err := q.readTop(id)
		if errdefs.Is(err, errdefs.NotFound) {
			continue // a disk being made or removed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// parent returns the layer under layer, or "" when it sits on a base image.
func (q *Qcow2) parent(layer string) (string, error) {
	backing, err := readBacking(q.layerPath(layer))
	if err != nil {
		return "", fmt.Errorf("reading layer %s: %w", layer, err)
	}
	if backing == "" || filepath.Dir(backing) != q.layersDir() {
		return "", nil
	}
	l, ok := strings.CutSuffix(filepath.Base(backing), layerExt)
	if !ok || !layerID.MatchString(l) {
		return "", fmt.Errorf("layer %s: backing file %q is in the layer store but is no layer", layer, backing)
	}
	return l, nil
}

// maxBackingName is the longest backing file name the qcow2 format allows.
const maxBackingName = 1023

// readBacking reads the backing file name from a qcow2 header: the format
// keeps it at the offset and length stored in bytes 8-19.
func readBacking(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var h [20]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return "", fmt.Errorf("reading the qcow2 header: %w", err)
	}
	if string(h[:4]) != "QFI\xfb" {
		return "", errors.New("not a qcow2 file")
	}
	off := binary.BigEndian.Uint64(h[8:16])
	size := binary.BigEndian.Uint32(h[16:20])
	if off == 0 || size == 0 {
		return "", nil
	}
	if size > maxBackingName {
		return "", fmt.Errorf("backing file name of %d bytes", size)
	}
	name := make([]byte, size)
	if _, err := f.ReadAt(name, int64(off)); err != nil {
		return "", fmt.Errorf("reading the backing file name: %w", err)
	}
	return string(name), nil
}

// pinned lists the layers of pins.
func pinned(pins map[string]Pin) []string {
	out := make([]string, 0, len(pins))
	for l := range pins {
		if layerID.MatchString(l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

func newLayerID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func checkID(id string) error {
	if err := names.Validate("workspace id", id); err != nil {
		return errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	return nil
}

func checkLayer(layer string) error {
	if !layerID.MatchString(layer) {
		return errdefs.Invalidf("layer: %.40q is not a layer ID", layer)
	}
	return nil
}

// allocated is the host space a file takes; 0 if it is gone.
func allocated(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Blocks * 512
	}
	return fi.Size()
}

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
