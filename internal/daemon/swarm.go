package daemon

import (
	"log/slog"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/gitops"
	"github.com/agentiso/agentiso/internal/swarm"
	"github.com/agentiso/agentiso/internal/workspace"
)

// newSwarm wires workspace_prepare and swarm_run to the manager, the git
// service and (when enabled) the vault.
func (d *Daemon) newSwarm(cfg config.Config, git *gitops.Service, log *slog.Logger) (*swarm.Service, error) {
	var v swarm.Vault // stays a nil interface when the vault is disabled
	if d.vault != nil {
		v = d.vault
	}
	return swarm.New(swarm.Config{
		Workspaces: d.manager, Git: git, Vault: v, Logger: log,
		Exec: workspace.ExecLimits{
			DefaultTimeout: cfg.Exec.DefaultTimeout(), MaxTimeout: cfg.Exec.MaxTimeout(),
			DefaultMaxOutputBytes: cfg.Exec.DefaultMaxOutputBytes, MaxOutputBytes: cfg.Exec.MaxOutputBytes,
		},
	})
}
