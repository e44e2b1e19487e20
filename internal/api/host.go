package api

import "time"

// HostStats are the host metrics the dashboard charts.
type HostStats struct {
	Time time.Time `json:"time"`
	// VMs.
	VMsRunning  int `json:"vms_running"`
	VMsTotal    int `json:"vms_total"`
	MaxTotalVMs int `json:"max_total_vms"`
	// VMMemoryMB is the guest memory of the running workspaces.
	VMMemoryMB int64 `json:"vm_memory_mb"`
	// Host memory, from /proc/meminfo.
	MemoryTotalBytes     int64 `json:"memory_total_bytes"`
	MemoryAvailableBytes int64 `json:"memory_available_bytes"`
	// The data directory's filesystem.
	DiskTotalBytes int64 `json:"disk_total_bytes"`
	DiskFreeBytes  int64 `json:"disk_free_bytes"`
	// Load1 is the one-minute load average.
	Load1 float64 `json:"load1"`
	// Pool is the warm pool; nil while this daemon has none.
	Pool *PoolStats `json:"pool,omitempty"`
}

// PoolStats describe the warm pool.
type PoolStats struct {
	Ready  int `json:"ready"`
	Target int `json:"target"`
}
