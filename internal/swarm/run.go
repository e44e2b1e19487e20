package swarm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/gitops"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Run bounds and defaults.
const (
	// MaxTasks bounds tasks (and so the workers of one run).
	MaxTasks = workspace.MaxForks
	// DefaultMaxParallel is how many tasks run at once unless the call
	// says; MaxParallel the most it may ask for.
	DefaultMaxParallel = 4
	MaxParallel        = 20
	// DefaultTaskTimeout is a task's timeout unless the call gives one.
	DefaultTaskTimeout = 600 * time.Second
	// taskOutputBytes is how much of each of a task's stdout and stderr
	// the result keeps: twenty tasks' output must fit one answer.
	taskOutputBytes = 64 << 10
	// cleanupTimeout bounds the removal of one worker, which happens even
	// when the call was cancelled.
	cleanupTimeout = 2 * time.Minute
)

// Task statuses.
const (
	// TaskSucceeded ran and exited 0.
	TaskSucceeded = "succeeded"
	// TaskFailed ran and exited non-zero.
	TaskFailed = "failed"
	// TaskTimedOut outlived its timeout; its process group was killed.
	TaskTimedOut = "timed_out"
	// TaskError did not run to an exit: its worker could not be made or
	// prepared, or its guest did not answer.
	TaskError = "error"
	// TaskCancelled never ran, or was stopped, because the call was
	// cancelled.
	TaskCancelled = "cancelled"
)

// Task is one unit of work: one command in its own worker.
type Task struct {
	// Name identifies the task in progress and results; unique in a run.
	Name    string
	Command string
	// Workdir is where the command runs (default /root).
	Workdir string
	// TimeoutSecs overrides the run's timeout for this task.
	TimeoutSecs int
}

// RunRequest is what swarm_run asks for.
type RunRequest struct {
	// Golden is the workspace (ID or name) whose snapshot the workers are
	// forked from.
	Golden       string
	SnapshotName string
	Tasks        []Task
	// EnvVars are set in every worker (set_env: guest memory only) before
	// its task runs.
	EnvVars map[string]string
	// MergeStrategy, when set, merges each succeeded worker's commits into
	// MergeTarget with workspace_merge's strategy of that name.
	MergeStrategy string
	MergeTarget   string
	// MergePath is the repository in the workers and the target (default
	// /workspace).
	MergePath string
	// MaxParallel bounds the workers alive at once (default 4, max 20).
	MaxParallel int
	// TimeoutSecs bounds each task (default 600).
	TimeoutSecs int
	// Cleanup removes each worker when its task is done (default true). A
	// cancelled run removes its workers regardless.
	Cleanup       *bool
	AllowInternet *bool
	VaultContext  []VaultQuery
	// SharedContext is written to SharedContextPath in every worker.
	SharedContext string
}

// Progress is one step of a run, reported as each task finishes.
type Progress struct {
	Done, Total int
	Message     string
}

// TaskResult is one task's row of the result.
type TaskResult struct {
	Name   string `json:"name"`
	Status string `json:"status"`
	// WorkspaceID and WorkerName are the task's worker.
	WorkspaceID string `json:"workspace_id,omitempty"`
	WorkerName  string `json:"worker_name,omitempty"`
	// BootTimeMs is how long the worker took to fork and answer.
	BootTimeMs int64 `json:"boot_time_ms,omitempty"`
	// ExitCode is null when the task did not run to an exit.
	ExitCode   *int   `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated"`
	DurationMs int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
	// Merge is the merge of the worker's commits, for a succeeded task of
	// a run with a merge strategy.
	Merge *TaskMerge `json:"merge,omitempty"`
	// WorkerRemoved says the worker is gone; a kept worker can be used
	// (and must be destroyed) by the caller.
	WorkerRemoved bool `json:"worker_removed"`
}

// TaskMerge is the merge of one worker into the target.
type TaskMerge struct {
	// Status is workspace_merge's per-source status: merged,
	// nothing_to_merge, conflict or failed.
	Status         string   `json:"status"`
	CommitsApplied int      `json:"commits_applied"`
	Conflicting    []string `json:"conflicting_files,omitempty"`
	Error          string   `json:"error,omitempty"`
}

// MergeSummary is what the merges into the target did.
type MergeSummary struct {
	Strategy        string `json:"strategy"`
	TargetWorkspace string `json:"target_workspace"`
	// Merged and Conflicts name tasks.
	Merged    []string `json:"merged"`
	Conflicts []string `json:"conflicts"`
	HeadAfter string   `json:"head_after,omitempty"`
}

// RunResult is swarm_run's answer.
type RunResult struct {
	GoldenWorkspace string `json:"golden_workspace"`
	SnapshotName    string `json:"snapshot_name"`
	Total           int    `json:"total"`
	Succeeded       int    `json:"succeeded"`
	Failed          int    `json:"failed"`
	TimedOut        int    `json:"timed_out"`
	Errors          int    `json:"errors"`
	Cancelled       int    `json:"cancelled"`
	// Tasks are in the order given.
	Tasks []TaskResult  `json:"tasks"`
	Merge *MergeSummary `json:"merge,omitempty"`
	// Table is the per-task outcome as a markdown table, for people.
	Table      string `json:"table"`
	DurationMs int64  `json:"duration_ms"`
}

// plan is a checked run: everything resolved before any worker exists.
type plan struct {
	golden      *workspace.Info
	target      *workspace.Info
	execs       []workspace.ExecRequest
	maxParallel int
	cleanup     bool
	vaultText   string
	prefix      string
}

// Run forks one worker per task from the golden workspace's snapshot, at
// most MaxParallel alive at once, and in each: sets the env vars, writes
// the shared and vault context, runs the task with its timeout, merges the
// worker's commits into the target when asked (one merge at a time, in the
// order the tasks finish), and removes the worker unless cleanup is off.
// progress, when set, hears of every task as it finishes. Every input is
// checked, and the vault read, before the first fork: a bad call changes
// nothing. A cancelled ctx stops the tasks and removes every worker made;
// Run returns only after that.
func (s *Service) Run(ctx context.Context, c workspace.Caller, req RunRequest, progress func(Progress)) (*RunResult, error) {
	start := time.Now()
	p, err := s.check(ctx, c, req)
	if err != nil {
		return nil, err
	}
	res := &RunResult{GoldenWorkspace: p.golden.ID, SnapshotName: req.SnapshotName, Total: len(req.Tasks),
		Tasks: make([]TaskResult, len(req.Tasks))}
	if req.MergeStrategy != "" {
		res.Merge = &MergeSummary{Strategy: req.MergeStrategy, TargetWorkspace: p.target.ID, Merged: []string{}, Conflicts: []string{}}
	}
	for i, t := range req.Tasks {
		res.Tasks[i] = TaskResult{Name: t.Name, Status: TaskCancelled}
	}

	var mu sync.Mutex // guards res.Tasks
	var mergeMu sync.Mutex
	// finishing serialises the reports, so their counts only grow (as
	// MCP progress must).
	var finishing sync.Mutex
	done := 0
	finish := func(i int, r TaskResult) {
		mu.Lock()
		res.Tasks[i] = r
		mu.Unlock()
		s.log.Info("swarm task finished", "golden", p.golden.ID, "task", r.Name, "status", r.Status,
			"worker", r.WorkspaceID, "duration_ms", r.DurationMs)
		finishing.Lock()
		defer finishing.Unlock()
		done++
		if progress != nil {
			progress(Progress{Done: done, Total: len(req.Tasks), Message: fmt.Sprintf("task %s: %s", r.Name, describe(r))})
		}
	}

	sem := make(chan struct{}, p.maxParallel)
	var wg sync.WaitGroup
launch:
	for i := range req.Tasks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break launch
		}
		if ctx.Err() != nil {
			<-sem
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			finish(i, s.runTask(ctx, c, req, p, i, &mergeMu, res.Merge))
		})
	}
	wg.Wait()

	for _, r := range res.Tasks {
		switch r.Status {
		case TaskSucceeded:
			res.Succeeded++
		case TaskFailed:
			res.Failed++
		case TaskTimedOut:
			res.TimedOut++
		case TaskError:
			res.Errors++
		case TaskCancelled:
			res.Cancelled++
		}
	}
	res.Table = table(res.Tasks)
	res.DurationMs = time.Since(start).Milliseconds()
	s.log.Info("swarm run finished", "golden", p.golden.ID, "session", c.SessionID, "tasks", res.Total,
		"succeeded", res.Succeeded, "failed", res.Failed, "timed_out", res.TimedOut, "errors", res.Errors,
		"cancelled", res.Cancelled, "took", time.Since(start).Round(time.Millisecond))
	if err := ctx.Err(); err != nil {
		return res, errdefs.With(errdefs.Unavailable, "swarm_run was cancelled; its workers were removed", err)
	}
	return res, nil
}

// check validates req and resolves what the run needs, in the order the
// parameters are listed, before anything is made.
func (s *Service) check(ctx context.Context, c workspace.Caller, req RunRequest) (*plan, error) {
	p := &plan{cleanup: req.Cleanup == nil || *req.Cleanup}
	if req.Golden == "" {
		return nil, errdefs.Invalidf("golden_workspace: required")
	}
	if err := names.Validate("snapshot_name", req.SnapshotName); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	switch n := len(req.Tasks); {
	case n == 0:
		return nil, errdefs.Invalidf("tasks: at least one task")
	case n > MaxTasks:
		return nil, errdefs.Invalidf("tasks: at most %d tasks", MaxTasks)
	}
	timeoutSecs := req.TimeoutSecs
	if timeoutSecs < 0 {
		return nil, errdefs.Invalidf("timeout_secs: must not be negative")
	}
	if timeoutSecs == 0 {
		timeoutSecs = int(min(DefaultTaskTimeout, s.exec.MaxTimeout) / time.Second)
	}
	seen := map[string]int{}
	for i, t := range req.Tasks {
		field := fmt.Sprintf("tasks[%d]", i)
		if err := names.Validate(field+".name", t.Name); err != nil {
			return nil, errdefs.Invalidf("%v", err)
		}
		if j, dup := seen[t.Name]; dup {
			return nil, errdefs.Invalidf("%s.name: the same name as tasks[%d]", field, j)
		}
		seen[t.Name] = i
		secs := timeoutSecs
		if t.TimeoutSecs != 0 {
			secs = t.TimeoutSecs
		}
		if t.Workdir != "" && t.Workdir[0] != '/' {
			return nil, errdefs.Invalidf("%s.workdir: must be an absolute path", field)
		}
		r, err := s.exec.Request(t.Command, secs, t.Workdir, nil, min(taskOutputBytes, s.exec.MaxOutputBytes))
		if err != nil {
			if t.TimeoutSecs != 0 {
				err = renameField(err, "timeout_secs", field+".timeout_secs")
			}
			return nil, renameField(err, "command", field+".command")
		}
		p.execs = append(p.execs, r)
	}
	if err := protocol.CheckEnv(req.EnvVars); err != nil {
		return nil, errdefs.Invalidf("env_vars: %s", strings.TrimPrefix(err.Error(), "env: "))
	}
	switch req.MergeStrategy {
	case "":
		if req.MergeTarget != "" {
			return nil, errdefs.Invalidf("merge_target: needs merge_strategy")
		}
	case gitops.Sequential, gitops.BranchPerSource, gitops.CherryPick:
		if req.MergeTarget == "" {
			return nil, errdefs.Invalidf("merge_target: required with merge_strategy")
		}
	default:
		return nil, errdefs.Invalidf("merge_strategy: must be one of %s, %s, %s", gitops.Sequential, gitops.BranchPerSource, gitops.CherryPick)
	}
	p.maxParallel = req.MaxParallel
	if p.maxParallel == 0 {
		p.maxParallel = DefaultMaxParallel
	}
	if p.maxParallel < 1 || p.maxParallel > MaxParallel {
		return nil, errdefs.Invalidf("max_parallel: must be 1..%d", MaxParallel)
	}
	if err := checkSharedContext(req.SharedContext); err != nil {
		return nil, err
	}

	golden, err := s.ws.Info(ctx, c, req.Golden)
	if err != nil {
		return nil, renameField(err, "workspace_id", "golden_workspace")
	}
	if !slices.Contains(golden.Snapshots, req.SnapshotName) {
		return nil, errdefs.NotFoundf("snapshot_name: the golden workspace has no such snapshot (prepare one with workspace_prepare)")
	}
	p.golden = golden
	if req.MergeTarget != "" {
		if p.target, err = s.ws.Info(ctx, c, req.MergeTarget); err != nil {
			return nil, renameField(err, "workspace_id", "merge_target")
		}
		if p.target.State != "running" {
			return nil, errdefs.Conflictf("merge_target: the workspace is %s, not running (start it with workspace_start)", p.target.State)
		}
	}
	if p.vaultText, err = s.vaultContext(ctx, req.VaultContext); err != nil {
		return nil, err
	}
	p.prefix = "swarm-" + randomHex(3)
	return p, nil
}

// runTask runs task i in a worker of its own and returns its row.
func (s *Service) runTask(ctx context.Context, c workspace.Caller, req RunRequest, p *plan, i int, mergeMu *sync.Mutex, merge *MergeSummary) (r TaskResult) {
	t := req.Tasks[i]
	r = TaskResult{Name: t.Name, WorkerName: fmt.Sprintf("%s-%d", p.prefix, i+1)}
	fail := func(status string, err error) TaskResult {
		r.Status, r.Error = status, errdefs.Public(err)
		if ctx.Err() != nil {
			r.Status, r.Error = TaskCancelled, "swarm_run was cancelled"
		}
		return r
	}
	if ctx.Err() != nil {
		return fail(TaskCancelled, ctx.Err())
	}
	fr, err := s.ws.Fork(ctx, c, p.golden.ID, workspace.ForkRequest{SnapshotName: req.SnapshotName, NewName: r.WorkerName, AllowInternet: req.AllowInternet})
	if err != nil {
		// A quota refusal names workspace_fork's count; here it is the
		// worker that did not fit.
		msg := strings.TrimPrefix(errdefs.Public(err), "count: ")
		return fail(TaskError, errdefs.With(errdefs.ClassOf(err), "the worker could not be made: "+msg, err))
	}
	if len(fr.Forks) != 1 {
		return fail(TaskError, errdefs.Unavailablef("the worker could not be made"))
	}
	r.WorkspaceID, r.BootTimeMs = fr.Forks[0].ID, fr.Forks[0].BootTimeMs
	defer func() {
		if p.cleanup || ctx.Err() != nil {
			r.WorkerRemoved = s.removeWorker(ctx, c, r.WorkspaceID)
		}
	}()

	env := map[string]string{}
	if len(req.EnvVars) > 0 {
		if _, err := s.ws.SetEnv(ctx, c, r.WorkspaceID, req.EnvVars, nil); err != nil {
			return fail(TaskError, renameField(err, "vars", "env_vars"))
		}
	}
	if req.SharedContext != "" {
		if err := s.ws.WriteFile(ctx, c, r.WorkspaceID, SharedContextPath, []byte(req.SharedContext), 0o644); err != nil {
			return fail(TaskError, renameField(err, "path", "shared_context"))
		}
		env[SharedContextEnv] = SharedContextPath
	}
	if p.vaultText != "" {
		if err := s.ws.WriteFile(ctx, c, r.WorkspaceID, VaultContextPath, []byte(p.vaultText), 0o644); err != nil {
			return fail(TaskError, renameField(err, "path", "vault_context"))
		}
		env[VaultContextEnv] = VaultContextPath
	}
	ex := p.execs[i]
	ex.Env = env
	began := time.Now()
	out, err := s.ws.Exec(ctx, c, r.WorkspaceID, ex)
	if err != nil {
		r.DurationMs = time.Since(began).Milliseconds()
		if errdefs.Is(err, errdefs.Timeout) {
			return fail(TaskTimedOut, err)
		}
		return fail(TaskError, err)
	}
	code := out.ExitCode
	r.ExitCode = &code
	r.Stdout, r.Stderr, r.Truncated, r.DurationMs = out.Stdout, out.Stderr, out.Truncated, out.DurationMs
	r.Status = TaskSucceeded
	if code != 0 {
		r.Status = TaskFailed
		return r
	}
	if merge != nil {
		r.Merge = s.mergeWorker(ctx, c, req, p, r.WorkspaceID, mergeMu, merge, t.Name)
	}
	return r
}

// mergeWorker merges worker's commits into the target, one worker at a
// time, and records the outcome in the summary.
func (s *Service) mergeWorker(ctx context.Context, c workspace.Caller, req RunRequest, p *plan, worker string, mu *sync.Mutex, sum *MergeSummary, task string) *TaskMerge {
	mu.Lock()
	defer mu.Unlock()
	tm := &TaskMerge{}
	res, err := s.git.Merge(ctx, c, gitops.MergeRequest{
		Sources: []string{worker}, Target: p.target.ID, Strategy: req.MergeStrategy, Path: req.MergePath,
		CommitMessage: "swarm_run: merge task " + task,
	})
	switch {
	case err != nil:
		tm.Status, tm.Error = gitops.SourceFailed, errdefs.Public(err)
	case len(res.Results) != 1:
		tm.Status, tm.Error = gitops.SourceFailed, "the merge reported no result for the worker"
	default:
		sr := res.Results[0]
		tm.Status, tm.CommitsApplied, tm.Conflicting, tm.Error = sr.Status, sr.CommitsApplied, sr.ConflictingFiles, sr.Error
		sum.HeadAfter = res.HeadAfter
	}
	if tm.Status == gitops.SourceMerged || tm.Status == gitops.SourceNothing {
		sum.Merged = append(sum.Merged, task)
	} else {
		sum.Conflicts = append(sum.Conflicts, task)
	}
	return tm
}

// removeWorker destroys a worker, even when the call was cancelled, and
// reports whether it is gone.
func (s *Service) removeWorker(ctx context.Context, c workspace.Caller, id string) bool {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := s.ws.Destroy(bg, c, id); err != nil {
		s.log.Error("removing a swarm worker", "workspace", id, "err", err)
		return false
	}
	return true
}

// describe is a task's outcome in a few words.
func describe(r TaskResult) string {
	switch {
	case r.ExitCode != nil:
		return fmt.Sprintf("%s (exit %d, %d ms)", r.Status, *r.ExitCode, r.DurationMs)
	case r.Error != "":
		return fmt.Sprintf("%s: %s", r.Status, r.Error)
	}
	return r.Status
}

// table is the per-task outcome as a markdown table.
func table(rows []TaskResult) string {
	var b strings.Builder
	b.WriteString("| # | task | status | exit | duration_ms | worker | boot_ms | merge |\n|---|---|---|---|---|---|---|---|\n")
	for i, r := range rows {
		exit, merge := "-", "-"
		if r.ExitCode != nil {
			exit = fmt.Sprint(*r.ExitCode)
		}
		if r.Merge != nil {
			merge = r.Merge.Status
		}
		worker := r.WorkerName
		if worker == "" || r.WorkspaceID == "" {
			worker = "-"
		} else if r.WorkerRemoved {
			worker += " (removed)"
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %d | %s | %d | %s |\n", i+1, r.Name, r.Status, exit, r.DurationMs, worker, r.BootTimeMs, merge)
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
