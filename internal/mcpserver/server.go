// Package mcpserver exposes agentiso as MCP tools. Handlers are thin: they
// validate input, call the workspace manager and shape the result as
// ../shared/TOOLS.md describes. Every failure becomes a tool error (IsError)
// whose text is the public message of its errdefs class; internal detail
// goes to the log only.
package mcpserver

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Version is reported to MCP clients as the server version.
var Version = "dev"

// AuditRecord is one tool call for the audit log.
type AuditRecord struct {
	Caller   workspace.Caller
	Tool     string
	Target   string
	Err      error
	Duration time.Duration
}

// ExecLimits are the exec defaults and caps from the configuration.
type ExecLimits struct {
	DefaultTimeout        time.Duration
	MaxTimeout            time.Duration
	DefaultMaxOutputBytes int64
	MaxOutputBytes        int64
	// MaxFileReadBytes bounds one file_read answer.
	MaxFileReadBytes int64
}

// Deps is what the tools need from the daemon.
type Deps struct {
	Workspaces Workspaces
	Exec       ExecLimits
	// Git, when set, serves the git tools and workspace_merge.
	Git Git
	// Swarm, when set, serves workspace_prepare and swarm_run.
	Swarm Swarm
	// Network, when set, serves the networking tools.
	Network Network
	// Limiter is the rate limit every tool call passes first; required.
	Limiter Limiter
	// Activity, when set, learns of every request of the session.
	Activity Activity
	// Vault is the shared knowledge base; nil when the configuration
	// disables it (the vault tool then says so).
	Vault Vault
	// Teams, when set, serves the team tool.
	Teams Teams
	// Scope, when set, confines the server to one workspace and its team
	// (the MCP bridge).
	Scope *Scope
	// Audit, when set, receives every tool call.
	Audit  func(ctx context.Context, r AuditRecord)
	Logger *slog.Logger
	// SchemaCache is shared by the per-connection servers so tool schemas are
	// derived once.
	SchemaCache *mcp.SchemaCache
}

// Workspaces is the part of the workspace manager the tools call.
type Workspaces interface {
	Create(ctx context.Context, c workspace.Caller, req workspace.CreateRequest) (*workspace.Info, error)
	Destroy(ctx context.Context, c workspace.Caller, ref string) error
	Start(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	Stop(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	List(ctx context.Context, c workspace.Caller, stateFilter string) ([]workspace.Info, error)
	Info(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	Logs(ctx context.Context, c workspace.Caller, ref, logType string, maxLines int) (*workspace.Logs, error)
	Exec(ctx context.Context, c workspace.Caller, ref string, req workspace.ExecRequest) (*workspace.ExecResult, error)
	WriteFile(ctx context.Context, c workspace.Caller, ref, path string, content []byte, mode uint32) error
	ReadFile(ctx context.Context, c workspace.Caller, ref, path string, offset, limit int64) (data []byte, size int64, err error)
	JobsAndFiles
	Adopt(ctx context.Context, c workspace.Caller, ref string, force bool) (*workspace.AdoptResult, error)
}

// NewServer returns the MCP server for one connection. caller is the
// session the daemon assigned to that connection; no tool can change it.
func NewServer(d Deps, caller workspace.Caller) *mcp.Server {
	if d.Limiter == nil {
		// A server without its rate limit is a wiring mistake, never a
		// configuration: fail at once rather than serve unlimited.
		panic("mcpserver: Deps.Limiter is required")
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "agentiso", Title: "agentiso workspaces", Version: Version},
		&mcp.ServerOptions{
			Instructions: "agentiso gives you isolated Linux workspaces (microVMs). " +
				"Create one with workspace_create, run commands with exec, read and write files " +
				"with file_read and file_write, and destroy it when done. " +
				"Workspaces listed with owned: false were left by a session that ended (yours, " +
				"before a reconnect): take them back with workspace_adopt." +
				" Work with git repositories in a workspace with git_clone, git_status, git_diff, " +
				"git_commit and git_push; bring several workspaces' commits together with workspace_merge." +
				" Fan work out with workspace_prepare (a golden workspace and snapshot) and swarm_run (a task per forked worker)." +
				" The vault tool is a markdown knowledge base on the host, shared by every session, that needs no workspace.",
			SchemaCache:  d.SchemaCache,
			Capabilities: &mcp.ServerCapabilities{},
		})
	t := &tools{d: d, caller: caller}
	s.AddReceivingMiddleware(t.guard)
	t.register(s)
	if d.Scope != nil {
		d.Scope.restrict(s, t.names)
	}
	return s
}

// tools holds what every handler of one connection shares.
type tools struct {
	d      Deps
	caller workspace.Caller
	// names are the registered tools.
	names []string
}

// add registers one tool with audit and error mapping around its handler.
// target extracts the audited object (a workspace reference) from the input.
func add[In, Out any](t *tools, s *mcp.Server, name, desc string, target func(In) string,
	h func(ctx context.Context, req *mcp.CallToolRequest, in In) (Out, error)) {
	addTool(t, s, &mcp.Tool{Name: name, Description: desc}, target, h)
}

// addTool is add for a tool that brings more than a name and description,
// such as an input schema refined beyond what its Go type says.
func addTool[In, Out any](t *tools, s *mcp.Server, tool *mcp.Tool, target func(In) string,
	h func(ctx context.Context, req *mcp.CallToolRequest, in In) (Out, error)) {
	name := tool.Name
	t.names = append(t.names, name)
	mcp.AddTool(s, tool,
		func(ctx context.Context, req *mcp.CallToolRequest, in In) (*mcp.CallToolResult, Out, error) {
			start := time.Now()
			out, err := h(ctx, req, in)
			tgt := ""
			if target != nil {
				tgt = target(in)
			}
			if t.d.Audit != nil {
				t.d.Audit(ctx, AuditRecord{Caller: t.caller, Tool: name, Target: tgt, Err: err, Duration: time.Since(start)})
			}
			if err != nil {
				var zero Out
				return nil, zero, toolError(t.d.Logger, name, err)
			}
			return nil, out, nil
		})
}

// toolError logs err and returns the error the SDK turns into a tool result
// with IsError set (never a protocol error). Only the public text of a
// classified error reaches the caller.
func toolError(log *slog.Logger, tool string, err error) error {
	class := errdefs.ClassOf(err)
	if class == errdefs.Internal {
		log.Error("tool failed", "tool", tool, "err", err)
	} else {
		log.Debug("tool refused", "tool", tool, "class", class.String(), "err", err)
	}
	return errors.New(errdefs.Public(err))
}

func (t *tools) register(s *mcp.Server) {
	t.registerWorkspaceTools(s)
	t.registerExecTools(s)
	t.registerFileTools(s)
	t.registerJobTools(s)
	t.registerFileOpsTools(s)
	t.registerSnapshotTools(s)
	t.registerSessionTools(s)
	t.registerVaultTools(s)
	t.registerTeamTools(s)
	if t.d.Git != nil {
		t.registerGitTools(s)
	}
	if t.d.Swarm != nil {
		t.registerSwarmTools(s)
	}
	t.registerNetworkTools(s)
}
