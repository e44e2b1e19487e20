package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/testdaemon"
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

// daemon is a real agentiso daemon on temporary directories. Its Netns is
// the network namespace the daemon (and so its bridge, TAPs, rules and
// QEMUs) runs in: the test's own, deleted with it; empty with
// daemonOpts.hostNetwork. Its Env is added to the environment of the
// daemon start starts (e.g. a pause point for a crash test).
type daemon struct {
	*testdaemon.Daemon
	t testing.TB
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
	td, err := testdaemon.New(agentisoBinary(t), t.TempDir(), "ag")
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{Daemon: td, t: t}
	netSection := ""
	if opts.hostNetwork {
		netSection = "\n[network]\nenabled = false\n"
	} else {
		d.Netns = netns.New(t, "agd")
	}
	if opts.hideCgroups {
		d.Launcher = []string{os.Args[0]}
		d.Unshareflags = syscall.CLONE_NEWNS
		d.Env = []string{hideCgroupsEnv + "=1"}
	}
	cfg := d.Config(testdaemon.Settings{ImageDir: testenv.ImageDir(), BootTimeoutSecs: 90, Server: server, VM: opts.vm})
	// The memory template costs a boot at every daemon start: only the
	// tests that ask for it ([pool] in extra) build one.
	if !strings.Contains(extra, "[pool]") {
		cfg += "\n[pool]\ntemplate = false\n"
	}
	if err := d.WriteConfig(cfg + netSection + extra); err != nil {
		t.Fatal(err)
	}
	if prepare != nil {
		prepare(d.Netns)
	}
	// Registered before the start, so that a daemon that never made its
	// socket is ended too.
	t.Cleanup(d.cleanup)
	d.start()
	return d
}

// start starts the daemon (again) and waits for its socket.
func (d *daemon) start() {
	d.t.Helper()
	if err := d.Start(context.Background()); err != nil {
		d.t.Fatal(err)
	}
}

// stop ends the daemon gracefully (SIGTERM) and waits for it.
func (d *daemon) stop() {
	d.t.Helper()
	if err := d.Stop(); err != nil {
		d.t.Error(err)
	}
}

// kill ends the daemon with SIGKILL, as a crash would: no clean-up runs.
// The dead daemon's socket stays behind (the next daemon replaces it);
// start waits for the socket to appear, so it must not find this one.
func (d *daemon) kill() {
	d.t.Helper()
	if err := d.Kill(); err != nil {
		d.t.Fatal(err)
	}
	os.Remove(d.Socket)
}

// cleanup stops the daemon and kills any QEMU it left running, by the PIDs
// in its run directory, so a failing test leaves nothing behind.
func (d *daemon) cleanup() {
	if d.t.Failed() {
		d.t.Logf("daemon log:\n%s", d.Log())
	}
	if err := d.Cleanup(); err != nil {
		d.t.Error(err)
	}
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
	s, cmd, err := d.Client(ctx, "e2e", opts)
	if err != nil {
		return nil, nil, err
	}
	d.t.Cleanup(func() { s.Close() })
	return s, cmd, nil
}

// call invokes a tool that must succeed and decodes its structured result.
func call[T any](ctx context.Context, t testing.TB, s *mcp.ClientSession, tool string, args map[string]any) T {
	t.Helper()
	out, err := testdaemon.Call[T](ctx, s, tool, args)
	if err != nil {
		t.Fatalf("%v (arguments %v)", err, args)
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
	return testdaemon.Text(res)
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
