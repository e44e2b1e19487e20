// Package swarm fans one agent's work out over many workspaces:
// workspace_prepare makes a golden workspace (a clone, setup commands, then
// a snapshot named golden) and swarm_run forks workers from such a snapshot,
// runs one task in each with a bound on how many run at once, optionally
// merges their commits into a target workspace and removes them.
//
// It orchestrates only: workspaces, forks, exec and env come from the
// workspace manager, clones and merges from gitops, context notes from the
// vault, each called for the caller, whose ownership they check.
package swarm

import (
	"context"
	"errors"
	"log/slog"

	"github.com/agentiso/agentiso/internal/gitops"
	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Workspaces is what swarm needs of the workspace manager.
type Workspaces interface {
	Create(ctx context.Context, c workspace.Caller, req workspace.CreateRequest) (*workspace.Info, error)
	Destroy(ctx context.Context, c workspace.Caller, ref string) error
	Info(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	Exec(ctx context.Context, c workspace.Caller, ref string, req workspace.ExecRequest) (*workspace.ExecResult, error)
	WriteFile(ctx context.Context, c workspace.Caller, ref, path string, content []byte, mode uint32) error
	SetEnv(ctx context.Context, c workspace.Caller, ref string, vars map[string]string, unset []string) (*workspace.EnvResult, error)
	SnapshotCreate(ctx context.Context, c workspace.Caller, ref string, req workspace.SnapshotRequest) (*workspace.SnapshotInfo, error)
	Fork(ctx context.Context, c workspace.Caller, ref string, req workspace.ForkRequest) (*workspace.ForkResult, error)
}

// Git is what swarm needs of the git service (package gitops).
type Git interface {
	Clone(ctx context.Context, c workspace.Caller, ref string, req gitops.CloneRequest) (*gitops.CloneResult, error)
	Merge(ctx context.Context, c workspace.Caller, req gitops.MergeRequest) (*gitops.MergeResult, error)
}

// Vault is the part of the knowledge base vault_context reads.
type Vault interface {
	Read(ctx context.Context, p string) (*vault.Note, error)
	Search(ctx context.Context, q vault.SearchQuery) (*vault.SearchResult, error)
}

// Config configures a Service.
type Config struct {
	Workspaces Workspaces
	Git        Git
	// Vault serves vault_context; nil when the vault is disabled.
	Vault Vault
	// Exec bounds the setup commands' and tasks' timeouts and output.
	Exec   workspace.ExecLimits
	Logger *slog.Logger
}

// Service runs workspace_prepare and swarm_run.
type Service struct {
	ws    Workspaces
	git   Git
	vault Vault
	exec  workspace.ExecLimits
	log   *slog.Logger
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Workspaces == nil || cfg.Git == nil {
		return nil, errors.New("swarm: Workspaces and Git are required")
	}
	if cfg.Exec.MaxTimeout <= 0 || cfg.Exec.MaxOutputBytes <= 0 {
		return nil, errors.New("swarm: the exec limits must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{ws: cfg.Workspaces, git: cfg.Git, vault: cfg.Vault, exec: cfg.Exec, log: cfg.Logger}, nil
}

// GoldenSnapshot is the snapshot workspace_prepare makes.
const GoldenSnapshot = "golden"
