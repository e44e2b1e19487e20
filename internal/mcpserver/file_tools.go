package mcpserver

import (
	"context"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

type fileWriteIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path" jsonschema:"absolute path inside the workspace; parent directories are created"`
	Content     string `json:"content" jsonschema:"file content (text)"`
	Mode        string `json:"mode,omitempty" jsonschema:"permissions in octal, e.g. 0644 (default) or 0755"`
}

type fileWriteOut struct {
	Path         string `json:"path"`
	BytesWritten int    `json:"bytes_written"`
}

type fileReadIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path" jsonschema:"absolute path of the file inside the workspace"`
	Offset      int64  `json:"offset,omitempty" jsonschema:"byte offset to start reading at"`
	Limit       int64  `json:"limit,omitempty" jsonschema:"maximum number of bytes to read"`
}

type fileReadOut struct {
	Path      string `json:"path"`
	Content   string `json:"content"`
	Offset    int64  `json:"offset"`
	BytesRead int    `json:"bytes_read"`
	Size      int64  `json:"size"`
	// Truncated is set when the file continues past what was returned.
	Truncated bool `json:"truncated"`
}

// maxFileWriteBytes bounds file_write content; bigger files go through
// file_transfer.
const maxFileWriteBytes = 8 << 20

func (t *tools) registerFileTools(s *mcp.Server) {
	add(t, s, "file_write",
		"Write a text file inside a workspace, creating parent directories.",
		func(in fileWriteIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in fileWriteIn) (*fileWriteOut, error) {
			mode, err := parseMode(in.Mode)
			if err != nil {
				return nil, err
			}
			if len(in.Content) > maxFileWriteBytes {
				return nil, errdefs.Invalidf("content: larger than %d bytes (use file_transfer)", maxFileWriteBytes)
			}
			if err := t.d.Workspaces.WriteFile(ctx, t.caller, in.WorkspaceID, in.Path, []byte(in.Content), mode); err != nil {
				return nil, err
			}
			return &fileWriteOut{Path: in.Path, BytesWritten: len(in.Content)}, nil
		})

	add(t, s, "file_read",
		"Read a text file from inside a workspace. Binary files are refused: use file_transfer.",
		func(in fileReadIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in fileReadIn) (*fileReadOut, error) {
			if in.Offset < 0 {
				return nil, errdefs.Invalidf("offset: must not be negative")
			}
			if in.Limit < 0 {
				return nil, errdefs.Invalidf("limit: must not be negative")
			}
			max := t.d.Exec.MaxFileReadBytes
			limit := in.Limit
			if limit == 0 || limit > max {
				limit = max
			}
			data, size, err := t.d.Workspaces.ReadFile(ctx, t.caller, in.WorkspaceID, in.Path, in.Offset, limit)
			if err != nil {
				return nil, err
			}
			text, ok := textOf(data, in.Offset+int64(len(data)) < size)
			if !ok {
				return nil, errdefs.Invalidf("path: the file holds binary data; use file_transfer to copy it, or offset/limit to read a text part")
			}
			return &fileReadOut{
				Path: in.Path, Content: text, Offset: in.Offset, BytesRead: len(data), Size: size,
				Truncated: in.Offset+int64(len(data)) < size && (in.Limit == 0 || in.Limit > max),
			}, nil
		})
}

// parseMode reads an octal permission string such as "0644" or "755".
func parseMode(s string) (uint32, error) {
	if s == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o7777 {
		return 0, errdefs.Invalidf("mode: must be octal permission bits such as 0644")
	}
	return uint32(v), nil
}

// textOf returns data as text when it is text (see workspace.TextOf).
func textOf(data []byte, more bool) (string, bool) { return workspace.TextOf(data, more) }
