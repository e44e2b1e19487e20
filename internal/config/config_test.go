package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestParseEmptyGivesDefault(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatalf("Parse(nil): %v", err)
	}
	if diff := cmp.Diff(Default(), c); diff != "" {
		t.Errorf("Parse(nil) differs from Default() (-want +got):\n%s", diff)
	}
}

func TestParseKeepsDefaultsForAbsentKeys(t *testing.T) {
	c, err := Parse([]byte("[resources]\ndefault_memory_mb = 1024\n\n[image]\nextra_packages = [\"build-essential\", \"g++\"]\n"))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := Default()
	want.Resources.DefaultMemoryMB = 1024
	want.Image.ExtraPackages = []string{"build-essential", "g++"}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		// want are substrings the error must hold.
		want []string
	}{
		{"unknown key", "[server]\ndata_dir = \"/d\"\nadmin_tokn = 3\n", []string{"line 3", "unknown key server.admin_tokn"}},
		{"unknown section", "[vm]\naccel = \"tcg\"\n\n[dashbaord]\nbind = \"x\"\n", []string{"line 4", "unknown key dashbaord"}},
		{"two unknown keys", "[vm]\nacel = \"tcg\"\nboot_timeout = 3\n", []string{"line 2: unknown key vm.acel", "line 3: unknown key vm.boot_timeout"}},
		{"moved key", "[dashboard]\nadmin_token_file = \"/etc/agentiso/admin_token\"\n", []string{"line 2: unknown key dashboard.admin_token_file (it is secrets.admin_token_file now)"}},
		{"string for int", "[resources]\ndefault_vcpus = \"two\"\n", []string{"line 2", "resources.default_vcpus", "string", "int"}},
		{"int for string", "[server]\nlog_level = 3\n", []string{"line 2", "server.log_level", "integer"}},
		{"int in string list", "[image]\nextra_packages = [1]\n", []string{"line 2", "image.extra_packages", "integer"}},
		{"string for list", "[image]\nextra_packages = \"git\"\n", []string{"line 2", "image.extra_packages"}},
		{"overflow", "[vm]\nmax_total_vms = 99999999999999999999\n", []string{"line 2", "vm.max_total_vms"}},
		{"syntax", "[vm\naccel = \"tcg\"\n", []string{"line 1"}},
		{"invalid value", "[resources]\ndefault_memory_mb = 64\n", []string{"resources.default_memory_mb: 64 is below the minimum 128"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatal("Parse succeeded, want an error")
			}
			if !errdefs.Is(err, errdefs.Invalid) {
				t.Errorf("class = %v, want invalid", errdefs.ClassOf(err))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "struct field") {
				t.Errorf("error %q names a Go struct field", err)
			}
		})
	}
}

func TestParseRefusesHugeInput(t *testing.T) {
	b := []byte("# " + strings.Repeat("x", MaxFileBytes) + "\n")
	if _, err := Parse(b); !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Parse(%d bytes) = %v, want a size error", len(b), err)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   string // "" means valid
	}{
		{"default", func(*Config) {}, ""},
		{"relative data_dir", func(c *Config) { c.Server.DataDir = "var/lib/agentiso" }, `server.data_dir: "var/lib/agentiso" is not an absolute path`},
		{"empty run_dir", func(c *Config) { c.Server.RunDir = "" }, "server.run_dir: must not be empty"},
		{"unclean transfer_dir", func(c *Config) { c.Server.TransferDir = "/var/lib/../transfer" }, "server.transfer_dir:"},
		{"root data_dir", func(c *Config) { c.Server.DataDir = "/" }, "server.data_dir: must not be the root directory"},
		{"socket path 107 bytes", func(c *Config) { c.Server.SocketPath = "/" + strings.Repeat("s", 106) }, ""},
		{"socket path 108 bytes", func(c *Config) { c.Server.SocketPath = "/" + strings.Repeat("s", 107) }, "server.socket_path: 108 bytes is longer than the 107-byte limit"},
		{"long run_dir", func(c *Config) { c.Server.RunDir = "/" + strings.Repeat("r", MaxRunDirBytes) }, "server.run_dir: 49 bytes is longer than 48"},
		{"bad group", func(c *Config) { c.Server.SocketGroup = "agent iso" }, "server.socket_group:"},
		{"bad log level", func(c *Config) { c.Server.LogLevel = "verbose" }, `server.log_level: "verbose" is not one of debug, info, warn, error`},
		{"stale session too short", func(c *Config) { c.Server.StaleSessionSecs = 0 }, "server.stale_session_secs: 0 is below the minimum 5"},
		{"empty qemu", func(c *Config) { c.VM.QEMUBinary = "" }, "vm.qemu_binary: must not be empty"},
		{"relative qemu path", func(c *Config) { c.VM.QEMUBinary = "bin/qemu" }, "vm.qemu_binary:"},
		{"absolute qemu path", func(c *Config) { c.VM.QEMUBinary = "/usr/bin/qemu-system-x86_64" }, ""},
		{"bad accel", func(c *Config) { c.VM.Accel = "hvf" }, `vm.accel: "hvf" is not one of auto, kvm, tcg`},
		{"tcg accel", func(c *Config) { c.VM.Accel = AccelTCG }, ""},
		{"zero boot timeout", func(c *Config) { c.VM.BootTimeoutSecs = 0 }, "vm.boot_timeout_secs: 0 is below the minimum 1"},
		{"huge stop timeout", func(c *Config) { c.VM.StopTimeoutSecs = 3600 }, "vm.stop_timeout_secs: 3600 is above the maximum 300"},
		{"tiny console log", func(c *Config) { c.VM.ConsoleLogMaxBytes = 100 }, "vm.console_log_max_bytes: 100 is below the minimum 4096"},
		{"no vms", func(c *Config) { c.VM.MaxTotalVMs = 0 }, "vm.max_total_vms: 0 is below the minimum 1"},
		{"relative image dir", func(c *Config) { c.Image.Dir = "images" }, "image.dir:"},
		{"bad suite", func(c *Config) { c.Image.Suite = "Bookworm!" }, "image.suite:"},
		{"ftp mirror", func(c *Config) { c.Image.Mirror = "ftp://deb.debian.org/debian" }, "image.mirror: \"ftp://deb.debian.org/debian\" is not an http or https URL"},
		{"mirror without host", func(c *Config) { c.Image.Mirror = "http:///debian" }, "image.mirror:"},
		{"mirror with credentials", func(c *Config) { c.Image.Mirror = "https://user:hunter2@mirror.example/debian" }, "image.mirror: must not contain credentials"},
		{"https mirror", func(c *Config) { c.Image.Mirror = "https://mirror.example/debian" }, ""},
		{"package with comma", func(c *Config) { c.Image.ExtraPackages = []string{"git", "vim,evil"} }, `image.extra_packages[1]: "vim,evil" is not a Debian package name`},
		{"relative cache dir", func(c *Config) { c.Image.CacheDir = "cache" }, "image.cache_dir:"},
		{"memory below minimum", func(c *Config) { c.Resources.DefaultMemoryMB = 64 }, "resources.default_memory_mb: 64 is below the minimum 128"},
		{"default vcpus above max", func(c *Config) { c.Resources.DefaultVCPUs = 8 }, "resources.default_vcpus: 8 is above resources.max_vcpus (4)"},
		{"default memory above max", func(c *Config) { c.Resources.MaxMemoryMB = 256 }, "resources.default_memory_mb: 512 is above resources.max_memory_mb (256)"},
		{"default disk above max", func(c *Config) { c.Resources.DefaultDiskGB = 200 }, "resources.default_disk_gb: 200 is above resources.max_disk_gb (100)"},
		{"zero vcpus", func(c *Config) { c.Resources.DefaultVCPUs = 0 }, "resources.default_vcpus: 0 is below the minimum 1"},
		{"absurd max vcpus", func(c *Config) { c.Resources.MaxVCPUs = 1000 }, "resources.max_vcpus: 1000 is above the maximum 64"},
		{"per-session above host total", func(c *Config) { c.Resources.MaxWorkspacesPerSession = 40 }, "resources.max_workspaces_per_session: 40 is above vm.max_total_vms (32)"},
		{"session memory quota below default", func(c *Config) { c.Resources.MaxMemoryMBPerSession = 256 }, "resources.max_memory_mb_per_session: 256 is below resources.default_memory_mb (512)"},
		{"session disk quota below default", func(c *Config) { c.Resources.MaxDiskGBPerSession = 5 }, "resources.max_disk_gb_per_session: 5 is below resources.default_disk_gb (10)"},
		{"session memory quota below minimum", func(c *Config) { c.Resources.MaxMemoryMBPerSession = 0 }, "resources.max_memory_mb_per_session: 0 is below the minimum 128"},
		{"session quotas at the defaults", func(c *Config) { c.Resources.MaxMemoryMBPerSession, c.Resources.MaxDiskGBPerSession = 512, 10 }, ""},
		{"zero create rate", func(c *Config) { c.Limits.CreatePerMin = 0 }, "limits.create_per_min: 0 is below the minimum 1"},
		{"zero global exec rate", func(c *Config) { c.Limits.GlobalExecPerMin = 0 }, "limits.global_exec_per_min: 0 is below the minimum 1"},
		{"absurd default rate", func(c *Config) { c.Limits.DefaultPerMin, c.Limits.GlobalDefaultPerMin = 2_000_000, 2_000_000 }, "limits.default_per_min: 2000000 is above the maximum 1000000"},
		{"session rate above global", func(c *Config) { c.Limits.ExecPerMin = 400 }, "limits.exec_per_min: 400 is above limits.global_exec_per_min (300)"},
		{"session create rate above global", func(c *Config) { c.Limits.GlobalCreatePerMin = 4 }, "limits.create_per_min: 5 is above limits.global_create_per_min (4)"},
		{"session rate equal to global", func(c *Config) { c.Limits.DefaultPerMin = 600 }, ""},
		{"no connections", func(c *Config) { c.Limits.MaxConnections = 0 }, "limits.max_connections: 0 is below the minimum 1"},
		{"no channel streams", func(c *Config) { c.Limits.MaxChannelStreams = 0 }, "limits.max_channel_streams: 0 is below the minimum 1"},
		{"exec default timeout above max", func(c *Config) { c.Exec.DefaultTimeoutSecs = 7200 }, "exec.default_timeout_secs: 7200 is above exec.max_timeout_secs (3600)"},
		{"exec output above protocol cap", func(c *Config) { c.Exec.MaxOutputBytes = 1 << 30 }, "exec.max_output_bytes: 1073741824 is above the maximum 16777216"},
		{"exec default output above max", func(c *Config) { c.Exec.DefaultMaxOutputBytes = 8 << 20 }, "exec.default_max_output_bytes: 8388608 is above exec.max_output_bytes (4194304)"},
		{"zero exec output", func(c *Config) { c.Exec.DefaultMaxOutputBytes = 0 }, "exec.default_max_output_bytes: 0 is below the minimum 1"},
		{"bridge name with a quote", func(c *Config) { c.Network.Bridge = `br"x` }, "network.bridge:"},
		{"long bridge name", func(c *Config) { c.Network.Bridge = "bridge-of-agentiso" }, "network.bridge:"},
		{"ipv6 subnet", func(c *Config) { c.Network.Subnet = "fd00::/64" }, `network.subnet: "fd00::/64" is not an IPv4 prefix`},
		{"tiny subnet", func(c *Config) { c.Network.Subnet = "10.0.0.0/30" }, "network.subnet:"},
		{"host interface with space", func(c *Config) { c.Network.HostInterfaces = []string{"eth0", "eth 1"} }, "network.host_interfaces[1]:"},
		{"host interface is the bridge", func(c *Config) { c.Network.HostInterfaces = []string{"br-agentiso"} }, "network.host_interfaces[0]:"},
		{"dns not an address", func(c *Config) { c.Network.DNSServers = []string{"dns.google"} }, `network.dns_servers[0]: "dns.google" is not an IPv4 address`},
		{"four dns servers", func(c *Config) { c.Network.DNSServers = []string{"1.1.1.1", "1.0.0.1", "8.8.8.8", "8.8.4.4"} }, "network.dns_servers: 4 servers"},
		{"privileged forward range", func(c *Config) { c.Network.ForwardPortMin = 80 }, "network.forward_port_min: 80 is below the minimum 1024"},
		{"inverted forward range", func(c *Config) { c.Network.ForwardPortMin = 30000 }, "network.forward_port_min: 30000 is above network.forward_port_max (29999)"},
		{"bad reserved port", func(c *Config) { c.Network.ReservedPorts = []int{70000} }, "network.reserved_ports[0]: 70000 is above the maximum 65535"},
		{"bad service port", func(c *Config) { c.Network.VMServicePorts = []int{0} }, "network.vm_service_ports[0]: 0 is below the minimum 1"},
		{"network off", func(c *Config) { c.Network.Enabled = false }, ""},
		{"relative vault path", func(c *Config) { c.Vault.Path = "vault" }, `vault.path: "vault" is not an absolute path`},
		{"absolute vault path", func(c *Config) { c.Vault.Path = "/home/ann/Obsidian" }, ""},
		{"unbounded vault pattern", func(c *Config) { c.Vault.MaxPatternBytes = 1 << 20 }, "vault.max_pattern_bytes: 1048576 is above the maximum 4096"},
		{"tiny vault notes", func(c *Config) { c.Vault.MaxNoteBytes = 10 }, "vault.max_note_bytes: 10 is below the minimum 1024"},
		{"vault extension with dot", func(c *Config) { c.Vault.Extensions = []string{"md", ".txt"} }, `vault.extensions[1]: ".txt" is not a lower-case file name extension`},
		{"no vault extensions", func(c *Config) { c.Vault.Extensions = nil }, "vault.extensions: must list 1 to 16 extensions"},
		{"zero vault search timeout", func(c *Config) { c.Vault.SearchTimeoutSecs = 0 }, "vault.search_timeout_secs: 0 is below the minimum 1"},
		{"vault disabled", func(c *Config) { c.Vault.Enabled = false }, ""},
		{"tiny transfer limit", func(c *Config) { c.Files.MaxTransferBytes = 1000 }, "files.max_transfer_bytes: 1000 is below the minimum 1048576"},
		{"huge transfer limit", func(c *Config) { c.Files.MaxTransferBytes = 1 << 41 }, "files.max_transfer_bytes: 2199023255552 is above the maximum 1099511627776"},
		{"no snapshots allowed", func(c *Config) { c.Storage.MaxSnapshotsPerWorkspace = 0 }, "storage.max_snapshots_per_workspace: 0 is below the minimum 1"},
		{"negative free-space guard", func(c *Config) { c.Storage.MinFreeBytes = -1 }, "storage.min_free_bytes: -1 is below the minimum 0"},
		{"free-space guard of the whole disk", func(c *Config) { c.Storage.MinFreePercent = 100 }, "storage.min_free_percent: 100 is above the maximum 95"},
		{"tiny tcg cache", func(c *Config) { c.VM.TCGCacheMB = 8 }, "vm.tcg_cache_mb: 8 is below the minimum 32"},
		{"absolute cgroup parent", func(c *Config) { c.Resources.CgroupParent = "/sys/fs/cgroup/x" }, `resources.cgroup_parent: "/sys/fs/cgroup/x" is not a relative path of names`},
		{"escaping cgroup parent", func(c *Config) { c.Resources.CgroupParent = "../system.slice" }, "resources.cgroup_parent:"},
		{"nested cgroup parent", func(c *Config) { c.Resources.CgroupParent = "agentiso/vms" }, ""},
		{"cgroups optional", func(c *Config) { c.Resources.CgroupRequired = false }, ""},
		{"tiny qemu overhead", func(c *Config) { c.Resources.VMMemoryOverheadMB = 16 }, "resources.vm_memory_overhead_mb: 16 is below the minimum 64"},
		{"pool enabled", func(c *Config) { c.Pool.Enabled = true }, ""},
		{"pool disabled may be oversized", func(c *Config) { c.Pool.Size = 30 }, ""},
		{"pool plus session above host total", func(c *Config) { c.Pool.Enabled = true; c.Pool.Size = 13 },
			"pool.size: 13 plus resources.max_workspaces_per_session (20) is above vm.max_total_vms (32)"},
		{"pool at host total", func(c *Config) { c.Pool.Enabled = true; c.Pool.Size = 12 }, ""},
		{"empty enabled pool", func(c *Config) { c.Pool.Enabled = true; c.Pool.Size = 0 }, "pool.size: must be at least 1 when the pool is enabled"},
		{"pool budget below one VM", func(c *Config) { c.Pool.Enabled = true; c.Pool.MaxMemoryMB = 256 }, "pool.max_memory_mb: 256 is below resources.default_memory_mb (512)"},
		{"negative pool", func(c *Config) { c.Pool.Size = -1 }, "pool.size: -1 is below the minimum 0"},
		{"relative secret file", func(c *Config) { c.Secrets.AdminTokenFile = "token" }, `secrets.admin_token_file: "token" is not an absolute path`},
		{"absolute secret file", func(c *Config) { c.Secrets.AdminTokenFile = "/etc/agentiso/admin_token" }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Default()
			tt.modify(&c)
			err := c.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error containing %q", tt.want)
			}
			if !errdefs.Is(err, errdefs.Invalid) {
				t.Errorf("class = %v, want invalid", errdefs.ClassOf(err))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestValidateNeverEchoesMirrorCredentials(t *testing.T) {
	c := Default()
	c.Image.Mirror = "ftp://user:hunter2@mirror.example/debian"
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("Validate() = %v, want an error that does not echo the password", err)
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Default()
	c.VM.Accel = "x"
	c.Exec.MaxTimeoutSecs = 0
	err := c.Validate()
	for _, w := range []string{"vm.accel:", "exec.max_timeout_secs:"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %s", err, w)
		}
	}
}

func TestWriteDefaultThenLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "etc", "agentiso", "config.toml")
	if err := WriteDefault(path); err != nil {
		t.Fatalf("WriteDefault: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o640 {
		t.Errorf("mode = %o, want 640", m)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if diff := cmp.Diff(Default(), got); diff != "" {
		t.Errorf("Load(WriteDefault) differs from Default() (-want +got):\n%s", diff)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The file explains itself: every section carries its comment.
	for _, w := range []string{"# agentiso configuration", "[server]", "[vm]", "[image]", "[resources]", "[exec]", "[pool]", "[secrets]", "# auto (KVM only", "cgroup_required = true"} {
		if !strings.Contains(string(b), w) {
			t.Errorf("default file lacks %q", w)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("config directory holds %d entries, want only the config file (no temporary left)", len(entries))
	}
}

func TestWriteDefaultNeverOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	const mine = "[vm]\naccel = \"tcg\"\n"
	if err := os.WriteFile(path, []byte(mine), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteDefault(path)
	if !errors.Is(err, fs.ErrExist) || !errdefs.Is(err, errdefs.Conflict) {
		t.Fatalf("WriteDefault over an existing file = %v, want a Conflict matching fs.ErrExist", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != mine {
		t.Errorf("existing file changed to %q", b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1 (no temporary left)", len(entries))
	}
}

func TestLoadMissingFileSaysRunInit(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errdefs.Is(err, errdefs.NotFound) || !strings.Contains(err.Error(), "agentiso init") {
		t.Fatalf("Load(missing) = %v, want NotFound mentioning agentiso init", err)
	}
}

func TestLoadRefusesHugeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, make([]byte, MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("Load(huge) = %v, want a size error", err)
	}
}

func TestLoadNamesFileInErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(path, []byte("[vm]\naccel = \"fast\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "vm.accel") {
		t.Fatalf("Load = %v, want an error naming %s and vm.accel", err, path)
	}
}

func TestDerivedPaths(t *testing.T) {
	c := Default()
	c.Server.DataDir = "/srv/ai"
	c.Server.RunDir = "/run/ai"
	tests := []struct{ name, got, want string }{
		{"ImagesDir", c.ImagesDir(), "/srv/ai/images"},
		{"ImageDir", c.ImageDir(), "/srv/ai/images/default"},
		{"StatePath", c.StatePath(), "/srv/ai/state.db"},
		{"WorkspacesDir", c.WorkspacesDir(), "/srv/ai/workspaces"},
		{"TemplatesDir", c.TemplatesDir(), "/srv/ai/templates"},
		{"VMRunDir", c.VMRunDir(), "/run/ai/vms"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s() = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
	c.Image.Dir = "/opt/image"
	if got := c.ImageDir(); got != "/opt/image" {
		t.Errorf("ImageDir() with image.dir set = %q, want /opt/image", got)
	}
	if got := c.VaultDir(); got != "/srv/ai/vault" {
		t.Errorf("VaultDir() = %q, want /srv/ai/vault", got)
	}
	c.Vault.Path = "/home/ann/notes"
	if got := c.VaultDir(); got != "/home/ann/notes" {
		t.Errorf("VaultDir() with vault.path set = %q", got)
	}
}

func TestDurations(t *testing.T) {
	c := Default()
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"StaleSession", c.Server.StaleSession(), time.Minute},
		{"BootTimeout", c.VM.BootTimeout(), time.Minute},
		{"StopTimeout", c.VM.StopTimeout(), 10 * time.Second},
		{"DefaultTimeout", c.Exec.DefaultTimeout(), 2 * time.Minute},
		{"MaxTimeout", c.Exec.MaxTimeout(), time.Hour},
		{"Vault.SearchTimeout", c.Vault.SearchTimeout(), 10 * time.Second},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s() = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

// TestH11_PoolAndSessionsFitTheVMCap: the configuration cannot promise more
// VMs than the host cap: one session's workspaces plus a full warm pool
// must fit vm.max_total_vms.
func TestH11_PoolAndSessionsFitTheVMCap(t *testing.T) {
	c := Default()
	c.VM.MaxTotalVMs = 10
	c.Resources.MaxWorkspacesPerSession = 8
	c.Pool.Enabled = true
	c.Pool.Size = 2
	if err := c.Validate(); err != nil {
		t.Fatalf("8 + 2 <= 10: %v", err)
	}
	c.Pool.Size = 3
	err := c.Validate()
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "pool.size: 3 plus resources.max_workspaces_per_session (8) is above vm.max_total_vms (10)") {
		t.Fatalf("8 + 3 > 10: %v", err)
	}
	c.Pool.Enabled = false
	c.Resources.MaxWorkspacesPerSession = 11
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "resources.max_workspaces_per_session: 11 is above vm.max_total_vms (10)") {
		t.Fatalf("11 > 10 without a pool: %v", err)
	}
}

// TestH11_PerSessionLimitsNeverExceedHostLimits checks the cross-checks that
// keep one session's limits within the host's: its workspaces within
// vm.max_total_vms, and each per-session rate within the global rate of its
// class (a looser session limit would never apply). The warm pool's part of
// H-11 (pool size + workspaces within vm.max_total_vms) is checked with the
// [pool] section.
func TestH11_PerSessionLimitsNeverExceedHostLimits(t *testing.T) {
	for _, tc := range []struct {
		modify func(*Config)
		want   string
	}{
		{func(c *Config) { c.VM.MaxTotalVMs = 10 }, "resources.max_workspaces_per_session: 20 is above vm.max_total_vms (10)"},
		{func(c *Config) { c.Limits.GlobalCreatePerMin = 2 }, "limits.create_per_min: 5 is above limits.global_create_per_min (2)"},
		{func(c *Config) { c.Limits.GlobalExecPerMin = 10 }, "limits.exec_per_min: 60 is above limits.global_exec_per_min (10)"},
		{func(c *Config) { c.Limits.GlobalDefaultPerMin = 100 }, "limits.default_per_min: 120 is above limits.global_default_per_min (100)"},
	} {
		c := Default()
		tc.modify(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
}
