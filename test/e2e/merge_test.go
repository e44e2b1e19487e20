package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

type mergeOut struct {
	Success             bool     `json:"success"`
	Strategy            string   `json:"strategy"`
	TargetBranch        string   `json:"target_branch"`
	HeadBefore          string   `json:"head_before"`
	HeadAfter           string   `json:"head_after"`
	TotalCommitsApplied int      `json:"total_commits_applied"`
	MergedSources       []string `json:"merged_sources"`
	Conflicts           []struct {
		SourceID string `json:"source_id"`
		Error    string `json:"error"`
	} `json:"conflicts"`
	Results []struct {
		SourceID         string   `json:"source_id"`
		Status           string   `json:"status"`
		Commits          int      `json:"commits"`
		CommitsApplied   int      `json:"commits_applied"`
		ConflictingFiles []string `json:"conflicting_files"`
		Branch           string   `json:"branch"`
		Skipped          []struct {
			SHA     string `json:"sha"`
			Subject string `json:"subject"`
		} `json:"skipped"`
	} `json:"results"`
}

// baseRepo makes the same first commit in every workspace it runs in (same
// content, author, committer and dates, so the same sha): the shared
// history a fork of one workspace would have.
const baseRepo = `export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com
export GIT_AUTHOR_DATE=@1700000000 GIT_COMMITTER_DATE=@1700000000
git init -q -b main /workspace/repo; cd /workspace/repo
printf '1\n2\n3\n4\n5\n6\n7\n8\n9\n' > f; git add f; git commit -qm base
git config user.name t; git config user.email t@example.com
git rev-parse HEAD`

// TestWorkspaceMerge merges three source workspaces into a target with
// each strategy: a adds a file, b adds one in two commits, c first
// changes the line the target changed (a conflict), then adds a file. The
// patches travel through the host; the conflict is reported and the
// target is never left mid-merge.
//
// Four VMs run at once here (three sources and the target), booted one
// after another at the smallest size that runs git comfortably.
func TestWorkspaceMerge(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	s := d.client(ctx)

	names := []string{"m-target", "m-a", "m-b", "m-c"}
	var base string
	for _, n := range names {
		call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": n, "memory_mb": 256})
		sha := sh(ctx, t, s, n, baseRepo)
		if base == "" {
			base = sha
		} else if sha != base {
			t.Fatalf("%s: base commit %s, want the shared %s", n, sha, base)
		}
	}
	sh(ctx, t, s, "m-a", `cd /workspace/repo; echo from a > a.txt; git add a.txt; git commit -qm "a: add a.txt"`)
	sh(ctx, t, s, "m-b", `cd /workspace/repo; echo one > b.txt; git add b.txt; git commit -qm "b: one"
echo two >> b.txt; git commit -qam "b: two"`)
	sh(ctx, t, s, "m-c", `cd /workspace/repo; sed -i 's/^5$/c-five/' f; git commit -qam "c: conflicting"
echo from c > c.txt; git add c.txt; git commit -qm "c: add c.txt"`)
	start := sh(ctx, t, s, "m-target", `cd /workspace/repo; sed -i 's/^5$/t-five/' f; git commit -qam "target change"; git rev-parse HEAD`)

	sources := []any{"m-a", "m-b", "m-c"}
	log := func(args string) string {
		return sh(ctx, t, s, "m-target", "cd /workspace/repo; git log --reverse --format=%s "+args)
	}
	// checkTarget: on main, clean, no am or merge in progress.
	checkTarget := func(strategy string) {
		t.Helper()
		got := sh(ctx, t, s, "m-target", `cd /workspace/repo; git branch --show-current; git status --porcelain; ls -d .git/rebase-apply .git/MERGE_HEAD 2>/dev/null || true`)
		if got != "main" {
			t.Errorf("%s: target after the merge (branch, status, leftovers): %q", strategy, got)
		}
	}
	reset := func() {
		sh(ctx, t, s, "m-target", `cd /workspace/repo; git reset -q --hard `+start+`; git branch -D merge/m-c 2>/dev/null || true`)
	}
	status := func(m mergeOut) string {
		var parts []string
		for _, r := range m.Results {
			parts = append(parts, fmt.Sprintf("%s=%s/%d", r.SourceID, r.Status, r.CommitsApplied))
		}
		return strings.Join(parts, " ")
	}

	// sequential: a and b whole, c not at all.
	began := time.Now()
	m := call[mergeOut](ctx, t, s, "workspace_merge", map[string]any{
		"source_workspaces": sources, "target_workspace": "m-target", "strategy": "sequential", "path": "/workspace/repo"})
	t.Logf("sequential merge of 3 sources: %v", time.Since(began))
	if got := status(m); got != "m-a=merged/1 m-b=merged/2 m-c=conflict/0" {
		t.Fatalf("sequential: %s (%+v)", got, m)
	}
	if m.Success || m.TotalCommitsApplied != 3 || len(m.Conflicts) != 1 || m.Conflicts[0].SourceID != "m-c" ||
		fmt.Sprint(m.Results[2].ConflictingFiles) != "[f]" || len(m.Results[2].Skipped) != 1 || m.Results[2].Skipped[0].Subject != "c: conflicting" {
		t.Fatalf("sequential result: %+v", m)
	}
	if got := log(""); got != "base\ntarget change\na: add a.txt\nb: one\nb: two" {
		t.Fatalf("sequential: target history %q", got)
	}
	if m.HeadBefore != start || m.HeadAfter != sh(ctx, t, s, "m-target", "git -C /workspace/repo rev-parse HEAD") {
		t.Errorf("sequential: head_before %s head_after %s", m.HeadBefore, m.HeadAfter)
	}
	checkTarget("sequential")
	// The patches moved through temporary files; none is left anywhere.
	for _, n := range names {
		if left := sh(ctx, t, s, n, `ls /tmp | grep agentiso- || true`); left != "" {
			t.Errorf("%s: temporary files left: %s", n, left)
		}
	}

	// cherry-pick: c's second commit applies, its first is skipped.
	reset()
	began = time.Now()
	m = call[mergeOut](ctx, t, s, "workspace_merge", map[string]any{
		"source_workspaces": sources, "target_workspace": "m-target", "strategy": "cherry-pick", "path": "/workspace/repo"})
	t.Logf("cherry-pick merge of 3 sources: %v", time.Since(began))
	if got := status(m); got != "m-a=merged/1 m-b=merged/2 m-c=conflict/1" {
		t.Fatalf("cherry-pick: %s (%+v)", got, m)
	}
	if len(m.Results[2].Skipped) != 1 || m.Results[2].Skipped[0].Subject != "c: conflicting" || m.TotalCommitsApplied != 4 {
		t.Fatalf("cherry-pick result: %+v", m)
	}
	if got := log(""); got != "base\ntarget change\na: add a.txt\nb: one\nb: two\nc: add c.txt" {
		t.Fatalf("cherry-pick: target history %q", got)
	}
	if got := sh(ctx, t, s, "m-target", `sed -n 5p /workspace/repo/f`); got != "t-five" {
		t.Errorf("cherry-pick: the target's own line became %q", got)
	}
	checkTarget("cherry-pick")

	// branch-per-source: merge commits for a and b; c's branch is kept.
	reset()
	began = time.Now()
	m = call[mergeOut](ctx, t, s, "workspace_merge", map[string]any{
		"source_workspaces": sources, "target_workspace": "m-target", "strategy": "branch-per-source",
		"path": "/workspace/repo", "commit_message": "integrate"})
	t.Logf("branch-per-source merge of 3 sources: %v", time.Since(began))
	if got := status(m); got != "m-a=merged/1 m-b=merged/2 m-c=conflict/0" {
		t.Fatalf("branch-per-source: %s (%+v)", got, m)
	}
	if m.Results[2].Branch != "merge/m-c" || fmt.Sprint(m.Results[2].ConflictingFiles) != "[f]" {
		t.Fatalf("branch-per-source result: %+v", m)
	}
	if got := log("--first-parent"); got != "base\ntarget change\nintegrate (from m-a)\nintegrate (from m-b)" {
		t.Fatalf("branch-per-source: target history %q", got)
	}
	if got := log("merge/m-c"); got != "base\nc: conflicting\nc: add c.txt" {
		t.Fatalf("branch-per-source: kept branch %q", got)
	}
	checkTarget("branch-per-source")

	// Bad input changes nothing and names the field; another session's
	// target is not there for it (L-16).
	head := sh(ctx, t, s, "m-target", "git -C /workspace/repo rev-parse HEAD")
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"source_workspaces": sources, "target_workspace": "m-target", "strategy": "octopus"}, "strategy: must be"},
		{map[string]any{"source_workspaces": []any{}, "target_workspace": "m-target", "strategy": "sequential"}, "source_workspaces: at least one"},
		{map[string]any{"source_workspaces": []any{"m-a", "ghost"}, "target_workspace": "m-target", "strategy": "sequential"}, "source_workspaces[1]: no such workspace in this session"},
		{map[string]any{"source_workspaces": []any{"m-a", "m-target"}, "target_workspace": "m-target", "strategy": "sequential"}, "source_workspaces[1]: is the target"},
		{map[string]any{"source_workspaces": sources, "target_workspace": "m-target", "strategy": "sequential", "path": "/root"}, "target_workspace: path: /root is not a git repository"},
	} {
		if msg := callErr(ctx, t, s, "workspace_merge", tc.args); !strings.Contains(msg, tc.want) {
			t.Errorf("workspace_merge(%v) = %q, want %q", tc.args, msg, tc.want)
		}
	}
	sh(ctx, t, s, "m-target", `echo dirt >> /workspace/repo/f`)
	if msg := callErr(ctx, t, s, "workspace_merge", map[string]any{"source_workspaces": sources, "target_workspace": "m-target",
		"strategy": "sequential", "path": "/workspace/repo"}); !strings.Contains(msg, "uncommitted changes") {
		t.Errorf("dirty target: %q", msg)
	}
	if got := sh(ctx, t, s, "m-target", "cd /workspace/repo; git checkout -q f; git rev-parse HEAD"); got != head {
		t.Errorf("refused merges moved the target to %s", got)
	}
	other := d.client(ctx)
	if msg := callErr(ctx, t, other, "workspace_merge", map[string]any{"source_workspaces": []any{"m-a"}, "target_workspace": "m-target",
		"strategy": "sequential"}); msg != "target_workspace: no such workspace in this session" {
		t.Errorf("another session's merge: %q", msg)
	}
}
