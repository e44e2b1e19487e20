package vm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/qemu"
)

// queryTimeout bounds the QMP question that settles whether a snapshot
// whose command failed switched the disk anyway.
const queryTimeout = 10 * time.Second

// MemoryInfo describes a saved memory state.
type MemoryInfo struct {
	// Bytes is the size of the state file.
	Bytes int64
	// Took is the time QEMU spent writing it; the VM was paused meanwhile.
	Took time.Duration
}

// Pause stops the guest's CPUs (QMP stop). QEMU finishes the disk I/O in
// flight first, so a disk layer frozen while paused agrees with memory.
func (v *VM) Pause(ctx context.Context) error {
	q, err := v.monitor()
	if err != nil {
		return err
	}
	if err := q.Execute(ctx, "stop", nil, nil); err != nil {
		return fmt.Errorf("pausing vm %s: %w", v.spec.ID, err)
	}
	return nil
}

// Resume lets a paused VM run again (QMP cont), also after SaveMemory.
func (v *VM) Resume(ctx context.Context) error {
	q, err := v.monitor()
	if err != nil {
		return err
	}
	if err := q.Execute(ctx, "cont", nil, nil); err != nil {
		return fmt.Errorf("resuming vm %s: %w", v.spec.ID, err)
	}
	return nil
}

// FreezeDisk moves the running VM onto a new top layer: QEMU creates newTop,
// a qcow2 file on the disk's current top, and writes only to it from then
// on; the old top is frozen (blockdev-snapshot-sync). It returns nil exactly
// when the VM writes to newTop. If QEMU cannot say whether it switched, the
// VM is killed, so no write ever goes to a layer nobody recorded.
func (v *VM) FreezeDisk(ctx context.Context, newTop string) error {
	q, err := v.monitor()
	if err != nil {
		return err
	}
	top, err := q.QueryDiskTop(ctx)
	if err != nil {
		return fmt.Errorf("finding the disk of vm %s: %w", v.spec.ID, err)
	}
	err = q.SnapshotDisk(ctx, top.Node, newTop, nodeName(newTop))
	if err == nil {
		return nil
	}
	var qe *qemu.QMPError
	if errors.As(err, &qe) {
		// QEMU refused: the switch is all or nothing, so nothing changed.
		return fmt.Errorf("freezing the disk of vm %s: %w", v.spec.ID, err)
	}
	qctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), queryTimeout)
	defer cancel()
	if after, qerr := q.QueryDiskTop(qctx); qerr == nil {
		if after.File == newTop {
			return nil
		}
		return fmt.Errorf("freezing the disk of vm %s: %w", v.spec.ID, err)
	}
	v.log.Error("vm did not say whether it switched to a new disk layer; killing it", "err", err)
	if kerr := v.Kill(); kerr != nil {
		v.log.Error("killing vm", "err", kerr)
	}
	return errdefs.With(errdefs.Unavailable, "the VM stopped answering during a snapshot and was stopped", err)
}

// SaveMemory writes the paused VM's memory and device state to path, a new
// file (mode 0600), and returns its size. The VM stays paused; Resume lets
// it run. On failure the file is removed.
func (v *VM) SaveMemory(ctx context.Context, path string) (_ MemoryInfo, err error) {
	q, err := v.monitor()
	if err != nil {
		return MemoryInfo{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return MemoryInfo{}, fmt.Errorf("creating the memory state file: %w", err)
	}
	defer func() {
		f.Close()
		if err != nil {
			os.Remove(path)
		}
	}()
	start := time.Now()
	if _, err := q.SaveState(ctx, f); err != nil {
		return MemoryInfo{}, fmt.Errorf("saving the memory of vm %s: %w", v.spec.ID, err)
	}
	took := time.Since(start)
	if err := f.Sync(); err != nil {
		return MemoryInfo{}, fmt.Errorf("syncing the memory state: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		return MemoryInfo{}, err
	}
	return MemoryInfo{Bytes: fi.Size(), Took: took}, nil
}

// StreamLayers takes the layers between the files child and parent out of
// the running VM's disk chain (QMP block-stream): their content moves into
// child, which then stands on parent. The guest sees the same disk
// throughout.
func (v *VM) StreamLayers(ctx context.Context, child, parent string) error {
	q, err := v.monitor()
	if err != nil {
		return err
	}
	if err := q.StreamLayers(ctx, child, parent); err != nil {
		return fmt.Errorf("merging disk layers of vm %s: %w", v.spec.ID, err)
	}
	return nil
}

// monitor returns the VM's QMP connection, or an error once it is gone.
func (v *VM) monitor() (*qemu.QMP, error) {
	q := v.QMP()
	if q == nil || v.hasExited() {
		return nil, errdefs.Unavailablef("vm %s is not running", v.spec.ID)
	}
	return q, nil
}

// loadMemory hands a VM started with Spec.Incoming its saved state.
func (v *VM) loadMemory(ctx context.Context, q *qemu.QMP) error {
	f, err := os.Open(v.spec.Incoming)
	if err != nil {
		return fmt.Errorf("opening the memory state: %w", err)
	}
	defer f.Close()
	start := time.Now()
	if _, err := q.LoadState(ctx, f); err != nil {
		return fmt.Errorf("loading the memory state: %w", err)
	}
	v.boot.LoadState = time.Since(start)
	return nil
}

// nodeName is the QMP node name of the layer at path: a letter, then what
// fits of the file's name (node names are at most 31 characters).
func nodeName(path string) string {
	base := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	b := []byte("n" + base)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) > 31 {
		b = b[:31]
	}
	return string(b)
}
