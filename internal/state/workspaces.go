package state

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
)

// MaxLastErrorBytes bounds Workspace.LastError; longer text is cut.
const MaxLastErrorBytes = 2048

// maxBaseImageBytes bounds Workspace.BaseImage.
const maxBaseImageBytes = 256

// WorkspaceState is where a workspace is in its life.
type WorkspaceState string

// The workspace states.
const (
	WorkspaceCreating   WorkspaceState = "creating"
	WorkspaceRunning    WorkspaceState = "running"
	WorkspaceStopped    WorkspaceState = "stopped"
	WorkspaceError      WorkspaceState = "error"
	WorkspaceDestroying WorkspaceState = "destroying"
)

// Valid reports whether s is one of the workspace states.
func (s WorkspaceState) Valid() bool {
	switch s {
	case WorkspaceCreating, WorkspaceRunning, WorkspaceStopped, WorkspaceError, WorkspaceDestroying:
		return true
	}
	return false
}

// Workspace is one workspace as stored.
type Workspace struct {
	ID   string
	Name string
	// Owner is the ID of the session that owns the workspace.
	Owner         string
	State         WorkspaceState
	BaseImage     string
	VCPUs         int
	MemoryMB      int
	DiskGB        int
	AllowInternet bool
	// IP and MAC are empty until assigned; no two workspaces share one.
	IP  string
	MAC string
	// PID is the QEMU process, 0 when none runs.
	PID int
	// ForkedFrom is nil unless the workspace was forked from a snapshot.
	ForkedFrom *ForkedFrom
	// FromPool is true if the VM was claimed from the warm pool.
	FromPool   bool
	BootTimeMs int64
	// LastError is the public text of the last failure, at most
	// MaxLastErrorBytes.
	LastError string
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time
	UpdatedAt time.Time
	// StartedAt is when the VM last started; zero if it never did.
	StartedAt time.Time
}

// ForkedFrom is a fork's lineage. The source workspace may no longer exist.
type ForkedFrom struct {
	WorkspaceID  string
	SnapshotName string
}

// WorkspaceFilter selects workspaces for ListWorkspaces. Zero fields select
// everything.
type WorkspaceFilter struct {
	Owner  string
	States []WorkspaceState
}

const workspaceColumns = `id, name, owner, state, base_image, vcpus, memory_mb, disk_gb,
	allow_internet, ip, mac, pid, forked_from_workspace, forked_from_snapshot, from_pool,
	boot_time_ms, last_error, created_at, updated_at, started_at`

// CreateWorkspace records a new workspace. The store assigns a UUID unless
// w.ID is set (it must then be a UUID), sets CreatedAt and UpdatedAt, and
// makes an empty State "creating". A taken name, IP or MAC is a Conflict; an
// owner that is no session is NotFound.
func (t *Tx) CreateWorkspace(ctx context.Context, w Workspace) (Workspace, error) {
	if w.ID == "" {
		w.ID = uuid.NewString()
	} else if _, err := uuid.Parse(w.ID); err != nil {
		return Workspace{}, errdefs.Invalidf("workspace_id: not a UUID")
	}
	if w.State == "" {
		w.State = WorkspaceCreating
	}
	w.CreatedAt = now()
	w.UpdatedAt = w.CreatedAt
	if err := checkWorkspace(&w); err != nil {
		return Workspace{}, err
	}
	_, err := t.tx.ExecContext(ctx,
		`INSERT INTO workspaces (`+workspaceColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		workspaceArgs(&w)...)
	if err != nil {
		if isUnique(err, "workspaces.id") {
			return Workspace{}, errdefs.Conflictf("workspace_id: already exists")
		}
		return Workspace{}, workspaceWriteError(err, "inserting workspace")
	}
	return w, nil
}

// GetWorkspace returns the workspace with the given ID.
func (t *Tx) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	return getWorkspace(ctx, t.tx, `id = ?`, id, "workspace_id")
}

// GetWorkspaceByName returns the workspace with the given name.
func (t *Tx) GetWorkspaceByName(ctx context.Context, name string) (Workspace, error) {
	return getWorkspace(ctx, t.tx, `name = ?`, name, "name")
}

// ListWorkspaces returns the workspaces f selects, oldest first.
func (t *Tx) ListWorkspaces(ctx context.Context, f WorkspaceFilter) ([]Workspace, error) {
	return listWorkspaces(ctx, t.tx, f)
}

// CountWorkspaces counts the workspaces of owner, in every state; an empty
// owner counts all. Run it in the same Tx as the create it guards so the
// quota check and the create are atomic.
func (t *Tx) CountWorkspaces(ctx context.Context, owner string) (int, error) {
	return countWorkspaces(ctx, t.tx, owner)
}

// UpdateWorkspace reads the workspace, lets fn change it, and writes it back,
// all in this transaction. If fn returns an error nothing is written and the
// error is returned unchanged (the enclosing Tx then rolls back). fn may not
// change ID or CreatedAt; UpdatedAt is set by the store.
func (t *Tx) UpdateWorkspace(ctx context.Context, id string, fn func(w *Workspace) error) (Workspace, error) {
	w, err := t.GetWorkspace(ctx, id)
	if err != nil {
		return Workspace{}, err
	}
	created := w.CreatedAt
	if err := fn(&w); err != nil {
		return Workspace{}, err
	}
	if w.ID != id || !w.CreatedAt.Equal(created) {
		return Workspace{}, errors.New("updating workspace: the update changed its id or creation time")
	}
	w.UpdatedAt = now()
	if err := checkWorkspace(&w); err != nil {
		return Workspace{}, err
	}
	args := workspaceArgs(&w)
	// workspaceArgs starts with id; the UPDATE takes it last.
	args = append(args[1:], w.ID)
	_, err = t.tx.ExecContext(ctx, `UPDATE workspaces SET
		name = ?, owner = ?, state = ?, base_image = ?, vcpus = ?, memory_mb = ?, disk_gb = ?,
		allow_internet = ?, ip = ?, mac = ?, pid = ?, forked_from_workspace = ?,
		forked_from_snapshot = ?, from_pool = ?, boot_time_ms = ?, last_error = ?,
		created_at = ?, updated_at = ?, started_at = ?
		WHERE id = ?`, args...)
	if err != nil {
		return Workspace{}, workspaceWriteError(err, "updating workspace")
	}
	return w, nil
}

// DeleteWorkspace removes the workspace record.
func (t *Tx) DeleteWorkspace(ctx context.Context, id string) error {
	res, err := t.tx.ExecContext(ctx, `DELETE FROM workspaces WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("deleting workspace: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("deleting workspace: %w", err)
	}
	if n == 0 {
		return errdefs.NotFoundf("workspace_id: no such workspace")
	}
	return nil
}

// checkWorkspace enforces what must hold of every stored workspace. Sizes
// against the configured limits are the caller's business; here they only
// have to be positive.
func checkWorkspace(w *Workspace) error {
	if err := names.Validate("name", w.Name); err != nil {
		return errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	switch {
	case w.Owner == "":
		return errdefs.Invalidf("owner: must not be empty")
	case !w.State.Valid():
		return errdefs.Invalidf("state: not a workspace state")
	case w.BaseImage == "" || len(w.BaseImage) > maxBaseImageBytes:
		return errdefs.Invalidf("base_image: must be 1-%d bytes", maxBaseImageBytes)
	case w.VCPUs < 1:
		return errdefs.Invalidf("vcpus: must be at least 1")
	case w.MemoryMB < 1:
		return errdefs.Invalidf("memory_mb: must be at least 1")
	case w.DiskGB < 1:
		return errdefs.Invalidf("disk_gb: must be at least 1")
	case w.PID < 0:
		return errdefs.Invalidf("pid: must not be negative")
	case w.BootTimeMs < 0:
		return errdefs.Invalidf("boot_time_ms: must not be negative")
	}
	if f := w.ForkedFrom; f != nil {
		if f.WorkspaceID == "" {
			return errdefs.Invalidf("forked_from.workspace_id: must not be empty")
		}
		if err := names.Validate("forked_from.snapshot_name", f.SnapshotName); err != nil {
			return errdefs.With(errdefs.Invalid, err.Error(), nil)
		}
	}
	w.LastError = truncate(w.LastError, MaxLastErrorBytes)
	return nil
}

// workspaceArgs are w's values in workspaceColumns order.
func workspaceArgs(w *Workspace) []any {
	var fromWS, fromSnap string
	if w.ForkedFrom != nil {
		fromWS, fromSnap = w.ForkedFrom.WorkspaceID, w.ForkedFrom.SnapshotName
	}
	return []any{
		w.ID, w.Name, w.Owner, string(w.State), w.BaseImage, w.VCPUs, w.MemoryMB, w.DiskGB,
		w.AllowInternet, w.IP, w.MAC, w.PID, fromWS, fromSnap, w.FromPool,
		w.BootTimeMs, w.LastError, nanos(w.CreatedAt), nanos(w.UpdatedAt), nanos(w.StartedAt),
	}
}

// workspaceWriteError classifies a failed insert or update. The messages
// name the field, never the value: the holder of a taken name may be another
// session's workspace (finding L-16).
func workspaceWriteError(err error, doing string) error {
	switch {
	case isUnique(err, "workspaces.name"):
		return errdefs.Conflictf("name: a workspace with this name already exists")
	case isUnique(err, "workspaces.ip"):
		return errdefs.Conflictf("ip: address already assigned to another workspace")
	case isUnique(err, "workspaces.mac"):
		return errdefs.Conflictf("mac: address already assigned to another workspace")
	case isForeignKey(err):
		return errdefs.NotFoundf("owner: no such session")
	}
	return fmt.Errorf("%s: %w", doing, err)
}

func getWorkspace(ctx context.Context, q querier, where string, arg any, field string) (Workspace, error) {
	row := q.QueryRowContext(ctx, `SELECT `+workspaceColumns+` FROM workspaces WHERE `+where, arg)
	return scanRow(row, "workspace", errdefs.NotFoundf("%s: no such workspace", field), scanWorkspace)
}

func listWorkspaces(ctx context.Context, q querier, f WorkspaceFilter) ([]Workspace, error) {
	var where []string
	var args []any
	if f.Owner != "" {
		where = append(where, `owner = ?`)
		args = append(args, f.Owner)
	}
	if len(f.States) > 0 {
		marks := make([]string, len(f.States))
		for i, s := range f.States {
			marks[i] = "?"
			args = append(args, string(s))
		}
		where = append(where, `state IN (`+strings.Join(marks, ", ")+`)`)
	}
	query := `SELECT ` + workspaceColumns + ` FROM workspaces`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY created_at, id`
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing workspaces: %w", err)
	}
	return scanRows(rows, "workspace", scanWorkspace)
}

func countWorkspaces(ctx context.Context, q querier, owner string) (int, error) {
	query, args := `SELECT COUNT(*) FROM workspaces`, []any(nil)
	if owner != "" {
		query, args = query+` WHERE owner = ?`, []any{owner}
	}
	var n int
	if err := q.QueryRowContext(ctx, query, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting workspaces: %w", err)
	}
	return n, nil
}

func scanWorkspace(sc scanner) (Workspace, error) {
	var w Workspace
	var state, fromWS, fromSnap string
	var created, updated, started int64
	err := sc.Scan(&w.ID, &w.Name, &w.Owner, &state, &w.BaseImage, &w.VCPUs, &w.MemoryMB, &w.DiskGB,
		&w.AllowInternet, &w.IP, &w.MAC, &w.PID, &fromWS, &fromSnap, &w.FromPool,
		&w.BootTimeMs, &w.LastError, &created, &updated, &started)
	if err != nil {
		return Workspace{}, err
	}
	w.State = WorkspaceState(state)
	if fromWS != "" {
		w.ForkedFrom = &ForkedFrom{WorkspaceID: fromWS, SnapshotName: fromSnap}
	}
	w.CreatedAt, w.UpdatedAt, w.StartedAt = fromNanos(created), fromNanos(updated), fromNanos(started)
	return w, nil
}

// CreateWorkspace records a new workspace; see Tx.CreateWorkspace.
func (s *Store) CreateWorkspace(ctx context.Context, w Workspace) (Workspace, error) {
	return inTx(ctx, s, func(tx *Tx) (Workspace, error) { return tx.CreateWorkspace(ctx, w) })
}

// GetWorkspace returns the workspace with the given ID.
func (s *Store) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	return getWorkspace(ctx, s.r, `id = ?`, id, "workspace_id")
}

// GetWorkspaceByName returns the workspace with the given name.
func (s *Store) GetWorkspaceByName(ctx context.Context, name string) (Workspace, error) {
	return getWorkspace(ctx, s.r, `name = ?`, name, "name")
}

// ListWorkspaces returns the workspaces f selects, oldest first.
func (s *Store) ListWorkspaces(ctx context.Context, f WorkspaceFilter) ([]Workspace, error) {
	return listWorkspaces(ctx, s.r, f)
}

// CountWorkspaces counts the workspaces of owner (all if empty). For a quota
// check use Tx.CountWorkspaces in the transaction that creates.
func (s *Store) CountWorkspaces(ctx context.Context, owner string) (int, error) {
	return countWorkspaces(ctx, s.r, owner)
}

// UpdateWorkspace changes a workspace in one transaction; see
// Tx.UpdateWorkspace.
func (s *Store) UpdateWorkspace(ctx context.Context, id string, fn func(w *Workspace) error) (Workspace, error) {
	return inTx(ctx, s, func(tx *Tx) (Workspace, error) { return tx.UpdateWorkspace(ctx, id, fn) })
}

// DeleteWorkspace removes the workspace record.
func (s *Store) DeleteWorkspace(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.DeleteWorkspace(ctx, id) })
}
