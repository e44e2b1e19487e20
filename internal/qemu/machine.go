// Package qemu is what agentiso knows about QEMU: the command line of a
// workspace VM, the QMP protocol, and which accelerator works on this host.
// It starts and supervises nothing; package vm does.
package qemu

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Accel is a QEMU accelerator. KVM and TCG are one code path with this as a
// parameter.
type Accel string

// The accelerators agentiso uses.
const (
	AccelKVM Accel = "kvm"
	AccelTCG Accel = "tcg"
)

// DiskNodeName is the block node name of a VM's root disk. It is stable so
// that QMP commands (blockdev-snapshot-sync) can name the disk.
const DiskNodeName = "disk0"

// MaxSocketPath is the longest Unix socket path the kernel accepts
// (sun_path is 108 bytes including the terminating NUL).
const MaxSocketPath = 107

// processPrefix starts the thread name QEMU gives itself, so `ps -e` and
// `top` show agentiso's VMs as such.
const processPrefix = "agentiso-"

// maxProcessName is the longest thread name Linux keeps (TASK_COMM_LEN-1).
const maxProcessName = 15

// MachineConfig describes one workspace VM as QEMU needs to know it.
type MachineConfig struct {
	// ID identifies the VM; it appears in QEMU's -name, so the process can
	// be recognised in /proc/<pid>/cmdline after a daemon restart.
	ID       string
	Accel    Accel
	VCPUs    int
	MemoryMB int

	Kernel string
	Initrd string
	// KernelArgs are appended to the base kernel command line; the image
	// supplies the ones it needs (such as its root device).
	KernelArgs []string
	// TCGCacheMB bounds TCG's translated-code cache (QEMU's tb-size).
	// QEMU's own default is 1 GiB, allocated as guest code is translated:
	// a busy guest grows QEMU's memory by up to that much beyond guest RAM,
	// which no sensible memory limit could allow for. Zero keeps QEMU's
	// default; ignored under KVM.
	TCGCacheMB int
	// TSCkHz is the host's TSC rate (HostTSCkHz). Under TCG it is passed to
	// the guest as tsc_early_khz: without it some boots hang in early TSC
	// calibration. With it the guest is also told tsc=reliable: a TCG
	// guest's TSC is the host's, but its timer ticks arrive late on a busy
	// host, so the clocksource watchdog, comparing the two, marked the TSC
	// unstable ~1.7 s into boot and the guest fell back to jiffies: a clock
	// with 4 ms resolution that loses the late ticks (measured: 512 ms of
	// jiffies against 629 ms of TSC). Zero omits both.
	TSCkHz int64

	// Disk is the qcow2 file of the root disk (the workspace's top layer);
	// its backing chain is opened read-only by QEMU from the file's header.
	Disk string

	// The Unix sockets QEMU listens on (server=on, wait=off): QMP, the
	// serial console and the guest channel (a virtio-serial port named
	// protocol.PortName).
	QMPSocket     string
	ConsoleSocket string
	ChannelSocket string
	// PIDFile is written by QEMU once it runs.
	PIDFile string

	// Net, when set, attaches a virtio-net device to an existing TAP.
	Net *NetConfig

	// Incoming starts the VM waiting for a migration stream (-incoming
	// defer) instead of booting: it resumes a saved memory state, handed
	// over by QMP migrate-incoming (see MigrateIncoming). The machine must
	// be the one the state was saved from (CPUs, memory, devices).
	Incoming bool
}

// NetConfig is a VM's network interface.
type NetConfig struct {
	// TAP is the host TAP interface, created before QEMU starts.
	TAP string
	// MAC is the guest's fixed MAC address.
	MAC string
}

// Validate checks that cfg can become a QEMU command line. Its messages name
// the field.
func (cfg MachineConfig) Validate() error {
	var errs []error
	if err := names.Validate("id", cfg.ID); err != nil {
		errs = append(errs, err)
	}
	if cfg.Accel != AccelKVM && cfg.Accel != AccelTCG {
		errs = append(errs, fmt.Errorf("accel: %q is not kvm or tcg", cfg.Accel))
	}
	if cfg.VCPUs < 1 {
		errs = append(errs, fmt.Errorf("vcpus: %d is below 1", cfg.VCPUs))
	}
	if cfg.MemoryMB < 64 {
		errs = append(errs, fmt.Errorf("memory_mb: %d is below 64", cfg.MemoryMB))
	}
	if cfg.TCGCacheMB < 0 {
		errs = append(errs, fmt.Errorf("tcg_cache_mb: %d is negative", cfg.TCGCacheMB))
	}
	for _, f := range []struct{ name, value string }{
		{"kernel", cfg.Kernel}, {"initrd", cfg.Initrd}, {"disk", cfg.Disk}, {"pidfile", cfg.PIDFile},
	} {
		if f.value == "" {
			errs = append(errs, fmt.Errorf("%s: must be set", f.name))
		}
	}
	for _, s := range []struct{ name, path string }{
		{"qmp_socket", cfg.QMPSocket}, {"console_socket", cfg.ConsoleSocket}, {"channel_socket", cfg.ChannelSocket},
	} {
		switch {
		case s.path == "":
			errs = append(errs, fmt.Errorf("%s: must be set", s.name))
		case len(s.path) > MaxSocketPath:
			errs = append(errs, fmt.Errorf("%s: %q is %d bytes, longer than the %d a Unix socket path may have", s.name, s.path, len(s.path), MaxSocketPath))
		}
	}
	for _, a := range cfg.KernelArgs {
		if a == "" || strings.ContainsAny(a, " \t\n") {
			errs = append(errs, fmt.Errorf("kernel_args: %q is not one argument", a))
		}
	}
	if n := cfg.Net; n != nil {
		if n.TAP == "" {
			errs = append(errs, errors.New("net.tap: must be set"))
		}
		if hw, err := net.ParseMAC(n.MAC); err != nil || len(hw) != 6 {
			errs = append(errs, fmt.Errorf("net.mac: %q is not a MAC address", n.MAC))
		}
	}
	return errors.Join(errs...)
}

// baseKernelArgs are on every VM's kernel command line: the console on the
// one serial port, reboot and panic end the VM (QEMU runs with -no-reboot),
// no probing of hardware a microvm does not have.
var baseKernelArgs = []string{
	"console=ttyS0",
	"reboot=t",
	"panic=-1",
	"i8042.noaux",
	"i8042.nokbd",
	"i8042.nopnp",
	"8250.nr_uarts=1",
	"pci=off",
}

// KernelCmdline returns the guest kernel command line for cfg.
func KernelCmdline(cfg MachineConfig) string {
	args := append([]string(nil), baseKernelArgs...)
	if cfg.Accel == AccelTCG && cfg.TSCkHz > 0 {
		args = append(args, "tsc_early_khz="+strconv.FormatInt(cfg.TSCkHz, 10), "tsc=reliable")
	}
	args = append(args, cfg.KernelArgs...)
	return strings.Join(args, " ")
}

// Argv returns the command line that runs cfg with the QEMU at binary. The
// VM starts paused (-S): the host connects to the console, QMP and channel
// first, so no early output is lost, and then sends `cont`. Call
// cfg.Validate first.
func Argv(binary string, cfg MachineConfig) []string {
	// microvm: ACPI is auto (= on) in QEMU 7.2; it is set explicitly because
	// the guest kernel finds its virtio-mmio devices only through ACPI. No
	// PCIe, no option ROMs; the one ISA serial port is the console, the RTC
	// gives the guest the wall-clock time.
	machine := "microvm,acpi=on,pcie=off,x-option-roms=off,isa-serial=on,rtc=on"
	cpu := "max" // TCG: the richest CPU model QEMU emulates
	accel := string(cfg.Accel)
	if cfg.Accel == AccelKVM {
		cpu = "host"
	} else if cfg.TCGCacheMB > 0 {
		accel += ",tb-size=" + strconv.Itoa(cfg.TCGCacheMB)
	}
	argv := []string{
		binary,
		"-name", "guest=" + optEscape(cfg.ID) + ",process=" + processName(cfg.ID),
		"-machine", machine,
		"-accel", accel,
		"-cpu", cpu,
		"-smp", strconv.Itoa(cfg.VCPUs),
		"-m", strconv.Itoa(cfg.MemoryMB) + "M",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-S",
		"-msg", "timestamp=on",
		// QEMU's own seccomp filter: no obsolete syscalls, no setuid, no
		// fork/exec, no changing scheduling or resource limits.
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-pidfile", cfg.PIDFile,
		"-kernel", cfg.Kernel,
		"-initrd", cfg.Initrd,
		"-append", KernelCmdline(cfg),
		"-blockdev", blockdevJSON(cfg.Disk),
		"-device", "virtio-blk-device,drive=" + DiskNodeName,
		"-chardev", socketChardev("qmp", cfg.QMPSocket),
		"-mon", "chardev=qmp,mode=control",
		"-chardev", socketChardev("console", cfg.ConsoleSocket),
		"-serial", "chardev:console",
		"-device", "virtio-serial-device",
		"-chardev", socketChardev("channel", cfg.ChannelSocket),
		"-device", "virtserialport,chardev=channel,name=" + protocol.PortName,
		"-device", "virtio-rng-device",
	}
	if n := cfg.Net; n != nil {
		argv = append(argv,
			"-netdev", "tap,id=net0,ifname="+optEscape(n.TAP)+",script=no,downscript=no",
			"-device", "virtio-net-device,netdev=net0,mac="+n.MAC,
		)
	}
	if cfg.Incoming {
		// "defer": the stream comes later over QMP, as a file descriptor,
		// so no path or command ever appears on the command line.
		argv = append(argv, "-incoming", "defer")
	}
	return argv
}

// processName is the thread name QEMU takes: the prefix and as much of the
// VM's ID as fits.
func processName(id string) string {
	n := processPrefix + id
	if len(n) > maxProcessName {
		n = n[:maxProcessName]
	}
	return optEscape(n)
}

// socketChardev is a Unix socket chardev QEMU listens on without waiting for
// a client.
func socketChardev(id, path string) string {
	return "socket,id=" + id + ",path=" + optEscape(path) + ",server=on,wait=off"
}

// blockdevJSON is the root disk's -blockdev in JSON form, which needs no
// escaping of the path. discard=unmap lets the guest's TRIM free space in
// the overlay.
func blockdevJSON(path string) string {
	b, err := json.Marshal(map[string]any{
		"driver":    "qcow2",
		"node-name": DiskNodeName,
		"discard":   "unmap",
		"file":      map[string]any{"driver": "file", "filename": path},
	})
	if err != nil {
		panic(err) // a map of strings always marshals
	}
	return string(b)
}

// optEscape escapes a value inside a QEMU option list, where ',' separates
// options and ",," is a literal comma.
func optEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// ArgvIdentifies reports whether argv (a process's command line, as read
// from /proc/<pid>/cmdline) is the QEMU that Argv made for the VM id with
// its QMP socket at qmpSocket. After a daemon restart this tells agentiso's
// QEMU from whatever process reuses a stale PID.
func ArgvIdentifies(argv []string, id, qmpSocket string) bool {
	wantName := "guest=" + optEscape(id) + ",process=" + processName(id)
	wantQMP := socketChardev("qmp", qmpSocket)
	var name, qmp bool
	for i := 1; i < len(argv); i++ {
		switch {
		case argv[i-1] == "-name" && argv[i] == wantName:
			name = true
		case argv[i-1] == "-chardev" && argv[i] == wantQMP:
			qmp = true
		}
	}
	return name && qmp
}
