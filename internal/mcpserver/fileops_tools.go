package mcpserver

import (
	"context"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/workspace"
)

type fileEditIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path" jsonschema:"absolute path of the file inside the workspace"`
	OldString   string `json:"old_string" jsonschema:"the exact text to replace, whitespace included; its first occurrence is replaced"`
	NewString   string `json:"new_string" jsonschema:"the replacement text (may be empty)"`
}

type fileListIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path" jsonschema:"absolute path of a directory inside the workspace"`
}

type fileTransferIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Direction   string `json:"direction" jsonschema:"upload (host to workspace) or download (workspace to host)"`
	HostPath    string `json:"host_path" jsonschema:"a file in the host's transfer directory (server.transfer_dir): relative to it, or absolute inside it"`
	GuestPath   string `json:"guest_path" jsonschema:"absolute path inside the workspace"`
}

func (t *tools) registerFileOpsTools(s *mcp.Server) {
	add(t, s, "file_edit",
		"Replace the first exact occurrence of old_string in a file inside a workspace with new_string. "+
			"Fails, changing nothing, when old_string does not occur. The file keeps its mode.",
		func(in fileEditIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in fileEditIn) (*workspace.EditResult, error) {
			return t.d.Workspaces.EditFile(ctx, t.caller, in.WorkspaceID, in.Path, in.OldString, in.NewString)
		})

	add(t, s, "file_list",
		"List a directory inside a workspace: name, type (file, dir, symlink, other), size, mode and mtime of each "+
			"entry, sorted by name, not recursive.",
		func(in fileListIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in fileListIn) (*workspace.Listing, error) {
			return t.d.Workspaces.ListDir(ctx, t.caller, in.WorkspaceID, in.Path)
		})

	addTool(t, s, &mcp.Tool{
		Name: "file_transfer",
		Description: "Copy a file, binary or text, between the host and a workspace. host_path must lie in the host's " +
			"transfer directory (server.transfer_dir); symlinks may not lead out of it. Streamed in chunks, " +
			"size-limited (files.max_transfer_bytes).",
		InputSchema: withProperties[fileTransferIn](map[string]func(*jsonschema.Schema){
			"direction": func(p *jsonschema.Schema) { p.Enum = []any{workspace.Upload, workspace.Download} },
		}),
	},
		func(in fileTransferIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in fileTransferIn) (*workspace.TransferResult, error) {
			return t.d.Workspaces.Transfer(ctx, t.caller, in.WorkspaceID, in.Direction, in.HostPath, in.GuestPath)
		})
}
