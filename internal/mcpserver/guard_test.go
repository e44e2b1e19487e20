package mcpserver

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/session"
	"github.com/agentiso/agentiso/internal/workspace"
)

// recordingWorkspaces is a Workspaces that counts the calls that reach it.
// Only List is implemented: a call to anything else panics, which fails
// the test as loudly as it should.
type recordingWorkspaces struct {
	Workspaces
	mu    sync.Mutex
	calls int
}

func (r *recordingWorkspaces) List(context.Context, workspace.Caller, string) ([]workspace.Info, error) {
	r.mu.Lock()
	r.calls++
	r.mu.Unlock()
	return nil, nil
}

// unreachableNetwork registers the networking tools; any call that reached
// it would panic.
type unreachableNetwork struct{ Network }

func (r *recordingWorkspaces) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// refuseAll is a Limiter that refuses every call and records what it saw.
type refuseAll struct {
	mu    sync.Mutex
	tools []string
}

func (l *refuseAll) Allow(sessionID, tool, action string) error {
	l.mu.Lock()
	l.tools = append(l.tools, tool+"/"+action)
	l.mu.Unlock()
	return errdefs.RateLimitedf("rate limited: test refuses %s", tool)
}

// activity counts Begin and End.
type activity struct {
	mu         sync.Mutex
	begin, end int
}

func (a *activity) Begin(string) { a.mu.Lock(); a.begin++; a.mu.Unlock() }
func (a *activity) End(string)   { a.mu.Lock(); a.end++; a.mu.Unlock() }

type auditLog struct {
	mu      sync.Mutex
	records []AuditRecord
}

func (a *auditLog) add(_ context.Context, r AuditRecord) {
	a.mu.Lock()
	a.records = append(a.records, r)
	a.mu.Unlock()
}

func connect(t *testing.T, d Deps) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	srv := NewServer(d, workspace.Caller{SessionID: "s1", Actor: "mcp"})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ss.Close() })
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// TestM21_EveryToolCallIsRateLimited calls every registered tool, with
// arguments that are empty, malformed and well formed, and a tool that does
// not exist: each call meets the limiter first, is refused with its text as
// a tool error, is audited, and never reaches the manager.
func TestM21_EveryToolCallIsRateLimited(t *testing.T) {
	ws := &recordingWorkspaces{}
	lim := &refuseAll{}
	act := &activity{}
	audit := &auditLog{}
	// The git, swarm and network tools are registered too; a call reaching
	// them would panic.
	cs := connect(t, Deps{Workspaces: ws, Git: struct{ Git }{}, Swarm: struct{ Swarm }{}, Network: unreachableNetwork{}, Limiter: lim, Activity: act, Audit: audit.add})
	ctx := context.Background()
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Tools) < 10 {
		t.Fatalf("only %d tools registered", len(list.Tools))
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	if !strings.Contains(strings.Join(names, " "), "git_clone") || !strings.Contains(strings.Join(names, " "), "workspace_merge") {
		t.Fatalf("the git tools are not registered: %v", names)
	}
	names = append(names, "no_such_tool")
	calls := 0
	for _, name := range names {
		for _, args := range []any{
			map[string]any{},
			map[string]any{"workspace_id": "w", "action": "create", "command": "true", "path": "/x", "content": "x"},
			map[string]any{"workspace_id": 7, "vcpus": "many"},
		} {
			calls++
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
			if err != nil {
				t.Errorf("%s(%v): protocol error %v, want a rate-limit tool error", name, args, err)
				continue
			}
			if !res.IsError || !strings.Contains(resultText(t, res), "rate limited: test refuses "+name) {
				t.Errorf("%s(%v): %+v, want the limiter's refusal", name, args, res)
			}
		}
	}
	if n := ws.count(); n != 0 {
		t.Errorf("%d refused calls reached the workspace manager", n)
	}
	if len(lim.tools) != calls {
		t.Errorf("limiter saw %d calls, want %d", len(lim.tools), calls)
	}
	if got := lim.tools[len(lim.tools)-2]; got != "no_such_tool/create" {
		t.Errorf("limiter saw %q; want the tool name and action of the call", got)
	}
	if len(audit.records) != calls {
		t.Errorf("%d audit records, want %d", len(audit.records), calls)
	}
	for _, r := range audit.records {
		if !errdefs.Is(r.Err, errdefs.RateLimited) {
			t.Errorf("audit record %+v: want the rate-limit error", r)
			break
		}
	}
	act.mu.Lock()
	defer act.mu.Unlock()
	if act.begin < calls || act.begin != act.end {
		t.Errorf("activity: %d begins, %d ends for %d calls (plus initialize and list)", act.begin, act.end, calls)
	}
}

// With the real limiter, calls pass until the session's bucket is empty.
func TestToolCallsPassTheRealLimiter(t *testing.T) {
	ws := &recordingWorkspaces{}
	lim, err := session.NewLimiter(session.LimiterConfig{
		Session: session.Rates{Create: 1, Exec: 1, Default: 2},
		Global:  session.Rates{Create: 10, Exec: 10, Default: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	cs := connect(t, Deps{Workspaces: ws, Limiter: lim})
	ctx := context.Background()
	for i := range 2 {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "workspace_list", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("call %d: %v %+v", i, err, res)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "workspace_list", Arguments: map[string]any{}})
	if err != nil || !res.IsError || !strings.Contains(resultText(t, res), `2 default-class calls per minute (limits.default_per_min); retry in`) {
		t.Fatalf("third call: %v %+v, want a rate-limit refusal", err, res)
	}
	if n := ws.count(); n != 2 {
		t.Errorf("%d calls reached the manager, want 2", n)
	}
}

func TestNewServerRequiresALimiter(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewServer without a Limiter did not panic")
		}
	}()
	NewServer(Deps{Workspaces: &recordingWorkspaces{}}, workspace.Caller{SessionID: "s"})
}

func resultText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	if sb.Len() == 0 {
		b, _ := json.Marshal(res)
		return string(b)
	}
	return sb.String()
}
