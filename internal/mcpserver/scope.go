package mcpserver

import (
	"encoding/json"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Scope confines a server to one workspace and its team: the MCP bridge
// serves an agent inside a workspace with it (findings M-5, L-16). Only
// tools in Tools that can be confined are offered; every call's
// workspace_id must name the scope's workspace, a team call its team and
// its own member.
type Scope struct {
	WorkspaceID   string
	WorkspaceName string
	// Team and Member are empty when the workspace belongs to no team;
	// the team tool is then refused.
	Team, Member string
	// Tools is the allowlist.
	Tools []string
}

// ScopableTools are the tools a scope may allow: those that act on the one
// workspace named by workspace_id, the shared vault, and the team tool.
// Tools that create, list, adopt or span several workspaces are never
// offered on the bridge.
var ScopableTools = []string{
	"exec", "exec_background", "set_env", "file_read", "file_write", "file_edit", "file_list",
	"workspace_info", "workspace_logs", "snapshot", "git_clone", "git_status", "git_commit",
	"git_push", "git_diff", "vault", "team",
}

// scopedTeamActions are the team actions a scoped agent may take.
var scopedTeamActions = []string{"status", "message", "receive"}

// allows reports whether the scope offers tool.
func (sc *Scope) allows(tool string) bool {
	return slices.Contains(ScopableTools, tool) && slices.Contains(sc.Tools, tool)
}

// restrict removes every tool the scope does not offer from s.
func (sc *Scope) restrict(s *mcp.Server, registered []string) {
	var drop []string
	for _, n := range registered {
		if !sc.allows(n) {
			drop = append(drop, n)
		}
	}
	s.RemoveTools(drop...)
}

// check refuses a call outside the scope, before its handler runs. The
// messages are those of a workspace or team that does not exist, so a
// scoped agent learns nothing of others (L-16).
func (sc *Scope) check(tool string, raw json.RawMessage) error {
	if !sc.allows(tool) {
		return errdefs.PermissionDeniedf("tool: %s is not allowed for this workspace's bridge token", tool)
	}
	var args struct {
		WorkspaceID *string `json:"workspace_id"`
		Action      string  `json:"action"`
		Name        string  `json:"name"`
		Agent       string  `json:"agent"`
	}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &args); err != nil {
			return errdefs.Invalidf("arguments: not a JSON object")
		}
	}
	switch tool {
	case "vault":
		return nil
	case "team":
		if sc.Team == "" || args.Name != sc.Team {
			return errdefs.NotFoundf("name: no such team in this session")
		}
		if !slices.Contains(scopedTeamActions, args.Action) {
			return errdefs.PermissionDeniedf("action: only status, message and receive are allowed on the bridge")
		}
		if args.Action != "status" && args.Agent != sc.Member {
			return errdefs.PermissionDeniedf("agent: on the bridge a member sends and receives as itself only")
		}
		return nil
	}
	if args.WorkspaceID == nil || (*args.WorkspaceID != sc.WorkspaceID && *args.WorkspaceID != sc.WorkspaceName) {
		return errNoWorkspaceScoped()
	}
	return nil
}

func errNoWorkspaceScoped() error {
	return errdefs.NotFoundf("workspace_id: no such workspace in this session")
}
