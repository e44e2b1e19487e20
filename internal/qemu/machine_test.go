package qemu

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testMachine() MachineConfig {
	return MachineConfig{
		ID:            "ws-0123456789abcdef",
		Accel:         AccelTCG,
		VCPUs:         2,
		MemoryMB:      512,
		Kernel:        "/var/lib/agentiso/images/default/vmlinux",
		Initrd:        "/var/lib/agentiso/images/default/initrd.cpio",
		KernelArgs:    []string{"agentiso.root=/dev/vda"},
		TSCkHz:        2299890,
		TCGCacheMB:    256,
		Disk:          "/var/lib/agentiso/workspaces/ws-0123456789abcdef/disk.qcow2",
		QMPSocket:     "/run/agentiso/vm/ws-0123456789abcdef/qmp.sock",
		ConsoleSocket: "/run/agentiso/vm/ws-0123456789abcdef/console.sock",
		ChannelSocket: "/run/agentiso/vm/ws-0123456789abcdef/channel.sock",
		PIDFile:       "/run/agentiso/vm/ws-0123456789abcdef/qemu.pid",
	}
}

func TestArgvGolden(t *testing.T) {
	kvmNet := testMachine()
	kvmNet.Accel = AccelKVM
	kvmNet.Net = &NetConfig{TAP: "tap-ws0123", MAC: "52:54:00:12:34:56"}

	incoming := testMachine()
	incoming.Incoming = true

	commas := testMachine()
	commas.Disk = "/srv/odd,dir/disk.qcow2"
	commas.QMPSocket = "/run/odd,dir/qmp.sock"

	for _, tt := range []struct {
		golden string
		cfg    MachineConfig
	}{
		{"argv_tcg.golden", testMachine()},
		{"argv_kvm_net.golden", kvmNet},
		{"argv_commas.golden", commas},
		{"argv_incoming.golden", incoming},
	} {
		t.Run(tt.golden, func(t *testing.T) {
			if err := tt.cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			// One argument per line: a diff shows exactly what changed.
			got := strings.Join(Argv("qemu-system-x86_64", tt.cfg), "\n") + "\n"
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("reading golden file (run with -update to create it): %v", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("Argv mismatch (-golden +got); run with -update if intended:\n%s", diff)
			}
		})
	}
}

func TestKernelCmdline(t *testing.T) {
	tcg := testMachine()
	kvm := testMachine()
	kvm.Accel = AccelKVM
	noTSC := testMachine()
	noTSC.TSCkHz = 0
	for _, tt := range []struct {
		name     string
		cfg      MachineConfig
		want     []string
		dontWant string
	}{
		{"tcg gets the host TSC rate", tcg, []string{"console=ttyS0", "panic=-1", "pci=off", "tsc_early_khz=2299890", "tsc=reliable", "agentiso.root=/dev/vda"}, ""},
		{"kvm calibrates itself", kvm, []string{"console=ttyS0", "agentiso.root=/dev/vda"}, "tsc_early_khz"},
		{"kvm keeps its clocksource watchdog", kvm, []string{"console=ttyS0"}, "tsc=reliable"},
		{"unknown rate is omitted", noTSC, []string{"reboot=t"}, "tsc_early_khz"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := strings.Fields(KernelCmdline(tt.cfg))
			for _, w := range tt.want {
				if !contains(got, w) {
					t.Errorf("KernelCmdline() = %q, missing %q", got, w)
				}
			}
			if tt.dontWant != "" && strings.Contains(KernelCmdline(tt.cfg), tt.dontWant) {
				t.Errorf("KernelCmdline() = %q, must not contain %q", got, tt.dontWant)
			}
			// Image arguments come last, so they can override the base.
			if got[len(got)-1] != tt.cfg.KernelArgs[len(tt.cfg.KernelArgs)-1] {
				t.Errorf("KernelCmdline() = %q, image arguments must come last", got)
			}
		})
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestMachineConfigValidate(t *testing.T) {
	long := "/" + strings.Repeat("d", MaxSocketPath) + ".sock"
	for _, tt := range []struct {
		name   string
		mutate func(*MachineConfig)
		want   string // a substring of the error, "" for valid
	}{
		{"valid", func(*MachineConfig) {}, ""},
		{"bad id", func(c *MachineConfig) { c.ID = "../x" }, "id:"},
		{"bad accel", func(c *MachineConfig) { c.Accel = "hvf" }, "accel:"},
		{"negative tcg cache", func(c *MachineConfig) { c.TCGCacheMB = -1 }, "tcg_cache_mb:"},
		{"no vcpus", func(c *MachineConfig) { c.VCPUs = 0 }, "vcpus:"},
		{"tiny memory", func(c *MachineConfig) { c.MemoryMB = 16 }, "memory_mb:"},
		{"no kernel", func(c *MachineConfig) { c.Kernel = "" }, "kernel:"},
		{"no disk", func(c *MachineConfig) { c.Disk = "" }, "disk:"},
		{"no pidfile", func(c *MachineConfig) { c.PIDFile = "" }, "pidfile:"},
		{"socket path too long", func(c *MachineConfig) { c.ChannelSocket = long }, "channel_socket:"},
		{"no qmp socket", func(c *MachineConfig) { c.QMPSocket = "" }, "qmp_socket:"},
		{"kernel arg with a space", func(c *MachineConfig) { c.KernelArgs = []string{"a b"} }, "kernel_args:"},
		{"net without tap", func(c *MachineConfig) { c.Net = &NetConfig{MAC: "52:54:00:00:00:01"} }, "net.tap:"},
		{"net with a bad mac", func(c *MachineConfig) { c.Net = &NetConfig{TAP: "tap0", MAC: "zz"} }, "net.mac:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testMachine()
			tt.mutate(&cfg)
			err := cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error naming %q", err, tt.want)
			}
		})
	}
}

func TestProcessName(t *testing.T) {
	for id, want := range map[string]string{
		"ab":                  "agentiso-ab",
		"ws-0123456789abcdef": "agentiso-ws-012",
	} {
		if got := processName(id); got != want {
			t.Errorf("processName(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestArgvIdentifies(t *testing.T) {
	cfg := testMachine()
	argv := Argv("/usr/bin/qemu-system-x86_64", cfg)
	if !ArgvIdentifies(argv, cfg.ID, cfg.QMPSocket) {
		t.Fatal("ArgvIdentifies does not recognise the argv Argv made")
	}
	other := testMachine()
	other.ID = "ws-other"
	for name, tt := range map[string]struct {
		argv      []string
		id, qmpSk string
	}{
		"another VM's id":     {argv, other.ID, cfg.QMPSocket},
		"another QMP socket":  {argv, cfg.ID, "/run/other/qmp.sock"},
		"an unrelated binary": {[]string{"/bin/sleep", "100"}, cfg.ID, cfg.QMPSocket},
		"id as a prefix":      {Argv("qemu", MachineConfig{ID: cfg.ID + "x", QMPSocket: cfg.QMPSocket}), cfg.ID, cfg.QMPSocket},
		"empty":               {nil, cfg.ID, cfg.QMPSocket},
	} {
		if ArgvIdentifies(tt.argv, tt.id, tt.qmpSk) {
			t.Errorf("%s: ArgvIdentifies = true, want false", name)
		}
	}
}
