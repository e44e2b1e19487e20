package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/team"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Teams is the team service the team tool calls (package team).
type Teams interface {
	Create(ctx context.Context, c workspace.Caller, req team.CreateRequest) (*team.Info, error)
	Destroy(ctx context.Context, c workspace.Caller, name string) (*team.DestroyResult, error)
	Status(ctx context.Context, c workspace.Caller, name string) (*team.Info, error)
	List(ctx context.Context, c workspace.Caller) ([]team.ListEntry, error)
	Message(ctx context.Context, c workspace.Caller, req team.MessageRequest) (*team.MessageResult, error)
	Receive(ctx context.Context, c workspace.Caller, name, agent string, limit int) (*team.ReceiveResult, error)
}

type teamIn struct {
	Action string `json:"action" jsonschema:"one of create, destroy, status, list, message, receive"`
	Name   string `json:"name,omitempty" jsonschema:"the team (every action but list)"`
	// create
	Roles        []team.Role `json:"roles,omitempty" jsonschema:"create: the members, each {name, role, skills, description}; each gets workspace {team}-{name}"`
	MaxVMs       int         `json:"max_vms,omitempty" jsonschema:"create: the team's VM budget, shared with its sub-teams (default 10, or the parent's)"`
	BaseSnapshot string      `json:"base_snapshot,omitempty" jsonschema:"create: {workspace}/{snapshot}: every member is a fork of that snapshot of one of your workspaces (its size and internet access); default: members boot the base image"`
	ParentTeam   string      `json:"parent_team,omitempty" jsonschema:"create: make a sub-team of this team, sharing its VM budget"`
	BridgeTools  []string    `json:"bridge_tools,omitempty" jsonschema:"create: the tools the members' MCP bridge tokens allow (default: the daemon's [bridge] tools)"`
	// message, receive
	Agent       string `json:"agent,omitempty" jsonschema:"message: the sender; receive: the member whose inbox to read"`
	To          string `json:"to,omitempty" jsonschema:"message: a member name, or * for every other member"`
	Content     string `json:"content,omitempty" jsonschema:"message: at most 256 KiB; for task_assignment a JSON object {task_id, command, workdir, env, timeout_secs}"`
	MessageType string `json:"message_type,omitempty" jsonschema:"message: text (default), or task_assignment to have the recipient's workspace run a command"`
	Limit       int    `json:"limit,omitempty" jsonschema:"receive: most messages to return (default 10, max 100)"`
}

type teamListOut struct {
	Teams []team.ListEntry `json:"teams"`
	Count int              `json:"count"`
}

func (t *tools) registerTeamTools(s *mcp.Server) {
	add(t, s, "team",
		"Teams of agents: create (name, roles, max_vms, parent_team, base_snapshot) gives every member its own workspace "+
			"{team}-{member}, an agent card at teams/{team}/cards/{member}.json in the vault and a task board under "+
			"teams/{team}/tasks/; destroy (cascades to sub-teams), status, list; message (agent, to, content, "+
			"message_type) stores a message in an inbox, or with message_type task_assignment has the member's "+
			"workspace run a command; receive (agent, limit) returns the inbox, the finished task results as "+
			"daemon_results and daemon_pending_tasks.",
		func(in teamIn) string { return in.Name },
		func(ctx context.Context, _ *mcp.CallToolRequest, in teamIn) (any, error) {
			c := t.caller
			ts := t.d.Teams
			if ts == nil {
				return nil, errdefs.Unavailablef("action: teams are not available on this daemon")
			}
			switch in.Action {
			case "create":
				return ts.Create(ctx, c, team.CreateRequest{Name: in.Name, Roles: in.Roles, MaxVMs: in.MaxVMs, ParentTeam: in.ParentTeam,
					BridgeTools: in.BridgeTools, BaseSnapshot: in.BaseSnapshot})
			case "destroy":
				return ts.Destroy(ctx, c, in.Name)
			case "status":
				return ts.Status(ctx, c, in.Name)
			case "list":
				l, err := ts.List(ctx, c)
				if err != nil {
					return nil, err
				}
				return teamListOut{Teams: l, Count: len(l)}, nil
			case "message":
				return ts.Message(ctx, c, team.MessageRequest{Team: in.Name, Agent: in.Agent, To: in.To, Content: in.Content, MessageType: in.MessageType})
			case "receive":
				return ts.Receive(ctx, c, in.Name, in.Agent, in.Limit)
			}
			return nil, errdefs.Invalidf("action: must be create, destroy, status, list, message or receive")
		})
}
