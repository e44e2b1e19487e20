// Package team runs teams of agents: a team is a set of members, each with
// its own workspace ({team}-{member}), an inbox of persisted messages, task
// assignments executed by the member's guest over the host channel (the
// guest opens no listener, finding C-2), agent cards and a task board in the
// vault. Sub-teams share their ancestors' VM budget, checked and reserved in
// one state transaction across the whole hierarchy (finding H-10).
package team

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/agentiso/agentiso/internal/cleanup"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/keylock"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Workspaces is what teams need of the workspace manager.
type Workspaces interface {
	Create(ctx context.Context, c workspace.Caller, req workspace.CreateRequest) (*workspace.Info, error)
	Destroy(ctx context.Context, c workspace.Caller, ref string) error
	Info(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	Exec(ctx context.Context, c workspace.Caller, ref string, req workspace.ExecRequest) (*workspace.ExecResult, error)
	Fork(ctx context.Context, c workspace.Caller, ref string, req workspace.ForkRequest) (*workspace.ForkResult, error)
}

// Vault is what teams need of the vault: cards and the task board.
type Vault interface {
	Read(ctx context.Context, p string) (*vault.Note, error)
	Write(ctx context.Context, p string, content []byte, mode vault.WriteMode) (*vault.WriteResult, error)
	Update(ctx context.Context, p string, fn func(old []byte, exists bool) ([]byte, error)) (*vault.WriteResult, error)
	List(ctx context.Context, dir string, recursive bool) (*vault.Listing, error)
	RemoveAll(ctx context.Context, p string) error
}

// Limits bound teams; zero fields take the defaults below.
type Limits struct {
	// MaxDepth is the deepest nesting: a top-level team is depth 1.
	MaxDepth int
	// MaxMembers bounds one team's roles.
	MaxMembers int
	// DefaultMaxVMs is a top-level team's budget when create gives none.
	DefaultMaxVMs int
	// MessagesPerMinute is each sender's message rate within a team.
	MessagesPerMinute int
	// TasksPerGuest is how many task assignments one guest runs at once.
	TasksPerGuest int
	// Exec are the exec bounds task assignments get.
	Exec workspace.ExecLimits
	// MaxTaskOutputBytes bounds each of a task result's stdout and stderr.
	MaxTaskOutputBytes int64
}

// Defaults of Limits.
const (
	DefaultMaxDepth          = 3
	DefaultMaxMembers        = 16
	DefaultMaxVMs            = 10
	DefaultMessagesPerMinute = 60
	DefaultTasksPerGuest     = 4
	// MaxContentBytes bounds one message's content (TOOLS.md).
	MaxContentBytes = 256 << 10
	// MaxTextBytes bounds a role's role, description and each skill.
	MaxTextBytes = 4096
)

// Config configures a Service.
type Config struct {
	Store      *state.Store
	Workspaces Workspaces
	// Vault holds cards and task boards; nil when the vault is disabled
	// (then teams have neither).
	Vault Vault
	// Bridge, when set, gives members MCP bridge tokens.
	Bridge Bridge
	// Network, when set, lets members reach each other and nobody else.
	Network Network
	Limits  Limits
	Logger  *slog.Logger
}

// Service runs teams.
type Service struct {
	store  *state.Store
	ws     Workspaces
	vault  Vault
	bridge Bridge
	net    Network
	lim    Limits
	log    *slog.Logger
	rates  *rates
	runner *runner

	// locks serialise create and destroy of one team name with each other.
	locks keylock.Locks
}

// New returns a Service. Call Recover before serving requests.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Workspaces == nil {
		return nil, errors.New("team service: store and workspaces are required")
	}
	l := cfg.Limits
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxDepth, DefaultMaxDepth)
	def(&l.MaxMembers, DefaultMaxMembers)
	def(&l.DefaultMaxVMs, DefaultMaxVMs)
	def(&l.MessagesPerMinute, DefaultMessagesPerMinute)
	def(&l.TasksPerGuest, DefaultTasksPerGuest)
	if l.MaxTaskOutputBytes <= 0 {
		l.MaxTaskOutputBytes = 64 << 10
	}
	if l.Exec.MaxTimeout <= 0 {
		return nil, errors.New("team service: the exec limits are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		store: cfg.Store, ws: cfg.Workspaces, vault: cfg.Vault, bridge: cfg.Bridge, net: cfg.Network, lim: l, log: cfg.Logger,
		rates: newRates(l.MessagesPerMinute, time.Now),
	}
	s.runner = newRunner(s)
	return s, nil
}

// Role is one member a create asks for.
type Role struct {
	Name        string   `json:"name"`
	Role        string   `json:"role"`
	Skills      []string `json:"skills,omitempty"`
	Description string   `json:"description,omitempty"`
}

// CreateRequest is what team create asks for.
type CreateRequest struct {
	Name  string
	Roles []Role
	// MaxVMs is the team's budget; 0 takes the default (a top-level team)
	// or the parent's (a sub-team, which shares it).
	MaxVMs     int
	ParentTeam string
	// BridgeTools is the members' MCP bridge allowlist; nil takes the
	// configured default.
	BridgeTools []string
	// BaseSnapshot, "{workspace}/{snapshot}", makes every member a fork
	// of that snapshot of one of the caller's workspaces; empty: members
	// boot the base image.
	BaseSnapshot string
}

// Member is a member as status shows it.
type Member struct {
	Name          string   `json:"name"`
	Role          string   `json:"role"`
	Skills        []string `json:"skills"`
	Description   string   `json:"description"`
	WorkspaceID   string   `json:"workspace_id"`
	WorkspaceName string   `json:"workspace_name"`
	State         string   `json:"state"`
	IP            string   `json:"ip"`
	UnreadCount   int      `json:"unread_messages"`
	PendingTasks  int      `json:"pending_tasks"`
}

// Info is a team as create and status show it.
type Info struct {
	Name       string   `json:"name"`
	State      string   `json:"state"`
	ParentTeam string   `json:"parent_team,omitempty"`
	SubTeams   []string `json:"sub_teams"`
	MaxVMs     int      `json:"max_vms"`
	// UsedVMs are the VMs this team and its sub-teams hold of MaxVMs.
	UsedVMs   int       `json:"used_vms"`
	Members   []Member  `json:"members"`
	CreatedAt time.Time `json:"created_at"`
}

// errNoTeam is the one answer for a team the caller may not see; it does
// not echo the name (L-16).
func errNoTeam(field string) error {
	return errdefs.NotFoundf("%s: no such team in this session", field)
}

// lock serialises create and destroy of team name.
func (s *Service) lock(name string) func() { return s.locks.Lock(name) }

// validateRoles checks every role before anything is used (finding M-18):
// member names are workspace names' parts, vault path components and
// database keys, so they pass the one name validator, and so does the
// workspace name they make.
func (s *Service) validateRoles(team string, roles []Role) error {
	if len(roles) == 0 {
		return errdefs.Invalidf("roles: at least one role is required")
	}
	if len(roles) > s.lim.MaxMembers {
		return errdefs.Invalidf("roles: at most %d members", s.lim.MaxMembers)
	}
	seen := map[string]bool{}
	for i, r := range roles {
		if err := names.Validate(fmt.Sprintf("roles[%d].name", i), r.Name); err != nil {
			return errdefs.Invalidf("%v", err)
		}
		if seen[r.Name] {
			return errdefs.Invalidf("roles[%d].name: used twice", i)
		}
		seen[r.Name] = true
		if err := names.Validate(fmt.Sprintf("roles[%d].name", i), WorkspaceName(team, r.Name)); err != nil {
			return errdefs.Invalidf("roles[%d].name: team and member name together make a workspace name longer than %d", i, names.MaxLen)
		}
		if r.Role == "" {
			return errdefs.Invalidf("roles[%d].role: required", i)
		}
		if err := names.Validate(fmt.Sprintf("roles[%d].role", i), r.Role); err != nil {
			return errdefs.Invalidf("%v", err)
		}
		if len(r.Description) > MaxTextBytes {
			return errdefs.Invalidf("roles[%d].description: longer than %d bytes", i, MaxTextBytes)
		}
		if len(r.Skills) > 64 {
			return errdefs.Invalidf("roles[%d].skills: at most 64", i)
		}
		for _, sk := range r.Skills {
			if len(sk) == 0 || len(sk) > 256 {
				return errdefs.Invalidf("roles[%d].skills: each 1-256 bytes", i)
			}
		}
	}
	return nil
}

// WorkspaceName is the workspace of member in team.
func WorkspaceName(team, member string) string { return team + "-" + member }

// Create makes a team: it reserves the members' VMs against the budget of
// the team and of every ancestor in one transaction, then creates one
// workspace per member (on the base image, or forked from the base
// snapshot) and writes their agent cards. Any failure undoes it all.
func (s *Service) Create(ctx context.Context, c workspace.Caller, req CreateRequest) (*Info, error) {
	if err := names.Validate("name", req.Name); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if req.ParentTeam != "" {
		if err := names.Validate("parent_team", req.ParentTeam); err != nil {
			return nil, errdefs.Invalidf("%v", err)
		}
	}
	if req.MaxVMs < 0 {
		return nil, errdefs.Invalidf("max_vms: must not be negative")
	}
	if err := s.validateRoles(req.Name, req.Roles); err != nil {
		return nil, err
	}
	if err := s.checkBridgeTools(req.BridgeTools); err != nil {
		return nil, err
	}
	base, err := s.parseBaseSnapshot(ctx, c, req.BaseSnapshot)
	if err != nil {
		return nil, err
	}
	unlock := s.lock(req.Name)
	defer unlock()

	if err := s.reserve(ctx, c, req); err != nil {
		return nil, err
	}
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() { s.forget(context.WithoutCancel(ctx), c, req.Name) })

	// One at a time: the host boots every VM on the same few cores, and
	// the session's create rate and quotas apply to each.
	for _, r := range req.Roles {
		id, err := s.makeMember(ctx, c, base, WorkspaceName(req.Name, r.Name))
		if err != nil {
			return nil, fmt.Errorf("creating the workspace of member %s: %w", r.Name, err)
		}
		if err := s.store.SetMemberWorkspace(ctx, req.Name, r.Name, id); err != nil {
			_ = s.ws.Destroy(context.WithoutCancel(ctx), c, id)
			return nil, err
		}
	}
	if err := s.connect(ctx, req.Name); err != nil {
		return nil, err
	}
	if err := s.writeCards(ctx, req.Name); err != nil {
		return nil, err
	}
	t, err := s.store.GetTeam(ctx, req.Name)
	if err != nil {
		return nil, err
	}
	if err := s.grantAll(ctx, t); err != nil {
		return nil, err
	}
	if err := s.store.SetTeamState(ctx, req.Name, state.TeamReady); err != nil {
		return nil, err
	}
	cu.Release()
	s.log.Info("team created", "team", req.Name, "members", len(req.Roles), "session", c.SessionID)
	return s.status(ctx, c, req.Name)
}

// reserve records the team and its members (one VM each) after checking,
// in the same transaction, the depth limit and the budget of the team and
// of every ancestor (H-10: two creates cannot both fit where one would).
func (s *Service) reserve(ctx context.Context, c workspace.Caller, req CreateRequest) error {
	n := len(req.Roles)
	return s.store.Tx(ctx, func(tx *state.Tx) error {
		maxVMs := req.MaxVMs
		var ancestors []state.Team
		for p := req.ParentTeam; p != ""; {
			t, err := tx.GetTeam(ctx, p)
			if err != nil || !mayAct(c, t) {
				return errNoTeam("parent_team")
			}
			if t.State != state.TeamReady {
				return errdefs.Conflictf("parent_team: the team is %s", t.State)
			}
			ancestors = append(ancestors, t)
			p = t.Parent
		}
		if len(ancestors)+1 > s.lim.MaxDepth {
			return errdefs.Invalidf("parent_team: teams nest at most %d deep", s.lim.MaxDepth)
		}
		if maxVMs == 0 {
			maxVMs = s.lim.DefaultMaxVMs
			if len(ancestors) > 0 {
				maxVMs = ancestors[0].MaxVMs
			}
		}
		if n > maxVMs {
			return errdefs.Quotaf("max_vms: the team has %d members but a budget of %d VMs", n, maxVMs)
		}
		for _, a := range ancestors {
			used, err := tx.TeamSubtreeVMs(ctx, a.Name)
			if err != nil {
				return err
			}
			if used+n > a.MaxVMs {
				return errdefs.Quotaf("parent_team: team %s and its sub-teams hold %d of %d VMs; %d more would exceed its budget",
					a.Name, used, a.MaxVMs, n)
			}
		}
		members := make([]state.TeamMember, n)
		for i, r := range req.Roles {
			members[i] = state.TeamMember{Name: r.Name, Role: r.Role, Skills: r.Skills, Description: r.Description}
		}
		_, err := tx.CreateTeam(ctx, state.Team{Name: req.Name, Owner: c.SessionID, Parent: req.ParentTeam, MaxVMs: maxVMs, BridgeTools: req.BridgeTools}, members)
		return err
	})
}

// mayAct reports whether c may see and act on team t.
func mayAct(c workspace.Caller, t state.Team) bool { return c.Admin || t.Owner == c.SessionID }

// resolve returns team name if c may act on it. A team whose session ended
// follows its workspaces: once c has adopted every member's workspace
// (workspace_adopt), the team becomes c's too.
func (s *Service) resolve(ctx context.Context, c workspace.Caller, field, name string) (state.Team, error) {
	if err := names.Validate(field, name); err != nil {
		return state.Team{}, errdefs.Invalidf("%v", err)
	}
	t, err := s.store.GetTeam(ctx, name)
	if err != nil {
		return state.Team{}, errNoTeam(field)
	}
	if mayAct(c, t) {
		return t, nil
	}
	if !s.adoptedAll(ctx, c, t) {
		return state.Team{}, errNoTeam(field)
	}
	err = s.store.Tx(ctx, func(tx *state.Tx) error {
		cur, err := tx.GetTeam(ctx, name)
		if err != nil || cur.Owner != t.Owner {
			return errNoTeam(field)
		}
		return tx.SetTeamOwner(ctx, name, c.SessionID)
	})
	if err != nil {
		return state.Team{}, err
	}
	s.log.Info("team follows its adopted workspaces", "team", name, "session", c.SessionID)
	t.Owner = c.SessionID
	return t, nil
}

// adoptedAll reports whether every member workspace of t now belongs to c
// while t's own session has ended.
func (s *Service) adoptedAll(ctx context.Context, c workspace.Caller, t state.Team) bool {
	owner, err := s.store.GetSession(ctx, t.Owner)
	if err != nil || owner.Active() {
		return false
	}
	ms, err := s.store.TeamMembers(ctx, t.Name)
	if err != nil || len(ms) == 0 {
		return false
	}
	for _, m := range ms {
		if m.WorkspaceID == "" {
			return false
		}
		if _, err := s.ws.Info(ctx, c, m.WorkspaceID); err != nil {
			return false
		}
		w, err := s.store.GetWorkspace(ctx, m.WorkspaceID)
		if err != nil || w.Owner != c.SessionID {
			return false
		}
	}
	return true
}

// Destroy removes a team: its sub-teams first, then every member's
// workspace, its cards and task board, and its records with its messages.
func (s *Service) Destroy(ctx context.Context, c workspace.Caller, name string) (*DestroyResult, error) {
	if _, err := s.resolve(ctx, c, "name", name); err != nil {
		return nil, err
	}
	res := &DestroyResult{Name: name, DestroyedTeams: []string{}, DestroyedWorkspaces: []string{}}
	if err := s.destroy(ctx, c, name, res); err != nil {
		return nil, err
	}
	return res, nil
}

// DestroyResult is what team destroy removed.
type DestroyResult struct {
	Name                string   `json:"name"`
	DestroyedTeams      []string `json:"destroyed_teams"`
	DestroyedWorkspaces []string `json:"destroyed_workspaces"`
}

func (s *Service) destroy(ctx context.Context, c workspace.Caller, name string, res *DestroyResult) error {
	subs, err := s.store.SubTeams(ctx, name)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if err := s.destroy(ctx, c, sub, res); err != nil {
			return err
		}
	}
	unlock := s.lock(name)
	defer unlock()
	if err := s.store.SetTeamState(ctx, name, state.TeamDestroying); err != nil {
		if errdefs.Is(err, errdefs.NotFound) {
			return nil // destroyed meanwhile
		}
		return err
	}
	ws, err := s.forget(ctx, c, name)
	res.DestroyedTeams = append(res.DestroyedTeams, name)
	res.DestroyedWorkspaces = append(res.DestroyedWorkspaces, ws...)
	return err
}

// forget removes every trace of team name that exists: member workspaces,
// the vault folder, the records. It is the undo of Create and the body of
// Destroy, and tolerates what is already gone.
func (s *Service) forget(ctx context.Context, c workspace.Caller, name string) ([]string, error) {
	s.runner.cancelTeam(name)
	ms, err := s.store.TeamMembers(ctx, name)
	if err != nil {
		return nil, err
	}
	s.revokeAll(ms)
	var destroyed []string
	var errs []error
	// The workspaces go even if the rules could not be changed: a
	// destroyed workspace reaches nobody.
	if err := s.disconnect(ctx, name); err != nil {
		errs = append(errs, err)
	}
	for _, m := range ms {
		if m.WorkspaceID == "" {
			continue
		}
		err := s.ws.Destroy(ctx, c, m.WorkspaceID)
		switch {
		case err == nil:
			destroyed = append(destroyed, WorkspaceName(name, m.Name))
		case errdefs.Is(err, errdefs.NotFound):
		default:
			errs = append(errs, fmt.Errorf("destroying the workspace of member %s: %w", m.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return destroyed, err
	}
	if s.vault != nil {
		if err := s.vault.RemoveAll(ctx, teamDir(name)); err != nil {
			s.log.Error("removing a team's vault folder", "team", name, "err", err)
		}
	}
	if err := s.store.DeleteTeam(ctx, name); err != nil && !errdefs.Is(err, errdefs.NotFound) {
		return destroyed, err
	}
	return destroyed, nil
}

// Status describes one of c's teams.
func (s *Service) Status(ctx context.Context, c workspace.Caller, name string) (*Info, error) {
	if _, err := s.resolve(ctx, c, "name", name); err != nil {
		return nil, err
	}
	return s.status(ctx, c, name)
}

func (s *Service) status(ctx context.Context, c workspace.Caller, name string) (*Info, error) {
	t, err := s.store.GetTeam(ctx, name)
	if err != nil {
		return nil, errNoTeam("name")
	}
	subs, err := s.store.SubTeams(ctx, name)
	if err != nil {
		return nil, err
	}
	ms, err := s.store.TeamMembers(ctx, name)
	if err != nil {
		return nil, err
	}
	used, err := s.store.TeamSubtreeVMs(ctx, name)
	if err != nil {
		return nil, err
	}
	info := &Info{Name: t.Name, State: string(t.State), ParentTeam: t.Parent, SubTeams: subs, MaxVMs: t.MaxVMs,
		UsedVMs: used, Members: []Member{}, CreatedAt: t.CreatedAt}
	if info.SubTeams == nil {
		info.SubTeams = []string{}
	}
	for _, m := range ms {
		mi := Member{Name: m.Name, Role: m.Role, Skills: m.Skills, Description: m.Description,
			WorkspaceID: m.WorkspaceID, WorkspaceName: WorkspaceName(name, m.Name), State: "missing"}
		if mi.Skills == nil {
			mi.Skills = []string{}
		}
		if m.WorkspaceID != "" {
			if w, err := s.ws.Info(ctx, c, m.WorkspaceID); err == nil {
				mi.State, mi.IP = w.State, w.IP
			}
		}
		mi.UnreadCount, _ = s.store.CountUnread(ctx, name, m.Name)
		mi.PendingTasks, _ = s.store.CountOpenTasks(ctx, name, m.Name)
		info.Members = append(info.Members, mi)
	}
	return info, nil
}

// ListEntry is one team in team list.
type ListEntry struct {
	Name       string `json:"name"`
	State      string `json:"state"`
	ParentTeam string `json:"parent_team,omitempty"`
	Members    int    `json:"members"`
	MaxVMs     int    `json:"max_vms"`
}

// List returns c's teams.
func (s *Service) List(ctx context.Context, c workspace.Caller) ([]ListEntry, error) {
	ts, err := s.store.ListTeams(ctx)
	if err != nil {
		return nil, err
	}
	out := []ListEntry{}
	for _, t := range ts {
		if !mayAct(c, t) {
			continue
		}
		ms, err := s.store.TeamMembers(ctx, t.Name)
		if err != nil {
			return nil, err
		}
		out = append(out, ListEntry{Name: t.Name, State: string(t.State), ParentTeam: t.Parent, Members: len(ms), MaxVMs: t.MaxVMs})
	}
	return out, nil
}
