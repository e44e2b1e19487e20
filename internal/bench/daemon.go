package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/config"
)

// daemon is a private agentiso daemon: its own config, data dir, run dir
// and socket, started from the agentiso binary as a child process.
type daemon struct {
	bin        string
	dir        string // everything but the run dir
	runDir     string // kept short: per-VM sockets live under it
	configPath string
	baseConfig string // the config without its [pool] section
	socket     string
	logPath    string
	cmd        *exec.Cmd
	exited     chan struct{}
}

// newDaemon writes the config of a private daemon under a new temporary
// directory. The bench lifts the rate limits (it makes hundreds of calls a
// minute) and the transfer size (it moves 64 MiB files), and serves no
// dashboard, whose TCP port the installed daemon may hold.
func newDaemon(bin, imageDir string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "agentiso-bench")
	if err != nil {
		return nil, err
	}
	runDir, err := os.MkdirTemp("/tmp", "agb")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d := &daemon{bin: bin, dir: dir, runDir: runDir, configPath: filepath.Join(dir, "config.toml"),
		socket: filepath.Join(runDir, "agentiso.sock"), logPath: filepath.Join(dir, "daemon.log")}
	cfg := fmt.Sprintf(`[server]
data_dir = %q
run_dir = %q
socket_path = %q
socket_group = ""
transfer_dir = %q

[image]
dir = %q

[vm]
boot_timeout_secs = 180
stop_timeout_secs = 10

[files]
max_transfer_bytes = 134217728

[dashboard]
enabled = false

[limits]
exec_per_min = 100000
global_exec_per_min = 100000
default_per_min = 100000
global_default_per_min = 100000
create_per_min = 100000
global_create_per_min = 100000
`, filepath.Join(dir, "data"), runDir, d.socket, d.transferDir(), imageDir)
	d.baseConfig = cfg
	if err := d.configure(coldPool); err != nil {
		d.remove()
		return nil, err
	}
	return d, nil
}

// coldPool makes every create a cold boot: no warm pool, no memory
// template. warmPool keeps one default-size VM ready and restores the
// memory template for other default-size creates.
const (
	coldPool = "\n[pool]\nenabled = false\ntemplate = false\n"
	warmPool = "\n[pool]\nenabled = true\nsize = 1\nmax_memory_mb = 8192\ntemplate = true\n"
)

// configure rewrites the config with the pool section; it takes effect
// at the next start.
func (d *daemon) configure(pool string) error {
	return os.WriteFile(d.configPath, []byte(d.baseConfig+pool), 0o600)
}

// waitLog waits until the daemon's log holds msg more than n times and
// returns the count.
func (d *daemon) waitLog(ctx context.Context, msg string, n int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(d.logPath)
		if c := strings.Count(string(b), `msg="`+msg+`"`); c > n {
			return c, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("the daemon did not log %q within %v", msg, within)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *daemon) transferDir() string { return filepath.Join(d.dir, "transfer") }
func (d *daemon) statePath() string   { return filepath.Join(d.dir, "data", "state.db") }
func (d *daemon) channelSocket(ws string) string {
	return filepath.Join(d.runDir, "vms", ws, "channel.sock")
}

// start runs the daemon and waits for its socket.
func (d *daemon) start(ctx context.Context) error {
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	d.cmd = exec.Command(d.bin, "daemon", "--config", d.configPath)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("starting the daemon: %w", err)
	}
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return nil
		}
		select {
		case <-d.exited:
			d.cmd = nil
			return fmt.Errorf("the daemon exited during start-up:\n%s", d.logTail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon's socket did not appear within 60s:\n%s", d.logTail())
		}
	}
}

// stop ends the daemon with SIGTERM (its VMs keep running) and waits.
func (d *daemon) stop() error {
	if d.cmd == nil {
		return nil
	}
	defer func() { d.cmd = nil }()
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		return errors.New("the daemon did not stop within 30s of SIGTERM")
	}
}

// pid is the running daemon's process ID.
func (d *daemon) pid() int { return d.cmd.Process.Pid }

// remove stops the daemon, kills any QEMU of its run dir it left running
// (by PID), removes their cgroups and deletes every directory it used.
func (d *daemon) remove() {
	_ = d.stop()
	pids := d.qemuPIDs()
	groups := cgroupDirsOf(pids)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	removeCgroupDirs(groups)
	os.RemoveAll(d.runDir)
	os.RemoveAll(d.dir)
}

// qemuPIDs lists live QEMU processes whose command line names this
// daemon's run dir: its VMs and no one else's.
func (d *daemon) qemuPIDs() []int {
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
		if !strings.Contains(s, "qemu-system") || !strings.Contains(s, d.runDir+"/") {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && isZombie(string(st)) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

func isZombie(stat string) bool {
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

// removeCgroupDirs removes cgroups whose processes were just killed.
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

// logCount counts s in the daemon's whole log.
func (d *daemon) logCount(s string) int {
	b, _ := os.ReadFile(d.logPath)
	return strings.Count(string(b), s)
}

// logTail is the end of the daemon's log, for errors.
func (d *daemon) logTail() string {
	b, _ := os.ReadFile(d.logPath)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// vmReadyLine matches the runner's "vm ready" log line.
var vmReadyLine = regexp.MustCompile(`msg="vm ready".*\bvm=(\S+).*\bboot=(\S+) kernel_to_init=(\S+)(?: init_to_ready=(\S+))?(?: resumed=(\S+))?(?: guest_uptime=(\S+))?`)

// bootLog is what the daemon logged of one VM's boot.
type bootLog struct {
	Ready, KernelToInit, InitToReady, Resumed time.Duration
	// Uptime is the guest's clock when it answered the first ping.
	Uptime time.Duration
}

// boots reads every "vm ready" line of the daemon's log, by VM ID (the
// last one wins).
func (d *daemon) boots() map[string]bootLog {
	out := map[string]bootLog{}
	f, err := os.Open(d.logPath)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		m := vmReadyLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		var b bootLog
		b.Ready, _ = time.ParseDuration(m[2])
		b.KernelToInit, _ = time.ParseDuration(m[3])
		if m[4] != "" {
			b.InitToReady, _ = time.ParseDuration(m[4])
		}
		if m[5] != "" {
			b.Resumed, _ = time.ParseDuration(m[5])
		}
		if m[6] != "" {
			b.Uptime, _ = time.ParseDuration(m[6])
		}
		out[m[1]] = b
	}
	return out
}

// accel is the accelerator the daemon's QEMUs ran with, from its log.
func (d *daemon) accel() string {
	b, _ := os.ReadFile(d.logPath)
	if m := regexp.MustCompile(`msg="qemu started".*\baccel=(\w+)`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return "unknown"
}

// client connects an MCP client through `agentiso mcp` over stdio, as an
// agent does.
func (d *daemon) client(ctx context.Context) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "agentiso-bench", Version: "1"}, nil)
	cmd := exec.Command(d.bin, "mcp", "--config", d.configPath)
	cmd.Stderr = os.Stderr
	s, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, fmt.Errorf("connecting an MCP client: %w", err)
	}
	return s, nil
}

// call invokes a tool that must succeed and decodes its structured result.
func call[T any](ctx context.Context, s *mcp.ClientSession, tool string, args map[string]any) (T, error) {
	var out T
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return out, fmt.Errorf("%s: %w", tool, err)
	}
	if res.IsError {
		var sb strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				sb.WriteString(tc.Text)
			}
		}
		return out, fmt.Errorf("%s: %s", tool, sb.String())
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("%s: decoding %s: %w", tool, b, err)
	}
	return out, nil
}
