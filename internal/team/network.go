package team

import (
	"context"
	"fmt"
)

// Network lets the members of a team reach each other and nobody else (the
// workspace manager's peer groups, package network's rules).
type Network interface {
	// SetPeerGroup makes members (workspace IDs) the whole of group name;
	// an empty list removes the group.
	SetPeerGroup(ctx context.Context, name string, members []string) error
}

// peerGroup is the network peer group of team: its own name (teams and
// groups share the name rules, and a group holds one team).
func peerGroup(team string) string { return team }

// connect puts team's member workspaces in one peer group.
func (s *Service) connect(ctx context.Context, team string) error {
	if s.net == nil {
		return nil
	}
	ms, err := s.store.TeamMembers(ctx, team)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(ms))
	for _, m := range ms {
		if m.WorkspaceID != "" {
			ids = append(ids, m.WorkspaceID)
		}
	}
	if err := s.net.SetPeerGroup(ctx, peerGroup(team), ids); err != nil {
		return fmt.Errorf("letting the members of the team reach each other: %w", err)
	}
	return nil
}

// disconnect removes team's peer group.
func (s *Service) disconnect(ctx context.Context, team string) error {
	if s.net == nil {
		return nil
	}
	return s.net.SetPeerGroup(ctx, peerGroup(team), nil)
}
