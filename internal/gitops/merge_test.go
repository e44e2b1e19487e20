package gitops

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

var caller = workspace.Caller{SessionID: "s1", Actor: "test"}

// mergeFixture is a target and three sources sharing a base commit: a adds
// a file, b adds one in two commits, c changes the line the target changed
// (a conflict) and then adds a file of its own.
func mergeFixture(t *testing.T) *hostWorkspaces {
	t.Helper()
	h := newHostWorkspaces(t, "tgt", "a", "b", "c", "stranger")
	h.sh("tgt", `git init -q -b main "$R/workspace/repo"; cd "$R/workspace/repo"
		printf '1\n2\n3\n4\n5\n6\n7\n8\n9\n' > f; git add f; git commit -qm base`)
	origin := h.roots["tgt"] + "/workspace/repo"
	for _, id := range []string{"a", "b", "c"} {
		h.sh(id, `git clone -q "`+origin+`" "$R/workspace/repo"`)
	}
	h.sh("a", `cd "$R/workspace/repo"; echo from a > a.txt; git add a.txt; git commit -qm "a: add a.txt"`)
	h.sh("b", `cd "$R/workspace/repo"; echo one > b.txt; git add b.txt; git commit -qm "b: one"
		echo two >> b.txt; git commit -qam "b: two"`)
	h.sh("c", `cd "$R/workspace/repo"; sed -i 's/^5$/c-five/' f; git commit -qam "c: conflicting"
		echo from c > c.txt; git add c.txt; git commit -qm "c: add c.txt"`)
	h.sh("tgt", `cd "$R/workspace/repo"; sed -i 's/^5$/t-five/' f; git commit -qam "target change"`)
	h.sh("stranger", `git init -q -b main "$R/workspace/repo"; cd "$R/workspace/repo"; echo x > x; git add x; git commit -qm other`)
	return h
}

func subjects(h *hostWorkspaces, id string) []string {
	return strings.Split(h.sh(id, `cd "$R/workspace/repo"; git log --reverse --format=%s`), "\n")
}

// targetIsClean checks the target after a merge: on main, nothing
// uncommitted, no am or merge left in progress.
func targetIsClean(t *testing.T, h *hostWorkspaces) {
	t.Helper()
	if st := h.sh("tgt", `cd "$R/workspace/repo"; git status --porcelain`); st != "" {
		t.Errorf("target not clean after the merge:\n%s", st)
	}
	if b := h.sh("tgt", `cd "$R/workspace/repo"; git branch --show-current`); b != "main" {
		t.Errorf("target on %q, want main", b)
	}
	if left := h.sh("tgt", `cd "$R/workspace/repo/.git"; ls -d rebase-apply MERGE_HEAD 2>/dev/null || true`); left != "" {
		t.Errorf("target left mid-operation: %s", left)
	}
}

func statuses(res *MergeResult) map[string]string {
	out := map[string]string{}
	for _, r := range res.Results {
		out[r.SourceID] = r.Status
	}
	return out
}

func TestMergeSequential(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	res, err := s.Merge(context.Background(), caller, MergeRequest{
		Sources: []string{"a", "b", "c"}, Target: "tgt", Strategy: Sequential, Path: "/workspace/repo"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": SourceMerged, "b": SourceMerged, "c": SourceConflict}, statuses(res)); d != "" {
		t.Fatalf("statuses (-want +got):\n%s", d)
	}
	if res.Success || res.TotalCommitsApplied != 3 || len(res.Conflicts) != 1 || res.Conflicts[0].SourceID != "c" {
		t.Errorf("result = %+v", res)
	}
	c := res.Results[2]
	if d := cmp.Diff([]string{"f"}, c.ConflictingFiles); d != "" {
		t.Errorf("conflicting files (-want +got):\n%s", d)
	}
	if len(c.Skipped) != 1 || c.Skipped[0].Subject != "c: conflicting" || len(c.Skipped[0].SHA) != 40 {
		t.Errorf("skipped = %+v, want the conflicting commit", c.Skipped)
	}
	want := []string{"base", "target change", "a: add a.txt", "b: one", "b: two"}
	if d := cmp.Diff(want, subjects(h, "tgt")); d != "" {
		t.Errorf("target history (-want +got):\n%s", d)
	}
	if got := h.sh("tgt", `cd "$R/workspace/repo"; sed -n 5p f; test ! -e c.txt && echo no-c`); got != "t-five\nno-c" {
		t.Errorf("target content: %q", got)
	}
	targetIsClean(t, h)
	if res.HeadAfter == res.HeadBefore || res.HeadAfter != h.sh("tgt", `cd "$R/workspace/repo"; git rev-parse HEAD`) {
		t.Errorf("head_before %s head_after %s", res.HeadBefore, res.HeadAfter)
	}
	// Temporary patches are gone from the target and the sources.
	for _, id := range []string{"tgt", "a", "b", "c"} {
		if left := h.sh(id, `ls "$R/tmp"`); left != "" {
			t.Errorf("%s: temporary files left: %s", id, left)
		}
	}
}

func TestMergeCherryPick(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	res, err := s.Merge(context.Background(), caller, MergeRequest{
		Sources: []string{"a", "b", "c"}, Target: "tgt", Strategy: CherryPick, Path: "/workspace/repo"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": SourceMerged, "b": SourceMerged, "c": SourceConflict}, statuses(res)); d != "" {
		t.Fatalf("statuses (-want +got):\n%s", d)
	}
	c := res.Results[2]
	if c.CommitsApplied != 1 || c.Commits != 2 || len(c.Skipped) != 1 || c.Skipped[0].Subject != "c: conflicting" {
		t.Errorf("c = %+v, want its second commit applied and the first skipped", c)
	}
	if res.TotalCommitsApplied != 4 {
		t.Errorf("total_commits_applied = %d, want 4", res.TotalCommitsApplied)
	}
	want := []string{"base", "target change", "a: add a.txt", "b: one", "b: two", "c: add c.txt"}
	if d := cmp.Diff(want, subjects(h, "tgt")); d != "" {
		t.Errorf("target history (-want +got):\n%s", d)
	}
	targetIsClean(t, h)
}

func TestMergeBranchPerSource(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	res, err := s.Merge(context.Background(), caller, MergeRequest{
		Sources: []string{"a", "b", "c"}, Target: "tgt", Strategy: BranchPerSource, Path: "/workspace/repo",
		CommitMessage: "integrate"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": SourceMerged, "b": SourceMerged, "c": SourceConflict}, statuses(res)); d != "" {
		t.Fatalf("statuses (-want +got):\n%s", d)
	}
	c := res.Results[2]
	if c.Branch != "merge/c" || !strings.Contains(c.Error, "merge/c") {
		t.Errorf("c = %+v, want its branch kept and named", c)
	}
	// First-parent history: two merge commits on top of the target's own.
	got := strings.Split(h.sh("tgt", `cd "$R/workspace/repo"; git log --first-parent --reverse --format=%s`), "\n")
	want := []string{"base", "target change", "integrate (from a)", "integrate (from b)"}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("target history (-want +got):\n%s", d)
	}
	branches := h.sh("tgt", `cd "$R/workspace/repo"; git branch --format='%(refname:short)'`)
	if branches != "main\nmerge/c" {
		t.Errorf("branches = %q, want main and the kept merge/c", branches)
	}
	// The kept branch holds c's work on the shared base.
	if got := h.sh("tgt", `cd "$R/workspace/repo"; git log --reverse --format=%s merge/c`); got != "base\nc: conflicting\nc: add c.txt" {
		t.Errorf("merge/c = %q", got)
	}
	targetIsClean(t, h)
}

func TestMergeNothingAndUnrelated(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	h.sh("a", `cd "$R/workspace/repo"; git reset -q --hard HEAD~1`) // back to base: nothing new
	res, err := s.Merge(context.Background(), caller, MergeRequest{
		Sources: []string{"a", "stranger"}, Target: "tgt", Strategy: Sequential, Path: "/workspace/repo"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": SourceNothing, "stranger": SourceFailed}, statuses(res)); d != "" {
		t.Fatalf("statuses (-want +got):\n%s", d)
	}
	if !strings.Contains(res.Results[1].Error, "shares no commit") {
		t.Errorf("stranger error = %q", res.Results[1].Error)
	}
	if res.HeadAfter != res.HeadBefore {
		t.Error("the target moved")
	}
}

// TestMergeRefusesWithoutChangingAnything: bad input and a target that
// could not be put back are refused before anything is touched, with the
// field named and no workspace reference echoed (L-16).
func TestMergeRefusesWithoutChangingAnything(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	head := h.sh("tgt", `cd "$R/workspace/repo"; git rev-parse HEAD`)
	tests := []struct {
		name  string
		req   MergeRequest
		setup string
		class errdefs.Class
		want  string
	}{
		{name: "no strategy", req: MergeRequest{Sources: []string{"a"}, Target: "tgt"}, class: errdefs.Invalid, want: "strategy: required"},
		{name: "bad strategy", req: MergeRequest{Sources: []string{"a"}, Target: "tgt", Strategy: "octopus"}, class: errdefs.Invalid, want: "strategy: must be"},
		{name: "no sources", req: MergeRequest{Target: "tgt", Strategy: Sequential}, class: errdefs.Invalid, want: "source_workspaces: at least one"},
		{name: "foreign source", req: MergeRequest{Sources: []string{"a", "someone-elses"}, Target: "tgt", Strategy: Sequential},
			class: errdefs.NotFound, want: "source_workspaces[1]: no such workspace in this session"},
		{name: "foreign target", req: MergeRequest{Sources: []string{"a"}, Target: "nope", Strategy: Sequential},
			class: errdefs.NotFound, want: "target_workspace: no such workspace in this session"},
		{name: "target as source", req: MergeRequest{Sources: []string{"a", "tgt"}, Target: "tgt", Strategy: Sequential},
			class: errdefs.Invalid, want: "source_workspaces[1]: is the target"},
		{name: "duplicate", req: MergeRequest{Sources: []string{"a", "a"}, Target: "tgt", Strategy: Sequential},
			class: errdefs.Invalid, want: "source_workspaces[1]: names a workspace already listed"},
		{name: "relative path", req: MergeRequest{Sources: []string{"a"}, Target: "tgt", Strategy: Sequential, Path: "repo"},
			class: errdefs.Invalid, want: "path: must be an absolute path"},
		{name: "not a repo", req: MergeRequest{Sources: []string{"a"}, Target: "tgt", Strategy: Sequential, Path: "/tmp"},
			class: errdefs.Invalid, want: "target_workspace: path: /tmp is not a git repository"},
		{name: "dirty target", setup: `echo dirt >> f`, req: MergeRequest{Sources: []string{"a"}, Target: "tgt", Strategy: Sequential, Path: "/workspace/repo"},
			class: errdefs.Conflict, want: "uncommitted changes"},
		{name: "target mid-merge", setup: `git checkout -q -b side HEAD~1; sed -i 's/^5$/side/' f; git commit -qam side; git checkout -q main; git merge side >/dev/null || true`,
			req:   MergeRequest{Sources: []string{"a"}, Target: "tgt", Strategy: Sequential, Path: "/workspace/repo"},
			class: errdefs.Conflict, want: "in the middle of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != "" {
				h.sh("tgt", `cd "$R/workspace/repo"; `+tt.setup)
				t.Cleanup(func() {
					h.sh("tgt", `cd "$R/workspace/repo"; git merge --abort 2>/dev/null || true; git reset -q --hard `+head+`; git branch -D side 2>/dev/null || true`)
				})
			}
			_, err := s.Merge(context.Background(), caller, tt.req)
			if errdefs.ClassOf(err) != tt.class || !strings.Contains(errdefs.Public(err), tt.want) {
				t.Fatalf("err = %v (%v), want %v containing %q", err, errdefs.ClassOf(err), tt.class, tt.want)
			}
			if strings.Contains(errdefs.Public(err), "someone-elses") || strings.Contains(errdefs.Public(err), "nope") {
				t.Errorf("error echoes a workspace reference: %q", errdefs.Public(err))
			}
			if tt.setup == "" {
				if got := h.sh("tgt", `cd "$R/workspace/repo"; git rev-parse HEAD; git status --porcelain`); got != head {
					t.Errorf("target changed: %q", got)
				}
			}
		})
	}
}

// TestMergeRunsGitWithoutAShell: every command of a merge is git (or find
// and rm for temporary files) run directly, never a shell.
func TestMergeRunsGitWithoutAShell(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	if _, err := s.Merge(context.Background(), caller, MergeRequest{
		Sources: []string{"a", "c"}, Target: "tgt", Strategy: BranchPerSource, Path: "/workspace/repo"}); err != nil {
		t.Fatal(err)
	}
	for _, argv := range h.calls {
		switch argv[0] {
		case "git", "find", "rm":
		default:
			t.Errorf("ran %q", argv)
		}
	}
}

// TestL15_PatchSizeCheckedBeforeReading: a source commit whose patch is
// larger than MaxPatchBytes fails that source with a clear reason; the
// patch is never read past the bound (the guest reports its size first),
// and the other sources still merge.
func TestL15_PatchSizeCheckedBeforeReading(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	h.sh("b", `cd "$R/workspace/repo"; head -c 7000000 /dev/urandom | base64 > big.txt; git add big.txt; git commit -qm big`)
	res, err := s.Merge(context.Background(), caller, MergeRequest{
		Sources: []string{"a", "b"}, Target: "tgt", Strategy: Sequential, Path: "/workspace/repo"})
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(map[string]string{"a": SourceMerged, "b": SourceFailed}, statuses(res)); d != "" {
		t.Fatalf("statuses (-want +got):\n%s", d)
	}
	if !strings.Contains(res.Results[1].Error, "makes a patch of") || !strings.Contains(res.Results[1].Error, "at most 8388608") {
		t.Errorf("b's error = %q", res.Results[1].Error)
	}
	for _, l := range h.readLimits {
		if l <= 0 || l > MaxPatchBytes+1 {
			t.Errorf("a patch was read with limit %d, want 1..%d", l, MaxPatchBytes+1)
		}
	}
	// Nothing of b reached the target.
	if got := subjects(h, "tgt"); len(got) != 3 || got[2] != "a: add a.txt" {
		t.Errorf("target history %q", got)
	}
}

// TestConcurrentMergesIntoOneTarget: two merges into the same target at
// once are serialised; both complete and the target holds both.
func TestConcurrentMergesIntoOneTarget(t *testing.T) {
	h := mergeFixture(t)
	s := newTestService(t, h)
	errs := make(chan error, 2)
	for _, src := range []string{"a", "b"} {
		go func() {
			_, err := s.Merge(context.Background(), caller, MergeRequest{
				Sources: []string{src}, Target: "tgt", Strategy: Sequential, Path: "/workspace/repo"})
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := len(subjects(h, "tgt")); got != 5 {
		t.Errorf("target has %d commits, want base, its own, a's and b's two", got)
	}
	targetIsClean(t, h)
	if len(s.merging) != 0 {
		t.Errorf("%d merge locks left", len(s.merging))
	}
}
