package api

import (
	"context"
	"net/http"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Snapshots is the part of the workspace manager the snapshot and fork
// routes call.
type Snapshots interface {
	SnapshotCreate(ctx context.Context, c workspace.Caller, ref string, req workspace.SnapshotRequest) (*workspace.SnapshotInfo, error)
	SnapshotRestore(ctx context.Context, c workspace.Caller, ref, name string) (*workspace.RestoreResult, error)
	SnapshotList(ctx context.Context, c workspace.Caller, ref string) ([]workspace.SnapshotInfo, error)
	SnapshotDelete(ctx context.Context, c workspace.Caller, ref, name string) error
	Fork(ctx context.Context, c workspace.Caller, ref string, req workspace.ForkRequest) (*workspace.ForkResult, error)
}

func (a *API) snapshotRoutes() {
	a.handle("GET /api/v1/workspaces/{ws}/snapshots", "", a.listSnapshots)
	a.handle("POST /api/v1/workspaces/{ws}/snapshots", "snapshot", a.createSnapshot)
	a.handle("POST /api/v1/workspaces/{ws}/snapshots/{snap}/restore", "snapshot", a.restoreSnapshot)
	a.handle("DELETE /api/v1/workspaces/{ws}/snapshots/{snap}", "snapshot", a.deleteSnapshot)
	a.handle("POST /api/v1/workspaces/{ws}/fork", "workspace_fork", a.fork)
}

func (a *API) snapshots() (Snapshots, error) {
	if a.o.Snapshots == nil {
		return nil, errdefs.Unavailablef("snapshots are not available on this server")
	}
	return a.o.Snapshots, nil
}

// SnapshotList is the answer of GET /workspaces/{ws}/snapshots: the
// snapshots oldest first, each naming its parent (the tree).
type SnapshotList struct {
	Snapshots []workspace.SnapshotInfo `json:"snapshots"`
	Count     int                      `json:"count"`
}

func (a *API) listSnapshots(_ http.ResponseWriter, r *http.Request) (any, error) {
	s, err := a.snapshots()
	if err != nil {
		return nil, err
	}
	list, err := s.SnapshotList(r.Context(), caller(r), r.PathValue("ws"))
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []workspace.SnapshotInfo{}
	}
	return &SnapshotList{Snapshots: list, Count: len(list)}, nil
}

// SnapshotRequest is the body of POST /workspaces/{ws}/snapshots.
type SnapshotRequest struct {
	Name          string `json:"name"`
	IncludeMemory bool   `json:"include_memory,omitempty"`
}

func (a *API) createSnapshot(_ http.ResponseWriter, r *http.Request) (any, error) {
	s, err := a.snapshots()
	if err != nil {
		return nil, err
	}
	var in SnapshotRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.Name == "" {
		return nil, errdefs.Invalidf("name: required")
	}
	return s.SnapshotCreate(r.Context(), caller(r), r.PathValue("ws"), workspace.SnapshotRequest{Name: in.Name, IncludeMemory: in.IncludeMemory})
}

func (a *API) restoreSnapshot(_ http.ResponseWriter, r *http.Request) (any, error) {
	s, err := a.snapshots()
	if err != nil {
		return nil, err
	}
	return s.SnapshotRestore(r.Context(), caller(r), r.PathValue("ws"), r.PathValue("snap"))
}

// SnapshotDeleted answers DELETE /workspaces/{ws}/snapshots/{snap}.
type SnapshotDeleted struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	Deleted     bool   `json:"deleted"`
}

func (a *API) deleteSnapshot(_ http.ResponseWriter, r *http.Request) (any, error) {
	s, err := a.snapshots()
	if err != nil {
		return nil, err
	}
	if err := s.SnapshotDelete(r.Context(), caller(r), r.PathValue("ws"), r.PathValue("snap")); err != nil {
		return nil, err
	}
	return &SnapshotDeleted{WorkspaceID: r.PathValue("ws"), Name: r.PathValue("snap"), Deleted: true}, nil
}

// ForkRequest is the body of POST /workspaces/{ws}/fork.
type ForkRequest struct {
	SnapshotName string `json:"snapshot_name"`
	NewName      string `json:"new_name,omitempty"`
	Count        int    `json:"count,omitempty"`
	NamePrefix   string `json:"name_prefix,omitempty"`
}

func (a *API) fork(_ http.ResponseWriter, r *http.Request) (any, error) {
	s, err := a.snapshots()
	if err != nil {
		return nil, err
	}
	var in ForkRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.SnapshotName == "" {
		return nil, errdefs.Invalidf("snapshot_name: required")
	}
	res, err := s.Fork(r.Context(), caller(r), r.PathValue("ws"), workspace.ForkRequest{
		SnapshotName: in.SnapshotName, NewName: in.NewName, Count: in.Count, NamePrefix: in.NamePrefix,
	})
	if err != nil {
		return nil, err
	}
	if res.Forks == nil {
		res.Forks = []workspace.Info{}
	}
	if res.Failures == nil {
		res.Failures = []workspace.ForkFailure{}
	}
	return res, nil
}
