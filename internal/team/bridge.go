package team

import (
	"context"
	"slices"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
)

// Bridge gives member workspaces their MCP bridge tokens (package bridge).
type Bridge interface {
	// Grant issues the workspace a token allowing tools (nil: the
	// configured default) and delivers it to the guest's memory.
	Grant(ctx context.Context, team, member, workspaceID, workspaceName string, tools []string) error
	// Revoke ends the workspace's token.
	Revoke(workspaceID string)
	// Scopable are the tools a token may allow.
	Scopable() []string
}

// checkBridgeTools refuses an allowlist naming a tool a bridge token cannot
// carry.
func (s *Service) checkBridgeTools(tools []string) error {
	if len(tools) == 0 {
		return nil
	}
	if s.bridge == nil {
		return errdefs.Unavailablef("bridge_tools: the MCP bridge is not enabled on this daemon")
	}
	for i, t := range tools {
		if !slices.Contains(s.bridge.Scopable(), t) {
			return errdefs.Invalidf("bridge_tools[%d]: not a tool the bridge offers (one of %v)", i, s.bridge.Scopable())
		}
	}
	return nil
}

// grantAll gives every member of team with a workspace its bridge token.
func (s *Service) grantAll(ctx context.Context, t state.Team) error {
	if s.bridge == nil {
		return nil
	}
	ms, err := s.store.TeamMembers(ctx, t.Name)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.WorkspaceID == "" {
			continue
		}
		if err := s.bridge.Grant(ctx, t.Name, m.Name, m.WorkspaceID, WorkspaceName(t.Name, m.Name), t.BridgeTools); err != nil {
			return err
		}
	}
	return nil
}

// revokeAll ends the tokens of team's members.
func (s *Service) revokeAll(ms []state.TeamMember) {
	if s.bridge == nil {
		return
	}
	for _, m := range ms {
		if m.WorkspaceID != "" {
			s.bridge.Revoke(m.WorkspaceID)
		}
	}
}

// RegrantAll gives every running member workspace of every team a new
// bridge token: tokens are never persisted, so a daemon start issues new
// ones. A member whose guest cannot take one is logged and skipped.
func (s *Service) RegrantAll(ctx context.Context) {
	s.regrant(ctx, "")
}

// MemberStarted gives a member workspace that runs on a fresh guest
// (workspace_start, a restore: the guest's memory, and the token that was
// in it, are new) a new bridge token; the one it had stops working. It is
// the workspace manager's OnStarted function; a workspace in no team is
// left alone.
func (s *Service) MemberStarted(ctx context.Context, workspaceID string) {
	s.regrant(ctx, workspaceID)
}

// regrant gives the running member workspaces of ready teams (only
// workspaceID's when not empty) new tokens.
func (s *Service) regrant(ctx context.Context, workspaceID string) {
	if s.bridge == nil {
		return
	}
	ts, err := s.store.ListTeams(ctx)
	if err != nil {
		s.log.Error("listing teams for bridge tokens", "err", err)
		return
	}
	for _, t := range ts {
		if t.State != state.TeamReady {
			continue
		}
		ms, err := s.store.TeamMembers(ctx, t.Name)
		if err != nil {
			continue
		}
		for _, m := range ms {
			if m.WorkspaceID == "" || workspaceID != "" && m.WorkspaceID != workspaceID {
				continue
			}
			w, err := s.store.GetWorkspace(ctx, m.WorkspaceID)
			if err != nil || w.State != state.WorkspaceRunning {
				continue
			}
			if err := s.bridge.Grant(ctx, t.Name, m.Name, m.WorkspaceID, WorkspaceName(t.Name, m.Name), t.BridgeTools); err != nil {
				s.log.Warn("giving a member its bridge token", "team", t.Name, "member", m.Name, "err", err)
				continue
			}
			s.log.Info("bridge token given", "team", t.Name, "member", m.Name)
		}
	}
}
