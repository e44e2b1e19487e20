package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Limits the validation enforces beyond the ranges of single fields.
const (
	// MaxSocketPathBytes is the longest Unix socket path: sun_path holds 108
	// bytes including the terminating NUL.
	MaxSocketPathBytes = 107
	// MaxRunDirBytes bounds server.run_dir so that every per-VM socket,
	// <run_dir>/vms/<36-byte id>/<name up to 16 bytes>.sock, stays within
	// MaxSocketPathBytes.
	MaxRunDirBytes = 48
	// MinMemoryMB is the smallest guest the image boots in.
	MinMemoryMB = 128
)

var (
	groupName   = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	suiteName   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	debPackage  = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]{1,127}$`)
	logLevels   = []string{"debug", "info", "warn", "error"}
	accelValues = []string{AccelAuto, AccelKVM, AccelTCG}
)

// Validate checks every field. The error is Invalid and lists each problem
// found, each starting with the field it concerns, e.g.
// "resources.default_memory_mb: 64 is below the minimum 128".
func (c Config) Validate() error {
	var p problems
	c.Server.validate(&p)
	c.VM.validate(&p)
	c.Image.validate(&p)
	c.Resources.validate(&p, c.VM)
	c.Exec.validate(&p)
	c.Network.validate(&p)
	c.Files.validate(&p)
	c.Storage.validate(&p)
	c.Pool.validate(&p, c)
	c.Secrets.validate(&p)
	c.Limits.validate(&p)
	c.Vault.validate(&p)
	c.Team.validate(&p)
	c.validateBridge(&p)
	c.Dashboard.validate(&p)
	c.API.validate(&p)
	if len(p) == 0 {
		return nil
	}
	return errdefs.Invalidf("config: %s", strings.Join(p, "; "))
}

func (s Server) validate(p *problems) {
	p.absPath("server.data_dir", s.DataDir)
	p.absPath("server.run_dir", s.RunDir)
	if len(s.RunDir) > MaxRunDirBytes {
		p.addf("server.run_dir", "%d bytes is longer than %d: the per-VM sockets under it would not fit a Unix socket address", len(s.RunDir), MaxRunDirBytes)
	}
	p.absPath("server.socket_path", s.SocketPath)
	if len(s.SocketPath) > MaxSocketPathBytes {
		p.addf("server.socket_path", "%d bytes is longer than the %d-byte limit of a Unix socket address", len(s.SocketPath), MaxSocketPathBytes)
	}
	if s.SocketGroup != "" && !groupName.MatchString(s.SocketGroup) {
		p.addf("server.socket_group", "%q is not a valid group name", s.SocketGroup)
	}
	p.absPath("server.transfer_dir", s.TransferDir)
	p.oneOf("server.log_level", s.LogLevel, logLevels)
	p.intRange("server.stale_session_secs", int64(s.StaleSessionSecs), 5, 86400)
}

func (v VM) validate(p *problems) {
	switch {
	case v.QEMUBinary == "":
		p.addf("vm.qemu_binary", "must not be empty")
	case strings.ContainsRune(v.QEMUBinary, '/'):
		p.absPath("vm.qemu_binary", v.QEMUBinary)
	}
	p.oneOf("vm.accel", v.Accel, accelValues)
	p.intRange("vm.boot_timeout_secs", int64(v.BootTimeoutSecs), 1, 600)
	p.intRange("vm.stop_timeout_secs", int64(v.StopTimeoutSecs), 1, 300)
	p.intRange("vm.console_log_max_bytes", v.ConsoleLogMaxBytes, 4<<10, 1<<30)
	p.intRange("vm.max_total_vms", int64(v.MaxTotalVMs), 1, 1024)
	p.intRange("vm.tcg_cache_mb", int64(v.TCGCacheMB), 32, 4096)
}

func (i Image) validate(p *problems) {
	if i.Dir != "" {
		p.absPath("image.dir", i.Dir)
	}
	if !suiteName.MatchString(i.Suite) {
		p.addf("image.suite", "%q is not a Debian suite name", i.Suite)
	}
	p.mirrorURL("image.mirror", i.Mirror)
	if len(i.ExtraPackages) > 256 {
		p.addf("image.extra_packages", "%d packages is more than 256", len(i.ExtraPackages))
	}
	for n, pkg := range i.ExtraPackages {
		// The names reach debootstrap as one comma-separated argument: a
		// name that is not a Debian package name could smuggle in others.
		if !debPackage.MatchString(pkg) {
			p.addf(fmt.Sprintf("image.extra_packages[%d]", n), "%q is not a Debian package name", pkg)
		}
	}
	p.absPath("image.cache_dir", i.CacheDir)
}

func (r Resources) validate(p *problems, vm VM) {
	p.intRange("resources.max_vcpus", int64(r.MaxVCPUs), 1, 64)
	p.intRange("resources.max_memory_mb", int64(r.MaxMemoryMB), MinMemoryMB, 1<<20)
	p.intRange("resources.max_disk_gb", int64(r.MaxDiskGB), 1, 16384)
	p.intRange("resources.default_vcpus", int64(r.DefaultVCPUs), 1, 64)
	p.intRange("resources.default_memory_mb", int64(r.DefaultMemoryMB), MinMemoryMB, 1<<20)
	p.intRange("resources.default_disk_gb", int64(r.DefaultDiskGB), 1, 16384)
	p.atMost("resources.default_vcpus", int64(r.DefaultVCPUs), "resources.max_vcpus", int64(r.MaxVCPUs))
	p.atMost("resources.default_memory_mb", int64(r.DefaultMemoryMB), "resources.max_memory_mb", int64(r.MaxMemoryMB))
	p.atMost("resources.default_disk_gb", int64(r.DefaultDiskGB), "resources.max_disk_gb", int64(r.MaxDiskGB))
	p.intRange("resources.max_workspaces_per_session", int64(r.MaxWorkspacesPerSession), 1, 1024)
	// One session can never be allowed more VMs than the whole host
	// (finding H-11's cross-check).
	p.atMost("resources.max_workspaces_per_session", int64(r.MaxWorkspacesPerSession), "vm.max_total_vms", int64(vm.MaxTotalVMs))
	if err := cgroup.ValidateParent(r.CgroupParent); err != nil {
		p.addf("resources.cgroup_parent", "%q is not a relative path of names (%v)", r.CgroupParent, err)
	}
	// Below this QEMU cannot even boot a guest under its limit.
	p.intRange("resources.vm_memory_overhead_mb", int64(r.VMMemoryOverheadMB), 64, 65536)
	p.intRange("resources.max_memory_mb_per_session", int64(r.MaxMemoryMBPerSession), MinMemoryMB, 1<<24)
	p.intRange("resources.max_disk_gb_per_session", int64(r.MaxDiskGBPerSession), 1, 1<<24)
	// A session must be able to hold at least one default-sized workspace.
	p.atLeast("resources.max_memory_mb_per_session", int64(r.MaxMemoryMBPerSession), "resources.default_memory_mb", int64(r.DefaultMemoryMB))
	p.atLeast("resources.max_disk_gb_per_session", int64(r.MaxDiskGBPerSession), "resources.default_disk_gb", int64(r.DefaultDiskGB))
}

func (e Exec) validate(p *problems) {
	p.intRange("exec.max_timeout_secs", int64(e.MaxTimeoutSecs), 1, 86400)
	p.intRange("exec.default_timeout_secs", int64(e.DefaultTimeoutSecs), 1, 86400)
	p.atMost("exec.default_timeout_secs", int64(e.DefaultTimeoutSecs), "exec.max_timeout_secs", int64(e.MaxTimeoutSecs))
	p.intRange("exec.max_output_bytes", e.MaxOutputBytes, 1, protocol.MaxExecOutputBytes)
	p.intRange("exec.default_max_output_bytes", e.DefaultMaxOutputBytes, 1, protocol.MaxExecOutputBytes)
	p.atMost("exec.default_max_output_bytes", e.DefaultMaxOutputBytes, "exec.max_output_bytes", e.MaxOutputBytes)
}

// MaxTransferBytes is the most files.max_transfer_bytes may be.
const MaxTransferBytes = 1 << 40

func (f Files) validate(p *problems) {
	p.intRange("files.max_transfer_bytes", f.MaxTransferBytes, 1<<20, MaxTransferBytes)
}

func (s Storage) validate(p *problems) {
	p.intRange("storage.max_snapshots_per_workspace", int64(s.MaxSnapshotsPerWorkspace), 1, 1024)
	p.intRange("storage.min_free_bytes", s.MinFreeBytes, 0, 1<<60)
	p.intRange("storage.min_free_percent", int64(s.MinFreePercent), 0, 95)
}

func (pl Pool) validate(p *problems, c Config) {
	p.intRange("pool.size", int64(pl.Size), 0, 256)
	p.intRange("pool.max_memory_mb", int64(pl.MaxMemoryMB), 0, 1<<24)
	if !pl.Enabled {
		return
	}
	if pl.Size < 1 {
		p.addf("pool.size", "must be at least 1 when the pool is enabled")
	}
	// Pool VMs count against the host's VM cap: a full pool must still
	// leave one session all of its workspaces (finding H-11's
	// cross-check).
	if pl.Size+c.Resources.MaxWorkspacesPerSession > c.VM.MaxTotalVMs {
		p.addf("pool.size", "%d plus resources.max_workspaces_per_session (%d) is above vm.max_total_vms (%d)",
			pl.Size, c.Resources.MaxWorkspacesPerSession, c.VM.MaxTotalVMs)
	}
	// Pool VMs have the default size; the budget must hold one.
	p.atLeast("pool.max_memory_mb", int64(pl.MaxMemoryMB), "resources.default_memory_mb", int64(c.Resources.DefaultMemoryMB))
}

func (s Secrets) validate(p *problems) {
	if s.AdminTokenFile != "" {
		p.absPath("secrets.admin_token_file", s.AdminTokenFile)
	}
}

// MaxCallsPerMin bounds every limits.*_per_min value.
const MaxCallsPerMin = 1_000_000

func (l Limits) validate(p *problems) {
	for _, r := range []struct {
		session, global string
		s, g            int
	}{
		{"limits.create_per_min", "limits.global_create_per_min", l.CreatePerMin, l.GlobalCreatePerMin},
		{"limits.exec_per_min", "limits.global_exec_per_min", l.ExecPerMin, l.GlobalExecPerMin},
		{"limits.default_per_min", "limits.global_default_per_min", l.DefaultPerMin, l.GlobalDefaultPerMin},
	} {
		p.intRange(r.session, int64(r.s), 1, MaxCallsPerMin)
		p.intRange(r.global, int64(r.g), 1, MaxCallsPerMin)
		// A session limit above the global one would never apply.
		p.atMost(r.session, int64(r.s), r.global, int64(r.g))
	}
	p.intRange("limits.max_connections", int64(l.MaxConnections), 1, 65536)
	p.intRange("limits.max_channel_streams", int64(l.MaxChannelStreams), 1, 65536)
}

// problems collects validation messages, each prefixed by its field.
type problems []string

// add records a message that already starts with its field.
func (p *problems) add(msg string) { *p = append(*p, msg) }

func (p *problems) addf(field, format string, args ...any) {
	*p = append(*p, field+": "+fmt.Sprintf(format, args...))
}

func (p *problems) intRange(field string, v, lo, hi int64) {
	switch {
	case v < lo:
		p.addf(field, "%d is below the minimum %d", v, lo)
	case v > hi:
		p.addf(field, "%d is above the maximum %d", v, hi)
	}
}

// atMost reports v above other, a limit set by another field.
func (p *problems) atMost(field string, v int64, otherField string, other int64) {
	if v > other {
		p.addf(field, "%d is above %s (%d)", v, otherField, other)
	}
}

// atLeast reports v below other, a floor set by another field.
func (p *problems) atLeast(field string, v int64, otherField string, other int64) {
	if v < other {
		p.addf(field, "%d is below %s (%d)", v, otherField, other)
	}
}

func (p *problems) oneOf(field, v string, allowed []string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.addf(field, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

func (p *problems) absPath(field, v string) {
	switch {
	case v == "":
		p.addf(field, "must not be empty")
	case !filepath.IsAbs(v):
		p.addf(field, "%q is not an absolute path", v)
	case filepath.Clean(v) != v:
		p.addf(field, "%q is not a clean path (want %q)", v, filepath.Clean(v))
	case v == "/":
		p.addf(field, "must not be the root directory")
	}
}

func (p *problems) mirrorURL(field, v string) {
	// Checked in this order so no message echoes credentials.
	u, err := url.Parse(v)
	switch {
	case err != nil:
		p.addf(field, "not a valid URL")
	case u.User != nil:
		p.addf(field, "must not contain credentials")
	case u.Scheme != "http" && u.Scheme != "https":
		p.addf(field, "%q is not an http or https URL", v)
	case u.Host == "":
		p.addf(field, "%q has no host", v)
	case u.RawQuery != "" || u.Fragment != "":
		p.addf(field, "must not have a query or fragment")
	}
}
