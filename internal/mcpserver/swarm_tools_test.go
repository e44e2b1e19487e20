package mcpserver

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/swarm"
	"github.com/agentiso/agentiso/internal/workspace"
)

// recordingSwarm reports one progress step per task and records the runs
// that reach it.
type recordingSwarm struct {
	Swarm
	mu   sync.Mutex
	runs int
}

func (r *recordingSwarm) Run(_ context.Context, _ workspace.Caller, req swarm.RunRequest, progress func(swarm.Progress)) (*swarm.RunResult, error) {
	r.mu.Lock()
	r.runs++
	r.mu.Unlock()
	for i, t := range req.Tasks {
		if progress != nil {
			progress(swarm.Progress{Done: i + 1, Total: len(req.Tasks), Message: "task " + t.Name})
		}
	}
	return &swarm.RunResult{Total: len(req.Tasks)}, nil
}

// TestL15_SwarmRunArgumentsSizeCheckedBeforeDecoding: swarm_run arguments
// over the bound are refused from their length alone, before they are
// decoded: a call whose oversized arguments are also malformed (tasks is a
// string) gets the size refusal, not a decoding error, and never reaches
// the orchestration. Arguments under the bound are decoded and run.
func TestL15_SwarmRunArgumentsSizeCheckedBeforeDecoding(t *testing.T) {
	sw := &recordingSwarm{}
	audit := &auditLog{}
	cs := connect(t, Deps{Limiter: allowAll{}, Swarm: sw, Audit: audit.add})
	ctx := context.Background()
	huge := strings.Repeat("x", maxArgumentBytes["swarm_run"])
	for _, args := range []map[string]any{
		{"golden_workspace": "g", "snapshot_name": "golden", "tasks": huge},
		{"golden_workspace": "g", "snapshot_name": "golden", "tasks": []any{map[string]any{"name": "a", "command": "true"}}, "shared_context": huge},
	} {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "swarm_run", Arguments: args})
		if err != nil {
			t.Fatalf("protocol error %v, want a tool error", err)
		}
		if got := resultText(t, res); !res.IsError || !strings.HasPrefix(got, "arguments: ") || !strings.Contains(got, "more than swarm_run accepts (8 MiB)") {
			t.Fatalf("oversized arguments: %q, want the size refusal", got)
		}
	}
	if sw.runs != 0 {
		t.Fatalf("%d oversized calls reached swarm_run", sw.runs)
	}
	if len(audit.records) != 2 || audit.records[0].Tool != "swarm_run" || audit.records[0].Err == nil {
		t.Fatalf("audit %+v, want both refusals recorded", audit.records)
	}

	// Under the bound, with a progress token: decoded, run, progress sent.
	var mu sync.Mutex
	var notes []string
	c := mcp.NewClient(&mcp.Implementation{Name: "p", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			notes = append(notes, r.Params.Message)
			mu.Unlock()
		}})
	srv := NewServer(Deps{Limiter: allowAll{}, Swarm: sw}, workspace.Caller{SessionID: "s2", Actor: "mcp"})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	pc, err := c.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	p := &mcp.CallToolParams{Name: "swarm_run", Arguments: map[string]any{
		"golden_workspace": "g", "snapshot_name": "golden", "shared_context": strings.Repeat("x", 1<<20),
		"tasks": []any{map[string]any{"name": "a", "command": "true"}, map[string]any{"name": "b", "command": "true"}}}}
	p.SetProgressToken("tok")
	res, err := pc.CallTool(ctx, p)
	if err != nil || res.IsError {
		t.Fatalf("swarm_run under the bound: %v %+v", err, res)
	}
	if sw.runs != 1 {
		t.Fatalf("runs %d", sw.runs)
	}
	for range 100 {
		mu.Lock()
		n := len(notes)
		mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) != 2 || notes[1] != "task b" {
		t.Fatalf("progress notifications %v, want one per task", notes)
	}
}
