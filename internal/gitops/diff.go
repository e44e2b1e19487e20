package gitops

import (
	"context"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// DefaultDiffBytes is git_diff's max_bytes when a call gives none.
const DefaultDiffBytes = 64 << 10

// statBytes bounds the --stat summary that accompanies a diff.
const statBytes = 64 << 10

// DiffRequest is what git_diff asks for.
type DiffRequest struct {
	Path string
	// Staged diffs the index against HEAD instead of the worktree against
	// the index.
	Staged bool
	// Stat returns only the --stat summary.
	Stat bool
	// FilePath limits the diff to one path.
	FilePath string
	MaxBytes int64
}

// DiffResult is git_diff's answer.
type DiffResult struct {
	Diff string `json:"diff"`
	// Truncated is set when the diff was longer than max_bytes; Diff then
	// ends on a whole UTF-8 character (M-16).
	Truncated bool   `json:"truncated"`
	Stat      string `json:"stat"`
}

// Diff returns the repository's diff, at most req.MaxBytes of it.
func (s *Service) Diff(ctx context.Context, c workspace.Caller, ref string, req DiffRequest) (*DiffResult, error) {
	repo, err := repoPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	if err := checkPathspec("file_path", req.FilePath); err != nil {
		return nil, err
	}
	max := req.MaxBytes
	switch {
	case max < 0:
		return nil, errdefs.Invalidf("max_bytes: must not be negative")
	case max == 0:
		max = DefaultDiffBytes
	case max > s.maxOutput:
		return nil, errdefs.Invalidf("max_bytes: at most %d", s.maxOutput)
	}
	k := redact.Scrubber{}
	args := func(stat bool) []string {
		a := []string{"diff", "--no-color", "--no-ext-diff"}
		if req.Staged {
			a = append(a, "--cached")
		}
		if stat {
			a = append(a, "--stat")
		}
		if req.FilePath != "" {
			a = append(a, "--", req.FilePath)
		}
		return a
	}
	if req.Stat {
		r, err := s.mustSucceed(ctx, c, ref, k, call{op: "diff", repo: repo, args: args(true), max: max})
		if err != nil {
			return nil, err
		}
		return &DiffResult{Diff: r.stdout, Truncated: r.truncated, Stat: r.stdout}, nil
	}
	r, err := s.mustSucceed(ctx, c, ref, k, call{op: "diff", repo: repo, args: args(false), max: max})
	if err != nil {
		return nil, err
	}
	st, err := s.mustSucceed(ctx, c, ref, k, call{op: "diff", repo: repo, args: args(true), max: statBytes})
	if err != nil {
		return nil, err
	}
	return &DiffResult{Diff: r.stdout, Truncated: r.truncated, Stat: st.stdout}, nil
}
