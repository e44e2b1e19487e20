package gitops

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// The merge strategies.
const (
	// Sequential applies each source's commits, in order, onto the
	// target's checked-out branch: all of a source's commits or none.
	Sequential = "sequential"
	// BranchPerSource puts each source's commits on their own branch
	// (merge/<source>) from the commit the source shares with the target,
	// then merges that branch into the checked-out branch with a merge
	// commit. A branch whose merge conflicts is kept for the agent.
	BranchPerSource = "branch-per-source"
	// CherryPick applies each commit of each source on its own: a commit
	// that conflicts is skipped and reported, the others are applied.
	CherryPick = "cherry-pick"
)

// Merge bounds.
const (
	// MaxMergeSources bounds source_workspaces.
	MaxMergeSources = 20
	// maxCommitsPerSource bounds the commits taken from one source.
	maxCommitsPerSource = 500
	// forkSearchDepth is how far back in a source's history the commit
	// it shares with the target is looked for.
	forkSearchDepth = 1000
	// MaxPatchBytes bounds one commit's patch, and MaxMergeBytes all the
	// patches of one merge; both are checked against the size the guest
	// reports before the patch is read (L-15).
	MaxPatchBytes = 8 << 20
	MaxMergeBytes = 64 << 20
)

// MergeRequest is what workspace_merge asks for.
type MergeRequest struct {
	// Sources and Target are workspace references (IDs or names).
	Sources []string
	Target  string
	// Strategy is Sequential, BranchPerSource or CherryPick.
	Strategy string
	// Path is the repository in every workspace (default /workspace).
	Path string
	// CommitMessage is the merge commits' message (branch-per-source);
	// " (from <source>)" is appended.
	CommitMessage string
}

// MergeResult is workspace_merge's answer.
type MergeResult struct {
	// Success is set when every source merged (or had nothing to merge).
	Success  bool   `json:"success"`
	Strategy string `json:"strategy"`
	// TargetWorkspace is the target's ID; TargetBranch its checked-out
	// branch (empty on a detached HEAD).
	TargetWorkspace string `json:"target_workspace"`
	TargetBranch    string `json:"target_branch,omitempty"`
	HeadBefore      string `json:"head_before"`
	HeadAfter       string `json:"head_after"`
	// TotalCommitsApplied counts the source commits now in the target.
	TotalCommitsApplied int `json:"total_commits_applied"`
	// MergedSources are the sources (as the caller named them) whose
	// changes are all in the target; Conflicts the others.
	MergedSources []string        `json:"merged_sources"`
	Conflicts     []MergeConflict `json:"conflicts"`
	Results       []SourceResult  `json:"results"`
}

// MergeConflict names a source that did not merge whole.
type MergeConflict struct {
	SourceID string `json:"source_id"`
	Error    string `json:"error"`
}

// Source outcomes.
const (
	SourceMerged   = "merged"
	SourceNothing  = "nothing_to_merge"
	SourceConflict = "conflict"
	SourceFailed   = "failed"
)

// SourceResult is one source's outcome.
type SourceResult struct {
	// SourceID is the source as the caller named it.
	SourceID    string `json:"source_id"`
	WorkspaceID string `json:"workspace_id"`
	// Status is merged, nothing_to_merge, conflict (the target was left as
	// before this source) or failed (the source's patches could not be
	// made; the target was not touched for it).
	Status string `json:"status"`
	// Base is the commit the source shares with the target, from which
	// its commits were taken.
	Base           string `json:"base,omitempty"`
	Commits        int    `json:"commits"`
	CommitsApplied int    `json:"commits_applied"`
	// Skipped lists the commits left out (cherry-pick) or the one that
	// stopped the source (sequential, branch-per-source).
	Skipped []SkippedCommit `json:"skipped,omitempty"`
	// ConflictingFiles are the paths that conflicted.
	ConflictingFiles []string `json:"conflicting_files,omitempty"`
	// Branch is the source's branch in the target (branch-per-source),
	// kept there when its merge conflicted.
	Branch string `json:"branch,omitempty"`
	Error  string `json:"error,omitempty"`
}

// SkippedCommit is a source commit that was not applied.
type SkippedCommit struct {
	SHA     string `json:"sha"`
	Subject string `json:"subject"`
}

// source is a resolved source workspace and its patches.
type source struct {
	label string // as the caller named it
	info  *workspace.Info
	res   *SourceResult
	// patches are the source's commits, oldest first, as written into
	// the target.
	patches []patch
}

// patch is one commit's format-patch output, moved into the target.
type patch struct {
	sha, subject string
	// file is the patch's path in the target.
	file string
}

// targetState is what the target is restored to after a conflict.
type targetState struct {
	sha, branch string
}

// Merge brings the commits of every source workspace into the target's
// repository, moving them as patches through the host: `git
// format-patch` in the source, the bytes through the daemon, `git am` in
// the target. A source that conflicts is reported and the target is put
// back exactly as it was before that source: never left mid-merge.
func (s *Service) Merge(ctx context.Context, c workspace.Caller, req MergeRequest) (*MergeResult, error) {
	switch req.Strategy {
	case Sequential, BranchPerSource, CherryPick:
	case "":
		return nil, errdefs.Invalidf("strategy: required (sequential, branch-per-source or cherry-pick)")
	default:
		return nil, errdefs.Invalidf("strategy: must be sequential, branch-per-source or cherry-pick")
	}
	repo, err := repoPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	if len(req.CommitMessage) > maxMessageBytes || strings.IndexByte(req.CommitMessage, 0) >= 0 {
		return nil, errdefs.Invalidf("commit_message: at most %d bytes, no NUL", maxMessageBytes)
	}
	switch n := len(req.Sources); {
	case n == 0:
		return nil, errdefs.Invalidf("source_workspaces: at least one workspace is required")
	case n > MaxMergeSources:
		return nil, errdefs.Invalidf("source_workspaces: at most %d workspaces", MaxMergeSources)
	}
	if req.Target == "" {
		return nil, errdefs.Invalidf("target_workspace: required")
	}
	target, err := s.running(ctx, c, "target_workspace", req.Target)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{target.ID: true}
	srcs := make([]*source, len(req.Sources))
	for i, ref := range req.Sources {
		field := fmt.Sprintf("source_workspaces[%d]", i)
		if ref == "" {
			return nil, errdefs.Invalidf("%s: must not be empty", field)
		}
		info, err := s.running(ctx, c, field, ref)
		if err != nil {
			return nil, err
		}
		if info.ID == target.ID {
			return nil, errdefs.Invalidf("%s: is the target workspace", field)
		}
		if seen[info.ID] {
			return nil, errdefs.Invalidf("%s: names a workspace already listed", field)
		}
		seen[info.ID] = true
		srcs[i] = &source{label: ref, info: info,
			res: &SourceResult{SourceID: ref, WorkspaceID: info.ID}}
	}

	k := redact.Scrubber{}
	tref := target.ID
	defer s.lockTarget(tref)()
	before, err := s.checkTarget(ctx, c, tref, repo, req.Strategy, k)
	if err != nil {
		return nil, err
	}
	dir := path.Join("/tmp", "agentiso-merge-"+randomHex())
	defer s.removeDir(c, tref, dir)

	out := &MergeResult{Strategy: req.Strategy, TargetWorkspace: target.ID, TargetBranch: before.branch,
		HeadBefore: before.sha, MergedSources: []string{}, Conflicts: []MergeConflict{}}
	budget := int64(MaxMergeBytes)
	for i, src := range srcs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := s.collect(ctx, c, src, tref, repo, path.Join(dir, fmt.Sprint(i)), &budget, k); err != nil {
			if !isSourceFailure(err) {
				return nil, err
			}
			src.res.Status, src.res.Error = SourceFailed, errdefs.Public(err)
		} else if len(src.patches) == 0 {
			src.res.Status = SourceNothing
		} else {
			var err error
			switch req.Strategy {
			case Sequential:
				err = s.applySequential(ctx, c, tref, repo, src, k)
			case CherryPick:
				err = s.applyCherryPick(ctx, c, tref, repo, src, k)
			case BranchPerSource:
				err = s.applyBranch(ctx, c, tref, repo, src, before, req.CommitMessage, k)
			}
			if err != nil {
				return nil, err
			}
		}
		out.Results = append(out.Results, *src.res)
	}

	after, _, err := s.head(ctx, c, tref, repo, k)
	if err != nil {
		return nil, err
	}
	out.HeadAfter = after
	out.Success = true
	for _, r := range out.Results {
		out.TotalCommitsApplied += r.CommitsApplied
		switch r.Status {
		case SourceMerged, SourceNothing:
			out.MergedSources = append(out.MergedSources, r.SourceID)
		default:
			out.Success = false
			out.Conflicts = append(out.Conflicts, MergeConflict{SourceID: r.SourceID, Error: r.Error})
		}
	}
	return out, nil
}

// lockTarget takes the merge lock of target workspace id.
func (s *Service) lockTarget(id string) (unlock func()) {
	s.mu.Lock()
	l := s.merging[id]
	if l == nil {
		l = &targetLock{}
		s.merging[id] = l
	}
	l.refs++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(s.merging, id)
		}
		s.mu.Unlock()
	}
}

// running resolves ref to a running workspace of the caller. Errors name
// field, never the reference (L-16).
func (s *Service) running(ctx context.Context, c workspace.Caller, field, ref string) (*workspace.Info, error) {
	info, err := s.ws.Info(ctx, c, ref)
	if err != nil {
		if errdefs.Is(err, errdefs.NotFound) {
			return nil, errdefs.NotFoundf("%s: no such workspace in this session", field)
		}
		return nil, err
	}
	if info.State != "running" {
		return nil, errdefs.Conflictf("%s: the workspace is %s, not running (start it with workspace_start)", field, info.State)
	}
	return info, nil
}

// checkTarget refuses a target that is not a repository with a commit,
// has uncommitted changes to tracked files, or is in the middle of an am,
// merge, rebase, cherry-pick or revert of its own: a merge must be able to
// put it back as it was. It returns the state to put it back to.
func (s *Service) checkTarget(ctx context.Context, c workspace.Caller, ref, repo, strategy string, k redact.Scrubber) (targetState, error) {
	sha, branch, err := s.head(ctx, c, ref, repo, k)
	if err != nil {
		return targetState{}, asTarget(err)
	}
	if sha == "" {
		return targetState{}, errdefs.Conflictf("target_workspace: the repository at %s has no commit yet", repo)
	}
	if branch == "" && strategy == BranchPerSource {
		return targetState{}, errdefs.Conflictf("target_workspace: the repository at %s is on a detached HEAD; check out a branch first", repo)
	}
	gd, err := s.mustSucceed(ctx, c, ref, k, call{op: "rev-parse", repo: repo, args: []string{"rev-parse", "--absolute-git-dir"}})
	if err != nil {
		return targetState{}, asTarget(err)
	}
	gitDir := strings.TrimSpace(gd.stdout)
	var probe []string
	for _, f := range []string{"rebase-apply", "rebase-merge", "MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD"} {
		probe = append(probe, path.Join(gitDir, f))
	}
	// find prints the paths that exist and complains about the others.
	found, err := s.ws.ExecArgv(ctx, c, ref, workspace.ArgvRequest{
		Argv: append(append([]string{"find"}, probe...), "-maxdepth", "0"), Workdir: "/",
		Timeout: localTimeout, MaxOutputBytes: messageOutputBytes,
	})
	if err != nil {
		return targetState{}, k.Error(err)
	}
	if strings.TrimSpace(found.Stdout) != "" {
		return targetState{}, errdefs.Conflictf("target_workspace: the repository at %s is in the middle of an am, merge, rebase, cherry-pick or revert; finish or abort it first", repo)
	}
	st, err := s.mustSucceed(ctx, c, ref, k, call{op: "status", repo: repo, max: listOutputBytes,
		args: []string{"status", "--porcelain=v2", "-z", "--untracked-files=no"}})
	if err != nil {
		return targetState{}, asTarget(err)
	}
	if strings.TrimSpace(st.stdout) != "" {
		return targetState{}, errdefs.Conflictf("target_workspace: the repository at %s has uncommitted changes; commit or stash them first", repo)
	}
	return targetState{sha: sha, branch: branch}, nil
}

// asTarget makes a path error of the target name its parameter.
func asTarget(err error) error {
	if errdefs.Is(err, errdefs.Invalid) && strings.HasPrefix(errdefs.Public(err), "path: ") {
		return errdefs.With(errdefs.Invalid, "target_workspace: "+errdefs.Public(err), err)
	}
	return err
}

// sourceFailure marks an error that fails one source only.
type sourceFailure struct{ error }

func (e sourceFailure) Unwrap() error { return e.error }

func isSourceFailure(err error) bool {
	_, ok := err.(sourceFailure)
	return ok
}

// collect finds the commit src shares with the target, turns the source's
// commits since then into patches, and moves them into the target under
// dir. A problem of the source alone is a sourceFailure.
func (s *Service) collect(ctx context.Context, c workspace.Caller, src *source, tref, repo, dir string, budget *int64, k redact.Scrubber) error {
	sref := src.info.ID
	fail := func(err error) error {
		if errdefs.ClassOf(err) == errdefs.Internal {
			return err
		}
		return sourceFailure{err}
	}
	revs, err := s.mustSucceed(ctx, c, sref, k, call{op: "rev-list", repo: repo, max: listOutputBytes,
		args: []string{"rev-list", fmt.Sprintf("--max-count=%d", forkSearchDepth), "HEAD", "--"}})
	if err != nil {
		return fail(err)
	}
	shas := strings.Fields(revs.stdout)
	if len(shas) == 0 {
		return sourceFailure{errdefs.Conflictf("the source's repository has no commits")}
	}
	// Which of them does the target have? The newest is the fork point.
	have, err := s.mustSucceed(ctx, c, tref, k, call{op: "cat-file", repo: repo, max: listOutputBytes,
		args: []string{"cat-file", "--batch-check=%(objectname) %(objecttype)"}, stdin: []byte(strings.Join(shas, "\n") + "\n")})
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, line := range strings.Split(have.stdout, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == "commit" {
			known[f[0]] = true
		}
	}
	base := ""
	for _, sha := range shas {
		if known[sha] {
			base = sha
			break
		}
	}
	if base == "" {
		return sourceFailure{errdefs.Conflictf("the source shares no commit with the target within its last %d commits", forkSearchDepth)}
	}
	src.res.Base = base
	if base == shas[0] {
		return nil // the target already has the source's HEAD
	}

	sdir := path.Join("/tmp", "agentiso-patches-"+randomHex())
	defer s.removeDir(c, sref, sdir)
	fp, err := s.mustSucceed(ctx, c, sref, k, call{op: "format-patch", repo: repo, max: listOutputBytes,
		args: []string{"format-patch", "--binary", "--no-signature", "--full-index",
			"-o", sdir, base + "..HEAD", "--"}})
	if err != nil {
		return fail(err)
	}
	files := strings.Fields(fp.stdout)
	if len(files) > maxCommitsPerSource {
		return sourceFailure{errdefs.Quotaf("the source has %d commits since the shared one; at most %d are merged at once", len(files), maxCommitsPerSource)}
	}
	src.res.Commits = len(files)
	for i, f := range files {
		if !strings.HasPrefix(f, sdir+"/") {
			return fmt.Errorf("format-patch wrote %q outside %s", f, sdir)
		}
		data, size, err := s.ws.ReadFile(ctx, c, sref, f, 0, MaxPatchBytes+1)
		if err != nil {
			return fail(k.Error(err))
		}
		if size > MaxPatchBytes {
			return sourceFailure{errdefs.Quotaf("commit %d of the source makes a patch of %d bytes; at most %d", i+1, size, MaxPatchBytes)}
		}
		if *budget -= size; *budget < 0 {
			return sourceFailure{errdefs.Quotaf("the patches of this merge exceed %d bytes", MaxMergeBytes)}
		}
		sha, subject := patchHeader(data)
		dest := path.Join(dir, fmt.Sprintf("%04d.patch", i+1))
		if err := s.ws.WriteFile(ctx, c, tref, dest, data, 0o600); err != nil {
			return k.Error(err)
		}
		src.patches = append(src.patches, patch{sha: sha, subject: k.String(subject), file: dest})
	}
	return nil
}

// fromLine is the first line of a format-patch file.
var fromLine = regexp.MustCompile(`^From ([0-9a-f]{40,64}) `)

// patchHeader reads the commit sha and subject of a format-patch file.
func patchHeader(data []byte) (sha, subject string) {
	head := string(data[:min(len(data), 64<<10)])
	if m := fromLine.FindStringSubmatch(head); m != nil {
		sha = m[1]
	}
	for _, line := range strings.Split(head, "\n") {
		if s, ok := strings.CutPrefix(line, "Subject: "); ok {
			subject = strings.TrimSpace(s)
			if rest, ok := strings.CutPrefix(subject, "[PATCH"); ok {
				if _, after, ok := strings.Cut(rest, "] "); ok {
					subject = after
				}
			}
			break
		}
		if line == "" {
			break // end of the mail header
		}
	}
	return sha, subject
}

// am applies files to the target's checked-out branch with a three-way
// fallback. On failure it reports the conflicting files and which patch
// stopped, then aborts the am and verifies the target is back at before.
func (s *Service) am(ctx context.Context, c workspace.Caller, tref, repo string, files []string, before targetState, k redact.Scrubber) (ok bool, stoppedAt int, conflicts []string, said string, err error) {
	args := append([]string{"am", "--3way", "--keep-cr", "--"}, files...)
	r, err := s.git(ctx, c, tref, k, call{op: "am", repo: repo, args: args})
	if err != nil {
		return false, 0, nil, "", s.restoreAfter(ctx, c, tref, repo, before, k, err)
	}
	if r.exit == 0 {
		return true, 0, nil, "", nil
	}
	said = strings.TrimSpace(r.stdout + "\n" + r.stderr)
	stoppedAt = patchFailedAt(said)
	conflicts, err = s.unmerged(ctx, c, tref, repo, k)
	if err != nil {
		return false, 0, nil, "", s.restoreAfter(ctx, c, tref, repo, before, k, err)
	}
	if _, err := s.git(ctx, c, tref, k, call{op: "am", repo: repo, args: []string{"am", "--abort"}}); err != nil {
		return false, 0, nil, "", s.restoreAfter(ctx, c, tref, repo, before, k, err)
	}
	if err := s.restore(ctx, c, tref, repo, before, k); err != nil {
		return false, 0, nil, "", err
	}
	return false, stoppedAt, conflicts, said, nil
}

var patchFailed = regexp.MustCompile(`Patch failed at (\d+)`)

// patchFailedAt reads "Patch failed at 0002 subject" from git am's output:
// the 1-based number of the patch that stopped it, or 0.
func patchFailedAt(said string) int {
	m := patchFailed.FindStringSubmatch(said)
	if m == nil {
		return 0
	}
	var n int
	fmt.Sscanf(m[1], "%d", &n)
	return n
}

// unmerged lists the target's conflicting paths.
func (s *Service) unmerged(ctx context.Context, c workspace.Caller, tref, repo string, k redact.Scrubber) ([]string, error) {
	r, err := s.mustSucceed(ctx, c, tref, k, call{op: "diff", repo: repo, max: listOutputBytes,
		args: []string{"diff", "--name-only", "--diff-filter=U", "-z"}})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range strings.Split(r.stdout, "\x00") {
		if p != "" {
			out = append(out, p)
		}
	}
	return out, nil
}

// restore checks that the target is at want (its commit, its branch, no
// operation in progress, no unmerged path) and, if anything is off, puts
// it back: reset --hard to the commit (the tree was clean before the
// merge, so nothing of the agent's is lost) and check out the branch.
func (s *Service) restore(ctx context.Context, c workspace.Caller, tref, repo string, want targetState, k redact.Scrubber) error {
	sha, branch, err := s.head(ctx, c, tref, repo, k)
	if err == nil && sha == want.sha && branch == want.branch {
		if u, err := s.unmerged(ctx, c, tref, repo, k); err == nil && len(u) == 0 {
			return nil
		}
	}
	s.log.Warn("merge target not back where it was; resetting it", "workspace", tref, "want", want.sha)
	for _, args := range [][]string{
		{"am", "--abort"}, {"merge", "--abort"},
	} {
		_, _ = s.git(ctx, c, tref, k, call{op: args[0], repo: repo, args: args})
	}
	if want.branch != "" {
		if _, err := s.mustSucceed(ctx, c, tref, k, call{op: "checkout", repo: repo,
			args: []string{"checkout", "--quiet", "--force", want.branch, "--"}}); err != nil {
			return fmt.Errorf("restoring the merge target's branch: %w", err)
		}
	}
	if _, err := s.mustSucceed(ctx, c, tref, k, call{op: "reset", repo: repo,
		args: []string{"reset", "--quiet", "--hard", want.sha, "--"}}); err != nil {
		return fmt.Errorf("restoring the merge target to %s: %w", want.sha, err)
	}
	return nil
}

// restoreAfter puts the target back after cause broke off an operation,
// and returns cause (or the restore's own failure with it).
func (s *Service) restoreAfter(ctx context.Context, c workspace.Caller, tref, repo string, want targetState, k redact.Scrubber, cause error) error {
	if err := s.restore(context.WithoutCancel(ctx), c, tref, repo, want, k); err != nil {
		return fmt.Errorf("%w (and the target could not be restored: %v)", cause, err)
	}
	return cause
}

// applySequential applies all of src's patches in one am: all or none.
func (s *Service) applySequential(ctx context.Context, c workspace.Caller, tref, repo string, src *source, k redact.Scrubber) error {
	before, err := s.current(ctx, c, tref, repo, k)
	if err != nil {
		return err
	}
	ok, at, conflicts, said, err := s.am(ctx, c, tref, repo, patchFiles(src.patches), before, k)
	if err != nil {
		return err
	}
	if ok {
		src.res.Status, src.res.CommitsApplied = SourceMerged, len(src.patches)
		return nil
	}
	s.conflict(src, at, conflicts, said)
	return nil
}

// applyCherryPick applies src's patches one by one, skipping those that
// conflict.
func (s *Service) applyCherryPick(ctx context.Context, c workspace.Caller, tref, repo string, src *source, k redact.Scrubber) error {
	var files []string
	for _, p := range src.patches {
		before, err := s.current(ctx, c, tref, repo, k)
		if err != nil {
			return err
		}
		ok, _, conflicts, _, err := s.am(ctx, c, tref, repo, []string{p.file}, before, k)
		if err != nil {
			return err
		}
		if ok {
			src.res.CommitsApplied++
			continue
		}
		src.res.Skipped = append(src.res.Skipped, SkippedCommit{SHA: p.sha, Subject: p.subject})
		files = appendNew(files, conflicts...)
	}
	src.res.ConflictingFiles = files
	if len(src.res.Skipped) == 0 {
		src.res.Status = SourceMerged
		return nil
	}
	src.res.Status = SourceConflict
	src.res.Error = fmt.Sprintf("%d of %d commits conflicted and were skipped", len(src.res.Skipped), len(src.patches))
	return nil
}

// applyBranch puts src's patches on merge/<source> from the shared commit
// and merges that branch into the target's branch.
func (s *Service) applyBranch(ctx context.Context, c workspace.Caller, tref, repo string, src *source, orig targetState, message string, k redact.Scrubber) error {
	before, err := s.current(ctx, c, tref, repo, k)
	if err != nil {
		return err
	}
	br := branchFor(src.info)
	src.res.Branch = br
	exists, err := s.git(ctx, c, tref, k, call{op: "rev-parse", repo: repo,
		args: []string{"rev-parse", "--verify", "-q", "refs/heads/" + br}})
	if err != nil {
		return err
	}
	if exists.exit == 0 {
		src.res.Status = SourceFailed
		src.res.Error = fmt.Sprintf("the target already has a branch %s; delete or rename it first", br)
		src.res.Branch = ""
		return nil
	}
	if _, err := s.mustSucceed(ctx, c, tref, k, call{op: "checkout", repo: repo,
		args: []string{"checkout", "--quiet", "-b", br, src.res.Base, "--"}}); err != nil {
		return s.restoreAfter(ctx, c, tref, repo, before, k, err)
	}
	onBranch := targetState{sha: src.res.Base, branch: br}
	ok, at, conflicts, said, err := s.am(ctx, c, tref, repo, patchFiles(src.patches), onBranch, k)
	if err == nil && !ok {
		// The patches were made on this very commit: they apply unless the
		// source's history is unusual (merges, for one).
		s.conflict(src, at, conflicts, said)
	}
	// Back to the target's branch whatever happened.
	if _, cerr := s.mustSucceed(ctx, c, tref, k, call{op: "checkout", repo: repo,
		args: []string{"checkout", "--quiet", orig.branch, "--"}}); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil || !ok {
		_, _ = s.git(ctx, c, tref, k, call{op: "branch", repo: repo, args: []string{"branch", "-D", "--", br}})
		src.res.Branch = ""
		if err != nil {
			return s.restoreAfter(ctx, c, tref, repo, before, k, err)
		}
		return s.restore(ctx, c, tref, repo, before, k)
	}

	msg := fmt.Sprintf("Merge workspace %s (branch %s)", src.info.Name, br)
	if message != "" {
		msg = fmt.Sprintf("%s (from %s)", message, src.info.Name)
	}
	r, err := s.git(ctx, c, tref, k, call{op: "merge", repo: repo,
		args: []string{"merge", "--no-ff", "--no-edit", "-m", msg, br}})
	if err != nil {
		return s.restoreAfter(ctx, c, tref, repo, before, k, err)
	}
	if r.exit == 0 {
		src.res.Status, src.res.CommitsApplied = SourceMerged, len(src.patches)
		_, _ = s.git(ctx, c, tref, k, call{op: "branch", repo: repo, args: []string{"branch", "-D", "--", br}})
		src.res.Branch = ""
		return nil
	}
	conflicts, err = s.unmerged(ctx, c, tref, repo, k)
	if err != nil {
		return s.restoreAfter(ctx, c, tref, repo, before, k, err)
	}
	_, _ = s.git(ctx, c, tref, k, call{op: "merge", repo: repo, args: []string{"merge", "--abort"}})
	if err := s.restore(ctx, c, tref, repo, before, k); err != nil {
		return err
	}
	src.res.Status = SourceConflict
	src.res.ConflictingFiles = conflicts
	src.res.Error = fmt.Sprintf("merging %s conflicts in %s; the branch is kept in the target for you to merge by hand",
		br, strings.Join(conflicts, ", "))
	return nil
}

// current is the target's commit and branch now.
func (s *Service) current(ctx context.Context, c workspace.Caller, tref, repo string, k redact.Scrubber) (targetState, error) {
	sha, branch, err := s.head(ctx, c, tref, repo, k)
	if err != nil {
		return targetState{}, err
	}
	return targetState{sha: sha, branch: branch}, nil
}

// conflict records a source whose patches stopped at patch at (1-based).
func (s *Service) conflict(src *source, at int, conflicts []string, said string) {
	src.res.Status = SourceConflict
	src.res.ConflictingFiles = conflicts
	if at >= 1 && at <= len(src.patches) {
		p := src.patches[at-1]
		src.res.Skipped = []SkippedCommit{{SHA: p.sha, Subject: p.subject}}
	}
	switch {
	case len(conflicts) > 0:
		src.res.Error = fmt.Sprintf("conflict in %s; the target was left as before this source", strings.Join(conflicts, ", "))
	default:
		src.res.Error = "the source's patches do not apply: " + lastLines(said, 5)
	}
}

func patchFiles(ps []patch) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.file
	}
	return out
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		found := false
		for _, l := range list {
			if l == it {
				found = true
				break
			}
		}
		if !found {
			list = append(list, it)
		}
	}
	return list
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// branchFor names a source's branch in the target: merge/<workspace
// name>, or merge/<id> when the name is not a valid ref name.
func branchFor(info *workspace.Info) string {
	b := "merge/" + info.Name
	if checkRefName("branch", b) != nil {
		b = "merge/" + info.ID
	}
	return b
}

// removeDir removes a temporary directory in a workspace, best effort.
func (s *Service) removeDir(c workspace.Caller, ref, dir string) {
	ctx, cancel := context.WithTimeout(context.Background(), localTimeout)
	defer cancel()
	_, err := s.ws.ExecArgv(ctx, c, ref, workspace.ArgvRequest{
		Argv: []string{"rm", "-rf", "--", dir}, Workdir: "/", Timeout: localTimeout, MaxOutputBytes: messageOutputBytes,
	})
	if err != nil {
		s.log.Debug("removing a merge's temporary files", "workspace", ref, "err", err)
	}
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
