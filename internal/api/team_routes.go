package api

import (
	"context"
	"net/http"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/team"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Teams is the part of the team service (package team) the team routes
// call: what the team tool does, and what a person watching a team needs
// besides (the conversation without taking anyone's mail, the task board).
type Teams interface {
	Create(ctx context.Context, c workspace.Caller, req team.CreateRequest) (*team.Info, error)
	Destroy(ctx context.Context, c workspace.Caller, name string) (*team.DestroyResult, error)
	Status(ctx context.Context, c workspace.Caller, name string) (*team.Info, error)
	List(ctx context.Context, c workspace.Caller) ([]team.ListEntry, error)
	History(ctx context.Context, c workspace.Caller, name string, limit int) ([]team.HistoryMessage, error)
	OperatorMessage(ctx context.Context, c workspace.Caller, name, to, content string) (*team.MessageResult, error)
	Tasks(ctx context.Context, c workspace.Caller, name string) (*team.Board, error)
	AddTask(ctx context.Context, c workspace.Caller, name string, req team.NewTask) (*team.Task, error)
	MoveTask(ctx context.Context, c workspace.Caller, name, task, status string) (*team.Task, error)
}

func (a *API) teamRoutes() {
	a.handle("GET /api/v1/teams", "", a.listTeams)
	a.handleSub("POST /api/v1/teams", "team", "create", a.createTeam)
	a.handle("GET /api/v1/teams/{team}", "", a.teamStatus)
	a.handleSub("DELETE /api/v1/teams/{team}", "team", "destroy", a.destroyTeam)
	a.handle("GET /api/v1/teams/{team}/messages", "", a.teamMessages)
	a.handleSub("POST /api/v1/teams/{team}/messages", "team", "message", a.sendTeamMessage)
	a.handle("GET /api/v1/teams/{team}/tasks", "", a.teamTasks)
	a.handleSub("POST /api/v1/teams/{team}/tasks", "team", "add_task", a.addTeamTask)
	a.handleSub("POST /api/v1/teams/{team}/tasks/{task}/move", "team", "move_task", a.moveTeamTask)
}

func (a *API) teams() (Teams, error) {
	if a.o.Teams == nil {
		return nil, errdefs.Unavailablef("teams are not available on this server")
	}
	return a.o.Teams, nil
}

// TeamList is the answer of GET /teams.
type TeamList struct {
	Teams []team.ListEntry `json:"teams"`
	Count int              `json:"count"`
}

func (a *API) listTeams(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	list, err := ts.List(r.Context(), caller(r))
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []team.ListEntry{}
	}
	return &TeamList{Teams: list, Count: len(list)}, nil
}

// TeamCreate is the body of POST /teams.
type TeamCreate struct {
	Name       string      `json:"name"`
	Roles      []team.Role `json:"roles"`
	MaxVMs     int         `json:"max_vms,omitempty"`
	ParentTeam string      `json:"parent_team,omitempty"`
}

func (a *API) createTeam(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	var in TeamCreate
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return ts.Create(r.Context(), caller(r), team.CreateRequest{Name: in.Name, Roles: in.Roles, MaxVMs: in.MaxVMs, ParentTeam: in.ParentTeam})
}

func (a *API) teamStatus(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	return ts.Status(r.Context(), caller(r), r.PathValue("team"))
}

func (a *API) destroyTeam(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	return ts.Destroy(r.Context(), caller(r), r.PathValue("team"))
}

// TeamMessages is the answer of GET /teams/{team}/messages: the newest
// messages, newest first.
type TeamMessages struct {
	Messages []team.HistoryMessage `json:"messages"`
	// Operator is the sender name of messages sent through this API.
	Operator string `json:"operator"`
}

func (a *API) teamMessages(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r.URL.Query().Get("limit"), "limit", 50, 1, 500)
	if err != nil {
		return nil, err
	}
	ms, err := ts.History(r.Context(), caller(r), r.PathValue("team"), limit)
	if err != nil {
		return nil, err
	}
	if ms == nil {
		ms = []team.HistoryMessage{}
	}
	return &TeamMessages{Messages: ms, Operator: team.Operator}, nil
}

// TeamMessage is the body of POST /teams/{team}/messages: a text message
// from the operator to one member or, with to "*", to every member.
type TeamMessage struct {
	To      string `json:"to"`
	Content string `json:"content"`
}

func (a *API) sendTeamMessage(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	var in TeamMessage
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return ts.OperatorMessage(r.Context(), caller(r), r.PathValue("team"), in.To, in.Content)
}

func (a *API) teamTasks(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	return ts.Tasks(r.Context(), caller(r), r.PathValue("team"))
}

func (a *API) addTeamTask(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	var in team.NewTask
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return ts.AddTask(r.Context(), caller(r), r.PathValue("team"), in)
}

// TaskMove is the body of POST /teams/{team}/tasks/{task}/move.
type TaskMove struct {
	Status string `json:"status"`
}

func (a *API) moveTeamTask(_ http.ResponseWriter, r *http.Request) (any, error) {
	ts, err := a.teams()
	if err != nil {
		return nil, err
	}
	var in TaskMove
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return ts.MoveTask(r.Context(), caller(r), r.PathValue("team"), r.PathValue("task"), in.Status)
}

// TeamView is one team on the live-updates socket: its status (members,
// their workspaces and state, unread counts) and its task board.
type TeamView struct {
	team.Info
	// Board is nil when the vault (where boards live) is disabled.
	Board *team.Board `json:"board,omitempty"`
}

// teamViews is every team c may see, for a "teams" event.
func (a *API) teamViews(ctx context.Context, c workspace.Caller) ([]TeamView, error) {
	list, err := a.o.Teams.List(ctx, c)
	if err != nil {
		return nil, err
	}
	out := make([]TeamView, 0, len(list))
	for _, e := range list {
		info, err := a.o.Teams.Status(ctx, c, e.Name)
		if err != nil {
			continue // destroyed meanwhile
		}
		v := TeamView{Info: *info}
		if b, err := a.o.Teams.Tasks(ctx, c, e.Name); err == nil {
			v.Board = b
		}
		out = append(out, v)
	}
	return out, nil
}
