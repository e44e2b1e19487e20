package workspace

import "time"

// Caller is who asks: the session the daemon assigned to a connection (never
// supplied by the caller, finding M-8) and the peer's uid.
type Caller struct {
	SessionID string
	UID       int
	// Actor names the edge in the audit log: "mcp", "cli", "dashboard".
	Actor string
	// Admin sees and steers every session's workspaces: the person at the
	// dashboard, or root at the CLI. Only the daemon sets it, from how a
	// connection authenticated; an MCP session never has it, so MCP
	// sessions stay blind to each other (finding L-16).
	Admin bool
}

// CreateRequest is what workspace_create asks for. Zero values take the
// configured defaults.
type CreateRequest struct {
	Name          string
	BaseImage     string
	VCPUs         int
	MemoryMB      int
	DiskGB        int
	AllowInternet *bool
	// FromPool claims a ready VM from the warm pool when one of the
	// requested size is there; otherwise the create boots one.
	FromPool bool
}

// Resources are a workspace's VM size.
type Resources struct {
	VCPUs    int `json:"vcpus"`
	MemoryMB int `json:"memory_mb"`
	DiskGB   int `json:"disk_gb"`
}

// Network is a workspace's network policy as the caller sees it.
type Network struct {
	AllowInternet bool  `json:"allow_internet"`
	AllowInterVM  bool  `json:"allow_inter_vm"`
	AllowedPorts  []int `json:"allowed_ports"`
}

// ForkedFrom records a fork's lineage.
type ForkedFrom struct {
	SourceWorkspaceID string `json:"source_workspace_id"`
	// SourceWorkspaceName is set only where the caller owns the source (the
	// fork's own result): a name is never shown to another session (L-16).
	SourceWorkspaceName string `json:"source_workspace_name,omitempty"`
	SnapshotName        string `json:"snapshot_name"`
}

// Info is a workspace as tools and the dashboard show it.
type Info struct {
	ID        string    `json:"workspace_id"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	IP        string    `json:"ip"`
	BaseImage string    `json:"base_image"`
	Resources Resources `json:"resources"`
	Network   Network   `json:"network"`
	Owned     bool      `json:"owned"`
	// OwnerSession is the owning session's ID, shown to admins only.
	OwnerSession  string      `json:"owner_session,omitempty"`
	CreatedAt     time.Time   `json:"created_at"`
	StartedAt     *time.Time  `json:"started_at,omitempty"`
	UptimeSecs    int64       `json:"uptime_secs"`
	BootTimeMs    int64       `json:"boot_time_ms"`
	FromPool      bool        `json:"from_pool"`
	ForkedFrom    *ForkedFrom `json:"forked_from,omitempty"`
	DiskUsedBytes int64       `json:"disk_used_bytes"`
	// Snapshots names the workspace's snapshots, oldest first.
	Snapshots []string `json:"snapshots"`
	// PortForwards are the workspace's forwards from host ports.
	PortForwards []PortForwardInfo `json:"port_forwards"`
	LastError    string            `json:"last_error,omitempty"`
}

// ExecRequest is one command for exec.
type ExecRequest struct {
	Command        string
	Timeout        time.Duration
	Workdir        string
	Env            map[string]string
	MaxOutputBytes int64
}

// ExecResult is what exec returns.
type ExecResult struct {
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated"`
	DurationMs int64  `json:"duration_ms"`
}

// Logs are the bounded tails of a workspace's logs.
type Logs struct {
	Console string `json:"console,omitempty"`
	Stderr  string `json:"stderr,omitempty"`
}

// SnapshotRequest is what snapshot create asks for.
type SnapshotRequest struct {
	Name string
	// IncludeMemory saves the running VM's memory with the disk, so a
	// restore or fork resumes its processes.
	IncludeMemory bool
}

// SnapshotInfo is a snapshot as tools show it.
type SnapshotInfo struct {
	ID          string    `json:"snapshot_id"`
	Name        string    `json:"name"`
	WorkspaceID string    `json:"workspace_id"`
	HasMemory   bool      `json:"has_memory"`
	CreatedAt   time.Time `json:"created_at"`
	// Parent is the snapshot this one descends from in the workspace's
	// history (nil for the first): the tree of snapshots.
	Parent *string `json:"parent"`
	// DiskBytes is the host space of the snapshot's frozen disk layer (the
	// changes since its parent layer); MemoryBytes that of its memory
	// state, 0 for a disk-only snapshot.
	DiskBytes   int64 `json:"disk_bytes"`
	MemoryBytes int64 `json:"memory_bytes"`
	// Forks counts the other workspaces whose disks stand on it; while
	// there are any it cannot be deleted.
	Forks int `json:"forks"`
}

// RestoreResult is what a snapshot restore did.
type RestoreResult struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	State       string `json:"state"`
	HasMemory   bool   `json:"has_memory"`
	// RemovedSnapshots are the snapshots newer than the restored one, which
	// a restore drops.
	RemovedSnapshots []string `json:"removed_snapshots"`
	Message          string   `json:"message"`
}

// ForkRequest is what workspace_fork asks for.
type ForkRequest struct {
	SnapshotName string
	// NewName names a single fork; NamePrefix names forks prefix-1..N.
	NewName    string
	Count      int
	NamePrefix string
	// AllowInternet is the forks' internet access; nil gives them the
	// source's.
	AllowInternet *bool
}

// MaxForks bounds one workspace_fork call.
const MaxForks = 20

// ForkFailure is one fork of a batch that could not be made.
type ForkFailure struct {
	Index int    `json:"index"`
	Name  string `json:"name"`
	Error string `json:"error"`
}

// ForkResult is what workspace_fork made: the forks that run (their Info
// records forked_from) and those that failed.
type ForkResult struct {
	SourceWorkspaceID   string        `json:"source_workspace_id"`
	SourceWorkspaceName string        `json:"source_workspace_name"`
	SnapshotName        string        `json:"snapshot_name"`
	Forks               []Info        `json:"forks"`
	Failures            []ForkFailure `json:"failures"`
}
