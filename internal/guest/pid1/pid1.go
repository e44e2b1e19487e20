// Package pid1 is what agentiso-guest does as the VM's init: mount the
// pseudo-filesystems, load modules, switch to the root disk, start the agent
// and reap every orphan for the life of the VM.
//
// The image builder (package image) writes what this package reads: the
// module list at ModulesFile and the RootParam kernel parameter. Both sides
// use the constants below.
package pid1

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// RootParam is the kernel command-line parameter that names the root block
// device, e.g. agentiso.root=/dev/vda.
const RootParam = "agentiso.root"

// ModulesFile lists the kernel modules PID 1 loads, one absolute path a line,
// in dependency order. The image builder writes it into the initramfs.
const ModulesFile = "/etc/agentiso/modules"

// AgentPath is what PID 1 starts as the agent: its own executable. The
// kernel keeps that file while PID 1 runs it, so it outlives the initramfs
// that switch_root empties, and a restarted agent is the same binary. Not
// copying it saves ~90 ms of boot under TCG and a second ~15 MiB copy in
// guest memory.
const AgentPath = "/proc/self/exe"

// agentName is the agent's argv[0], what ps shows.
const agentName = "agentiso-guest"

// The environment PID 1 passes to the agent. Both values are CLOCK_BOOTTIME
// nanoseconds read as the first thing PID 1 does; the kernel's share of boot
// and the origin of the agent's own init-to-ready time are the same instant.
const (
	EnvKernelToInitNs = "AGENTISO_KERNEL_TO_INIT_NS"
	EnvInitStartNs    = "AGENTISO_INIT_START_NS"
)

// Hostname is the guest's hostname until the host configures another.
const Hostname = "workspace"

// defaultPath is the PATH PID 1 sets for itself and the agent; the kernel
// starts init without one.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// newRoot is where the root disk is mounted before the switch.
const newRoot = "/newroot"

// rootDeviceTimeout bounds the wait for the root disk's device node. Under
// TCG the virtio-blk probe takes tens of milliseconds; seconds mean it will
// not come.
const rootDeviceTimeout = 10 * time.Second

// Main is PID 1. It never returns: on a fatal error it prints the reason to
// the console and reboots, which ends the VM (QEMU runs with -no-reboot).
func Main() {
	start := bootTime()
	log := NewConsoleLogger(os.Stderr)
	defer func() {
		if r := recover(); r != nil {
			fatal(log, fmt.Errorf("panic: %v\n%s", r, debug.Stack()))
		}
	}()
	err := run(log, start)
	fatal(log, err)
}

// run brings the system up and then supervises the agent; it returns only
// on failure.
func run(log *slog.Logger, start time.Duration) error {
	log.Info(fmt.Sprintf("init started at %.6fs", start.Seconds()))
	if err := os.Setenv("PATH", defaultPath); err != nil {
		return fmt.Errorf("setting PATH: %w", err)
	}
	handleShutdownSignals(log)

	if err := mountEarly(); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(Hostname)); err != nil {
		return fmt.Errorf("setting the hostname: %w", err)
	}
	if err := loadModules(log, ModulesFile); err != nil {
		return err
	}

	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return fmt.Errorf("reading the kernel command line: %w", err)
	}
	dev := parseCmdline(string(cmdline))[RootParam]
	if dev == "" {
		return fmt.Errorf("no root device: the kernel command line has no %s=", RootParam)
	}
	if err := mountRoot(log, dev, newRoot); err != nil {
		return err
	}
	t := time.Now()
	if err := switchRoot(newRoot); err != nil {
		return err
	}
	log.Info("switched root", "dev", dev, "took", time.Since(t).Round(time.Microsecond))
	if err := loopbackUp(); err != nil {
		// Not fatal: the agent still serves the host channel.
		log.Warn("bringing up lo", "err", err)
	}

	s := &supervisor{
		log:  log,
		path: AgentPath,
		argv: []string{agentName, "agent"},
		env: []string{
			"PATH=" + defaultPath,
			EnvKernelToInitNs + "=" + strconv.FormatInt(start.Nanoseconds(), 10),
			EnvInitStartNs + "=" + strconv.FormatInt(start.Nanoseconds(), 10),
		},
	}
	return s.run()
}

// bootTime is CLOCK_BOOTTIME: time since the kernel started, suspend included.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
