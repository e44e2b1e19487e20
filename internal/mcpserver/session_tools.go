package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/workspace"
)

type workspaceAdoptIn struct {
	WorkspaceID string `json:"workspace_id,omitempty" jsonschema:"UUID or name of the orphaned workspace to adopt (default: every orphan workspace_list shows)"`
	Force       bool   `json:"force,omitempty" jsonschema:"also take over workspaces whose session has been silent for longer than the stale threshold but has not ended"`
}

func (t *tools) registerSessionTools(s *mcp.Server) {
	add(t, s, "workspace_adopt",
		"Adopt orphaned workspaces (owned: false in workspace_list): those whose session has ended, "+
			"for example after a reconnect. Give workspace_id for one, or nothing for all. "+
			"force also takes over from a session that has been silent past the stale threshold. "+
			"Adopted workspaces count against this session's quotas.",
		func(in workspaceAdoptIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceAdoptIn) (*workspace.AdoptResult, error) {
			return t.d.Workspaces.Adopt(ctx, t.caller, in.WorkspaceID, in.Force)
		})
}
