package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// migrationPoll is how often a migration's progress is asked for.
const migrationPoll = 5 * time.Millisecond

// DiskTop is the top node of a VM's root disk as QEMU has it open.
type DiskTop struct {
	// Node is the block node name (DiskNodeName after boot; the name given
	// to SnapshotDisk after each snapshot).
	Node string
	// File is the qcow2 file of that node.
	File string
}

// QueryDiskTop returns the top node of the VM's one block device. After a
// blockdev-snapshot-sync the top is the new overlay, so this is how to find
// the node to snapshot next, also after a daemon restart.
func (q *QMP) QueryDiskTop(ctx context.Context) (DiskTop, error) {
	var devs []struct {
		QDev     string `json:"qdev"`
		Inserted *struct {
			NodeName string `json:"node-name"`
			File     string `json:"file"`
		} `json:"inserted"`
	}
	if err := q.Execute(ctx, "query-block", nil, &devs); err != nil {
		return DiskTop{}, err
	}
	var tops []DiskTop
	for _, d := range devs {
		if d.Inserted != nil && d.QDev != "" {
			tops = append(tops, DiskTop{Node: d.Inserted.NodeName, File: d.Inserted.File})
		}
	}
	if len(tops) != 1 {
		return DiskTop{}, fmt.Errorf("query-block: %d disks attached, want 1", len(tops))
	}
	return tops[0], nil
}

// SnapshotDisk freezes the disk node node: QEMU creates file, a new qcow2
// overlay whose backing file is node's file, and makes it the device's top
// under the node name newNode (blockdev-snapshot-sync). The old node is
// read-only from then on. The switch is atomic: on error nothing changed.
func (q *QMP) SnapshotDisk(ctx context.Context, node, file, newNode string) error {
	return q.Execute(ctx, "blockdev-snapshot-sync", map[string]any{
		"node-name":          node,
		"snapshot-file":      file,
		"snapshot-node-name": newNode,
		"format":             "qcow2",
		"mode":               "absolute-paths",
	}, nil)
}

// MigrationInfo is the end of a migration as query-migrate reports it.
type MigrationInfo struct {
	Status string `json:"status"`
	// TotalTimeMs and DowntimeMs are QEMU's own measurements.
	TotalTimeMs int64  `json:"total-time"`
	DowntimeMs  int64  `json:"downtime"`
	ErrorDesc   string `json:"error-desc"`
	RAM         struct {
		Transferred int64 `json:"transferred"`
	} `json:"ram"`
}

// SaveState writes the VM's state (its memory and devices: a migration
// stream) into f, which stays the caller's, and waits until it is complete.
// The VM should be paused (stop) first so that the state and the disk agree;
// it stays paused ("postmigrate") until cont.
func (q *QMP) SaveState(ctx context.Context, f *os.File) (MigrationInfo, error) {
	const fdName = "agentiso-save"
	if err := q.GetFD(ctx, fdName, f); err != nil {
		return MigrationInfo{}, fmt.Errorf("passing the state file: %w", err)
	}
	if err := q.Execute(ctx, "migrate", map[string]any{"uri": "fd:" + fdName}, nil); err != nil {
		// migrate did not take the descriptor: QEMU still holds it.
		_ = q.Execute(context.WithoutCancel(ctx), "closefd", map[string]any{"fdname": fdName}, nil)
		return MigrationInfo{}, err
	}
	info, err := q.waitMigration(ctx, "completed")
	if err != nil {
		// Stop QEMU writing into a file the caller is about to remove.
		_ = q.Execute(context.WithoutCancel(ctx), "migrate_cancel", nil, nil)
		return info, err
	}
	return info, nil
}

// LoadState hands a VM started with MachineConfig.Incoming the state saved
// in f (migrate-incoming) and waits until it is loaded. The VM is then
// paused, and runs at cont.
func (q *QMP) LoadState(ctx context.Context, f *os.File) (MigrationInfo, error) {
	const fdName = "agentiso-load"
	if err := q.GetFD(ctx, fdName, f); err != nil {
		return MigrationInfo{}, fmt.Errorf("passing the state file: %w", err)
	}
	if err := q.Execute(ctx, "migrate-incoming", map[string]any{"uri": "fd:" + fdName}, nil); err != nil {
		return MigrationInfo{}, err
	}
	for {
		st, err := q.QueryStatus(ctx)
		if err != nil {
			return MigrationInfo{}, err
		}
		if st.Status != "inmigrate" {
			break
		}
		select {
		case <-ctx.Done():
			return MigrationInfo{}, fmt.Errorf("loading the saved state: %w", context.Cause(ctx))
		case <-time.After(migrationPoll):
		}
	}
	return q.waitMigration(ctx, "completed")
}

// StopMigration cancels a migration that is still running (migrate_cancel)
// and waits until it has ended, cancelled or completed. It reports whether
// one was running. A daemon that died while a VM saved its memory leaves
// such a migration behind: run to completion, it would pause the VM again
// and hand its disks away. QEMU ends a save between two of its writes
// (into the state file, which never blocks for long); one stuck in a write
// that never returns (a pipe nobody reads) stays "cancelling", and
// StopMigration waits for it until ctx ends.
func (q *QMP) StopMigration(ctx context.Context) (bool, error) {
	for ran := false; ; ran = true {
		var info MigrationInfo
		if err := q.Execute(ctx, "query-migrate", nil, &info); err != nil {
			return ran, err
		}
		switch info.Status {
		case "", "none", "completed", "failed", "cancelled":
			return ran, nil
		}
		if !ran {
			if err := q.Execute(ctx, "migrate_cancel", nil, nil); err != nil {
				return ran, err
			}
		}
		select {
		case <-ctx.Done():
			return ran, fmt.Errorf("waiting for the migration to end (%s): %w", info.Status, context.Cause(ctx))
		case <-time.After(migrationPoll):
		}
	}
}

// StreamLayers takes the layers between two files of the VM's disk chain out
// of it: everything they hold is copied into the node of the file child, and
// the node of the file base becomes its backing (block-stream; child may be
// the top or a layer under it). It waits for the job to end. QEMU rewrites
// child's header; the layers in between are unused afterwards.
func (q *QMP) StreamLayers(ctx context.Context, child, base string) error {
	nodes, err := q.qcow2Nodes(ctx)
	if err != nil {
		return err
	}
	childNode, baseNode := nodes[child], nodes[base]
	if childNode == "" || baseNode == "" {
		return fmt.Errorf("block-stream: %s or %s is not in the VM's disk chain", child, base)
	}
	const job = "agentiso-stream"
	// A job an earlier caller stopped waiting for may still be listed.
	_ = q.Execute(ctx, "job-dismiss", map[string]any{"id": job}, nil)
	if err := q.Execute(ctx, "block-stream", map[string]any{
		"job-id": job, "device": childNode, "base-node": baseNode, "auto-dismiss": false,
	}, nil); err != nil {
		return err
	}
	for {
		var jobs []struct {
			ID     string `json:"id"`
			Status string `json:"status"`
			Error  string `json:"error"`
		}
		if err := q.Execute(ctx, "query-jobs", nil, &jobs); err != nil {
			return err
		}
		for _, j := range jobs {
			if j.ID != job || j.Status != "concluded" {
				continue
			}
			if err := q.Execute(ctx, "job-dismiss", map[string]any{"id": job}, nil); err != nil {
				return err
			}
			if j.Error != "" {
				return fmt.Errorf("block-stream: %s", j.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			// The job goes on in QEMU and ends by itself; what it copies
			// is already in the chain, so stopping half-way loses nothing.
			return fmt.Errorf("waiting for block-stream: %w", context.Cause(ctx))
		case <-time.After(migrationPoll):
		}
	}
}

// qcow2Nodes maps the file of each qcow2 node of the VM to its node name.
func (q *QMP) qcow2Nodes(ctx context.Context) (map[string]string, error) {
	var nodes []struct {
		NodeName string `json:"node-name"`
		File     string `json:"file"`
		Driver   string `json:"drv"`
	}
	if err := q.Execute(ctx, "query-named-block-nodes", map[string]any{"flat": true}, &nodes); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(nodes))
	for _, n := range nodes {
		if n.Driver == "qcow2" {
			out[n.File] = n.NodeName
		}
	}
	return out, nil
}

// errMigration is a migration that ended without completing.
var errMigration = errors.New("migration did not complete")

// waitMigration polls query-migrate until the migration ends.
func (q *QMP) waitMigration(ctx context.Context, want string) (MigrationInfo, error) {
	for {
		var info MigrationInfo
		if err := q.Execute(ctx, "query-migrate", nil, &info); err != nil {
			return info, err
		}
		switch info.Status {
		case want:
			return info, nil
		case "failed", "cancelled", "cancelling":
			msg := info.ErrorDesc
			if msg == "" {
				msg = info.Status
			}
			return info, fmt.Errorf("%w: %s", errMigration, msg)
		}
		select {
		case <-ctx.Done():
			return info, fmt.Errorf("waiting for the migration (%s): %w", info.Status, context.Cause(ctx))
		case <-time.After(migrationPoll):
		}
	}
}
