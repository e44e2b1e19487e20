// Package testdaemon runs a private agentiso daemon as a child process: its
// own config, data dir, run dir and socket, started from the agentiso
// binary, optionally in a network namespace, and removed with every QEMU it
// left running. The end-to-end tests and `agentiso bench` both start their
// daemons through it.
package testdaemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/config"
)

// startTimeout bounds how long Start waits for the daemon's socket, and
// stopTimeout how long Stop waits after SIGTERM.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// Daemon is one private daemon. Set the exported fields that say how it
// runs (Netns, Launcher, Unshareflags, Env) before Start; they take effect
// at every Start.
type Daemon struct {
	Bin        string // the agentiso binary
	Dir        string // data dir, config, log: the caller's
	RunDir     string // kept short (per-VM sockets live under it); removed by Cleanup
	ConfigPath string
	Socket     string
	LogPath    string

	// Netns, when set, is the network namespace the daemon runs in. It is
	// entered with nsenter, which enters only that (ip netns exec would also
	// remount /sys and so hide the host's cgroups) and execs in place, so
	// the process started is the daemon.
	Netns string
	// Launcher, when set, is an argv the daemon's own is appended to: a
	// program that prepares the process and execs the rest.
	Launcher []string
	// Unshareflags are namespaces (syscall.CLONE_NEW*) the process starts
	// in new ones of.
	Unshareflags uintptr
	// Env is added to the daemon's environment.
	Env []string

	cmd    *exec.Cmd
	exited chan struct{}
}

// New lays out a daemon whose files live in dir and whose run dir is a new
// directory directly under /tmp (Unix socket paths must stay short) named
// runPrefix and a random suffix.
func New(bin, dir, runPrefix string) (*Daemon, error) {
	runDir, err := os.MkdirTemp("/tmp", runPrefix)
	if err != nil {
		return nil, err
	}
	return &Daemon{Bin: bin, Dir: dir, RunDir: runDir,
		ConfigPath: filepath.Join(dir, "config.toml"),
		Socket:     filepath.Join(runDir, "agentiso.sock"),
		LogPath:    filepath.Join(dir, "daemon.log")}, nil
}

// Settings are the config keys private daemons differ in.
type Settings struct {
	ImageDir        string
	BootTimeoutSecs int
	Server          string // more keys of [server]
	VM              string // more keys of [vm]
}

// Config returns the [server], [image] and [vm] sections of d's config:
// every directory and socket under d's own. Callers append more sections
// and write it with WriteConfig.
func (d *Daemon) Config(s Settings) string {
	return fmt.Sprintf(`[server]
data_dir = %q
run_dir = %q
socket_path = %q
socket_group = ""
transfer_dir = %q
%s
[image]
dir = %q

[vm]
boot_timeout_secs = %d
stop_timeout_secs = 10
%s`, d.DataDir(), d.RunDir, d.Socket, d.TransferDir(), s.Server, s.ImageDir, s.BootTimeoutSecs, s.VM)
}

// WriteConfig writes the daemon's config file; it takes effect at the next
// Start.
func (d *Daemon) WriteConfig(text string) error {
	return os.WriteFile(d.ConfigPath, []byte(text), 0o600)
}

// DataDir is the daemon's [server] data_dir.
func (d *Daemon) DataDir() string { return filepath.Join(d.Dir, "data") }

// TransferDir is the daemon's [server] transfer_dir.
func (d *Daemon) TransferDir() string { return filepath.Join(d.Dir, "transfer") }

// StatePath is the daemon's state database.
func (d *Daemon) StatePath() string { return filepath.Join(d.DataDir(), "state.db") }

// ChannelSocket is the host end of workspace id's guest channel.
func (d *Daemon) ChannelSocket(id string) string {
	return filepath.Join(d.RunDir, "vms", id, "channel.sock")
}

// Start runs the daemon, its output appended to LogPath, and waits for its
// socket.
func (d *Daemon) Start(ctx context.Context) error {
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	argv := append(append([]string(nil), d.Launcher...), d.Bin, "daemon", "--config", d.ConfigPath)
	if d.Netns != "" {
		argv = append([]string{"nsenter", "--net=/run/netns/" + d.Netns, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Unshareflags: d.Unshareflags}
	if len(d.Env) > 0 {
		cmd.Env = append(os.Environ(), d.Env...)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	d.cmd, d.exited = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(cmd, d.exited)
	deadline := time.Now().Add(startTimeout)
	for {
		if _, err := os.Stat(d.Socket); err == nil {
			return nil
		}
		select {
		case <-d.exited:
			d.cmd = nil
			return fmt.Errorf("the daemon exited during start-up:\n%s", d.LogTail(4000))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon's socket did not appear within %v:\n%s", startTimeout, d.LogTail(4000))
		}
	}
}

// Running reports whether the daemon Start started is still to be stopped.
func (d *Daemon) Running() bool { return d.cmd != nil }

// PID is the running daemon's process ID.
func (d *Daemon) PID() int { return d.cmd.Process.Pid }

// Stop ends the daemon with SIGTERM (its VMs keep running) and waits for
// it, killing it if it has not ended within 30 seconds.
func (d *Daemon) Stop() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(stopTimeout):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return fmt.Errorf("the daemon did not stop within %v of SIGTERM", stopTimeout)
	}
}

// Kill ends the daemon with SIGKILL, as a crash would (no clean-up runs),
// and waits for it.
func (d *Daemon) Kill() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	if err := d.cmd.Process.Kill(); err != nil {
		return err
	}
	<-d.exited
	return nil
}

// Cleanup stops the daemon, kills any QEMU of its run dir it left running
// (by PID), removes their cgroups and deletes the run dir. Dir is the
// caller's to remove.
func (d *Daemon) Cleanup() error {
	err := d.Stop()
	pids := d.QEMUPIDs()
	groups := cgroupDirsOf(pids)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	removeCgroupDirs(groups)
	os.RemoveAll(d.RunDir)
	return err
}

// QEMUPIDs lists live QEMU processes whose command line names this
// daemon's run dir: its VMs and no one else's.
func (d *Daemon) QEMUPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := string(cmdline)
		if !strings.Contains(s, "qemu-system") || !strings.Contains(s, d.RunDir+"/") {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && IsZombie(string(st)) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// IsZombie reports whether a /proc/<pid>/stat line is a zombie's: ended
// and not yet reaped.
func IsZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// cgroupDirsOf lists the per-VM cgroup directories of pids under the
// default cgroup parent.
func cgroupDirsOf(pids []int) []string {
	layout, err := cgroup.Detect("")
	if err != nil {
		return nil
	}
	parent := config.Default().Resources.CgroupParent
	var dirs []string
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			continue
		}
		member := cgroup.ParseProcCgroup(string(b))
		for _, c := range cgroup.Controllers {
			key := c
			if layout.Version == cgroup.V2 {
				key = ""
			}
			if p := member[key]; strings.HasPrefix(p, "/"+parent+"/") {
				dirs = append(dirs, filepath.Join(layout.Mounts[c], p))
			}
		}
	}
	return dirs
}

// removeCgroupDirs removes cgroups whose processes were just killed,
// waiting a little for the kernel to let them go.
func removeCgroupDirs(dirs []string) {
	deadline := time.Now().Add(5 * time.Second)
	for _, d := range dirs {
		for {
			err := os.Remove(d)
			if err == nil || !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Log is the daemon's whole log.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// LogTail is the last n bytes of the daemon's log, for errors.
func (d *Daemon) LogTail(n int) string {
	b, _ := os.ReadFile(d.LogPath)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// Client connects an MCP client named name through `agentiso mcp` over
// stdio, as an agent does, and returns the shim process it launched too.
func (d *Daemon) Client(ctx context.Context, name string, opts *mcp.ClientOptions) (*mcp.ClientSession, *exec.Cmd, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, opts)
	cmd := exec.Command(d.Bin, "mcp", "--config", d.ConfigPath)
	cmd.Stderr = os.Stderr
	s, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting an MCP client: %w", err)
	}
	return s, cmd, nil
}
