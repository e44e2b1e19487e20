package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/testenv"
	"github.com/agentiso/agentiso/internal/testenv/netns"
)

// binDir holds the binaries built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	if os.Getenv(hideCgroupsEnv) != "" {
		os.Exit(execWithoutCgroups(os.Args[1:]))
	}
	if os.Getenv(dialAsEnv) != "" {
		os.Exit(dialAndExit(os.Args[1:]))
	}
	dir, err := os.MkdirTemp("", "agentiso-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var buildOnce sync.Once
var buildErr error

// agentisoBinary builds cmd/agentiso once and returns its path.
func agentisoBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "build", "-o", filepath.Join(binDir, "agentiso"), "../../cmd/agentiso").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building agentiso: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "agentiso")
}

// daemon is a real agentiso daemon on temporary directories.
type daemon struct {
	t          testing.TB
	bin        string
	dir        string // data dir
	runDir     string
	configPath string
	socket     string
	cmd        *exec.Cmd
	logPath    string
	exited     chan struct{}
	// netns is the network namespace the daemon (and so its bridge, TAPs,
	// rules and QEMUs) runs in: the test's own, deleted with it; empty with
	// daemonOpts.hostNetwork.
	netns string
	opts  daemonOpts
	// env is added to the environment of the daemon start starts (e.g. a
	// pause point for a crash test).
	env []string
}

// daemonOpts change how a test daemon runs.
type daemonOpts struct {
	// hideCgroups runs the daemon in a mount namespace of its own where
	// /sys/fs/cgroup is an empty tmpfs: a host without usable cgroups.
	hideCgroups bool
	// hostNetwork runs the daemon in the test's own network namespace with
	// workspace networking off, so no bridge or rule is made there: for
	// tests that reach the daemon's TCP listeners (the dashboard) from the
	// test process. Every other daemon runs in a namespace of its own.
	hostNetwork bool
	// vm is more keys of [vm].
	vm string
}

// startDaemon writes a config for a private daemon and starts it in a
// network namespace of its own. extra is appended to the config (more
// sections or overrides).
func startDaemon(t testing.TB, extra string) *daemon {
	t.Helper()
	return startDaemonWith(t, "", extra)
}

// startDaemonWith is startDaemon with server, more keys of [server].
func startDaemonWith(t testing.TB, server, extra string) *daemon {
	t.Helper()
	return startDaemonOpts(t, server, extra, daemonOpts{})
}

// startDaemonOpts is startDaemonWith with options.
func startDaemonOpts(t testing.TB, server, extra string, opts daemonOpts) *daemon {
	t.Helper()
	return startDaemonIn(t, server, extra, opts, nil)
}

// startDaemonIn is startDaemonOpts with prepare run on the daemon's network
// namespace before the daemon starts (to give it interfaces).
func startDaemonIn(t testing.TB, server, extra string, opts daemonOpts, prepare func(netns string)) *daemon {
	t.Helper()
	testenv.Require(t, "root", "qemu", "image", "netns", "nft")
	d := &daemon{t: t, bin: agentisoBinary(t), dir: t.TempDir(), opts: opts}
	netSection := ""
	if opts.hostNetwork {
		netSection = "\n[network]\nenabled = false\n"
	} else {
		d.netns = netns.New(t, "agd")
	}
	// Unix socket paths must stay short: keep the run dir directly in /tmp.
	runDir, err := os.MkdirTemp("/tmp", "ag")
	if err != nil {
		t.Fatal(err)
	}
	d.runDir = runDir
	d.socket = filepath.Join(runDir, "agentiso.sock")
	d.configPath = filepath.Join(d.dir, "config.toml")
	d.logPath = filepath.Join(d.dir, "daemon.log")
	cfg := fmt.Sprintf(`[server]
data_dir = %q
run_dir = %q
socket_path = %q
socket_group = ""
transfer_dir = %q
%s
[image]
dir = %q

[vm]
boot_timeout_secs = 90
stop_timeout_secs = 10
%s`, filepath.Join(d.dir, "data"), runDir, d.socket, filepath.Join(d.dir, "transfer"), server, testenv.ImageDir(), opts.vm)
	// The memory template costs a boot at every daemon start: only the
	// tests that ask for it ([pool] in extra) build one.
	if !strings.Contains(extra, "[pool]") {
		cfg += "\n[pool]\ntemplate = false\n"
	}
	if err := os.WriteFile(d.configPath, []byte(cfg+netSection+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(d.netns)
	}
	d.start()
	t.Cleanup(d.cleanup)
	return d
}

func (d *daemon) start() {
	d.t.Helper()
	logf, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	// The daemon runs in the test's network namespace. nsenter enters only
	// that (ip netns exec would also remount /sys and so hide the host's
	// cgroups) and execs in place: d.cmd's PID is the daemon's.
	argv := []string{d.bin, "daemon", "--config", d.configPath}
	attr := &syscall.SysProcAttr{Setpgid: true}
	var env []string
	if d.opts.hideCgroups {
		argv = append([]string{os.Args[0]}, argv...)
		env = append(os.Environ(), hideCgroupsEnv+"=1")
		attr.Unshareflags = syscall.CLONE_NEWNS
	}
	if d.netns != "" {
		argv = append([]string{"nsenter", "--net=/run/netns/" + d.netns, "--"}, argv...)
	}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = env
	d.cmd.SysProcAttr = attr
	if len(d.env) > 0 {
		if d.cmd.Env == nil {
			d.cmd.Env = os.Environ()
		}
		d.cmd.Env = append(d.cmd.Env, d.env...)
	}
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	logf.Close()
	d.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { cmd.Wait(); close(done) }(d.cmd, d.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(d.socket); err == nil {
			return
		}
		select {
		case <-d.exited:
			d.t.Fatalf("daemon exited during start-up:\n%s", d.log())
		default:
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("daemon socket did not appear within 60s:\n%s", d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop ends the daemon gracefully (SIGTERM) and waits for it.
func (d *daemon) stop() {
	d.t.Helper()
	if d.cmd == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
		d.t.Errorf("daemon did not stop within 30s of SIGTERM")
	}
	d.cmd = nil
}

func (d *daemon) log() string {
	b, _ := os.ReadFile(d.logPath)
	return string(b)
}

// cleanup stops the daemon and kills any QEMU it left running, by the PIDs
// in its run directory, so a failing test leaves nothing behind.
func (d *daemon) cleanup() {
	if d.t.Failed() {
		d.t.Logf("daemon log:\n%s", d.log())
	}
	d.stop()
	pids := d.qemuPIDs()
	groups := cgroupDirsOf(pids)
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	removeCgroupDirs(groups)
	os.RemoveAll(d.runDir)
}

// qemuPIDs lists running QEMU processes that belong to this daemon: those
// whose command line mentions its run directory.
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
		if strings.Contains(s, "qemu-system") && strings.Contains(s, d.runDir) {
			if st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil && isZombie(string(st)) {
				continue
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func isZombie(stat string) bool {
	i := strings.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// client connects a real MCP client through `agentiso mcp` over stdio.
func (d *daemon) client(ctx context.Context) *mcp.ClientSession {
	d.t.Helper()
	s, _ := d.clientCmd(ctx)
	return s
}

// clientCmd is client, also returning the shim process it launched.
func (d *daemon) clientCmd(ctx context.Context) (*mcp.ClientSession, *exec.Cmd) {
	d.t.Helper()
	s, cmd, err := d.tryClientCmd(ctx)
	if err != nil {
		d.t.Fatalf("connecting MCP client: %v", err)
	}
	return s, cmd
}

// clientWith is client with client options, e.g. a progress notification
// handler.
func (d *daemon) clientWith(ctx context.Context, opts *mcp.ClientOptions) *mcp.ClientSession {
	d.t.Helper()
	s, _, err := d.tryClientOpts(ctx, opts)
	if err != nil {
		d.t.Fatalf("connecting MCP client: %v", err)
	}
	return s
}

// tryClientCmd is clientCmd for a client that may be refused.
func (d *daemon) tryClientCmd(ctx context.Context) (*mcp.ClientSession, *exec.Cmd, error) {
	return d.tryClientOpts(ctx, nil)
}

// tryClientOpts is tryClientCmd with client options.
func (d *daemon) tryClientOpts(ctx context.Context, opts *mcp.ClientOptions) (*mcp.ClientSession, *exec.Cmd, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, opts)
	cmd := exec.Command(d.bin, "mcp", "--config", d.configPath)
	cmd.Stderr = os.Stderr
	s, err := c.Connect(ctx, &mcp.CommandTransport{Command: cmd}, nil)
	if err != nil {
		return nil, nil, err
	}
	d.t.Cleanup(func() { s.Close() })
	return s, cmd, nil
}

// statePath is the daemon's state database.
func (d *daemon) statePath() string { return filepath.Join(d.dir, "data", "state.db") }

// call invokes a tool that must succeed and decodes its structured result.
func call[T any](ctx context.Context, t testing.TB, s *mcp.ClientSession, tool string, args map[string]any) T {
	t.Helper()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: protocol error: %v", tool, err)
	}
	if res.IsError {
		t.Fatalf("%s(%v): tool error: %s", tool, args, textOf(res))
	}
	var out T
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: decoding result %s: %v", tool, b, err)
	}
	return out
}

// callErr invokes a tool that must fail with a tool error and returns its text.
func callErr(ctx context.Context, t testing.TB, s *mcp.ClientSession, tool string, args map[string]any) string {
	t.Helper()
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: want a tool error, got a protocol error: %v", tool, err)
	}
	if !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		t.Fatalf("%s(%v): want a tool error, got success: %s", tool, args, b)
	}
	return textOf(res)
}

func textOf(res *mcp.CallToolResult) string {
	var sb strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			sb.WriteString(tc.Text)
		}
	}
	return sb.String()
}

// scanLines is a tiny helper for reading a file's lines in assertions.
func scanLines(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// sh runs a setup script in a workspace through the exec tool and returns
// its trimmed stdout; a non-zero exit fails the test.
func sh(ctx context.Context, t testing.TB, s *mcp.ClientSession, ws, script string) string {
	t.Helper()
	r := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "set -e\n" + script, "timeout_secs": 120})
	if r.ExitCode != 0 {
		t.Fatalf("in %s: %s\nexit %d\nstdout: %s\nstderr: %s", ws, script, r.ExitCode, r.Stdout, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}
