package workspace

import "time"

// Caller is who asks: the session the daemon assigned to a connection (never
// supplied by the caller, finding M-8) and the peer's uid.
type Caller struct {
	SessionID string
	UID       int
	// Actor names the edge in the audit log: "mcp", "cli", "dashboard".
	Actor string
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
	SnapshotName      string `json:"snapshot_name"`
}

// Info is a workspace as tools and the dashboard show it.
type Info struct {
	ID         string      `json:"workspace_id"`
	Name       string      `json:"name"`
	State      string      `json:"state"`
	IP         string      `json:"ip"`
	BaseImage  string      `json:"base_image"`
	Resources  Resources   `json:"resources"`
	Network    Network     `json:"network"`
	Owned      bool        `json:"owned"`
	CreatedAt  time.Time   `json:"created_at"`
	StartedAt  *time.Time  `json:"started_at,omitempty"`
	UptimeSecs int64       `json:"uptime_secs"`
	BootTimeMs int64       `json:"boot_time_ms"`
	FromPool   bool        `json:"from_pool"`
	ForkedFrom *ForkedFrom `json:"forked_from,omitempty"`
	// PortForwards are the workspace's forwards from host ports.
	PortForwards  []PortForwardInfo `json:"port_forwards"`
	DiskUsedBytes int64             `json:"disk_used_bytes"`
	LastError     string            `json:"last_error,omitempty"`
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
