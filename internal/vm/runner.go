// Package vm supervises QEMU processes: it starts a workspace VM from a Spec,
// waits until its guest agent answers, keeps its console log, notices its
// exit, stops it, and re-attaches to it after a daemon restart. QEMU runs in
// its own session and outlives the daemon. The package knows nothing of
// workspaces or state; package qemu supplies the QEMU knowledge.
package vm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/qemu"
)

// Defaults for Config's zero values.
const (
	DefaultQEMUBinary         = "qemu-system-x86_64"
	DefaultBootTimeout        = 60 * time.Second
	DefaultStopTimeout        = 10 * time.Second
	DefaultConsoleLogMaxBytes = 1 << 20
	DefaultQEMULogMaxBytes    = 1 << 20
)

// consoleTailLines is how much of the console an error shows.
const consoleTailLines = 30

// The files in a VM's run directory.
const (
	qmpSocketName     = "qmp.sock"
	consoleSocketName = "console.sock"
	channelSocketName = "channel.sock"
	pidFileName       = "qemu.pid"
)

// Config configures a Runner.
type Config struct {
	// QEMUBinary is the QEMU system emulator; empty means
	// DefaultQEMUBinary from PATH.
	QEMUBinary string
	// Accel is the accelerator every VM of this runner uses (see
	// qemu.DetectAccel).
	Accel qemu.Accel
	// Dial connects to a guest channel socket. Required.
	Dial   DialFunc
	Logger *slog.Logger
	// BootTimeout bounds QEMU start to the guest's first answer.
	BootTimeout time.Duration
	// StopTimeout bounds each step of a graceful stop.
	StopTimeout time.Duration
	// ConsoleLogMaxBytes bounds console.log (one rotated generation is
	// kept too); QEMULogMaxBytes bounds qemu.log, QEMU's own messages.
	ConsoleLogMaxBytes int64
	QEMULogMaxBytes    int64
	// TCGCacheMB bounds TCG's translated-code cache (see
	// qemu.MachineConfig.TCGCacheMB); zero keeps QEMU's default.
	TCGCacheMB int
	// AfterStart, when set, is called with QEMU's PID once it runs and
	// before the guest starts, and again when Attach has found a VM's QEMU
	// after a daemon restart: the place for resource limits such as a
	// cgroup, so no VM this runner supervises runs without them. An error
	// kills the VM and fails Start or Attach.
	AfterStart func(ctx context.Context, spec Spec, pid int) error
	// AfterExit, when set, is called once a VM's QEMU has exited and its
	// run files are removed (also after a failed Start or Attach), to undo
	// what AfterStart set up. It is not called for a detached VM.
	AfterExit func(spec Spec)
	// AfterReconnect, when set, is called (on a goroutine of its own)
	// once a running VM's channel is connected again after its session
	// died: the guest's agent may be a new one that has lost what the old
	// one held in memory.
	AfterReconnect func(spec Spec)
}

// Runner starts and attaches to VMs.
type Runner struct {
	cfg Config
	log *slog.Logger
}

// NewRunner returns a Runner for cfg, with defaults filled in.
func NewRunner(cfg Config) (*Runner, error) {
	if cfg.Accel != qemu.AccelKVM && cfg.Accel != qemu.AccelTCG {
		return nil, fmt.Errorf("vm runner: accel %q is not kvm or tcg", cfg.Accel)
	}
	if cfg.Dial == nil {
		return nil, errors.New("vm runner: a channel dialer is required")
	}
	if cfg.QEMUBinary == "" {
		cfg.QEMUBinary = DefaultQEMUBinary
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.BootTimeout <= 0 {
		cfg.BootTimeout = DefaultBootTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.ConsoleLogMaxBytes <= 0 {
		cfg.ConsoleLogMaxBytes = DefaultConsoleLogMaxBytes
	}
	if cfg.QEMULogMaxBytes <= 0 {
		cfg.QEMULogMaxBytes = DefaultQEMULogMaxBytes
	}
	return &Runner{cfg: cfg, log: cfg.Logger}, nil
}

// Spec is one VM to run.
type Spec struct {
	// ID names the VM (names.Validate rules); QEMU's command line carries
	// it, which is how Attach recognises the process.
	ID       string
	VCPUs    int
	MemoryMB int

	Kernel     string
	Initrd     string
	KernelArgs []string
	// Disk is the qcow2 top layer the VM boots from (package storage).
	Disk string
	Net  *qemu.NetConfig

	// RunDir holds the VM's sockets and pidfile (created 0700). Its paths
	// must fit a Unix socket address: keep it short, e.g.
	// /run/agentiso/vm/<id>.
	RunDir string
	// LogDir holds console.log and qemu.log, which stay after the VM
	// stops; empty means RunDir.
	LogDir string

	// Incoming, when set, is a memory state saved by VM.SaveMemory: the VM
	// resumes it, processes and all, instead of booting. Disk must be a new
	// top on the layer frozen with that state, and the VM must have the
	// shape it was saved with (VCPUs, MemoryMB, devices).
	Incoming string
}

// paths are the files of one VM.
type paths struct {
	runDir, logDir                 string
	qmp, console, channel, pidFile string
	consoleLog, qemuLog            string
}

func (s Spec) paths() paths {
	logDir := s.LogDir
	if logDir == "" {
		logDir = s.RunDir
	}
	return paths{
		runDir:     s.RunDir,
		logDir:     logDir,
		qmp:        filepath.Join(s.RunDir, qmpSocketName),
		console:    filepath.Join(s.RunDir, consoleSocketName),
		channel:    filepath.Join(s.RunDir, channelSocketName),
		pidFile:    filepath.Join(s.RunDir, pidFileName),
		consoleLog: filepath.Join(logDir, consoleLogName),
		qemuLog:    filepath.Join(logDir, qemuLogName),
	}
}

// machine is the QEMU description of s.
func (r *Runner) machine(s Spec) qemu.MachineConfig {
	p := s.paths()
	m := qemu.MachineConfig{
		ID:            s.ID,
		Accel:         r.cfg.Accel,
		VCPUs:         s.VCPUs,
		MemoryMB:      s.MemoryMB,
		Kernel:        s.Kernel,
		Initrd:        s.Initrd,
		KernelArgs:    s.KernelArgs,
		Disk:          s.Disk,
		QMPSocket:     p.qmp,
		ConsoleSocket: p.console,
		ChannelSocket: p.channel,
		PIDFile:       p.pidFile,
		Net:           s.Net,
		Incoming:      s.Incoming != "",
		TCGCacheMB:    r.cfg.TCGCacheMB,
	}
	if m.Accel == qemu.AccelTCG {
		khz, err := qemu.HostTSCkHz()
		if err != nil {
			// The guest then calibrates itself, which sometimes hangs
			// under TCG; the boot timeout still bounds that.
			r.log.Warn("host TSC rate unknown; the guest calibrates its own", "err", err)
		}
		m.TSCkHz = khz
	}
	return m
}

func (s Spec) validate() error {
	var errs []error
	if err := names.Validate("id", s.ID); err != nil {
		errs = append(errs, err)
	}
	if s.Incoming != "" && !filepath.IsAbs(s.Incoming) {
		errs = append(errs, fmt.Errorf("incoming: %q must be an absolute path", s.Incoming))
	}
	for _, d := range []struct{ name, dir string }{{"run_dir", s.RunDir}, {"log_dir", s.LogDir}} {
		if d.dir != "" && !filepath.IsAbs(d.dir) || d.name == "run_dir" && d.dir == "" {
			errs = append(errs, fmt.Errorf("%s: %q must be an absolute path", d.name, d.dir))
		}
	}
	return errors.Join(errs...)
}

// Start runs spec: it starts QEMU paused, connects to QMP, the console and
// the guest channel, lets the guest run (or first loads spec.Incoming, the
// saved state it resumes), and returns once the guest agent answers a Ping,
// within the boot timeout. On any failure QEMU is killed and
// its sockets removed; the error's public text carries the console tail.
// Start and Attach of one VM must not run concurrently: the caller
// serialises them per VM.
func (r *Runner) Start(ctx context.Context, spec Spec) (_ *VM, err error) {
	if err := spec.validate(); err != nil {
		return nil, errdefs.With(errdefs.Invalid, "invalid vm spec: "+err.Error(), nil)
	}
	m := r.machine(spec)
	if err := m.Validate(); err != nil {
		return nil, errdefs.With(errdefs.Invalid, fmt.Sprintf("vm %s: %v", spec.ID, err), nil)
	}
	p := spec.paths()
	log := r.log.With("vm", spec.ID)

	if err := prepareDirs(p); err != nil {
		return nil, err
	}
	if pid, err := readPIDFile(p.pidFile); err == nil {
		if proc, err := openProcess(pid); err == nil {
			argv, _ := processArgv(pid)
			running := qemu.ArgvIdentifies(argv, spec.ID, p.qmp) && !proc.exited()
			proc.close()
			if running {
				return nil, errdefs.Conflictf("vm %s is already running (pid %d)", spec.ID, pid)
			}
		}
	}
	removeRunFiles(p)
	rotateFile(p.qemuLog)

	qemuLog, err := os.OpenFile(p.qemuLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening qemu log: %w", err)
	}
	defer qemuLog.Close() // QEMU has its own descriptor once started

	argv := qemu.Argv(r.cfg.QEMUBinary, m)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = qemuLog
	cmd.Stderr = qemuLog
	// Its own session: QEMU must outlive the daemon (a daemon crash or
	// restart never takes the VMs with it), and no terminal signal from
	// the daemon's session reaches it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, errdefs.With(errdefs.Unavailable, fmt.Sprintf("vm %s: starting qemu failed", spec.ID), err)
	}
	proc, err := openProcess(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("watching qemu of %s: %w", spec.ID, err)
	}
	v := newVM(r, spec, p, proc, log)
	v.started = started
	go func() {
		err := cmd.Wait()
		v.processExited(err)
	}()
	log.Info("qemu started", "pid", proc.pid, "accel", m.Accel)
	defer func() {
		if err != nil {
			v.Kill()
		}
	}()

	bootCtx, cancel := v.untilExit(ctx, started.Add(r.cfg.BootTimeout))
	defer cancel()
	if r.cfg.AfterStart != nil {
		if err := r.cfg.AfterStart(bootCtx, spec, proc.pid); err != nil {
			return nil, fmt.Errorf("setting up vm %s after start: %w", spec.ID, err)
		}
	}
	if err := v.connect(bootCtx, true); err != nil {
		return nil, v.bootError(ctx, bootCtx, err)
	}
	v.boot.Ready = time.Since(started)
	log.Info("vm ready", "boot", v.boot.Ready.Round(time.Millisecond), "kernel_to_init", v.boot.KernelToInit.Round(time.Millisecond),
		"init_to_ready", time.Duration(v.boot.Pong.InitToReadyNs).Round(time.Millisecond), "resumed", v.boot.Resumed.Round(time.Millisecond),
		"guest_uptime", time.Duration(v.boot.Pong.UptimeNs).Round(time.Millisecond))
	return v, nil
}

// Attach finds the running QEMU of spec through its pidfile after a daemon
// restart, verifies that the process really is that VM's QEMU, and
// reconnects QMP, the console and the channel (the guest must answer within
// the boot timeout). A VM that is not running gives a NotFound error, and
// its stale sockets and pidfile are removed; a QEMU whose guest does not
// answer is killed and gives an Unavailable error, so nothing is left
// running unsupervised. AfterStart runs for the found QEMU as for a new one;
// if it fails the VM is killed: a VM this runner supervises always has what
// AfterStart gives it.
func (r *Runner) Attach(ctx context.Context, spec Spec) (_ *VM, err error) {
	if err := spec.validate(); err != nil {
		return nil, errdefs.With(errdefs.Invalid, "invalid vm spec: "+err.Error(), nil)
	}
	p := spec.paths()
	log := r.log.With("vm", spec.ID)

	pid, err := readPIDFile(p.pidFile)
	if err != nil {
		removeRunFiles(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, errdefs.NotFoundf("vm %s is not running", spec.ID)
		}
		return nil, errdefs.With(errdefs.NotFound, fmt.Sprintf("vm %s is not running", spec.ID), err)
	}
	proc, err := openProcess(pid)
	if err != nil {
		removeRunFiles(p)
		return nil, errdefs.With(errdefs.NotFound, fmt.Sprintf("vm %s is not running (its qemu, pid %d, has exited)", spec.ID, pid), err)
	}
	// The pidfd pins the process: if it is still alive after its command
	// line was read, the command line was its own.
	argv, _ := processArgv(pid)
	if !qemu.ArgvIdentifies(argv, spec.ID, p.qmp) || proc.exited() {
		proc.close()
		removeRunFiles(p)
		return nil, errdefs.NotFoundf("vm %s is not running (pid %d is not its qemu)", spec.ID, pid)
	}

	v := newVM(r, spec, p, proc, log)
	v.started = time.Now()
	go func() {
		// Not our child: its parent (init, or a subreaper) reaps it; the
		// pidfd tells us when it exits.
		err := proc.wait()
		v.processExited(err)
	}()
	defer func() {
		if err != nil {
			v.Kill()
		}
	}()

	attachCtx, cancel := v.untilExit(ctx, time.Now().Add(r.cfg.BootTimeout))
	defer cancel()
	if r.cfg.AfterStart != nil {
		if err := r.cfg.AfterStart(attachCtx, spec, pid); err != nil {
			return nil, fmt.Errorf("setting up vm %s after attach (it was stopped): %w", spec.ID, err)
		}
	}
	if err := v.connect(attachCtx, false); err != nil {
		if v.hasExited() {
			return nil, errdefs.With(errdefs.NotFound, fmt.Sprintf("vm %s stopped while re-attaching", spec.ID), err)
		}
		return nil, errdefs.With(errdefs.Unavailable, fmt.Sprintf("vm %s is running but its guest does not answer; it was stopped", spec.ID), err)
	}
	log.Info("vm re-attached", "pid", pid)
	return v, nil
}

// ProbeBoot boots spec under cfg (normally with cfg.Accel = kvm) and
// reports whether its guest answered before ctx ended; the VM is killed
// either way. It is the probe qemu.DetectAccel runs. spec.Disk must be a
// disposable overlay: the probe guest may write to it.
func ProbeBoot(ctx context.Context, cfg Config, spec Spec) error {
	if dl, ok := ctx.Deadline(); ok {
		cfg.BootTimeout = time.Until(dl)
	}
	r, err := NewRunner(cfg)
	if err != nil {
		return err
	}
	v, err := r.Start(ctx, spec)
	if err != nil {
		return err
	}
	return v.Kill()
}

// prepareDirs creates the run and log directories, 0700: the VM's sockets
// (guest channel, QMP, console) are reachable by the daemon's user alone
// (finding L-5). A directory left from before with a looser mode is
// tightened.
func prepareDirs(p paths) error {
	for _, d := range []string{p.runDir, p.logDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return fmt.Errorf("creating %s: %w", d, err)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return fmt.Errorf("restricting %s: %w", d, err)
		}
	}
	return nil
}

// removeRunFiles removes a VM's sockets and pidfile; the logs stay.
func removeRunFiles(p paths) {
	for _, f := range []string{p.qmp, p.console, p.channel, p.pidFile} {
		os.Remove(f)
	}
}

// rotateFile keeps the previous generation of a log as <path>.1.
func rotateFile(path string) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 0 {
		os.Rename(path, path+rotatedSuffix)
	}
}
