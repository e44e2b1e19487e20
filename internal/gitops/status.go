package gitops

import (
	"context"
	"strconv"
	"strings"

	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Status is a repository's state as git_status reports it.
type Status struct {
	Path string `json:"path"`
	// Branch is the checked-out branch, or "(detached)".
	Branch string `json:"branch"`
	// Commit is HEAD's sha; empty before the first commit.
	Commit string `json:"commit,omitempty"`
	// Upstream is the branch's upstream, when it has one; Ahead and Behind
	// count commits against it.
	Upstream   string   `json:"upstream,omitempty"`
	Ahead      int      `json:"ahead"`
	Behind     int      `json:"behind"`
	Staged     []string `json:"staged"`
	Modified   []string `json:"modified"`
	Untracked  []string `json:"untracked"`
	Conflicted []string `json:"conflicted"`
	// Dirty is set when anything is staged, modified, untracked or
	// conflicted.
	Dirty bool `json:"dirty"`
	// Truncated is set when git listed more than fits in an answer; the
	// lists then hold what fitted.
	Truncated bool `json:"truncated,omitempty"`
}

// Status reports the repository at path (default /workspace) in workspace
// ref.
func (s *Service) Status(ctx context.Context, c workspace.Caller, ref, repo string) (*Status, error) {
	repo, err := repoPath("path", repo)
	if err != nil {
		return nil, err
	}
	k := redact.Scrubber{}
	r, err := s.mustSucceed(ctx, c, ref, k, call{op: "status", repo: repo, max: listOutputBytes,
		args: []string{"status", "--porcelain=v2", "--branch", "-z", "--untracked-files=all"}})
	if err != nil {
		return nil, err
	}
	st := parseStatus(r.stdout, r.truncated)
	st.Path = repo
	return st, nil
}

// parseStatus reads `git status --porcelain=v2 --branch -z`. When the
// output was cut (truncated), its last, possibly partial, record is left
// out.
func parseStatus(out string, truncated bool) *Status {
	st := &Status{Branch: "(unknown)", Staged: []string{}, Modified: []string{}, Untracked: []string{}, Conflicted: []string{}}
	recs := strings.Split(out, "\x00")
	if truncated && len(recs) > 0 {
		recs = recs[:len(recs)-1]
		st.Truncated = true
	}
	for i := 0; i < len(recs); i++ {
		rec := recs[i]
		if rec == "" {
			continue
		}
		switch rec[0] {
		case '#':
			parseHeader(st, rec)
		case '1':
			// 1 XY sub mH mI mW hH hI path
			if f := strings.SplitN(rec, " ", 9); len(f) == 9 {
				addChange(st, f[1], f[8])
			}
		case '2':
			// 2 XY sub mH mI mW hH hI Xscore path, then origPath as the
			// next record.
			if f := strings.SplitN(rec, " ", 10); len(f) == 10 {
				addChange(st, f[1], f[9])
			}
			i++
		case 'u':
			// u XY sub m1 m2 m3 mW h1 h2 h3 path
			if f := strings.SplitN(rec, " ", 11); len(f) == 11 {
				st.Conflicted = append(st.Conflicted, f[10])
			}
		case '?':
			st.Untracked = append(st.Untracked, strings.TrimPrefix(rec, "? "))
		}
	}
	st.Dirty = len(st.Staged)+len(st.Modified)+len(st.Untracked)+len(st.Conflicted) > 0
	return st
}

func parseHeader(st *Status, rec string) {
	key, val, _ := strings.Cut(strings.TrimPrefix(rec, "# "), " ")
	switch key {
	case "branch.oid":
		if val != "(initial)" {
			st.Commit = val
		}
	case "branch.head":
		st.Branch = val
	case "branch.upstream":
		st.Upstream = val
	case "branch.ab":
		for _, f := range strings.Fields(val) {
			n, err := strconv.Atoi(f[1:])
			if err != nil || n < 0 {
				continue
			}
			switch f[0] {
			case '+':
				st.Ahead = n
			case '-':
				st.Behind = n
			}
		}
	}
}

// addChange files path by its XY status: X (the index) not '.' means
// staged, Y (the worktree) not '.' means modified.
func addChange(st *Status, xy, path string) {
	if len(xy) != 2 {
		return
	}
	if xy[0] != '.' {
		st.Staged = append(st.Staged, path)
	}
	if xy[1] != '.' {
		st.Modified = append(st.Modified, path)
	}
}
