// Package daemon wires agentiso together: configuration, state store, VM
// runner, storage, workspace manager, and the Unix socket on which every
// connection is one MCP session. It holds no product logic of its own.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/bridge"
	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/dashboard"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/gitops"
	"github.com/agentiso/agentiso/internal/image"
	"github.com/agentiso/agentiso/internal/mcpserver"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/session"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/storage"
	"github.com/agentiso/agentiso/internal/team"
	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/vm"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Daemon is a running agentiso daemon.
type Daemon struct {
	cfg       config.Config
	log       *slog.Logger
	store     *state.Store
	manager   *workspace.Manager
	vault     *vault.Vault // nil when [vault] is disabled
	teams     *team.Service
	bridge    *bridge.Server // nil when [bridge] is disabled
	mcpDeps   mcpserver.Deps
	dash      *dashboard.Server
	accel     qemu.Accel
	accelWhy  string
	startedAt time.Time
	// confine puts VMs under their resource limits.
	confine *confiner
	// secrets are the daemon's secrets (config.LoadSecrets).
	secrets config.LoadedSecrets
	// limiter and activity are the sessions' rate limits and liveness.
	limiter  *session.Limiter
	activity *session.Tracker
}

// New opens the state, loads the image, chooses the accelerator and
// re-attaches to the VMs a previous daemon left running. Serve then serves.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := PrepareDataDir(cfg); err != nil {
		return nil, err
	}
	// file_transfer reads and writes only here; an existing directory
	// keeps the mode its administrator gave it.
	if err := os.MkdirAll(cfg.Server.TransferDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating the transfer directory: %w", err)
	}
	secrets, err := cfg.LoadSecrets()
	if err != nil {
		return nil, err
	}
	// No program the daemon starts (QEMU, qemu-img) inherits a secret.
	for _, name := range config.SecretEnvVars {
		os.Unsetenv(name)
	}
	if err := checkFDLimit(cfg, log); err != nil {
		return nil, err
	}
	img, err := image.Load(cfg.ImageDir())
	if err != nil {
		return nil, errdefs.With(errdefs.Unavailable,
			fmt.Sprintf("no guest image at %s: run `agentiso init` to build it", cfg.ImageDir()), err)
	}
	store, err := state.Open(ctx, cfg.StatePath())
	if err != nil {
		return nil, fmt.Errorf("opening state: %w", err)
	}
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	disks, err := storage.NewQcow2(storage.Qcow2Config{Root: disksDir(cfg), Logger: log})
	if err != nil {
		return nil, err
	}

	d := &Daemon{cfg: cfg, log: log, store: store, startedAt: time.Now(), secrets: secrets}
	if d.limiter, err = newLimiter(cfg.Limits); err != nil {
		return nil, err
	}
	policy := session.Policy{StaleAfter: cfg.Server.StaleSession()}
	d.activity = session.NewTracker(store, policy.TouchEvery(), log)
	vmCfg := vm.Config{
		QEMUBinary:         cfg.VM.QEMUBinary,
		Dial:               dialGuest(log, channel.NewStreamLimit(cfg.Limits.MaxChannelStreams)),
		Logger:             log,
		BootTimeout:        cfg.VM.BootTimeout(),
		StopTimeout:        cfg.VM.StopTimeout(),
		ConsoleLogMaxBytes: cfg.VM.ConsoleLogMaxBytes,
	}
	d.accel, d.accelWhy, err = qemu.DetectAccel(ctx, qemu.DetectConfig{
		Setting: cfg.VM.Accel,
		Probe:   probeKVM(cfg, vmCfg, img, disks),
	})
	if err != nil {
		return nil, err
	}
	log.Info("accelerator chosen", "accel", d.accel, "reason", d.accelWhy)
	vmCfg.Accel = d.accel
	vmCfg.TCGCacheMB = cfg.VM.TCGCacheMB
	d.confine = newConfiner(cfg, d.accel, log)
	vmCfg.AfterStart = d.confine.afterStart
	vmCfg.AfterExit = d.confine.afterExit
	// d.manager is set below, before any VM is started or attached.
	vmCfg.AfterReconnect = func(spec vm.Spec) { d.manager.GuestReconnected(spec) }
	runner, err := vm.NewRunner(vmCfg)
	if err != nil {
		return nil, err
	}
	// A dashboard that may not run stops the daemon before it changes the
	// host's network (newDashboard below makes the same check).
	if cfg.Dashboard.Enabled {
		if _, _, _, err := dashboard.LoadToken(secrets.AdminToken, cfg.Server.DataDir, cfg.Dashboard.ListenLoopback()); err != nil {
			return nil, adminTokenError(err, secrets.AdminTokenFrom)
		}
	}
	netOpts, err := setupNetwork(cfg, log)
	if err != nil {
		return nil, err
	}
	d.manager, err = workspace.New(workspace.Options{
		Store: store, Runner: runner, Disks: disks, Image: img,
		RunDir: cfg.VMRunDir(), LogDir: cfg.WorkspacesDir(),
		Limits: workspace.Limits{
			DefaultVCPUs: cfg.Resources.DefaultVCPUs, DefaultMemoryMB: cfg.Resources.DefaultMemoryMB,
			DefaultDiskGB: cfg.Resources.DefaultDiskGB, MaxVCPUs: cfg.Resources.MaxVCPUs,
			MaxMemoryMB: cfg.Resources.MaxMemoryMB, MaxDiskGB: cfg.Resources.MaxDiskGB,
			MaxWorkspacesPerSession:  cfg.Resources.MaxWorkspacesPerSession,
			MaxMemoryMBPerSession:    cfg.Resources.MaxMemoryMBPerSession,
			MaxDiskGBPerSession:      cfg.Resources.MaxDiskGBPerSession,
			MaxTotalVMs:              cfg.VM.MaxTotalVMs,
			MinMemoryMB:              config.MinMemoryMB,
			StaleSession:             policy.StaleAfter,
			MaxSnapshotsPerWorkspace: cfg.Storage.MaxSnapshotsPerWorkspace,
			MinFreeBytes:             cfg.Storage.MinFreeBytes,
			MinFreePercent:           cfg.Storage.MinFreePercent,
		},
		Transfer: workspace.TransferLimits{Dir: cfg.Server.TransferDir, MaxBytes: cfg.Files.MaxTransferBytes},
		Network:  netOpts,
		Logger:   log,
		PauseAt:  os.Getenv(workspace.PauseAtEnv),
		Template: workspace.TemplateOptions{
			Enabled: cfg.Pool.Template, Dir: cfg.TemplatesDir(),
			Salt: fmt.Sprintf("%s\x00%s", d.accel, cfg.VM.QEMUBinary),
		},
		Pool:        workspace.PoolOptions{Enabled: cfg.Pool.Enabled, Size: cfg.Pool.Size, MaxMemoryMB: cfg.Pool.MaxMemoryMB},
		InstanceEnv: instanceEnv(cfg),
	})
	if err != nil {
		return nil, err
	}
	if err := d.manager.Recover(ctx); err != nil {
		return nil, fmt.Errorf("recovering workspaces: %w", err)
	}
	if err := d.releaseStoppedCgroups(ctx); err != nil {
		return nil, err
	}
	var vaultDep mcpserver.Vault // stays a nil interface when disabled
	if cfg.Vault.Enabled {
		d.vault, err = vault.Open(vault.Config{
			Root: cfg.VaultDir(), MaxNoteBytes: cfg.Vault.MaxNoteBytes, MaxPatternBytes: cfg.Vault.MaxPatternBytes,
			Extensions: cfg.Vault.Extensions, SearchTimeout: cfg.Vault.SearchTimeout(), Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("opening the vault: %w", err)
		}
		vaultDep = d.vault
		log.Info("vault open", "dir", cfg.VaultDir())
	}
	var teamBridge team.Bridge // stays a nil interface when the bridge is disabled
	if cfg.Bridge.Enabled {
		if teamBridge, err = d.startBridge(cfg); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				d.bridge.Close()
			}
		}()
	}
	var teamVault team.Vault // stays a nil interface when the vault is disabled
	if d.vault != nil {
		teamVault = d.vault
	}
	d.teams, err = team.New(team.Config{
		Store: store, Workspaces: d.manager, Vault: teamVault, Bridge: teamBridge, Network: d.manager, Logger: log,
		Limits: team.Limits{
			MaxDepth: cfg.Team.MaxDepth, MaxMembers: cfg.Team.MaxMembers, DefaultMaxVMs: cfg.Team.DefaultMaxVMs,
			MessagesPerMinute: cfg.Team.MessagesPerMinute, TasksPerGuest: cfg.Team.TasksPerGuest,
			Exec: workspace.ExecLimits{
				DefaultTimeout: cfg.Exec.DefaultTimeout(), MaxTimeout: cfg.Exec.MaxTimeout(),
				DefaultMaxOutputBytes: cfg.Exec.DefaultMaxOutputBytes, MaxOutputBytes: cfg.Exec.MaxOutputBytes,
			},
		},
	})
	if err != nil {
		return nil, err
	}
	if err := d.teams.Recover(ctx); err != nil {
		return nil, fmt.Errorf("recovering team tasks: %w", err)
	}
	d.teams.RegrantAll(ctx)
	// A member that starts again gets a new token in its new guest.
	d.manager.OnStarted(d.teams.MemberStarted)
	if d.vault != nil {
		// The vault tool sees the task boards' rules.
		vaultDep = d.teams.Board(d.vault)
	}
	git, err := gitops.New(gitops.Config{
		Workspaces: d.manager, MaxTimeout: cfg.Exec.MaxTimeout(), MaxOutputBytes: cfg.Exec.MaxOutputBytes, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	sw, err := d.newSwarm(cfg, git, log)
	if err != nil {
		return nil, err
	}
	d.mcpDeps = mcpserver.Deps{
		Vault:      vaultDep,
		Teams:      d.teams,
		Git:        git,
		Swarm:      sw,
		Workspaces: d.manager,
		Network:    d.manager,
		Exec: mcpserver.ExecLimits{
			DefaultTimeout:        cfg.Exec.DefaultTimeout(),
			MaxTimeout:            cfg.Exec.MaxTimeout(),
			DefaultMaxOutputBytes: cfg.Exec.DefaultMaxOutputBytes,
			MaxOutputBytes:        cfg.Exec.MaxOutputBytes,
			MaxFileReadBytes:      maxFileReadBytes,
		},
		Limiter:     d.limiter,
		Activity:    d.activity,
		Audit:       d.audit,
		Logger:      log,
		SchemaCache: mcp.NewSchemaCache(),
	}
	if cfg.Dashboard.Enabled {
		if d.dash, err = d.newDashboard(); err != nil {
			d.manager.Close()
			return nil, err
		}
	}
	d.manager.StartBackground()
	return d, nil
}

// releaseStoppedCgroups removes the cgroups of workspaces that are not
// running: their VMs exited while no daemon watched them.
func (d *Daemon) releaseStoppedCgroups(ctx context.Context) error {
	ws, err := d.store.ListWorkspaces(ctx, state.WorkspaceFilter{})
	if err != nil {
		return fmt.Errorf("listing workspaces: %w", err)
	}
	for _, w := range ws {
		if w.State != state.WorkspaceRunning {
			d.confine.release(w.ID)
		}
	}
	return nil
}

// PrepareDataDir creates the data directories, private to root: workspace
// disks, logs and the state database live there.
func PrepareDataDir(cfg config.Config) error {
	for _, d := range []string{cfg.Server.DataDir, cfg.WorkspacesDir(), disksDir(cfg)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("making %s private: %w", d, err)
		}
	}
	return nil
}

// maxFileReadBytes bounds one file_read answer.
const maxFileReadBytes = 8 << 20

func disksDir(cfg config.Config) string { return filepath.Join(cfg.Server.DataDir, "disks") }

// dialGuest connects the host end of a VM's guest channel. Every VM's
// channel shares one cap on requests in flight (finding M-22).
func dialGuest(log *slog.Logger, shared *channel.StreamLimit) vm.DialFunc {
	return func(ctx context.Context, socketPath string) (vm.Channel, error) {
		return channel.Dial(ctx, socketPath, channel.Options{Logger: log, Shared: shared})
	}
}

// probeKVM boots the image once under KVM on a throw-away disk layer, so
// "auto" picks KVM only where an ordinary guest really runs.
func probeKVM(cfg config.Config, vmCfg vm.Config, img *image.Image, disks *storage.Qcow2) func(context.Context) error {
	return func(ctx context.Context) error {
		id := "accel-probe"
		if _, err := disks.Create(ctx, id, img.RootfsPath(), 0); err != nil {
			return err
		}
		defer disks.Destroy(context.WithoutCancel(ctx), id)
		disk, err := disks.Path(id)
		if err != nil {
			return err
		}
		runDir := filepath.Join(cfg.VMRunDir(), id)
		defer os.RemoveAll(runDir)
		c := vmCfg
		c.Accel = qemu.AccelKVM
		return vm.ProbeBoot(ctx, c, vm.Spec{
			ID: id, VCPUs: 1, MemoryMB: 256, Kernel: img.KernelPath(), Initrd: img.InitrdPath(),
			KernelArgs: img.KernelArgs(), Disk: disk, RunDir: runDir,
		})
	}
}

// audit records one tool call in the append-only audit log.
func (d *Daemon) audit(ctx context.Context, r mcpserver.AuditRecord) {
	e := state.AuditEntry{
		SessionID: r.Caller.SessionID, Actor: r.Caller.Actor, Action: r.Tool, Target: r.Target,
		Result: state.AuditOK, DurationMs: r.Duration.Milliseconds(),
	}
	if r.Err != nil {
		e.Result = state.AuditError
		e.ErrorClass = errdefs.ClassOf(r.Err).String()
	}
	if _, err := d.store.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		d.log.Error("appending audit entry", "tool", r.Tool, "err", err)
	}
}

// Close detaches from the VMs (they keep running) and closes the state.
func (d *Daemon) Close() error {
	if d.bridge != nil {
		d.bridge.Close()
	}
	d.teams.Close()
	d.manager.Close()
	if d.vault != nil {
		d.vault.Close()
	}
	return d.store.Close()
}

// Accel reports the accelerator in use and why it was chosen.
func (d *Daemon) Accel() (qemu.Accel, string) { return d.accel, d.accelWhy }

var errServerClosed = errors.New("daemon stopped")
