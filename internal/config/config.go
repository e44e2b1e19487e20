// Package config is agentiso's configuration: one TOML file
// (/etc/agentiso/config.toml by default), its defaults, and the checks that
// make a bad value fail at start-up with a message naming the field.
//
// Decoding is strict: a key the program does not know is an error that names
// the key and its line, so a typo never silently leaves a default in force.
// Keys that are absent keep their defaults, so a file may set only what it
// changes.
//
// The file holds no secrets (finding L-11): it is readable by the agentiso
// group, and a key that looks like a secret (admin_token, password, ...) is
// refused with a message that says where it belongs. Secrets come from a
// file of their own, mode 0600, named in [secrets], or from the environment
// (LoadSecrets).
//
// To add a section: add a struct with toml and comment tags, a field for it in
// Config, its defaults in Default, and a validate method called from
// Config.Validate. The commented default file (WriteDefault) is generated from
// the same tags, so it cannot drift from Default.
package config

import (
	"log/slog"
	"path/filepath"
	"time"
)

// DefaultPath is where the daemon and the CLI look for the file.
const DefaultPath = "/etc/agentiso/config.toml"

// The accelerator settings of vm.accel.
const (
	AccelAuto = "auto"
	AccelKVM  = "kvm"
	AccelTCG  = "tcg"
)

// Config is the whole configuration file.
type Config struct {
	Server    Server    `toml:"server" comment:"The daemon: where it keeps state and how clients reach it."`
	VM        VM        `toml:"vm" comment:"QEMU virtual machines."`
	Image     Image     `toml:"image" comment:"The guest image built by 'agentiso init' and 'agentiso image build'."`
	Resources Resources `toml:"resources" comment:"Workspace sizes: the defaults a create request gets and the maxima it may ask for."`
	Exec      Exec      `toml:"exec" comment:"Commands run in workspaces."`
	Network   Network   `toml:"network" comment:"Workspace networking: bridge, addresses, internet access, port forwards."`
	Files     Files     `toml:"files" comment:"Files moved between the host and workspaces."`
	Storage   Storage   `toml:"storage" comment:"Workspace disks and snapshots: how many, and how much of the host's disk they may leave free."`
	Pool      Pool      `toml:"pool" comment:"Warm pool: VMs booted ahead of time so workspace_create is fast. Pool VMs count against vm.max_total_vms."`
	Secrets   Secrets   `toml:"secrets" comment:"Where secrets come from. Never put a secret in this file: name a file of its own (mode 0600, owned by root) or use the environment variable given."`
	Limits    Limits    `toml:"limits" comment:"How much clients may ask of the daemon: calls per minute by cost class (per session and for all sessions together), connections, and requests in flight to guests."`
	Vault     Vault     `toml:"vault" comment:"The shared markdown knowledge base, on the host."`
	Dashboard Dashboard `toml:"dashboard" comment:"The web dashboard and its REST API."`
	API       API       `toml:"api" comment:"The REST API's Unix socket, for the CLI."`
	Team      Team      `toml:"team" comment:"Teams of agents: nesting, budgets, messages and task assignments."`
	Bridge    Bridge    `toml:"bridge" comment:"The MCP bridge for agents inside workspaces."`
}

// Server configures the daemon process.
type Server struct {
	DataDir     string `toml:"data_dir" comment:"State database, images, workspace disks and snapshots."`
	RunDir      string `toml:"run_dir" comment:"Sockets and other runtime files. Keep it short: per-VM sockets live under it."`
	SocketPath  string `toml:"socket_path" comment:"The daemon's API socket (mode 0660, group socket_group)."`
	SocketGroup string `toml:"socket_group" comment:"Members of this group may use agentiso. Empty: root only (socket mode 0600)."`
	TransferDir string `toml:"transfer_dir" comment:"The only host directory file transfers may read from or write to."`
	LogLevel    string `toml:"log_level" comment:"debug, info, warn or error."`
	// StaleSessionSecs is how long a session may go unseen before another
	// session may adopt its workspaces (finding L-12: not hard-coded).
	StaleSessionSecs int `toml:"stale_session_secs" comment:"Seconds without contact after which a session counts as gone."`
}

// VM configures how QEMU is run.
type VM struct {
	QEMUBinary         string `toml:"qemu_binary" comment:"A program name looked up in PATH, or an absolute path."`
	Accel              string `toml:"accel" comment:"auto (KVM only where a test guest really boots under it, else TCG), kvm or tcg."`
	BootTimeoutSecs    int    `toml:"boot_timeout_secs" comment:"Seconds a VM may take to boot and answer the host."`
	StopTimeoutSecs    int    `toml:"stop_timeout_secs" comment:"Seconds a VM may take to stop before it is killed."`
	ConsoleLogMaxBytes int64  `toml:"console_log_max_bytes" comment:"Size bound of each VM's console log."`
	MaxTotalVMs        int    `toml:"max_total_vms" comment:"VMs on this host at once, across all sessions."`
	// TCGCacheMB bounds QEMU's translated-code cache under TCG, which
	// otherwise grows to 1 GiB per VM beyond its guest memory.
	TCGCacheMB int `toml:"tcg_cache_mb" comment:"Under TCG (software emulation): MiB of translated code each VM may cache. Counted in its memory limit."`
}

// Image configures the guest image build.
type Image struct {
	Dir           string   `toml:"dir" comment:"The built image. Empty means <data_dir>/images/default."`
	Suite         string   `toml:"suite" comment:"Debian release of the guest root filesystem."`
	Mirror        string   `toml:"mirror" comment:"Debian mirror (http or https URL)."`
	ExtraPackages []string `toml:"extra_packages" comment:"Debian packages added to the guest beyond the standard set."`
	CacheDir      string   `toml:"cache_dir" comment:"Downloaded packages and intermediate build artefacts."`
}

// Resources are workspace sizes: defaults and the maxima a request may ask for.
type Resources struct {
	DefaultVCPUs            int `toml:"default_vcpus"`
	DefaultMemoryMB         int `toml:"default_memory_mb"`
	DefaultDiskGB           int `toml:"default_disk_gb"`
	MaxVCPUs                int `toml:"max_vcpus"`
	MaxMemoryMB             int `toml:"max_memory_mb"`
	MaxDiskGB               int `toml:"max_disk_gb"`
	MaxWorkspacesPerSession int `toml:"max_workspaces_per_session"`
	// CgroupRequired makes a VM that cannot be put under limits fail to
	// start instead of running without them (finding H-8).
	CgroupRequired bool `toml:"cgroup_required" comment:"Refuse to run a VM whose memory, CPU and pids limits cannot be applied (cgroup v2, or v1 memory/pids/cpu). false runs it without limits and logs a warning."`
	// CgroupParent is where the VMs' cgroups live: outside the daemon's
	// own, so a service restart never touches them.
	CgroupParent string `toml:"cgroup_parent" comment:"The cgroup, relative to each hierarchy's root, under which every VM gets its own."`
	// VMMemoryOverheadMB is what QEMU itself needs beyond guest memory
	// (and the TCG cache): the memory limit is the sum.
	VMMemoryOverheadMB int `toml:"vm_memory_overhead_mb" comment:"MiB a VM's QEMU may use beyond its guest memory (plus vm.tcg_cache_mb under TCG) before its cgroup's OOM killer ends it."`
	// MaxMemoryMBPerSession and MaxDiskGBPerSession bound the sums over one
	// session's workspaces, in every state (a stopped one may start again).
	MaxMemoryMBPerSession int `toml:"max_memory_mb_per_session" comment:"Memory of all of one session's workspaces together, in MiB."`
	MaxDiskGBPerSession   int `toml:"max_disk_gb_per_session" comment:"Disk size of all of one session's workspaces together, in GiB."`
}

// Exec bounds commands run in workspaces.
type Exec struct {
	DefaultTimeoutSecs    int   `toml:"default_timeout_secs"`
	MaxTimeoutSecs        int   `toml:"max_timeout_secs"`
	DefaultMaxOutputBytes int64 `toml:"default_max_output_bytes" comment:"Bytes of stdout and of stderr returned when a call does not say."`
	MaxOutputBytes        int64 `toml:"max_output_bytes"`
}

// Files bounds file transfers between server.transfer_dir and workspaces.
type Files struct {
	MaxTransferBytes int64 `toml:"max_transfer_bytes" comment:"Largest file one file_transfer moves, either way."`
}

// Storage bounds snapshots and guards the host's free space (finding M-19:
// snapshots must not be a way around disk quotas, and the host's disk must
// not fill).
type Storage struct {
	MaxSnapshotsPerWorkspace int   `toml:"max_snapshots_per_workspace" comment:"Snapshots one workspace may keep."`
	MinFreeBytes             int64 `toml:"min_free_bytes" comment:"New snapshots and forks are refused when they would leave less free space than this on the data directory's filesystem."`
	MinFreePercent           int   `toml:"min_free_percent" comment:"The same guard as a share of that filesystem's size; the larger of the two applies."`
}

// Pool configures the warm pool of booted VMs.
type Pool struct {
	Enabled bool `toml:"enabled"`
	// Size is how many VMs the pool keeps ready.
	Size int `toml:"size" comment:"VMs kept booted and ready."`
	// MaxMemoryMB bounds the guest memory the ready VMs hold together.
	MaxMemoryMB int `toml:"max_memory_mb" comment:"Guest memory, in MiB, all ready VMs may hold together."`
	// Template makes the daemon save the memory of a freshly booted VM of
	// the default size once per image, guest and QEMU, and create
	// workspaces of that size by restoring it instead of booting a kernel.
	Template bool `toml:"template" comment:"Create default-size workspaces (and pool VMs) by restoring a saved, freshly booted VM instead of booting: about 10x faster without KVM. Independent of enabled."`
}

// Secrets says where each secret comes from: a file of its own (mode
// 0600, owned by root) or the environment variable named in its comment,
// which wins when both are set. See LoadSecrets.
type Secrets struct {
	AdminTokenFile string `toml:"admin_token_file" comment:"The dashboard admin token (16+ characters). $AGENTISO_ADMIN_TOKEN wins over it. Neither: a dashboard on loopback generates one into <data_dir>/dashboard-token; on any other address it does not start."`
}

// Limits bound what clients may ask of the daemon. Tool calls fall into three
// cost classes (TOOLS.md): create (workspace_create, workspace_fork, team
// create, workspace_prepare, swarm_run), exec (exec, exec_background, exec_parallel) and
// default (every other tool). Each class has a token bucket per session and
// one shared by all sessions (findings M-21, L-13); a bucket holds a
// minute's worth of calls.
type Limits struct {
	CreatePerMin        int `toml:"create_per_min" comment:"Create-class calls one session may make per minute."`
	ExecPerMin          int `toml:"exec_per_min" comment:"Exec-class calls one session may make per minute."`
	DefaultPerMin       int `toml:"default_per_min" comment:"Calls of every other tool one session may make per minute."`
	GlobalCreatePerMin  int `toml:"global_create_per_min" comment:"Create-class calls of all sessions together per minute."`
	GlobalExecPerMin    int `toml:"global_exec_per_min" comment:"Exec-class calls of all sessions together per minute."`
	GlobalDefaultPerMin int `toml:"global_default_per_min" comment:"Calls of every other tool, all sessions together, per minute."`
	// MaxConnections bounds concurrent client connections on the daemon
	// socket, each one a session (finding M-22).
	MaxConnections int `toml:"max_connections" comment:"Client connections (sessions) served at once; more are refused."`
	// MaxChannelStreams bounds requests in flight to guests across all VMs
	// (finding M-22); each VM also has its own cap.
	MaxChannelStreams int `toml:"max_channel_streams" comment:"Requests in flight to guest agents, all VMs together; more wait for a free one."`
}

// Default returns the configuration used for every key the file leaves out.
func Default() Config {
	return Config{
		Server: Server{
			DataDir:          "/var/lib/agentiso",
			RunDir:           "/run/agentiso",
			SocketPath:       "/run/agentiso/agentiso.sock",
			SocketGroup:      "agentiso",
			TransferDir:      "/var/lib/agentiso/transfer",
			LogLevel:         "info",
			StaleSessionSecs: 60,
		},
		VM: VM{
			QEMUBinary:         "qemu-system-x86_64",
			Accel:              AccelAuto,
			BootTimeoutSecs:    60,
			StopTimeoutSecs:    10,
			ConsoleLogMaxBytes: 1 << 20,
			MaxTotalVMs:        32,
			TCGCacheMB:         256,
		},
		Image: Image{
			Dir:           "",
			Suite:         "bookworm",
			Mirror:        "http://deb.debian.org/debian",
			ExtraPackages: []string{},
			CacheDir:      "/var/cache/agentiso",
		},
		Resources: Resources{
			DefaultVCPUs:            1,
			DefaultMemoryMB:         512,
			DefaultDiskGB:           10,
			MaxVCPUs:                4,
			MaxMemoryMB:             8192,
			MaxDiskGB:               100,
			MaxWorkspacesPerSession: 20,
			CgroupRequired:          true,
			CgroupParent:            "agentiso",
			VMMemoryOverheadMB:      192,
			MaxMemoryMBPerSession:   16384,
			MaxDiskGBPerSession:     500,
		},
		Exec: Exec{
			DefaultTimeoutSecs:    120,
			MaxTimeoutSecs:        3600,
			DefaultMaxOutputBytes: 256 << 10,
			MaxOutputBytes:        4 << 20,
		},
		Network: defaultNetwork(),
		Files: Files{
			MaxTransferBytes: 1 << 30,
		},
		Storage: Storage{
			MaxSnapshotsPerWorkspace: 16,
			MinFreeBytes:             2 << 30,
			MinFreePercent:           5,
		},
		Pool: Pool{
			Enabled:     false,
			Size:        2,
			MaxMemoryMB: 2048,
			Template:    true,
		},
		Secrets: Secrets{
			AdminTokenFile: "",
		},
		Limits: Limits{
			CreatePerMin:        5,
			ExecPerMin:          60,
			DefaultPerMin:       120,
			GlobalCreatePerMin:  20,
			GlobalExecPerMin:    300,
			GlobalDefaultPerMin: 600,
			MaxConnections:      256,
			MaxChannelStreams:   256,
		},
		Vault:     defaultVault(),
		Dashboard: DefaultDashboard(),
		API:       DefaultAPI(),
		Team:      defaultTeam(),
		Bridge:    defaultBridge(),
	}
}

// ImagesDir is the directory that holds every built image.
func (c Config) ImagesDir() string { return filepath.Join(c.Server.DataDir, "images") }

// ImageDir is the directory of the guest image workspaces boot from.
func (c Config) ImageDir() string {
	if c.Image.Dir != "" {
		return c.Image.Dir
	}
	return filepath.Join(c.ImagesDir(), "default")
}

// StatePath is the SQLite state database.
func (c Config) StatePath() string { return filepath.Join(c.Server.DataDir, "state.db") }

// WorkspacesDir holds one directory per workspace: its disk layers and
// snapshots.
func (c Config) WorkspacesDir() string { return filepath.Join(c.Server.DataDir, "workspaces") }

// TemplatesDir holds the memory snapshots of freshly booted base VMs that new
// workspaces are restored from.
func (c Config) TemplatesDir() string { return filepath.Join(c.Server.DataDir, "templates") }

// VMRunDir holds one directory per running VM for its sockets (QMP, the guest
// channel). Server.RunDir is length-checked so these paths fit a Unix socket
// address.
func (c Config) VMRunDir() string { return filepath.Join(c.Server.RunDir, "vms") }

// StaleSession is how long a session may go unseen before it counts as gone.
func (s Server) StaleSession() time.Duration { return secs(s.StaleSessionSecs) }

// SlogLevel is LogLevel as a slog level; an unvalidated unknown level gives Info.
func (s Server) SlogLevel() slog.Level {
	switch s.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// BootTimeout bounds a VM's boot, to the guest's first answer.
func (v VM) BootTimeout() time.Duration { return secs(v.BootTimeoutSecs) }

// StopTimeout bounds a graceful VM stop before it is killed.
func (v VM) StopTimeout() time.Duration { return secs(v.StopTimeoutSecs) }

// DefaultTimeout is an exec call's timeout when it names none.
func (e Exec) DefaultTimeout() time.Duration { return secs(e.DefaultTimeoutSecs) }

// MaxTimeout is the longest timeout an exec call may ask for.
func (e Exec) MaxTimeout() time.Duration { return secs(e.MaxTimeoutSecs) }

func secs(n int) time.Duration { return time.Duration(n) * time.Second }
