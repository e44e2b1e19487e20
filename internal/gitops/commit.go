package gitops

import (
	"context"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// CommitRequest is what git_commit asks for.
type CommitRequest struct {
	Path    string
	Message string
	// AddAll stages every change (git add -A) first; nil means true.
	AddAll      *bool
	AuthorName  string
	AuthorEmail string
}

// CommitResult is git_commit's answer.
type CommitResult struct {
	// Status is "committed", or "nothing_to_commit" when there was no
	// change to commit (then CommitSHA is empty).
	Status    string `json:"status"`
	CommitSHA string `json:"commit_sha"`
	ShortSHA  string `json:"short_sha,omitempty"`
	Branch    string `json:"branch,omitempty"`
	// Summary is the commit's subject line.
	Summary string `json:"summary,omitempty"`
}

// Commit records the repository's changes. The message goes to git on
// standard input, so nothing in it is read as an option.
func (s *Service) Commit(ctx context.Context, c workspace.Caller, ref string, req CommitRequest) (*CommitResult, error) {
	repo, err := repoPath("path", req.Path)
	if err != nil {
		return nil, err
	}
	switch {
	case strings.TrimSpace(req.Message) == "":
		return nil, errdefs.Invalidf("message: required")
	case len(req.Message) > maxMessageBytes:
		return nil, errdefs.Invalidf("message: longer than %d bytes", maxMessageBytes)
	case strings.IndexByte(req.Message, 0) >= 0:
		return nil, errdefs.Invalidf("message: must not contain NUL")
	}
	if err := checkIdent("author_name", req.AuthorName); err != nil {
		return nil, err
	}
	if err := checkIdent("author_email", req.AuthorEmail); err != nil {
		return nil, err
	}
	env := map[string]string{}
	if req.AuthorName != "" {
		env["GIT_AUTHOR_NAME"], env["GIT_COMMITTER_NAME"] = req.AuthorName, req.AuthorName
	}
	if req.AuthorEmail != "" {
		env["GIT_AUTHOR_EMAIL"], env["GIT_COMMITTER_EMAIL"] = req.AuthorEmail, req.AuthorEmail
	}
	k := redact.Scrubber{}
	if req.AddAll == nil || *req.AddAll {
		if _, err := s.mustSucceed(ctx, c, ref, k, call{op: "add", repo: repo, args: []string{"add", "-A"}}); err != nil {
			return nil, err
		}
	}
	r, err := s.git(ctx, c, ref, k, call{op: "commit", repo: repo, env: env,
		args: []string{"commit", "--quiet", "--file=-"}, stdin: []byte(req.Message)})
	if err != nil {
		return nil, err
	}
	if r.exit != 0 {
		if containsAny(r.stdout+r.stderr, "nothing to commit", "no changes added to commit", "nothing added to commit") {
			return &CommitResult{Status: "nothing_to_commit"}, nil
		}
		return nil, failure(call{op: "commit", repo: repo}, r)
	}
	l, err := s.mustSucceed(ctx, c, ref, k, call{op: "log", repo: repo,
		args: []string{"log", "-1", "--format=%H%x00%h%x00%s"}})
	if err != nil {
		return nil, err
	}
	f := strings.SplitN(strings.TrimRight(l.stdout, "\n"), "\x00", 3)
	if len(f) != 3 {
		return nil, errdefs.Unavailablef("git log gave an unexpected answer after the commit")
	}
	_, branch, err := s.head(ctx, c, ref, repo, k)
	if err != nil {
		return nil, err
	}
	if branch == "" {
		branch = "(detached)"
	}
	return &CommitResult{Status: "committed", CommitSHA: f[0], ShortSHA: f[1], Branch: branch, Summary: f[2]}, nil
}
