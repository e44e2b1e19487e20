package api

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/team"
	"github.com/agentiso/agentiso/internal/workspace"
)

// moveOnlyTeams answers a task move and nothing else: enough to see what
// the route passes on, limits and records.
type moveOnlyTeams struct {
	Teams
	moved []string
}

func (m *moveOnlyTeams) MoveTask(_ context.Context, _ workspace.Caller, name, task, status string) (*team.Task, error) {
	m.moved = append(m.moved, name+"/"+task+"->"+status)
	return &team.Task{ID: task, Status: status}, nil
}

type recordingLimiter struct{ calls []string }

func (l *recordingLimiter) Allow(_, tool, action string) error {
	l.calls = append(l.calls, tool+"/"+action)
	return nil
}

// Without teams or networking their routes answer 503 saying so; a bad
// body or port names its field; a move reaches the team service with its
// path's team and task, is rate-limited as the team tool's action and
// recorded in the audit log with the team and task as its target.
func TestTeamAndNetworkRoutes(t *testing.T) {
	a, err := New(Options{Workspaces: nilWorkspaces{}, AuditLog: nilAudit{}, Streams: NewStreamLimiter(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	admin := workspace.Caller{SessionID: "s", Admin: true}
	serve := func(method, path, body string) (int, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r = r.WithContext(WithCaller(r.Context(), admin))
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/api/v1/teams", "", "teams are not available"},
		{"POST", "/api/v1/teams/k/tasks/t/move", `{"status":"done"}`, "teams are not available"},
		{"GET", "/api/v1/teams/k/messages", "", "teams are not available"},
		{"POST", "/api/v1/workspaces/w/port_forwards", `{"guest_port":80}`, "networking is not enabled"},
		{"DELETE", "/api/v1/workspaces/w/port_forwards/80", "", "networking is not enabled"},
		{"PATCH", "/api/v1/workspaces/w/network", `{"allow_internet":true}`, "networking is not enabled"},
	} {
		if code, body := serve(tc.method, tc.path, tc.body); code != 503 || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, code, body)
		}
	}

	teams := &moveOnlyTeams{}
	lim := &recordingLimiter{}
	var audit []AuditRecord
	a.o.Teams, a.o.Network, a.o.Limiter = teams, nilNetwork{}, lim
	a.o.Record = func(_ context.Context, r AuditRecord) { audit = append(audit, r) }
	if code, body := serve("POST", "/api/v1/teams/k/tasks/design/move", `{"status":"review"}`); code != 200 || !strings.Contains(body, `"status":"review"`) {
		t.Fatalf("move: %d %s", code, body)
	}
	if strings.Join(teams.moved, " ") != "k/design->review" || strings.Join(lim.calls, " ") != "team/move_task" {
		t.Errorf("moved %v, limited %v", teams.moved, lim.calls)
	}
	if len(audit) != 1 || audit[0].Action != "team.move_task" || audit[0].Target != "k/design" || audit[0].Err != nil {
		t.Errorf("audit: %+v", audit)
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"POST", "/api/v1/teams/k/tasks/design/move", `{"status":5}`, "status: wrong type"},
		{"POST", "/api/v1/teams/k/tasks/design/move", `{"state":"x"}`, "body: not a valid JSON object"},
		{"DELETE", "/api/v1/workspaces/w/port_forwards/eighty", "", "guest_port: must be 1-65535"},
		{"PATCH", "/api/v1/workspaces/w/network", `{}`, "body: give at least one of"},
		{"POST", "/api/v1/workspaces/w/port_forwards", `{"guest_port":"80"}`, "guest_port: wrong type"},
	} {
		code, body := serve(tc.method, tc.path, tc.body)
		if code != 400 || !strings.Contains(body, tc.want) || strings.Contains(body, "eighty") {
			t.Errorf("%s %s %s: %d %s", tc.method, tc.path, tc.body, code, body)
		}
	}
	if len(teams.moved) != 1 {
		t.Errorf("a refused request reached the service: %v", teams.moved)
	}
}

// nilNetwork refuses everything; the requests above never get this far.
type nilNetwork struct{}

func (nilNetwork) PortForward(context.Context, workspace.Caller, string, string, int, int) (*workspace.PortForwardResult, error) {
	return nil, errdefs.Conflictf("reached the manager")
}
func (nilNetwork) NetworkPolicy(context.Context, workspace.Caller, string, workspace.PolicyRequest) (*workspace.PolicyResult, error) {
	return nil, errdefs.Conflictf("reached the manager")
}
