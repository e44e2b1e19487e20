package gitops

import (
	"context"
	"strconv"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// CloneRequest is what git_clone asks for.
type CloneRequest struct {
	URL string
	// Path is where the repository goes; empty means /workspace, where
	// the other git tools look by default (it must not exist, or be empty).
	Path   string
	Branch string
	// Depth makes a shallow clone of that many commits; 0 is a full clone.
	Depth       int
	TimeoutSecs int
}

// CloneResult is git_clone's answer.
type CloneResult struct {
	Success bool   `json:"success"`
	Path    string `json:"path"`
	// CommitSHA is HEAD after the clone; empty for an empty repository.
	CommitSHA string `json:"commit_sha"`
	Branch    string `json:"branch"`
	// URL is the URL cloned, its credentials masked.
	URL   string `json:"url"`
	Depth int    `json:"depth,omitempty"`
}

// Clone clones req.URL into workspace ref. The URL's credentials are masked
// in everything returned and logged; they stay in the clone's own
// configuration inside the workspace (the agent's choice), where later
// pushes use them.
func (s *Service) Clone(ctx context.Context, c workspace.Caller, ref string, req CloneRequest) (*CloneResult, error) {
	if err := checkURL(req.URL); err != nil {
		return nil, err
	}
	k := redact.Scrubber{}.With(redact.URLSecrets(req.URL)...)
	dest, err := repoPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	if req.Branch != "" {
		if err := checkRefName("branch", req.Branch); err != nil {
			return nil, err
		}
	}
	if req.Depth < 0 || req.Depth > maxDepth {
		return nil, errdefs.Invalidf("depth: must be 0 (full history) to %d", maxDepth)
	}
	timeout, err := s.timeoutOf(req.TimeoutSecs, cloneTimeout)
	if err != nil {
		return nil, err
	}
	args := []string{"clone", "--quiet"}
	if req.Branch != "" {
		args = append(args, "--branch", req.Branch)
	}
	if req.Depth > 0 {
		args = append(args, "--depth", strconv.Itoa(req.Depth))
	}
	args = append(args, "--", req.URL, dest)
	if _, err := s.mustSucceed(ctx, c, ref, k, call{op: "clone", args: args, timeout: timeout,
		timeoutHint: "; a shallow clone (depth: 1) or a larger timeout_secs may help"}); err != nil {
		if errdefs.Is(err, errdefs.Conflict) && containsAny(errdefs.Public(err), "already exists and is not an empty directory") {
			return nil, errdefs.Conflictf("path: %s already exists and is not empty; choose another path", dest)
		}
		if containsAny(errdefs.Public(err), "Remote branch", "not found in upstream") && req.Branch != "" {
			return nil, errdefs.Invalidf("branch: %s", errdefs.Public(err))
		}
		return nil, err
	}
	sha, branch, err := s.head(ctx, c, ref, dest, k)
	if err != nil {
		return nil, err
	}
	return &CloneResult{Success: true, Path: dest, CommitSHA: sha, Branch: branch, URL: k.String(req.URL), Depth: req.Depth}, nil
}
