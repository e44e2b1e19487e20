package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/testdaemon"
)

type prepareOut struct {
	WorkspaceID  string `json:"workspace_id"`
	Name         string `json:"name"`
	SnapshotName string `json:"snapshot_name"`
	Setup        []struct {
		Command  string `json:"command"`
		ExitCode int    `json:"exit_code"`
	} `json:"setup"`
}

type swarmOut struct {
	GoldenWorkspace string `json:"golden_workspace"`
	Total           int    `json:"total"`
	Succeeded       int    `json:"succeeded"`
	Failed          int    `json:"failed"`
	TimedOut        int    `json:"timed_out"`
	Errors          int    `json:"errors"`
	Cancelled       int    `json:"cancelled"`
	Tasks           []struct {
		Name          string `json:"name"`
		Status        string `json:"status"`
		WorkspaceID   string `json:"workspace_id"`
		WorkerName    string `json:"worker_name"`
		ExitCode      *int   `json:"exit_code"`
		Stdout        string `json:"stdout"`
		Stderr        string `json:"stderr"`
		Error         string `json:"error"`
		WorkerRemoved bool   `json:"worker_removed"`
		Merge         *struct {
			Status         string `json:"status"`
			CommitsApplied int    `json:"commits_applied"`
			Error          string `json:"error"`
		} `json:"merge"`
	} `json:"tasks"`
	Merge *struct {
		Merged    []string `json:"merged"`
		Conflicts []string `json:"conflicts"`
	} `json:"merge"`
	Table string `json:"table"`
}

// progressLog collects the progress notifications a client receives, by
// progress token.
type progressLog struct {
	mu  sync.Mutex
	got map[string][]*mcp.ProgressNotificationParams
}

func (p *progressLog) handle(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tok := fmt.Sprint(r.Params.ProgressToken)
	p.got[tok] = append(p.got[tok], r.Params)
}

func (p *progressLog) of(token string) []*mcp.ProgressNotificationParams {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.got[token])
}

// swarmRun calls swarm_run with a progress token and decodes its result.
func swarmRun(ctx context.Context, t *testing.T, s *mcp.ClientSession, token string, args map[string]any) swarmOut {
	t.Helper()
	p := &mcp.CallToolParams{Name: "swarm_run", Arguments: args}
	p.SetProgressToken(token)
	res, err := s.CallTool(ctx, p)
	if err != nil {
		t.Fatalf("swarm_run: protocol error: %v", err)
	}
	if res.IsError {
		t.Fatalf("swarm_run: tool error: %s", testdaemon.Text(res))
	}
	var out swarmOut
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("swarm_run: decoding %s: %v", b, err)
	}
	return out
}

// workspaceNames lists the session's workspaces by name.
func workspaceNames(ctx context.Context, t *testing.T, s *mcp.ClientSession) []string {
	t.Helper()
	l := call[listed](ctx, t, s, "workspace_list", map[string]any{})
	var names []string
	for _, w := range l.Workspaces {
		names = append(names, w.Name)
	}
	return names
}

// waitFor polls cond every half second until it holds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestSwarmRun prepares a golden workspace and runs swarms from it over a
// real MCP client: bad input changes nothing; a failing preparation step is
// named and leaves nothing; six tasks with max_parallel 3 (one failing, one
// timing out) report the right per-task results and a progress
// notification per task, with never more than three workers alive and
// none left afterwards; two tasks merge their commits into the golden
// workspace; and a cancelled run removes its workers.
//
// At most three VMs run at once: the golden workspace is stopped while
// the six tasks run.
func TestSwarmRun(t *testing.T) {
	d := startDaemon(t, "\n[limits]\ncreate_per_min = 60\nglobal_create_per_min = 60\n")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	progress := &progressLog{got: map[string][]*mcp.ProgressNotificationParams{}}
	s := d.clientWith(ctx, &mcp.ClientOptions{ProgressNotificationHandler: progress.handle})

	// Bad input: refused, naming the field, before anything is made.
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"name": "bad name"}, "name: only letters"},
		{map[string]any{"name": "g", "git_url": "ext::sh"}, "git_url: remote-helper"},
		{map[string]any{"name": "g", "setup_commands": []string{""}}, "setup_commands[0]: required"},
	} {
		if msg := callErr(ctx, t, s, "workspace_prepare", c.args); !strings.Contains(msg, c.want) {
			t.Errorf("workspace_prepare(%v): %q, want it to contain %q", c.args, msg, c.want)
		}
	}
	// A failing step is named, and the half-made workspace is removed.
	start := time.Now()
	msg := callErr(ctx, t, s, "workspace_prepare", map[string]any{
		"name": "half", "memory_mb": 256, "setup_commands": []string{"true", "echo oops >&2; exit 3"}})
	if !strings.Contains(msg, "setup_commands[1]: exited with status 3") || !strings.Contains(msg, "oops") {
		t.Errorf("failing setup command: %q", msg)
	}
	msg = callErr(ctx, t, s, "workspace_prepare", map[string]any{"name": "half", "memory_mb": 256, "git_url": "/nonexistent/repo"})
	if !strings.HasPrefix(msg, "git_url: cloning the repository failed (the workspace was removed)") {
		t.Errorf("failing clone: %q", msg)
	}
	t.Logf("two failed preparations took %s", time.Since(start).Round(time.Millisecond))
	if names := workspaceNames(ctx, t, s); len(names) != 0 {
		t.Fatalf("failed preparations left %v", names)
	}

	start = time.Now()
	g := call[prepareOut](ctx, t, s, "workspace_prepare", map[string]any{
		"name": "golden", "memory_mb": 256,
		"setup_commands": []string{
			"git init -q -b main /workspace && cd /workspace && git config user.name t && git config user.email t@example.com",
			"cd /workspace && echo base > base.txt && git add base.txt && git commit -qm base",
		},
	})
	t.Logf("workspace_prepare (create, two setup commands, memory snapshot): %s", time.Since(start).Round(time.Millisecond))
	if g.SnapshotName != "golden" || len(g.Setup) != 2 || g.Setup[1].ExitCode != 0 {
		t.Fatalf("workspace_prepare: %+v", g)
	}
	call[map[string]any](ctx, t, s, "vault", map[string]any{"action": "write", "path": "swarm/brief.md", "content": "# Brief\nthe word is ZEBRA-42\n"})

	task := func(name, command string) map[string]any { return map[string]any{"name": name, "command": command} }
	okTask := func(n int) map[string]any {
		return task(fmt.Sprintf("t%d", n), fmt.Sprintf(`echo "$SWARM_VAR-%d"; cat "$SHARED_CONTEXT"; grep -c ZEBRA-42 "$VAULT_CONTEXT"; hostname`, n))
	}
	base := func() map[string]any {
		return map[string]any{"golden_workspace": "golden", "snapshot_name": "golden", "tasks": []any{okTask(1)}}
	}
	with := func(k string, v any) map[string]any { a := base(); a[k] = v; return a }
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{with("env_vars", map[string]string{"LD_PRELOAD": "/x.so"}), "env_vars: "},
		{with("shared_context", strings.Repeat("x", 1<<20+1)), "shared_context: 1048577 bytes; at most 1048576"},
		{with("snapshot_name", "nope"), "snapshot_name: the golden workspace has no such snapshot"},
		{with("tasks", []any{okTask(1), okTask(1)}), "tasks[1].name: the same name as tasks[0]"},
		{with("merge_strategy", "octopus"), "merge_strategy: must be one of"},
		{with("max_parallel", 21), "max_parallel: must be 1..20"},
		{with("golden_workspace", "nobody"), "golden_workspace: no such workspace"},
		{with("vault_context", []any{map[string]any{"kind": "read", "query": "swarm/missing.md"}}), "vault_context[0].query"},
	} {
		if msg := callErr(ctx, t, s, "swarm_run", c.args); !strings.Contains(msg, c.want) {
			t.Errorf("swarm_run: %q, want it to contain %q", msg, c.want)
		}
	}
	if names := workspaceNames(ctx, t, s); !slices.Equal(names, []string{"golden"}) {
		t.Fatalf("refused swarm runs left %v", names)
	}

	// Six tasks, three at a time, with the golden workspace stopped.
	call[wsInfo](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": "golden"})
	var maxVMs int
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for sampling.Err() == nil {
			maxVMs = max(maxVMs, len(d.QEMUPIDs()))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	slow := task("t6", "sleep 120")
	slow["timeout_secs"] = 5
	start = time.Now()
	run := swarmRun(ctx, t, s, "six", map[string]any{
		"golden_workspace": "golden", "snapshot_name": "golden", "max_parallel": 3, "timeout_secs": 120,
		"env_vars":       map[string]string{"SWARM_VAR": "from-env"},
		"shared_context": "shared brief: build the thing\n",
		"vault_context":  []any{map[string]any{"kind": "read", "query": "swarm/brief.md"}, map[string]any{"query": "ZEBRA"}},
		"tasks":          []any{okTask(1), okTask(2), okTask(3), okTask(4), task("t5", "echo failing >&2; exit 7"), slow},
	})
	stopSampling()
	<-sampled
	t.Logf("swarm_run, 6 tasks, max_parallel 3: %s, at most %d VMs at once\n%s", time.Since(start).Round(time.Millisecond), maxVMs, run.Table)
	if run.Total != 6 || run.Succeeded != 4 || run.Failed != 1 || run.TimedOut != 1 || run.Errors != 0 || run.Cancelled != 0 {
		t.Errorf("counts: %+v", run)
	}
	if maxVMs > 3 {
		t.Errorf("%d VMs ran at once; max_parallel is 3", maxVMs)
	}
	hosts := map[string]bool{}
	for i, r := range run.Tasks {
		if !r.WorkerRemoved || r.WorkspaceID == "" {
			t.Errorf("task %s: worker %q not removed", r.Name, r.WorkspaceID)
		}
		switch {
		case i < 4:
			want := fmt.Sprintf("from-env-%d\nshared brief: build the thing\n2\n", i+1)
			if r.Name != fmt.Sprintf("t%d", i+1) || r.Status != "succeeded" || r.ExitCode == nil || *r.ExitCode != 0 || !strings.HasPrefix(r.Stdout, want) {
				t.Errorf("task %d: %+v, want stdout starting %q", i+1, r, want)
			}
			hosts[r.Stdout] = true
		case r.Name == "t5":
			if r.Status != "failed" || r.ExitCode == nil || *r.ExitCode != 7 || !strings.Contains(r.Stderr, "failing") {
				t.Errorf("failing task: %+v", r)
			}
		case r.Name == "t6":
			if r.Status != "timed_out" || r.ExitCode != nil || !strings.Contains(r.Error, "timed out") {
				t.Errorf("slow task: %+v", r)
			}
		}
	}
	if len(hosts) != 4 {
		t.Errorf("the four tasks did not each run in a worker of their own: %v", hosts)
	}
	for _, row := range []string{"| 5 | t5 | failed | 7 |", "| 6 | t6 | timed_out | - |"} {
		if !strings.Contains(run.Table, row) {
			t.Errorf("table lacks %q:\n%s", row, run.Table)
		}
	}
	// The client may still be handing the notifications over.
	waitFor(t, 10*time.Second, "six progress notifications", func() bool { return len(progress.of("six")) >= 6 })
	notes := progress.of("six")
	slices.SortFunc(notes, func(a, b *mcp.ProgressNotificationParams) int { return int(a.Progress - b.Progress) })
	seen := map[string]bool{}
	for i, n := range notes {
		if n.Progress != float64(i+1) || n.Total != 6 {
			t.Errorf("progress %d: %v/%v", i, n.Progress, n.Total)
		}
		for _, r := range run.Tasks {
			if strings.HasPrefix(n.Message, "task "+r.Name+": "+r.Status) {
				seen[r.Name] = true
			}
		}
	}
	if len(notes) != 6 || len(seen) != 6 {
		t.Errorf("progress notifications %d, covering tasks %v; want one per task", len(notes), seen)
	}
	if names := workspaceNames(ctx, t, s); !slices.Equal(names, []string{"golden"}) {
		t.Errorf("after the run: %v, want only golden", names)
	}
	if pids := d.QEMUPIDs(); len(pids) != 0 {
		t.Errorf("QEMU processes left after the run: %v", pids)
	}

	// Four tasks commit in their workers and merge into the golden
	// workspace: two add files, two rewrite the same line, so whichever
	// merges second conflicts, is reported, and leaves the target as it was.
	call[wsInfo](ctx, t, s, "workspace_start", map[string]any{"workspace_id": "golden"})
	commit := func(name, change string) map[string]any {
		return task(name, fmt.Sprintf("cd /workspace && %s && git add -A && git commit -qm %s", change, name))
	}
	start = time.Now()
	merged := swarmRun(ctx, t, s, "merge", map[string]any{
		"golden_workspace": "golden", "snapshot_name": "golden", "max_parallel": 2,
		"merge_strategy": "sequential", "merge_target": "golden",
		"tasks": []any{commit("c1", "echo 1 > c1.txt"), commit("x1", "echo X1 > base.txt"),
			commit("c2", "echo 2 > c2.txt"), commit("x2", "echo X2 > base.txt")},
	})
	t.Logf("swarm_run with a merge of 4 tasks: %s\n%s", time.Since(start).Round(time.Millisecond), merged.Table)
	if merged.Succeeded != 4 || merged.Merge == nil || len(merged.Merge.Merged) != 3 || len(merged.Merge.Conflicts) != 1 {
		t.Fatalf("merge run: %+v", merged)
	}
	loser := merged.Merge.Conflicts[0]
	for _, r := range merged.Tasks {
		switch {
		case r.Name == loser:
			if !strings.HasPrefix(r.Name, "x") || r.Merge == nil || r.Merge.Status != "conflict" || r.Merge.CommitsApplied != 0 {
				t.Errorf("conflicting task %s merge: %+v", r.Name, r.Merge)
			}
		case r.Merge == nil || r.Merge.Status != "merged" || r.Merge.CommitsApplied != 1:
			t.Errorf("task %s merge: %+v", r.Name, r.Merge)
		}
		if !r.WorkerRemoved {
			t.Errorf("task %s: worker kept", r.Name)
		}
	}
	winner := map[string]string{"x1": "x2", "x2": "x1"}[loser]
	if got := sh(ctx, t, s, "golden", "cd /workspace && git log --format=%s | sort | tr '\\n' ' ' && git status --porcelain && cat base.txt"); got != "base c1 c2 "+winner+" "+strings.ToUpper(winner) {
		t.Errorf("golden after the merges: %q, want history base c1 c2 %s, a clean tree and base.txt from %s", got, winner, winner)
	}

	// Another session cannot name this session's workspaces; the answer
	// echoes nothing of them (L-16).
	other := d.client(ctx)
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"golden_workspace": g.WorkspaceID, "snapshot_name": "golden", "tasks": []any{okTask(1)}}, "golden_workspace: no such workspace in this session"},
		{map[string]any{"golden_workspace": "golden", "snapshot_name": "golden", "tasks": []any{okTask(1)}}, "golden_workspace: no such workspace in this session"},
	} {
		if msg := callErr(ctx, t, other, "swarm_run", c.args); msg != c.want {
			t.Errorf("swarm_run from another session: %q, want %q", msg, c.want)
		}
	}

	// A cancelled run removes its workers.
	cctx, ccancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := s.CallTool(cctx, &mcp.CallToolParams{Name: "swarm_run", Arguments: map[string]any{
			"golden_workspace": "golden", "snapshot_name": "golden", "max_parallel": 2,
			"tasks": []any{task("w1", "sleep 300"), task("w2", "sleep 300")},
		}})
		done <- err
	}()
	// The golden workspace and two workers; then their tasks start.
	waitFor(t, 3*time.Minute, "two workers booted", func() bool { return len(d.QEMUPIDs()) == 3 })
	time.Sleep(3 * time.Second)
	start = time.Now()
	ccancel()
	if err := <-done; err == nil {
		t.Errorf("the cancelled call returned no error")
	}
	waitFor(t, 2*time.Minute, "workers removed after the cancel", func() bool {
		return slices.Equal(workspaceNames(ctx, t, s), []string{"golden"})
	})
	t.Logf("cancel to workers removed: %s", time.Since(start).Round(time.Millisecond))
	waitFor(t, 30*time.Second, "the workers' QEMU gone", func() bool { return len(d.QEMUPIDs()) == 1 })
}
