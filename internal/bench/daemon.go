package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/testdaemon"
)

// daemon is the bench's private agentiso daemon, with what the bench reads
// of its log.
type daemon struct {
	*testdaemon.Daemon
	baseConfig string // the config without its [pool] section
	netns      string // the network namespace it runs in; deleted by remove
}

// newDaemon writes the config of a private daemon under a new temporary
// directory. The bench lifts the rate limits (it makes hundreds of calls a
// minute) and the transfer size (it moves 64 MiB files), and serves no
// dashboard, whose TCP port the installed daemon may hold. It runs in a
// network namespace of its own, made here: its bridge, TAPs and nftables
// tables are named like an installed daemon's, and must not replace them.
func newDaemon(bin, imageDir string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "agentiso-bench")
	if err != nil {
		return nil, err
	}
	td, err := testdaemon.New(bin, dir, "agb")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d := &daemon{Daemon: td}
	ns := fmt.Sprintf("agb%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := hostcmd.Run(ctx, "ip", "netns", "add", ns); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("making the bench daemon's network namespace: %w", err)
	}
	d.netns, d.Netns = ns, ns
	if _, err := hostcmd.Run(ctx, "ip", "-n", ns, "link", "set", "lo", "up"); err != nil {
		d.remove()
		return nil, fmt.Errorf("making the bench daemon's network namespace: %w", err)
	}
	d.baseConfig = td.Config(testdaemon.Settings{ImageDir: imageDir, BootTimeoutSecs: 180}) + `
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
`
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
	return d.WriteConfig(d.baseConfig + pool)
}

// waitLog waits until the daemon's log holds msg more than n times and
// returns the count.
func (d *daemon) waitLog(ctx context.Context, msg string, n int, within time.Duration) (int, error) {
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(d.LogPath)
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

// remove stops the daemon, kills any QEMU it left running (by PID),
// removes their cgroups, deletes its network namespace (and with it the
// bridge, TAPs and tables it made there) and every directory it used.
func (d *daemon) remove() {
	_ = d.Cleanup()
	if d.netns != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = hostcmd.Run(ctx, "ip", "netns", "del", d.netns)
	}
	os.RemoveAll(d.Dir)
}

// logCount counts s in the daemon's whole log.
func (d *daemon) logCount(s string) int {
	b, _ := os.ReadFile(d.LogPath)
	return strings.Count(string(b), s)
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
	f, err := os.Open(d.LogPath)
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
	b, _ := os.ReadFile(d.LogPath)
	if m := regexp.MustCompile(`msg="qemu started".*\baccel=(\w+)`).FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return "unknown"
}

// client connects an MCP client through `agentiso mcp` over stdio, as an
// agent does.
func (d *daemon) client(ctx context.Context) (*mcp.ClientSession, error) {
	s, _, err := d.Client(ctx, "agentiso-bench", nil)
	return s, err
}
