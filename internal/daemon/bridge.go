package daemon

import (
	"context"
	"fmt"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/bridge"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/mcpserver"
	"github.com/agentiso/agentiso/internal/workspace"
)

// startBridge opens the MCP bridge and returns what gives team members
// their tokens.
func (d *Daemon) startBridge(cfg config.Config) (*bridge.Issuer, error) {
	for i, t := range cfg.Bridge.Tools {
		if !slices.Contains(mcpserver.ScopableTools, t) {
			return nil, fmt.Errorf("bridge.tools[%d]: %q is not a tool the bridge can offer (one of %v)", i, t, mcpserver.ScopableTools)
		}
	}
	tokens := bridge.NewTokens()
	srv, err := bridge.Listen(bridge.Config{Listen: cfg.BridgeListen(), Tokens: tokens, NewServer: d.bridgeServer, Logger: d.log})
	if err != nil {
		return nil, err
	}
	d.bridge = srv
	go func() {
		if err := srv.Serve(); err != nil {
			d.log.Error("mcp bridge stopped", "err", err)
		}
	}()
	d.log.Info("mcp bridge listening", "addr", srv.Addr())
	return &bridge.Issuer{
		Tokens: tokens, Guests: d.manager, URL: srv.URL(), DefaultTools: cfg.Bridge.Tools,
		ScopableTools: mcpserver.ScopableTools, OnRevoke: srv.Forget,
	}, nil
}

// bridgeServer is the MCP server of one bridge session: the tools of the
// token's allowlist, confined to its workspace and team, acting as the
// session that owns the workspace.
func (d *Daemon) bridgeServer(g bridge.Grant) (*mcp.Server, error) {
	w, err := d.store.GetWorkspace(context.Background(), g.WorkspaceID)
	if err != nil {
		return nil, err
	}
	deps := d.mcpDeps
	deps.Scope = &mcpserver.Scope{WorkspaceID: g.WorkspaceID, WorkspaceName: g.WorkspaceName, Team: g.Team, Member: g.Member, Tools: g.Tools}
	return mcpserver.NewServer(deps, workspace.Caller{SessionID: w.Owner, Actor: "bridge"}), nil
}

// instanceEnv is the persistent exec environment that belongs to one
// workspace: the bridge's URL and token. A fork of a memory snapshot drops
// it before anything else, so it never holds another workspace's token.
func instanceEnv(cfg config.Config) []string {
	if !cfg.Bridge.Enabled {
		return nil
	}
	return []string{bridge.EnvURL, bridge.EnvToken}
}
