package mcpserver

import (
	"context"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Snapshots is the part of the workspace manager the snapshot and fork
// tools call.
type Snapshots interface {
	SnapshotCreate(ctx context.Context, c workspace.Caller, ref string, req workspace.SnapshotRequest) (*workspace.SnapshotInfo, error)
	SnapshotRestore(ctx context.Context, c workspace.Caller, ref, name string) (*workspace.RestoreResult, error)
	SnapshotList(ctx context.Context, c workspace.Caller, ref string) ([]workspace.SnapshotInfo, error)
	SnapshotDelete(ctx context.Context, c workspace.Caller, ref, name string) error
	Fork(ctx context.Context, c workspace.Caller, ref string, req workspace.ForkRequest) (*workspace.ForkResult, error)
}

type snapshotIn struct {
	WorkspaceID   string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Action        string `json:"action" jsonschema:"create, restore, list or delete"`
	Name          string `json:"name,omitempty" jsonschema:"snapshot name (create, restore, delete): 1-128 of [A-Za-z0-9._-], unique in the workspace"`
	IncludeMemory bool   `json:"include_memory,omitempty" jsonschema:"create only: also save the running VM's memory, so restore and fork resume its processes"`
}

// snapshotOut is the result of every snapshot action: create fills the
// snapshot's fields, restore its outcome, list the snapshots, delete a
// message.
type snapshotOut struct {
	Action      string `json:"action"`
	WorkspaceID string `json:"workspace_id"`

	SnapshotID  string     `json:"snapshot_id,omitempty"`
	Name        string     `json:"name,omitempty"`
	HasMemory   *bool      `json:"has_memory,omitempty"`
	CreatedAt   *time.Time `json:"created_at,omitempty"`
	DiskBytes   *int64     `json:"disk_bytes,omitempty"`
	MemoryBytes *int64     `json:"memory_bytes,omitempty"`

	State            string   `json:"state,omitempty"`
	RemovedSnapshots []string `json:"removed_snapshots,omitempty"`

	Snapshots *[]workspace.SnapshotInfo `json:"snapshots,omitempty"`
	Count     *int                      `json:"count,omitempty"`

	Message string `json:"message,omitempty"`
}

type forkIn struct {
	WorkspaceID  string `json:"workspace_id" jsonschema:"UUID or name of the source workspace"`
	SnapshotName string `json:"snapshot_name" jsonschema:"the source's snapshot to fork from"`
	NewName      string `json:"new_name,omitempty" jsonschema:"name of the fork (count 1; default generated)"`
	Count        int    `json:"count,omitempty" jsonschema:"how many forks, 1-20 (default 1), made in parallel"`
	NamePrefix   string `json:"name_prefix,omitempty" jsonschema:"forks are named <prefix>-1, <prefix>-2... (default worker)"`
}

// forkWorker is one fork of a batch.
type forkWorker struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	State       string `json:"state"`
	IP          string `json:"ip"`
}

// forkOut is a single fork (the new workspace, with forked_from) or a batch
// (count > 1: the workers and failures), as the original system answered.
// Every field is optional: the output schema covers both shapes.
type forkOut struct {
	// A single fork.
	WorkspaceID string                `json:"workspace_id,omitempty"`
	Name        string                `json:"name,omitempty"`
	State       string                `json:"state,omitempty"`
	IP          *string               `json:"ip,omitempty"`
	BootTimeMs  *int64                `json:"boot_time_ms,omitempty"`
	Resources   *workspace.Resources  `json:"resources,omitempty"`
	ForkedFrom  *workspace.ForkedFrom `json:"forked_from,omitempty"`

	// A batch.
	SourceWorkspaceID string                  `json:"source_workspace_id,omitempty"`
	SnapshotName      string                  `json:"snapshot_name,omitempty"`
	RequestedCount    int                     `json:"requested_count,omitempty"`
	SuccessCount      *int                    `json:"success_count,omitempty"`
	FailureCount      *int                    `json:"failure_count,omitempty"`
	Workers           []forkWorker            `json:"workers,omitempty"`
	Failures          []workspace.ForkFailure `json:"failures,omitempty"`
}

func (t *tools) registerSnapshotTools(s *mcp.Server) {
	add(t, s, "snapshot",
		"Manage a workspace's snapshots. create: save a named checkpoint of the disk "+
			"(include_memory: and of the running VM, processes included). restore: roll the workspace back "+
			"to a snapshot (DESTRUCTIVE: current state and newer snapshots are dropped). list: the snapshots "+
			"as a tree, with sizes. delete: remove one (refused while forks depend on it).",
		func(in snapshotIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in snapshotIn) (*snapshotOut, error) {
			snaps, ok := t.d.Workspaces.(Snapshots)
			if !ok {
				return nil, errdefs.Unavailablef("snapshots are not available on this server")
			}
			if in.IncludeMemory && in.Action != "create" {
				return nil, errdefs.Invalidf("include_memory: only for action create")
			}
			out := &snapshotOut{Action: in.Action, WorkspaceID: in.WorkspaceID}
			switch in.Action {
			case "create":
				if in.Name == "" {
					return nil, errdefs.Invalidf("name: required for create")
				}
				info, err := snaps.SnapshotCreate(ctx, t.caller, in.WorkspaceID, workspace.SnapshotRequest{Name: in.Name, IncludeMemory: in.IncludeMemory})
				if err != nil {
					return nil, err
				}
				out.WorkspaceID, out.SnapshotID, out.Name = info.WorkspaceID, info.ID, info.Name
				out.HasMemory, out.CreatedAt = &info.HasMemory, &info.CreatedAt
				out.DiskBytes, out.MemoryBytes = &info.DiskBytes, &info.MemoryBytes
				out.Message = "snapshot created"
			case "restore":
				if in.Name == "" {
					return nil, errdefs.Invalidf("name: required for restore")
				}
				res, err := snaps.SnapshotRestore(ctx, t.caller, in.WorkspaceID, in.Name)
				if err != nil {
					return nil, err
				}
				out.WorkspaceID, out.Name, out.State = res.WorkspaceID, res.Name, res.State
				out.HasMemory, out.RemovedSnapshots, out.Message = &res.HasMemory, res.RemovedSnapshots, res.Message
			case "list":
				list, err := snaps.SnapshotList(ctx, t.caller, in.WorkspaceID)
				if err != nil {
					return nil, err
				}
				n := len(list)
				out.Snapshots, out.Count = &list, &n
			case "delete":
				if in.Name == "" {
					return nil, errdefs.Invalidf("name: required for delete")
				}
				if err := snaps.SnapshotDelete(ctx, t.caller, in.WorkspaceID, in.Name); err != nil {
					return nil, err
				}
				out.Name, out.Message = in.Name, "snapshot deleted"
			default:
				return nil, errdefs.Invalidf("action: must be one of create, restore, list, delete")
			}
			return out, nil
		})

	add(t, s, "workspace_fork",
		"Create new, independent workspaces from a snapshot of a workspace. count > 1 makes that many "+
			"in parallel (max 20), named <name_prefix>-1... Forks of a memory snapshot resume its processes. "+
			"Each fork records forked_from.",
		func(in forkIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in forkIn) (*forkOut, error) {
			snaps, ok := t.d.Workspaces.(Snapshots)
			if !ok {
				return nil, errdefs.Unavailablef("forks are not available on this server")
			}
			if in.SnapshotName == "" {
				return nil, errdefs.Invalidf("snapshot_name: required")
			}
			res, err := snaps.Fork(ctx, t.caller, in.WorkspaceID, workspace.ForkRequest{
				SnapshotName: in.SnapshotName, NewName: in.NewName, Count: in.Count, NamePrefix: in.NamePrefix,
			})
			if err != nil {
				return nil, err
			}
			if in.Count <= 1 && len(res.Forks) == 1 {
				f := res.Forks[0]
				return &forkOut{
					WorkspaceID: f.ID, Name: f.Name, State: f.State, IP: &f.IP, BootTimeMs: &f.BootTimeMs,
					Resources: &f.Resources, ForkedFrom: f.ForkedFrom,
				}, nil
			}
			success, failure := len(res.Forks), len(res.Failures)
			out := &forkOut{
				SourceWorkspaceID: res.SourceWorkspaceID, SnapshotName: res.SnapshotName,
				RequestedCount: max(in.Count, 1), SuccessCount: &success, FailureCount: &failure,
				Workers: []forkWorker{}, Failures: res.Failures,
			}
			for _, f := range res.Forks {
				out.Workers = append(out.Workers, forkWorker{WorkspaceID: f.ID, Name: f.Name, State: f.State, IP: f.IP})
			}
			return out, nil
		})
}
