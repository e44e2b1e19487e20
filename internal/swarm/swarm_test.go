package swarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/gitops"
	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/workspace"
)

// fakeWorkspaces is a manager that keeps workspaces in a map. Commands say
// how they behave: "exit N", "timeout", "block" (until cancelled); any
// other command exits 0 and echoes itself.
type fakeWorkspaces struct {
	mu       sync.Mutex
	alive    map[string]bool
	maxAlive int
	forks    int
	// internet is each fork's requested internet access.
	internet  []*bool
	created   int
	destroyed []string
	failSnap  bool
	// quota bounds the workers alive at once, when set.
	quota int
	envs  map[string]map[string]string
	files map[string]map[string]string
	// started is told of every exec that begins.
	started chan string
}

func newFake() *fakeWorkspaces {
	return &fakeWorkspaces{alive: map[string]bool{"golden-id": true}, envs: map[string]map[string]string{}, files: map[string]map[string]string{}}
}

func (f *fakeWorkspaces) Create(_ context.Context, _ workspace.Caller, req workspace.CreateRequest) (*workspace.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.created++
	id := "made-" + req.Name
	f.alive[id] = true
	return &workspace.Info{ID: id, Name: req.Name, State: "running"}, nil
}

func (f *fakeWorkspaces) Destroy(_ context.Context, _ workspace.Caller, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.alive[ref] {
		return errdefs.NotFoundf("workspace_id: no such workspace in this session")
	}
	delete(f.alive, ref)
	f.destroyed = append(f.destroyed, ref)
	return nil
}

func (f *fakeWorkspaces) Info(_ context.Context, _ workspace.Caller, ref string) (*workspace.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch ref {
	case "golden", "golden-id":
		return &workspace.Info{ID: "golden-id", Name: "golden", State: "running", Snapshots: []string{GoldenSnapshot}}, nil
	case "stopped":
		return &workspace.Info{ID: "stopped-id", Name: "stopped", State: "stopped"}, nil
	}
	return nil, errdefs.NotFoundf("workspace_id: no such workspace in this session")
}

func (f *fakeWorkspaces) Exec(ctx context.Context, _ workspace.Caller, ref string, req workspace.ExecRequest) (*workspace.ExecResult, error) {
	if f.started != nil {
		f.started <- ref
	}
	var code int
	switch {
	case req.Command == "timeout":
		return nil, errdefs.Timeoutf("exec timed out after %s", req.Timeout)
	case req.Command == "block":
		<-ctx.Done()
		return nil, ctx.Err()
	case strings.HasPrefix(req.Command, "exit "):
		fmt.Sscanf(req.Command, "exit %d", &code)
	default:
		time.Sleep(5 * time.Millisecond) // long enough for workers to overlap
	}
	return &workspace.ExecResult{ExitCode: code, Stdout: req.Command + " in " + ref}, nil
}

func (f *fakeWorkspaces) WriteFile(_ context.Context, _ workspace.Caller, ref, path string, content []byte, _ uint32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.files[ref] == nil {
		f.files[ref] = map[string]string{}
	}
	f.files[ref][path] = string(content)
	return nil
}

func (f *fakeWorkspaces) SetEnv(_ context.Context, _ workspace.Caller, ref string, vars map[string]string, _ []string) (*workspace.EnvResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.envs[ref] = vars
	return &workspace.EnvResult{WorkspaceID: ref}, nil
}

func (f *fakeWorkspaces) SnapshotCreate(_ context.Context, _ workspace.Caller, ref string, req workspace.SnapshotRequest) (*workspace.SnapshotInfo, error) {
	if f.failSnap {
		return nil, errdefs.Quotaf("name: the workspace already has 10 snapshots")
	}
	return &workspace.SnapshotInfo{Name: req.Name, WorkspaceID: ref, HasMemory: req.IncludeMemory}, nil
}

func (f *fakeWorkspaces) Fork(ctx context.Context, _ workspace.Caller, ref string, req workspace.ForkRequest) (*workspace.ForkResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.quota > 0 && len(f.alive)-1 >= f.quota {
		return nil, errdefs.Quotaf("count: this session's workspaces would exceed its quota of %d (resources.max_workspaces_per_session)", f.quota)
	}
	f.forks++
	f.internet = append(f.internet, req.AllowInternet)
	id := "id-" + req.NewName
	f.alive[id] = true
	n := len(f.alive) - 1 // the golden workspace is not a worker
	f.maxAlive = max(f.maxAlive, n)
	return &workspace.ForkResult{Forks: []workspace.Info{{ID: id, Name: req.NewName}}}, nil
}

func (f *fakeWorkspaces) workers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for id := range f.alive {
		if id != "golden-id" {
			out = append(out, id)
		}
	}
	return out
}

// fakeGit clones nothing whose URL has "bad" in it and merges what it is
// given.
type fakeGit struct {
	mu      sync.Mutex
	merged  []string
	conflog []string
}

func (g *fakeGit) Clone(_ context.Context, _ workspace.Caller, _ string, req gitops.CloneRequest) (*gitops.CloneResult, error) {
	if strings.Contains(req.URL, "bad") {
		return nil, errdefs.Conflictf("git clone failed (exit 128): fatal: repository not found")
	}
	return &gitops.CloneResult{Success: true, Path: gitops.DefaultPath}, nil
}

func (g *fakeGit) Merge(_ context.Context, _ workspace.Caller, req gitops.MergeRequest) (*gitops.MergeResult, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.merged = append(g.merged, req.Sources...)
	return &gitops.MergeResult{Results: []gitops.SourceResult{{SourceID: req.Sources[0], Status: gitops.SourceMerged, CommitsApplied: 1}}}, nil
}

type fakeVault struct{}

func (fakeVault) Read(_ context.Context, p string) (*vault.Note, error) {
	if p != "a.md" {
		return nil, errdefs.NotFoundf("path: no such note")
	}
	return &vault.Note{Path: p, Content: []byte("alpha\n")}, nil
}

func (fakeVault) Search(context.Context, vault.SearchQuery) (*vault.SearchResult, error) {
	return &vault.SearchResult{Hits: []vault.SearchHit{{Path: "a.md", LineNumber: 1, Line: "alpha"}}}, nil
}

func newService(t *testing.T, ws *fakeWorkspaces, g *fakeGit) *Service {
	t.Helper()
	s, err := New(Config{Workspaces: ws, Git: g, Vault: fakeVault{}, Exec: workspace.ExecLimits{
		DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultMaxOutputBytes: 1 << 10, MaxOutputBytes: 1 << 20,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var caller = workspace.Caller{SessionID: "s1"}

func tasks(cmds ...string) []Task {
	out := make([]Task, len(cmds))
	for i, c := range cmds {
		out[i] = Task{Name: fmt.Sprintf("t%d", i+1), Command: c}
	}
	return out
}

// TestRunRefusesBadInputBeforeForking: every bad input is refused with an
// error naming its field, and no worker is made.
func TestRunRefusesBadInputBeforeForking(t *testing.T) {
	ok := func() RunRequest {
		return RunRequest{Golden: "golden", SnapshotName: GoldenSnapshot, Tasks: tasks("true")}
	}
	for _, c := range []struct {
		name string
		edit func(*RunRequest)
		want string
	}{
		{"no golden", func(r *RunRequest) { r.Golden = "" }, "golden_workspace: required"},
		{"foreign golden", func(r *RunRequest) { r.Golden = "other" }, "golden_workspace: no such workspace in this session"},
		{"bad snapshot name", func(r *RunRequest) { r.SnapshotName = "../x" }, "snapshot_name: "},
		{"missing snapshot", func(r *RunRequest) { r.SnapshotName = "nope" }, "snapshot_name: the golden workspace has no such snapshot"},
		{"no tasks", func(r *RunRequest) { r.Tasks = nil }, "tasks: at least one task"},
		{"too many tasks", func(r *RunRequest) { r.Tasks = tasks(slices.Repeat([]string{"true"}, 21)...) }, "tasks: at most 20"},
		{"bad task name", func(r *RunRequest) { r.Tasks[0].Name = "a b" }, "tasks[0].name: "},
		{"duplicate task", func(r *RunRequest) { r.Tasks = append(r.Tasks, r.Tasks[0]) }, "tasks[1].name: the same name as tasks[0]"},
		{"empty command", func(r *RunRequest) { r.Tasks[0].Command = "" }, "tasks[0].command: required"},
		{"relative workdir", func(r *RunRequest) { r.Tasks[0].Workdir = "src" }, "tasks[0].workdir: must be an absolute path"},
		{"task timeout", func(r *RunRequest) { r.Tasks[0].TimeoutSecs = 7200 }, "tasks[0].timeout_secs: at most 3600"},
		{"run timeout", func(r *RunRequest) { r.TimeoutSecs = 7200 }, "timeout_secs: at most 3600"},
		{"negative timeout", func(r *RunRequest) { r.TimeoutSecs = -1 }, "timeout_secs: must not be negative"},
		{"blocked env", func(r *RunRequest) { r.EnvVars = map[string]string{"LD_PRELOAD": "/x.so"} }, "env_vars: "},
		{"bad strategy", func(r *RunRequest) { r.MergeStrategy = "octopus" }, "merge_strategy: must be one of"},
		{"strategy without target", func(r *RunRequest) { r.MergeStrategy = gitops.Sequential }, "merge_target: required"},
		{"target without strategy", func(r *RunRequest) { r.MergeTarget = "golden" }, "merge_target: needs merge_strategy"},
		{"foreign target", func(r *RunRequest) { r.MergeStrategy, r.MergeTarget = gitops.CherryPick, "other" }, "merge_target: no such workspace"},
		{"stopped target", func(r *RunRequest) { r.MergeStrategy, r.MergeTarget = gitops.CherryPick, "stopped" }, "merge_target: the workspace is stopped"},
		{"parallel 0 is default, 21 is not", func(r *RunRequest) { r.MaxParallel = 21 }, "max_parallel: must be 1..20"},
		{"shared context", func(r *RunRequest) { r.SharedContext = strings.Repeat("x", MaxSharedContextBytes+1) }, "shared_context: 1048577 bytes; at most 1048576"},
		{"vault kind", func(r *RunRequest) { r.VaultContext = []VaultQuery{{Kind: "grep", Query: "x"}} }, "vault_context[0].kind: must be search or read"},
		{"vault note", func(r *RunRequest) { r.VaultContext = []VaultQuery{{Kind: "read", Query: "b.md"}} }, "vault_context[0].query: no such note"},
		{"vault queries", func(r *RunRequest) { r.VaultContext = slices.Repeat([]VaultQuery{{Query: "x"}}, 11) }, "vault_context: at most 10"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws := newFake()
			req := ok()
			c.edit(&req)
			_, err := newService(t, ws, &fakeGit{}).Run(context.Background(), caller, req, nil)
			if err == nil || !strings.HasPrefix(errdefs.Public(err), strings.SplitN(c.want, ":", 2)[0]+":") || !strings.Contains(errdefs.Public(err), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if ws.forks != 0 {
				t.Fatalf("%d workers made for a refused run", ws.forks)
			}
		})
	}
}

// TestRunBoundsWorkersAndReportsEachTask: never more than max_parallel
// workers at once, each task's outcome in its row, a progress report per
// task, the context and env in every worker, and every worker removed.
func TestRunBoundsWorkersAndReportsEachTask(t *testing.T) {
	ws := newFake()
	var mu sync.Mutex
	var reports []Progress
	res, err := newService(t, ws, &fakeGit{}).Run(context.Background(), caller, RunRequest{
		Golden: "golden", SnapshotName: GoldenSnapshot, MaxParallel: 3,
		Tasks:         tasks("a", "b", "c", "d", "exit 3", "timeout", "e", "f"),
		EnvVars:       map[string]string{"K": "v"},
		SharedContext: "shared",
		VaultContext:  []VaultQuery{{Kind: "read", Query: "a.md"}, {Query: "alpha"}},
	}, func(p Progress) { mu.Lock(); reports = append(reports, p); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	if ws.maxAlive > 3 || ws.maxAlive < 2 {
		t.Errorf("%d workers alive at once, want 2..3 with max_parallel 3", ws.maxAlive)
	}
	if res.Total != 8 || res.Succeeded != 6 || res.Failed != 1 || res.TimedOut != 1 {
		t.Errorf("counts %+v", res)
	}
	if r := res.Tasks[4]; r.Status != TaskFailed || r.ExitCode == nil || *r.ExitCode != 3 {
		t.Errorf("failing task %+v", r)
	}
	if r := res.Tasks[5]; r.Status != TaskTimedOut || r.ExitCode != nil || !strings.Contains(r.Error, "timed out") {
		t.Errorf("timed-out task %+v", r)
	}
	for _, r := range res.Tasks {
		if !r.WorkerRemoved {
			t.Errorf("task %s: worker kept", r.Name)
		}
		if ws.envs[r.WorkspaceID]["K"] != "v" || ws.files[r.WorkspaceID][SharedContextPath] != "shared" ||
			!strings.Contains(ws.files[r.WorkspaceID][VaultContextPath], "## a.md\n\nalpha") ||
			!strings.Contains(ws.files[r.WorkspaceID][VaultContextPath], "- a.md:1: alpha") {
			t.Errorf("task %s: env %v, files %v", r.Name, ws.envs[r.WorkspaceID], ws.files[r.WorkspaceID])
		}
	}
	if w := ws.workers(); len(w) != 0 {
		t.Errorf("workers left: %v", w)
	}
	if len(reports) != 8 {
		t.Errorf("progress: %+v", reports)
	}
	for i, p := range reports {
		if p.Done != i+1 || p.Total != 8 || !strings.HasPrefix(p.Message, "task t") {
			t.Errorf("progress report %d: %+v, want %d/8 (reports only grow)", i, p, i+1)
		}
	}
	if !strings.Contains(res.Table, "| 5 | t5 | failed | 3 |") || !strings.Contains(res.Table, "| 6 | t6 | timed_out | - |") {
		t.Errorf("table:\n%s", res.Table)
	}
}

// TestRunGivesWorkersTheRequestedInternetAccess: allow_internet reaches
// every worker's fork; without it the workers get the golden workspace's.
func TestRunGivesWorkersTheRequestedInternetAccess(t *testing.T) {
	yes := true
	for _, allow := range []*bool{&yes, nil} {
		ws := newFake()
		if _, err := newService(t, ws, &fakeGit{}).Run(context.Background(), caller, RunRequest{
			Golden: "golden", SnapshotName: GoldenSnapshot, Tasks: tasks("a", "b"), AllowInternet: allow,
		}, nil); err != nil {
			t.Fatal(err)
		}
		if len(ws.internet) != 2 || ws.internet[0] != allow || ws.internet[1] != allow {
			t.Errorf("allow_internet %v: the forks were asked for %v", allow, ws.internet)
		}
	}
}

// TestRunKeepsWorkersWithoutCleanup: cleanup false keeps the workers for
// the caller.
func TestRunKeepsWorkersWithoutCleanup(t *testing.T) {
	ws := newFake()
	no := false
	res, err := newService(t, ws, &fakeGit{}).Run(context.Background(), caller, RunRequest{
		Golden: "golden", SnapshotName: GoldenSnapshot, Tasks: tasks("a", "b"), Cleanup: &no}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := ws.workers(); len(w) != 2 || res.Tasks[0].WorkerRemoved {
		t.Fatalf("workers %v, rows %+v", w, res.Tasks)
	}
}

// TestRunCancelledRemovesWorkers: a cancelled run stops its tasks,
// removes every worker it made (cleanup false notwithstanding) and never
// starts the tasks still waiting.
func TestRunCancelledRemovesWorkers(t *testing.T) {
	ws := newFake()
	ws.started = make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	no := false
	done := make(chan error, 1)
	var res *RunResult
	go func() {
		var err error
		res, err = newService(t, ws, &fakeGit{}).Run(ctx, caller, RunRequest{
			Golden: "golden", SnapshotName: GoldenSnapshot, MaxParallel: 2, Cleanup: &no,
			Tasks: tasks("block", "block", "block", "block")}, nil)
		done <- err
	}()
	<-ws.started
	<-ws.started
	cancel()
	if err := <-done; err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v, want cancelled", err)
	}
	if w := ws.workers(); len(w) != 0 {
		t.Fatalf("workers left after cancel: %v", w)
	}
	if ws.forks != 2 || res.Cancelled != 4 {
		t.Fatalf("forks %d, result %+v", ws.forks, res)
	}
}

// TestRunMergesSucceededTasks: only tasks that exited 0 are merged into
// the target.
func TestRunMergesSucceededTasks(t *testing.T) {
	ws := newFake()
	g := &fakeGit{}
	res, err := newService(t, ws, g).Run(context.Background(), caller, RunRequest{
		Golden: "golden", SnapshotName: GoldenSnapshot, Tasks: tasks("a", "exit 1", "b"),
		MergeStrategy: gitops.BranchPerSource, MergeTarget: "golden"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(g.merged)
	if want := []string{res.Tasks[0].WorkspaceID, res.Tasks[2].WorkspaceID}; !slices.Equal(g.merged, want) {
		t.Fatalf("merged %v, want %v", g.merged, want)
	}
	if res.Tasks[1].Merge != nil || res.Tasks[0].Merge.Status != gitops.SourceMerged || len(res.Merge.Merged) != 2 {
		t.Fatalf("result %+v", res)
	}
}

// TestPrepareRemovesWorkspaceOnFailure: each failing step is named and
// the workspace is removed; bad input makes nothing.
func TestPrepareRemovesWorkspaceOnFailure(t *testing.T) {
	for _, c := range []struct {
		name     string
		req      PrepareRequest
		failSnap bool
		want     string
		created  bool
	}{
		{"bad name", PrepareRequest{Name: "a/b"}, false, "name: ", false},
		{"bad url", PrepareRequest{Name: "g", GitURL: "ext::sh"}, false, "git_url: remote-helper", false},
		{"too many commands", PrepareRequest{Name: "g", SetupCommands: slices.Repeat([]string{"true"}, 51)}, false, "setup_commands: at most 50", false},
		{"empty command", PrepareRequest{Name: "g", SetupCommands: []string{"true", ""}}, false, "setup_commands[1]: required", false},
		{"clone fails", PrepareRequest{Name: "g", GitURL: "https://u:secret-token@example.com/bad.git"}, false, "git_url: cloning the repository failed (the workspace was removed): git clone failed", true},
		{"setup fails", PrepareRequest{Name: "g", SetupCommands: []string{"true", "exit 4"}}, false, "setup_commands[1]: exited with status 4", true},
		{"setup times out", PrepareRequest{Name: "g", SetupCommands: []string{"timeout"}}, false, "setup_commands[0]: the command did not run to its end", true},
		{"snapshot fails", PrepareRequest{Name: "g"}, true, "snapshot: taking the golden snapshot failed", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ws := newFake()
			ws.failSnap = c.failSnap
			_, err := newService(t, ws, &fakeGit{}).Prepare(context.Background(), caller, c.req)
			if err == nil || !strings.Contains(errdefs.Public(err), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if strings.Contains(errdefs.Public(err), "secret-token") {
				t.Fatalf("the URL's credential leaked: %v", err)
			}
			if (ws.created == 1) != c.created {
				t.Fatalf("created %d workspaces", ws.created)
			}
			if len(ws.alive) != 1 {
				t.Fatalf("left behind: %v", ws.alive)
			}
		})
	}
}

// TestPrepare: the workspace is created, cloned, set up in the clone and
// snapshotted with its memory.
func TestPrepare(t *testing.T) {
	ws := newFake()
	res, err := newService(t, ws, &fakeGit{}).Prepare(context.Background(), caller, PrepareRequest{
		Name: "g", GitURL: "https://example.com/r.git", SetupCommands: []string{"make deps"}})
	if err != nil {
		t.Fatal(err)
	}
	if res.SnapshotName != GoldenSnapshot || res.Repository == nil || len(res.Setup) != 1 || res.State != "running" {
		t.Fatalf("result %+v", res)
	}
	if len(ws.destroyed) != 0 {
		t.Fatalf("destroyed %v", ws.destroyed)
	}
}

// TestRunReportsWorkersThatDoNotFit: a worker refused by the session's
// quota is that task's error, saying why; the other tasks run.
func TestRunReportsWorkersThatDoNotFit(t *testing.T) {
	ws := newFake()
	ws.quota = 1
	ws.started = make(chan string, 10)
	no := false
	res, err := newService(t, ws, &fakeGit{}).Run(context.Background(), caller, RunRequest{
		Golden: "golden", SnapshotName: GoldenSnapshot, Tasks: tasks("a", "b"), MaxParallel: 2, Cleanup: &no}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Succeeded != 1 || res.Errors != 1 {
		t.Fatalf("result %+v", res)
	}
	for _, r := range res.Tasks {
		if r.Status == TaskError && !strings.HasPrefix(r.Error, "the worker could not be made: this session's workspaces would exceed") {
			t.Fatalf("refused worker: %q", r.Error)
		}
	}
}

// TestPrepareCancelledLeavesNothing: a preparation cancelled during its
// setup removes the workspace it made.
func TestPrepareCancelledLeavesNothing(t *testing.T) {
	ws := newFake()
	ws.started = make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := newService(t, ws, &fakeGit{}).Prepare(ctx, caller, PrepareRequest{Name: "g", SetupCommands: []string{"block"}})
		done <- err
	}()
	<-ws.started
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled preparation succeeded")
	}
	if len(ws.alive) != 1 || !slices.Equal(ws.destroyed, []string{"made-g"}) {
		t.Fatalf("alive %v, destroyed %v", ws.alive, ws.destroyed)
	}
}
