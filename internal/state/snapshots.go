package state

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
)

// SnapshotState is where a snapshot is in its making.
type SnapshotState string

// The snapshot states.
const (
	// SnapshotCreating: the layer (and memory) may not be complete yet.
	SnapshotCreating SnapshotState = "creating"
	// SnapshotReady: the snapshot can be restored and forked.
	SnapshotReady SnapshotState = "ready"
)

// Snapshot is one snapshot as stored.
type Snapshot struct {
	ID          string
	WorkspaceID string
	// Name is unique within the workspace (names.Validate rules).
	Name string
	// Layer is the storage layer the snapshot froze.
	Layer string
	// Memory is true when the VM's memory was saved with the layer.
	Memory      bool
	State       SnapshotState
	DiskBytes   int64
	MemoryBytes int64
	// CreatedAt is set by the store.
	CreatedAt time.Time
}

const snapshotColumns = `id, workspace_id, name, layer, memory, state, disk_bytes, memory_bytes, created_at`

// CreateSnapshot records a new snapshot. The store assigns its ID and
// creation time; an empty State is "creating". A name the workspace already
// uses is a Conflict; a workspace that does not exist is NotFound.
func (t *Tx) CreateSnapshot(ctx context.Context, s Snapshot) (Snapshot, error) {
	s.ID = uuid.NewString()
	if s.State == "" {
		s.State = SnapshotCreating
	}
	s.CreatedAt = now()
	if err := checkSnapshot(&s); err != nil {
		return Snapshot{}, err
	}
	_, err := t.tx.ExecContext(ctx,
		`INSERT INTO snapshots (`+snapshotColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.WorkspaceID, s.Name, s.Layer, s.Memory, string(s.State), s.DiskBytes, s.MemoryBytes, nanos(s.CreatedAt))
	switch {
	case isUnique(err, "snapshots.workspace_id"), isUnique(err, "snapshots.name"):
		return Snapshot{}, errdefs.Conflictf("name: the workspace already has a snapshot with this name")
	case isForeignKey(err):
		return Snapshot{}, errdefs.NotFoundf("workspace_id: no such workspace")
	case err != nil:
		return Snapshot{}, fmt.Errorf("inserting snapshot: %w", err)
	}
	return s, nil
}

// GetSnapshot returns the snapshot of workspace ws named name.
func (t *Tx) GetSnapshot(ctx context.Context, ws, name string) (Snapshot, error) {
	return getSnapshot(ctx, t.tx, ws, name)
}

// ListSnapshots returns the snapshots of workspace ws, oldest first; an
// empty ws lists every workspace's.
func (t *Tx) ListSnapshots(ctx context.Context, ws string) ([]Snapshot, error) {
	return listSnapshots(ctx, t.tx, ws)
}

// CountSnapshots counts the snapshots of workspace ws, in every state. Run it
// in the Tx that creates one, so the cap check and the create are atomic.
func (t *Tx) CountSnapshots(ctx context.Context, ws string) (int, error) {
	var n int
	if err := t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM snapshots WHERE workspace_id = ?`, ws).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting snapshots: %w", err)
	}
	return n, nil
}

// FinishSnapshot marks snapshot id ready with its sizes.
func (t *Tx) FinishSnapshot(ctx context.Context, id string, diskBytes, memoryBytes int64) error {
	if diskBytes < 0 || memoryBytes < 0 {
		return errdefs.Invalidf("snapshot sizes: must not be negative")
	}
	res, err := t.tx.ExecContext(ctx,
		`UPDATE snapshots SET state = ?, disk_bytes = ?, memory_bytes = ? WHERE id = ?`,
		string(SnapshotReady), diskBytes, memoryBytes, id)
	return oneRow(res, err, "finishing snapshot")
}

// DeleteSnapshot removes snapshot id.
func (t *Tx) DeleteSnapshot(ctx context.Context, id string) error {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM snapshots WHERE id = ?`, id)
	return oneRow(res, err, "deleting snapshot")
}

func oneRow(res sql.Result, err error, doing string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if n == 0 {
		return errdefs.NotFoundf("name: no such snapshot")
	}
	return nil
}

// checkSnapshot enforces what must hold of every stored snapshot.
func checkSnapshot(s *Snapshot) error {
	if err := names.Validate("name", s.Name); err != nil {
		return errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	switch {
	case s.WorkspaceID == "":
		return errdefs.Invalidf("workspace_id: must not be empty")
	case s.Layer == "":
		return errdefs.Invalidf("layer: must not be empty")
	case s.State != SnapshotCreating && s.State != SnapshotReady:
		return errdefs.Invalidf("state: not a snapshot state")
	case s.DiskBytes < 0 || s.MemoryBytes < 0:
		return errdefs.Invalidf("snapshot sizes: must not be negative")
	}
	return nil
}

func getSnapshot(ctx context.Context, q querier, ws, name string) (Snapshot, error) {
	row := q.QueryRowContext(ctx, `SELECT `+snapshotColumns+` FROM snapshots WHERE workspace_id = ? AND name = ?`, ws, name)
	return scanRow(row, "snapshot", errdefs.NotFoundf("name: no such snapshot"), scanSnapshot)
}

func listSnapshots(ctx context.Context, q querier, ws string) ([]Snapshot, error) {
	query, args := `SELECT `+snapshotColumns+` FROM snapshots`, []any(nil)
	if ws != "" {
		query, args = query+` WHERE workspace_id = ?`, []any{ws}
	}
	rows, err := q.QueryContext(ctx, query+` ORDER BY created_at, id`, args...)
	if err != nil {
		return nil, fmt.Errorf("listing snapshots: %w", err)
	}
	return scanRows(rows, "snapshot", scanSnapshot)
}

func scanSnapshot(sc scanner) (Snapshot, error) {
	var s Snapshot
	var st string
	var created int64
	if err := sc.Scan(&s.ID, &s.WorkspaceID, &s.Name, &s.Layer, &s.Memory, &st, &s.DiskBytes, &s.MemoryBytes, &created); err != nil {
		return Snapshot{}, err
	}
	s.State = SnapshotState(st)
	s.CreatedAt = fromNanos(created)
	return s, nil
}

// CreateSnapshot records a new snapshot; see Tx.CreateSnapshot.
func (s *Store) CreateSnapshot(ctx context.Context, snap Snapshot) (Snapshot, error) {
	return inTx(ctx, s, func(tx *Tx) (Snapshot, error) { return tx.CreateSnapshot(ctx, snap) })
}

// GetSnapshot returns the snapshot of workspace ws named name.
func (s *Store) GetSnapshot(ctx context.Context, ws, name string) (Snapshot, error) {
	return getSnapshot(ctx, s.r, ws, name)
}

// ListSnapshots returns the snapshots of workspace ws (all if empty),
// oldest first.
func (s *Store) ListSnapshots(ctx context.Context, ws string) ([]Snapshot, error) {
	return listSnapshots(ctx, s.r, ws)
}

// FinishSnapshot marks snapshot id ready; see Tx.FinishSnapshot.
func (s *Store) FinishSnapshot(ctx context.Context, id string, diskBytes, memoryBytes int64) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.FinishSnapshot(ctx, id, diskBytes, memoryBytes) })
}

// DeleteSnapshot removes snapshot id.
func (s *Store) DeleteSnapshot(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.DeleteSnapshot(ctx, id) })
}
