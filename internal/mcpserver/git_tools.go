package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/gitops"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Git is the git tools' service (package gitops).
type Git interface {
	Clone(ctx context.Context, c workspace.Caller, ref string, req gitops.CloneRequest) (*gitops.CloneResult, error)
	Status(ctx context.Context, c workspace.Caller, ref, path string) (*gitops.Status, error)
	Commit(ctx context.Context, c workspace.Caller, ref string, req gitops.CommitRequest) (*gitops.CommitResult, error)
	Push(ctx context.Context, c workspace.Caller, ref string, req gitops.PushRequest) (*gitops.PushResult, error)
	Diff(ctx context.Context, c workspace.Caller, ref string, req gitops.DiffRequest) (*gitops.DiffResult, error)
	Merge(ctx context.Context, c workspace.Caller, req gitops.MergeRequest) (*gitops.MergeResult, error)
}

type gitCloneIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	URL         string `json:"url" jsonschema:"repository URL: https://, http://, ssh://, git://, file://, user@host:path, or an absolute path inside the workspace. Credentials in it (https://user:token@host/...) are masked in every answer and log"`
	Path        string `json:"path,omitempty" jsonschema:"absolute destination path (default /workspace/<repository name>)"`
	Branch      string `json:"branch,omitempty" jsonschema:"branch to check out"`
	Depth       int    `json:"depth,omitempty" jsonschema:"shallow clone of this many commits (default: full history)"`
	TimeoutSecs int    `json:"timeout_secs,omitempty" jsonschema:"kill the clone after this many seconds (default 300)"`
}

type gitStatusIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path,omitempty" jsonschema:"absolute path of the repository (default /workspace)"`
}

type gitCommitIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path,omitempty" jsonschema:"absolute path of the repository (default /workspace)"`
	Message     string `json:"message" jsonschema:"commit message"`
	AddAll      *bool  `json:"add_all,omitempty" jsonschema:"stage every change (git add -A) before committing (default true)"`
	AuthorName  string `json:"author_name,omitempty" jsonschema:"author (and committer) name (default: the repository's configuration)"`
	AuthorEmail string `json:"author_email,omitempty" jsonschema:"author (and committer) e-mail (default: the repository's configuration)"`
}

type gitPushIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path,omitempty" jsonschema:"absolute path of the repository (default /workspace)"`
	Remote      string `json:"remote,omitempty" jsonschema:"remote name (default origin)"`
	Branch      string `json:"branch,omitempty" jsonschema:"branch to push (default: the checked-out branch)"`
	Force       bool   `json:"force,omitempty" jsonschema:"force the push"`
	SetUpstream bool   `json:"set_upstream,omitempty" jsonschema:"make the remote branch the upstream of the local one"`
	TimeoutSecs int    `json:"timeout_secs,omitempty" jsonschema:"kill the push after this many seconds (default 120)"`
}

type gitDiffIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Path        string `json:"path,omitempty" jsonschema:"absolute path of the repository (default /workspace)"`
	Staged      bool   `json:"staged,omitempty" jsonschema:"diff what is staged against HEAD instead of the working tree against the index"`
	Stat        bool   `json:"stat,omitempty" jsonschema:"only the --stat summary"`
	FilePath    string `json:"file_path,omitempty" jsonschema:"only this file or directory"`
	MaxBytes    int64  `json:"max_bytes,omitempty" jsonschema:"bytes of diff to return (default 65536); a longer diff is cut on a character boundary and flagged truncated"`
}

type workspaceMergeIn struct {
	SourceWorkspaces []string `json:"source_workspaces" jsonschema:"UUIDs or names of the workspaces whose commits are merged (1-20)"`
	TargetWorkspace  string   `json:"target_workspace" jsonschema:"UUID or name of the workspace to merge into"`
	Strategy         string   `json:"strategy" jsonschema:"sequential (each source's commits in order, all or none), branch-per-source (a branch per source from the shared commit, merged with a merge commit) or cherry-pick (commit by commit, skipping those that conflict)"`
	Path             string   `json:"path,omitempty" jsonschema:"absolute path of the repository in every workspace (default /workspace)"`
	CommitMessage    string   `json:"commit_message,omitempty" jsonschema:"message of the merge commits (branch-per-source)"`
}

func (t *tools) registerGitTools(s *mcp.Server) {
	g := t.d.Git
	add(t, s, "git_clone",
		"Clone a git repository into a workspace. Returns the path and HEAD's sha. "+
			"Credentials in the URL are masked in every answer and log.",
		func(in gitCloneIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in gitCloneIn) (*gitops.CloneResult, error) {
			return g.Clone(ctx, t.caller, in.WorkspaceID, gitops.CloneRequest{
				URL: in.URL, Path: in.Path, Branch: in.Branch, Depth: in.Depth, TimeoutSecs: in.TimeoutSecs})
		})
	add(t, s, "git_status",
		"Structured git status of a repository in a workspace: branch, ahead/behind its upstream, "+
			"staged, modified, untracked and conflicted files, dirty.",
		func(in gitStatusIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in gitStatusIn) (*gitops.Status, error) {
			return g.Status(ctx, t.caller, in.WorkspaceID, in.Path)
		})
	add(t, s, "git_commit",
		"Commit the changes of a repository in a workspace (staging everything first unless add_all is false). "+
			"Returns the new commit's sha, or status nothing_to_commit.",
		func(in gitCommitIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in gitCommitIn) (*gitops.CommitResult, error) {
			return g.Commit(ctx, t.caller, in.WorkspaceID, gitops.CommitRequest{
				Path: in.Path, Message: in.Message, AddAll: in.AddAll, AuthorName: in.AuthorName, AuthorEmail: in.AuthorEmail})
		})
	add(t, s, "git_push",
		"Push a branch of a repository in a workspace to a remote. Credentials are masked in the output.",
		func(in gitPushIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in gitPushIn) (*gitops.PushResult, error) {
			return g.Push(ctx, t.caller, in.WorkspaceID, gitops.PushRequest{
				Path: in.Path, Remote: in.Remote, Branch: in.Branch, Force: in.Force,
				SetUpstream: in.SetUpstream, TimeoutSecs: in.TimeoutSecs})
		})
	add(t, s, "git_diff",
		"Diff of a repository in a workspace (working tree, or staged), or its --stat summary, "+
			"at most max_bytes of it.",
		func(in gitDiffIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in gitDiffIn) (*gitops.DiffResult, error) {
			return g.Diff(ctx, t.caller, in.WorkspaceID, gitops.DiffRequest{
				Path: in.Path, Staged: in.Staged, Stat: in.Stat, FilePath: in.FilePath, MaxBytes: in.MaxBytes})
		})
	add(t, s, "workspace_merge",
		"Bring the commits of several workspaces' repositories into one target workspace. "+
			"Each source's commits since the commit it shares with the target travel as patches "+
			"(format-patch in the source, am in the target). Per-source results; a source that "+
			"conflicts is reported and the target is put back as it was before that source.",
		func(in workspaceMergeIn) string { return in.TargetWorkspace },
		func(ctx context.Context, _ *mcp.CallToolRequest, in workspaceMergeIn) (*gitops.MergeResult, error) {
			return g.Merge(ctx, t.caller, gitops.MergeRequest{
				Sources: in.SourceWorkspaces, Target: in.TargetWorkspace, Strategy: in.Strategy,
				Path: in.Path, CommitMessage: in.CommitMessage})
		})
}
