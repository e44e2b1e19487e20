package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

type workspaceCreateIn struct {
	Name          string `json:"name,omitempty" jsonschema:"name for the workspace: 1-128 of [A-Za-z0-9._-], unique (default: generated)"`
	BaseImage     string `json:"base_image,omitempty" jsonschema:"base image to boot (default: the configured image)"`
	VCPUs         int    `json:"vcpus,omitempty" jsonschema:"number of virtual CPUs (default from the server configuration)"`
	MemoryMB      int    `json:"memory_mb,omitempty" jsonschema:"memory in MiB (default from the server configuration)"`
	DiskGB        int    `json:"disk_gb,omitempty" jsonschema:"disk size in GiB (default from the server configuration)"`
	AllowInternet *bool  `json:"allow_internet,omitempty" jsonschema:"allow outbound internet access (default: off)"`
	FromPool      bool   `json:"from_pool,omitempty" jsonschema:"claim a pre-booted VM from the warm pool when one of the requested size is ready (default: false; boots one otherwise)"`
}

type workspaceRefIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
}

type workspaceListIn struct {
	StateFilter string `json:"state_filter,omitempty" jsonschema:"only list workspaces in this state: running, stopped, creating, error"`
}

type workspaceListOut struct {
	Workspaces []workspace.Info `json:"workspaces"`
	Count      int              `json:"count"`
}

type workspaceLogsIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	LogType     string `json:"log_type,omitempty" jsonschema:"which log: console, stderr or all (default all)"`
	MaxLines    int    `json:"max_lines,omitempty" jsonschema:"lines from the end of each log (default 100, max 10000)"`
}

type workspaceLogsOut struct {
	WorkspaceID string `json:"workspace_id"`
	Console     string `json:"console,omitempty"`
	Stderr      string `json:"stderr,omitempty"`
}

type doneOut struct {
	WorkspaceID string `json:"workspace_id"`
	State       string `json:"state"`
	Message     string `json:"message"`
}

func refOf(in workspaceRefIn) string { return in.WorkspaceID }

func (t *tools) registerWorkspaceTools(s *mcp.Server) {
	add(t, s, "workspace_create",
		"Create and boot a new isolated workspace VM. Returns its id, name, state, ip and boot time.",
		func(in workspaceCreateIn) string { return in.Name },
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceCreateIn) (*workspace.Info, error) {
			return t.d.Workspaces.Create(ctx, t.caller, workspace.CreateRequest{
				Name: in.Name, BaseImage: in.BaseImage, VCPUs: in.VCPUs, MemoryMB: in.MemoryMB,
				DiskGB: in.DiskGB, AllowInternet: in.AllowInternet, FromPool: in.FromPool,
			})
		})

	add(t, s, "workspace_destroy",
		"Stop a workspace VM and permanently delete it with its storage.",
		refOf,
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceRefIn) (*doneOut, error) {
			if err := t.d.Workspaces.Destroy(ctx, t.caller, in.WorkspaceID); err != nil {
				return nil, err
			}
			return &doneOut{WorkspaceID: in.WorkspaceID, State: "destroyed", Message: "workspace destroyed"}, nil
		})

	add(t, s, "workspace_start",
		"Boot a stopped workspace. Its disk is as it was when it stopped.",
		refOf,
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceRefIn) (*workspace.Info, error) {
			return t.d.Workspaces.Start(ctx, t.caller, in.WorkspaceID)
		})

	add(t, s, "workspace_stop",
		"Stop a running workspace gracefully; it can be started again later.",
		refOf,
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceRefIn) (*workspace.Info, error) {
			return t.d.Workspaces.Stop(ctx, t.caller, in.WorkspaceID)
		})

	add(t, s, "workspace_list",
		"List your workspaces, then orphans (owned: false) left by ended or stale sessions, which workspace_adopt takes over; optionally only those in one state.",
		nil,
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceListIn) (*workspaceListOut, error) {
			switch in.StateFilter {
			case "", "running", "stopped", "creating", "error":
			default:
				return nil, errdefs.Invalidf("state_filter: must be one of running, stopped, creating, error")
			}
			list, err := t.d.Workspaces.List(ctx, t.caller, in.StateFilter)
			if err != nil {
				return nil, err
			}
			if list == nil {
				list = []workspace.Info{}
			}
			return &workspaceListOut{Workspaces: list, Count: len(list)}, nil
		})

	add(t, s, "workspace_info",
		"Show a workspace: state, resources, ip, network policy, disk usage, lineage, uptime.",
		refOf,
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceRefIn) (*workspace.Info, error) {
			return t.d.Workspaces.Info(ctx, t.caller, in.WorkspaceID)
		})

	add(t, s, "workspace_logs",
		"Show the tail of a workspace's console log and its VM monitor's stderr.",
		func(in workspaceLogsIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceLogsIn) (*workspaceLogsOut, error) {
			if in.LogType == "" {
				in.LogType = "all"
			}
			switch in.LogType {
			case "console", "stderr", "all":
			default:
				return nil, errdefs.Invalidf("log_type: must be console, stderr or all")
			}
			if in.MaxLines == 0 {
				in.MaxLines = 100
			}
			if in.MaxLines < 1 || in.MaxLines > 10000 {
				return nil, errdefs.Invalidf("max_lines: must be 1..10000")
			}
			logs, err := t.d.Workspaces.Logs(ctx, t.caller, in.WorkspaceID, in.LogType, in.MaxLines)
			if err != nil {
				return nil, err
			}
			return &workspaceLogsOut{WorkspaceID: in.WorkspaceID, Console: logs.Console, Stderr: logs.Stderr}, nil
		})
}
