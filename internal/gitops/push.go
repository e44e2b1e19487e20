package gitops

import (
	"context"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// PushRequest is what git_push asks for.
type PushRequest struct {
	Path string
	// Remote defaults to origin; Branch to the checked-out branch.
	Remote, Branch     string
	Force, SetUpstream bool
	TimeoutSecs        int
}

// PushResult is git_push's answer.
type PushResult struct {
	Remote  string `json:"remote"`
	Branch  string `json:"branch"`
	Success bool   `json:"success"`
	// Output is what git said, credentials masked.
	Output string `json:"output"`
}

// Push pushes a branch to a remote. The remote's URLs are read first, so
// their credentials are masked as literals as well as by pattern.
func (s *Service) Push(ctx context.Context, c workspace.Caller, ref string, req PushRequest) (*PushResult, error) {
	repo, err := repoPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	remote := req.Remote
	if remote == "" {
		remote = "origin"
	}
	if err := checkRefName("remote", remote); err != nil {
		return nil, err
	}
	if req.Branch != "" {
		if err := checkRefName("branch", req.Branch); err != nil {
			return nil, err
		}
	}
	timeout, err := s.timeoutOf(req.TimeoutSecs, pushTimeout)
	if err != nil {
		return nil, err
	}
	// The remote's URLs, read unmasked so that their credentials can be
	// masked as literals; they go nowhere else.
	k := redact.Scrubber{}
	urls, err := s.ws.ExecArgv(ctx, c, ref, workspace.ArgvRequest{
		Argv:    append(append([]string(nil), baseArgs...), "-C", repo, "remote", "get-url", "--push", "--all", "--", remote),
		Workdir: "/", Env: baseEnv, Timeout: localTimeout, MaxOutputBytes: messageOutputBytes,
	})
	if err != nil {
		return nil, k.Error(err)
	}
	for _, u := range strings.Split(urls.Stdout, "\n") {
		k = k.With(redact.URLSecrets(strings.TrimSpace(u))...)
	}
	if urls.ExitCode != 0 {
		if strings.Contains(urls.Stderr, "No such remote") {
			return nil, errdefs.Invalidf("remote: the repository has no remote %s", remote)
		}
		r := &run{exit: urls.ExitCode}
		r.stderr, _ = clean(k, urls.Stderr, urls.Truncated, messageOutputBytes)
		return nil, failure(call{op: "push", repo: repo}, r)
	}

	branch := req.Branch
	if branch == "" {
		_, branch, err = s.head(ctx, c, ref, repo, k)
		if err != nil {
			return nil, err
		}
		if branch == "" {
			return nil, errdefs.Conflictf("branch: the repository is on a detached HEAD; name the branch to push")
		}
	}
	args := []string{"push"}
	if req.Force {
		args = append(args, "--force")
	}
	if req.SetUpstream {
		args = append(args, "--set-upstream")
	}
	args = append(args, "--", remote, branch)
	r, err := s.mustSucceed(ctx, c, ref, k, call{op: "push", repo: repo, args: args, timeout: timeout,
		timeoutHint: "; raise timeout_secs for a slow remote"})
	if err != nil {
		return nil, err
	}
	out := strings.TrimSpace(strings.TrimSpace(r.stdout) + "\n" + strings.TrimSpace(r.stderr))
	return &PushResult{Remote: remote, Branch: branch, Success: true, Output: out}, nil
}
