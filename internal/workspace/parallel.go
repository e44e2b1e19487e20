package workspace

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// MaxParallel bounds the workspaces of one exec_parallel call.
const MaxParallel = 64

// ParallelResult is one workspace's part of exec_parallel.
type ParallelResult struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	Command     string `json:"command"`
	// ExitCode is null when the command could not run or timed out
	// (Error says why).
	ExitCode   *int   `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated"`
	DurationMs int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// ParallelSummary counts the results of exec_parallel.
type ParallelSummary struct {
	Total int `json:"total"`
	// Succeeded exited 0, Failed exited otherwise, Errors did not run to
	// an exit (workspace not running, timeout, guest unreachable).
	Succeeded  int   `json:"succeeded"`
	Failed     int   `json:"failed"`
	Errors     int   `json:"errors"`
	DurationMs int64 `json:"duration_ms"`
}

// ExecParallel runs reqs[i] in workspace refs[i], all at once, and returns
// one result per workspace in the order given. Every reference is resolved
// first: an unknown or foreign one, or one listed twice, fails the whole
// call before anything runs, with an error naming workspace_ids[i]. A
// command that cannot run in its workspace is that workspace's error only.
func (m *Manager) ExecParallel(ctx context.Context, c Caller, refs []string, reqs []ExecRequest) ([]ParallelResult, ParallelSummary, error) {
	var sum ParallelSummary
	switch {
	case len(refs) == 0:
		return nil, sum, errdefs.Invalidf("workspace_ids: at least one workspace")
	case len(refs) > MaxParallel:
		return nil, sum, errdefs.Invalidf("workspace_ids: at most %d workspaces", MaxParallel)
	case len(reqs) != len(refs):
		return nil, sum, errdefs.Invalidf("commands: %d commands for %d workspaces", len(reqs), len(refs))
	}
	// What is wrong with the call itself fails it whole, before anything
	// runs: the env blocklist and the working directory.
	for _, req := range reqs {
		if err := protocol.CheckEnv(req.Env); err != nil {
			return nil, sum, errdefs.Invalidf("%v", err)
		}
		if req.Workdir != "" && req.Workdir[0] != '/' {
			return nil, sum, errdefs.Invalidf("workdir: must be an absolute path")
		}
	}
	results := make([]ParallelResult, len(refs))
	seen := map[string]int{}
	for i, ref := range refs {
		w, err := m.resolve(ctx, c, ref)
		if err != nil {
			return nil, sum, errdefs.With(errdefs.ClassOf(err), fmt.Sprintf("workspace_ids[%d]: %s", i, trimField(errdefs.Public(err), "workspace_id")), err)
		}
		if j, dup := seen[w.ID]; dup {
			return nil, sum, errdefs.Invalidf("workspace_ids[%d]: the same workspace as workspace_ids[%d]", i, j)
		}
		seen[w.ID] = i
		results[i] = ParallelResult{WorkspaceID: w.ID, Name: w.Name, Command: reqs[i].Command}
	}

	start := time.Now()
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(r *ParallelResult, req ExecRequest) {
			defer wg.Done()
			res, err := m.Exec(ctx, c, r.WorkspaceID, req)
			if err != nil {
				r.Error = errdefs.Public(err)
				return
			}
			code := res.ExitCode
			r.ExitCode = &code
			r.Stdout, r.Stderr, r.Truncated, r.DurationMs = res.Stdout, res.Stderr, res.Truncated, res.DurationMs
		}(&results[i], reqs[i])
	}
	wg.Wait()
	sum.Total = len(results)
	sum.DurationMs = time.Since(start).Milliseconds()
	for _, r := range results {
		switch {
		case r.ExitCode == nil:
			sum.Errors++
		case *r.ExitCode == 0:
			sum.Succeeded++
		default:
			sum.Failed++
		}
	}
	return results, sum, nil
}

// trimField drops a leading "field: " from msg.
func trimField(msg, field string) string {
	if len(msg) > len(field)+2 && msg[:len(field)+2] == field+": " {
		return msg[len(field)+2:]
	}
	return msg
}
