package state

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
)

// TeamState is where a team is in its life.
type TeamState string

// The team states.
const (
	TeamCreating   TeamState = "creating"
	TeamReady      TeamState = "ready"
	TeamDestroying TeamState = "destroying"
)

// Team is one team as stored.
type Team struct {
	Name  string
	Owner string
	// Parent is the parent team's name, empty for a top-level team.
	Parent string
	// MaxVMs is the team's VM budget, shared with its sub-teams.
	MaxVMs int
	// BridgeTools is the members' MCP bridge allowlist; nil means the
	// configured default.
	BridgeTools []string
	State       TeamState
	CreatedAt   time.Time
}

// TeamMember is one member of a team; each has its own workspace.
type TeamMember struct {
	Team        string
	Name        string
	Role        string
	Skills      []string
	Description string
	// WorkspaceID is empty until the member's workspace exists.
	WorkspaceID string
}

// CreateTeam records team t (state "creating" unless set) and its members,
// each member row reserving one VM of the budget. Run the budget check in
// the same transaction (Tx.TeamSubtreeVMs). A taken name is a Conflict.
func (t *Tx) CreateTeam(ctx context.Context, team Team, members []TeamMember) (Team, error) {
	if err := names.Validate("name", team.Name); err != nil {
		return Team{}, errdefs.With(errdefs.Invalid, err.Error(), nil)
	}
	if team.State == "" {
		team.State = TeamCreating
	}
	team.CreatedAt = now()
	var parent any
	if team.Parent != "" {
		parent = team.Parent
	}
	tools, err := json.Marshal(team.BridgeTools)
	if err != nil || team.BridgeTools == nil {
		tools = []byte("[]")
	}
	_, err = t.tx.ExecContext(ctx,
		`INSERT INTO teams (name, owner, parent, max_vms, bridge_tools, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		team.Name, team.Owner, parent, team.MaxVMs, string(tools), string(team.State), nanos(team.CreatedAt))
	switch {
	case isUnique(err, "teams.name"):
		return Team{}, errdefs.Conflictf("name: a team with this name already exists")
	case isForeignKey(err):
		return Team{}, errdefs.NotFoundf("parent_team: no such team")
	case err != nil:
		return Team{}, fmt.Errorf("inserting team: %w", err)
	}
	for _, m := range members {
		skills, err := json.Marshal(m.Skills)
		if err != nil {
			return Team{}, fmt.Errorf("encoding skills: %w", err)
		}
		if m.Skills == nil {
			skills = []byte("[]")
		}
		_, err = t.tx.ExecContext(ctx,
			`INSERT INTO team_members (team, name, role, skills, description, workspace_id) VALUES (?, ?, ?, ?, ?, ?)`,
			team.Name, m.Name, m.Role, string(skills), m.Description, m.WorkspaceID)
		if isUnique(err, "team_members") {
			return Team{}, errdefs.Invalidf("roles: member names must be unique")
		}
		if err != nil {
			return Team{}, fmt.Errorf("inserting team member: %w", err)
		}
	}
	return team, nil
}

// GetTeam returns the team named name.
func (t *Tx) GetTeam(ctx context.Context, name string) (Team, error) { return getTeam(ctx, t.tx, name) }

// GetTeam returns the team named name.
func (s *Store) GetTeam(ctx context.Context, name string) (Team, error) {
	return getTeam(ctx, s.r, name)
}

// ListTeams returns every team, oldest first; the caller filters by owner.
func (s *Store) ListTeams(ctx context.Context) ([]Team, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, owner, COALESCE(parent, ''), max_vms, bridge_tools, state, created_at FROM teams ORDER BY created_at, name`)
	if err != nil {
		return nil, fmt.Errorf("listing teams: %w", err)
	}
	return scanRows(rows, "team", scanTeam)
}

// SubTeams returns the names of the direct sub-teams of name.
func (s *Store) SubTeams(ctx context.Context, name string) ([]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name FROM teams WHERE parent = ? ORDER BY name`, name)
	if err != nil {
		return nil, fmt.Errorf("listing sub-teams: %w", err)
	}
	return scanRows(rows, "sub-team", func(r scanner) (n string, err error) {
		err = r.Scan(&n)
		return n, err
	})
}

// TeamSubtreeVMs counts the VMs reserved by team name and all its
// descendants. Run it in the transaction that adds members, so the budget
// check and the reservation are one step (finding H-10).
func (t *Tx) TeamSubtreeVMs(ctx context.Context, name string) (int, error) {
	return teamSubtreeVMs(ctx, t.tx, name)
}

// TeamSubtreeVMs counts the VMs reserved by team name and its descendants;
// for a budget check use Tx.TeamSubtreeVMs.
func (s *Store) TeamSubtreeVMs(ctx context.Context, name string) (int, error) {
	return teamSubtreeVMs(ctx, s.r, name)
}

func teamSubtreeVMs(ctx context.Context, q querier, name string) (int, error) {
	var n int
	err := q.QueryRowContext(ctx, `WITH RECURSIVE sub(name) AS (
			SELECT ? UNION SELECT teams.name FROM teams JOIN sub ON teams.parent = sub.name)
		SELECT COUNT(*) FROM team_members WHERE team IN (SELECT name FROM sub)`, name).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting a team's VMs: %w", err)
	}
	return n, nil
}

// SetTeamState changes a team's state.
func (t *Tx) SetTeamState(ctx context.Context, name string, st TeamState) error {
	return expectOne(t.tx.ExecContext(ctx, `UPDATE teams SET state = ? WHERE name = ?`, string(st), name))
}

// SetTeamOwner hands a team to another session (after its workspaces were
// adopted).
func (t *Tx) SetTeamOwner(ctx context.Context, name, owner string) error {
	return expectOne(t.tx.ExecContext(ctx, `UPDATE teams SET owner = ? WHERE name = ?`, owner, name))
}

// SetMemberWorkspace records the workspace of a team member.
func (s *Store) SetMemberWorkspace(ctx context.Context, team, member, workspaceID string) error {
	return s.Tx(ctx, func(tx *Tx) error {
		return expectOne(tx.tx.ExecContext(ctx,
			`UPDATE team_members SET workspace_id = ? WHERE team = ? AND name = ?`, workspaceID, team, member))
	})
}

// SetTeamState changes a team's state in its own transaction.
func (s *Store) SetTeamState(ctx context.Context, name string, st TeamState) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.SetTeamState(ctx, name, st) })
}

// DeleteTeam removes a team with its members, messages and tasks (and any
// sub-team rows left).
func (s *Store) DeleteTeam(ctx context.Context, name string) error {
	return s.Tx(ctx, func(tx *Tx) error {
		return expectOne(tx.tx.ExecContext(ctx, `DELETE FROM teams WHERE name = ?`, name))
	})
}

// TeamMembers returns a team's members by name.
func (s *Store) TeamMembers(ctx context.Context, team string) ([]TeamMember, error) {
	rows, err := s.r.QueryContext(ctx,
		`SELECT team, name, role, skills, description, workspace_id FROM team_members WHERE team = ? ORDER BY name`, team)
	if err != nil {
		return nil, fmt.Errorf("listing team members: %w", err)
	}
	return scanRows(rows, "team member", func(r scanner) (TeamMember, error) {
		var m TeamMember
		var skills string
		if err := r.Scan(&m.Team, &m.Name, &m.Role, &skills, &m.Description, &m.WorkspaceID); err != nil {
			return m, err
		}
		if err := json.Unmarshal([]byte(skills), &m.Skills); err != nil {
			return m, fmt.Errorf("decoding skills: %w", err)
		}
		return m, nil
	})
}

func getTeam(ctx context.Context, q querier, name string) (Team, error) {
	row := q.QueryRowContext(ctx, `SELECT name, owner, COALESCE(parent, ''), max_vms, bridge_tools, state, created_at FROM teams WHERE name = ?`, name)
	return scanRow(row, "team", errdefs.NotFoundf("name: no such team in this session"), scanTeam)
}

func scanTeam(sc scanner) (Team, error) {
	var tm Team
	var st, tools string
	var created int64
	if err := sc.Scan(&tm.Name, &tm.Owner, &tm.Parent, &tm.MaxVMs, &tools, &st, &created); err != nil {
		return Team{}, err
	}
	tm.State, tm.CreatedAt = TeamState(st), fromNanos(created)
	if err := json.Unmarshal([]byte(tools), &tm.BridgeTools); err != nil {
		return Team{}, fmt.Errorf("decoding a team's bridge tools: %w", err)
	}
	if len(tm.BridgeTools) == 0 {
		tm.BridgeTools = nil
	}
	return tm, nil
}

// expectOne turns an UPDATE or DELETE that touched no row into NotFound.
func expectOne(res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("writing team: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("writing team: %w", err)
	}
	if n == 0 {
		return errdefs.NotFoundf("name: no such team")
	}
	return nil
}
