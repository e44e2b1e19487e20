package team

import (
	"context"
	"slices"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/workspace"
)

// baseSnapshot is where a team's members start: a snapshot of a workspace
// the creating session owns. Zero: the base image.
type baseSnapshot struct {
	workspace, snapshot string
}

// parseBaseSnapshot reads create's base_snapshot, "{workspace}/{snapshot}"
// (the workspace by name or ID), and checks that c owns the workspace and
// that it has that snapshot, ready. Neither name is echoed in an error
// (L-16).
func (s *Service) parseBaseSnapshot(ctx context.Context, c workspace.Caller, v string) (baseSnapshot, error) {
	if v == "" {
		return baseSnapshot{}, nil
	}
	ws, snap, ok := strings.Cut(v, "/")
	if !ok {
		return baseSnapshot{}, errdefs.Invalidf("base_snapshot: must be {workspace}/{snapshot}: a workspace of this session and the name of one of its snapshots")
	}
	for _, p := range []string{ws, snap} {
		if err := names.Validate("base_snapshot", p); err != nil {
			return baseSnapshot{}, errdefs.Invalidf("%v", err)
		}
	}
	info, err := s.ws.Info(ctx, c, ws)
	if err != nil || !info.Owned {
		return baseSnapshot{}, errdefs.NotFoundf("base_snapshot: no such workspace in this session")
	}
	if !slices.Contains(info.Snapshots, snap) {
		return baseSnapshot{}, errdefs.NotFoundf("base_snapshot: the workspace has no such snapshot")
	}
	return baseSnapshot{workspace: info.ID, snapshot: snap}, nil
}

// makeMember makes member's workspace: a fork of the base snapshot (the
// workspace manager's fork: its quotas, lineage and fresh identity; a fork
// of a memory snapshot drops the source's bridge environment) or, without
// one, a new workspace on the base image.
func (s *Service) makeMember(ctx context.Context, c workspace.Caller, base baseSnapshot, name string) (string, error) {
	if base.snapshot == "" {
		info, err := s.ws.Create(ctx, c, workspace.CreateRequest{Name: name})
		if err != nil {
			return "", err
		}
		return info.ID, nil
	}
	res, err := s.ws.Fork(ctx, c, base.workspace, workspace.ForkRequest{SnapshotName: base.snapshot, NewName: name})
	if err != nil {
		return "", err
	}
	if len(res.Forks) != 1 {
		return "", errdefs.Unavailablef("base_snapshot: the fork was not made")
	}
	return res.Forks[0].ID, nil
}
