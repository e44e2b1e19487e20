package mcpserver

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/workspace"
)

// execOnly is a Workspaces that answers exec and counts what reaches it.
type execOnly struct {
	recordingWorkspaces
	refs []string
}

func (e *execOnly) Exec(_ context.Context, _ workspace.Caller, ref string, _ workspace.ExecRequest) (*workspace.ExecResult, error) {
	e.refs = append(e.refs, ref)
	return &workspace.ExecResult{Stdout: "ok"}, nil
}

// TestM5_ScopeConfinesBridgeSessions: a scoped server lists only the
// allowlisted tools a bridge may offer, and refuses, before any handler
// runs, a tool outside the allowlist, another workspace, another team, a
// team action other than status/message/receive, and a member speaking for
// another.
func TestM5_ScopeConfinesBridgeSessions(t *testing.T) {
	ws := &execOnly{}
	d := Deps{Workspaces: ws, Limiter: allowAll{}, Exec: ExecLimits{DefaultTimeout: 60e9, MaxTimeout: 600e9, DefaultMaxOutputBytes: 1 << 16, MaxOutputBytes: 1 << 20},
		Scope: &Scope{WorkspaceID: "id-1", WorkspaceName: "t-dev", Team: "t", Member: "dev",
			Tools: []string{"exec", "team", "workspace_destroy", "workspace_list"}}}
	s := connect(t, d)
	ctx := context.Background()
	l, err := s.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range l.Tools {
		names = append(names, tl.Name)
	}
	slices.Sort(names)
	if strings.Join(names, ",") != "exec,team" {
		t.Fatalf("a scoped server lists %v; want exec and team (workspace_destroy and workspace_list are never offered)", names)
	}
	call := func(tool string, args map[string]any) (string, bool) {
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
		if err != nil {
			t.Fatalf("%s: protocol error %v", tool, err)
		}
		var sb strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				sb.WriteString(tc.Text)
			}
		}
		return sb.String(), res.IsError
	}
	if _, isErr := call("exec", map[string]any{"workspace_id": "t-dev", "command": "true"}); isErr {
		t.Fatal("exec in its own workspace was refused")
	}
	for _, c := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"exec", map[string]any{"workspace_id": "other", "command": "true"}, "workspace_id: no such workspace in this session"},
		{"exec", map[string]any{"command": "true"}, "workspace_id: no such workspace in this session"},
		{"workspace_destroy", map[string]any{"workspace_id": "t-dev"}, "tool: workspace_destroy is not allowed"},
		{"file_read", map[string]any{"workspace_id": "t-dev", "path": "/etc/passwd"}, "tool: file_read is not allowed"},
		{"team", map[string]any{"action": "status", "name": "other"}, "name: no such team in this session"},
		{"team", map[string]any{"action": "destroy", "name": "t"}, "action: only status, message and receive"},
		{"team", map[string]any{"action": "message", "name": "t", "agent": "lead", "to": "qa", "content": "x"}, "agent: on the bridge a member sends and receives as itself only"},
		{"team", map[string]any{"action": "receive", "name": "t", "agent": "qa"}, "agent: on the bridge"},
	} {
		msg, isErr := call(c.tool, c.args)
		if !isErr || !strings.HasPrefix(msg, c.want) {
			t.Errorf("%s %v: %q (error %v); want %q", c.tool, c.args, msg, isErr, c.want)
		}
	}
	if len(ws.refs) != 1 {
		t.Fatalf("refused calls reached the manager: %v", ws.refs)
	}
}
