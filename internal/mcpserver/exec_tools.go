package mcpserver

import (
	"context"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/workspace"
)

type execIn struct {
	WorkspaceID    string            `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Command        string            `json:"command" jsonschema:"shell command, run with /bin/sh -c"`
	TimeoutSecs    int               `json:"timeout_secs,omitempty" jsonschema:"kill the command's process group after this many seconds (default 120)"`
	Workdir        string            `json:"workdir,omitempty" jsonschema:"absolute working directory inside the workspace (default /root)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"extra environment variables for this command"`
	MaxOutputBytes int64             `json:"max_output_bytes,omitempty" jsonschema:"bytes of stdout and of stderr to return (default 262144); the rest is dropped and truncated is set"`
}

func (t *tools) registerExecTools(s *mcp.Server) {
	add(t, s, "exec",
		"Run a shell command in a workspace and return its exit code, stdout and stderr. "+
			"Output beyond max_output_bytes is dropped and flagged with truncated. "+
			"For commands that run longer than a few minutes, raise timeout_secs.",
		func(in execIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in execIn) (*workspace.ExecResult, error) {
			req, err := t.execRequest(in.Command, in.TimeoutSecs, in.Workdir, in.Env, in.MaxOutputBytes)
			if err != nil {
				return nil, err
			}
			return t.d.Workspaces.Exec(ctx, t.caller, in.WorkspaceID, req)
		})
}

// execRequest applies the configured defaults and caps to one command.
func (t *tools) execRequest(command string, timeoutSecs int, workdir string, env map[string]string, maxOutput int64) (workspace.ExecRequest, error) {
	lim := t.d.Exec
	return workspace.ExecLimits{
		DefaultTimeout: lim.DefaultTimeout, MaxTimeout: lim.MaxTimeout,
		DefaultMaxOutputBytes: lim.DefaultMaxOutputBytes, MaxOutputBytes: lim.MaxOutputBytes,
	}.Request(command, timeoutSecs, workdir, env, maxOutput)
}
