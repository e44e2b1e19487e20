package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/testdaemon"
)

// Options configure a Run.
type Options struct {
	// Binary is the agentiso executable whose daemon and MCP shim are
	// measured.
	Binary string
	// ImageDir is the guest image the daemon boots.
	ImageDir string
	// Short runs few iterations and few VMs, for CI; the full mode runs
	// enough for a stable median.
	Short bool
	// IdleVMs are the VM counts the memory figures are taken at; nil means
	// 1, 5, 10 (full) or 1, 2 (short).
	IdleVMs []int
	// Log receives progress lines; nil discards them.
	Log *slog.Logger
	// KeepLogs, when set, is a directory the daemon's log and the console
	// logs of the cold-booted VMs are copied to, to see where boot time
	// goes.
	KeepLogs string
}

// plan is how many times each figure is sampled.
type plan struct {
	boots, rounds, execs, small, large, snaps, lists int
	idle                                             []int
	listRows                                         int
}

func (o Options) plan() plan {
	p := plan{boots: 5, rounds: 3, execs: 20, small: 3, large: 1, snaps: 5, lists: 20, idle: []int{1, 5, 10}, listRows: 100}
	if o.Short {
		p = plan{boots: 2, rounds: 2, execs: 10, small: 2, large: 1, snaps: 2, lists: 10, idle: []int{1, 2}, listRows: 100}
	}
	if o.IdleVMs != nil {
		p.idle = o.IdleVMs
	}
	return p
}

// Figure names, used as floors and by the e2e benchmark.
const (
	FigColdBoot       = "cold boot, QEMU start to guest-ready"
	FigResumed        = "QEMU start to guest CPUs running (same boots)"
	FigBeforeKernel   = "guest CPUs running to kernel start (same boots)"
	FigReadyToPong    = "guest-ready to the first ping answered (same boots)"
	FigKernelToInit   = "kernel start to PID 1 (same boots)"
	FigKernelToReady  = "kernel start to guest-ready (same boots)"
	FigInitToReady    = "PID 1 to guest-ready (same boots)"
	FigCreateCold     = "workspace_create, cold (MCP wall time)"
	FigCreatePool     = "workspace_create from the warm pool (MCP wall time)"
	FigCreateTemplate = "workspace_create from the memory template (MCP wall time)"
	FigExecMCP        = "exec `true`, MCP round trip"
	FigExecChannel    = "exec `true`, raw channel round trip"
	FigSnapDisk       = "snapshot create, disk only"
	FigSnapMem        = "snapshot create, with memory"
	FigForkDisk       = "workspace_fork from a disk snapshot"
	FigForkMem        = "workspace_fork from a memory snapshot"
	FigRestoreMem     = "snapshot restore, memory snapshot"
	FigRestoreDisk    = "snapshot restore, disk snapshot"
	FigDestroy        = "workspace_destroy (running)"
	FigList           = "workspace_list, 100 workspaces in the DB"
)

// FigTransfer names a file throughput figure: path "MCP" or "channel",
// dir "write" or "read", size "1MiB" or "64MiB".
func FigTransfer(path, dir, size string) string {
	return fmt.Sprintf("file %s %s, %s", dir, size, path)
}

// FigDaemonRSS and FigVMMemory name the memory figures at n idle VMs.
func FigDaemonRSS(n int) string { return fmt.Sprintf("daemon RSS, %d idle VMs", n) }
func FigVMMemory(n int) string  { return fmt.Sprintf("host memory per VM (QEMU PSS), %d idle VMs", n) }
func FigVMAnon(n int) string {
	return fmt.Sprintf("host memory per VM, anonymous only (QEMU Pss_Anon), %d idle VMs", n)
}
func FigGuestWorkingSet(n int) string {
	return fmt.Sprintf("guest working set (MemTotal-MemAvailable), %d idle VMs", n)
}

// transferSizes are the file sizes moved each way on each path.
var transferSizes = []struct {
	name string
	n    int64
}{{"1MiB", 1 << 20}, {"64MiB", 64 << 20}}

// run is the state of one Run.
type run struct {
	opts Options
	plan plan
	log  *slog.Logger
	d    *daemon
	s    *mcp.ClientSession
	ws   string // the workspace most figures are taken on
	figs []Figure
	// samples collects destroy times from every step that destroys.
	destroys []float64
}

// Run starts a private daemon, measures every figure and removes everything
// it made: the daemon, its VMs (by PID, should the daemon fail to), their
// cgroups and its directories. It needs root, QEMU and a built image.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Binary == "" || opts.ImageDir == "" {
		return nil, errors.New("bench: Binary and ImageDir must be set")
	}
	if _, err := os.Stat(filepath.Join(opts.ImageDir, "manifest.json")); err != nil {
		return nil, fmt.Errorf("no guest image at %s: %w", opts.ImageDir, err)
	}
	r := &run{opts: opts, plan: opts.plan(), log: opts.Log}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	start := time.Now()
	d, err := newDaemon(opts.Binary, opts.ImageDir)
	if err != nil {
		return nil, err
	}
	r.d = d
	defer d.remove()
	if opts.KeepLogs != "" {
		if err := os.MkdirAll(opts.KeepLogs, 0o755); err != nil {
			return nil, err
		}
		defer copyFile(d.LogPath, filepath.Join(opts.KeepLogs, "daemon.log"))
	}
	if err := r.all(ctx); err != nil {
		return nil, fmt.Errorf("%w\ndaemon log (end):\n%s", err, d.LogTail(4000))
	}
	mode := "full"
	if opts.Short {
		mode = "short"
	}
	return &Report{Mode: mode, StartedAt: start, Duration: time.Since(start).Round(time.Second).String(),
		Host: r.host(), Figures: r.figs}, nil
}

func (r *run) host() Host {
	h := Host{Accel: r.d.accel(), CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("qemu-system-x86_64", "--version").Output(); err == nil {
		h.QEMU, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	}
	return h
}

// all takes every figure in turn.
func (r *run) all(ctx context.Context) error {
	if err := r.d.Start(ctx); err != nil {
		return err
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"cold boots", r.coldBoots},
		{"exec and files, MCP and raw channel", r.exchange},
		{"snapshots, forks, restores", r.snapshots},
		{"memory of idle VMs", r.idleMemory},
		{"warm pool and memory template", r.warmCreates},
		{"workspace_list", r.list},
	}
	for _, st := range steps {
		r.log.Info("bench: measuring", "step", st.name)
		if err := st.f(ctx); err != nil {
			return fmt.Errorf("%s: %w", st.name, err)
		}
	}
	r.add(newFigure(FigDestroy, "ms", r.destroys))
	return nil
}

func (r *run) add(f Figure) { r.figs = append(r.figs, f) }

func (r *run) connect(ctx context.Context) error {
	if r.s != nil {
		r.s.Close()
	}
	s, err := r.d.client(ctx)
	r.s = s
	return err
}

// wsResult is the part of a workspace_create or workspace_fork result the
// bench reads.
type wsResult struct {
	ID         string `json:"workspace_id"`
	BootTimeMs int64  `json:"boot_time_ms"`
	FromPool   bool   `json:"from_pool"`
}

func (r *run) create(ctx context.Context, name string) (wsResult, time.Duration, error) {
	return r.createArgs(ctx, map[string]any{"name": name})
}

func (r *run) createArgs(ctx context.Context, args map[string]any) (wsResult, time.Duration, error) {
	start := time.Now()
	w, err := testdaemon.Call[wsResult](ctx, r.s, "workspace_create", args)
	return w, time.Since(start), err
}

// destroy destroys a workspace and counts the time in the destroy figure.
func (r *run) destroy(ctx context.Context, ws string) error {
	start := time.Now()
	if _, err := testdaemon.Call[map[string]any](ctx, r.s, "workspace_destroy", map[string]any{"workspace_id": ws}); err != nil {
		return err
	}
	r.destroys = append(r.destroys, ms(time.Since(start)))
	return nil
}

// coldBoots creates workspaces one after another with nothing else running
// but the first; the first stays as the workspace the later figures use.
func (r *run) coldBoots(ctx context.Context) error {
	var created []string
	var wall []float64
	for i := range r.plan.boots {
		w, took, err := r.create(ctx, fmt.Sprintf("boot-%d", i))
		if err != nil {
			return err
		}
		created = append(created, w.ID)
		wall = append(wall, ms(took))
		if err := r.keepConsole(w.ID); err != nil {
			return err
		}
		if i > 0 {
			if err := r.destroy(ctx, w.ID); err != nil {
				return err
			}
		}
	}
	r.ws = created[0]
	logged := r.d.boots()
	var ready, resumed, before, pong, k2i, k2r, i2r []float64
	for _, id := range created {
		b, ok := logged[id]
		if !ok {
			return fmt.Errorf("the daemon logged no \"vm ready\" line for %s", id)
		}
		ready = append(ready, ms(b.Ready))
		resumed = append(resumed, ms(b.Resumed))
		before = append(before, ms(b.Ready-b.Resumed-b.Uptime))
		pong = append(pong, ms(b.Uptime-b.KernelToInit-b.InitToReady))
		k2i = append(k2i, ms(b.KernelToInit))
		k2r = append(k2r, ms(b.KernelToInit+b.InitToReady))
		i2r = append(i2r, ms(b.InitToReady))
	}
	floor := newFigure(FigKernelToInit, "ms", k2i)
	boot := newFigure(FigColdBoot, "ms", ready)
	r.add(boot)
	r.add(newFigure(FigResumed, "ms", resumed))
	r.add(newFigure(FigBeforeKernel, "ms", before))
	r.add(floor)
	r.add(newFigure(FigKernelToReady, "ms", k2r).withFloor(floor).
		withTarget("<= floor + 100 ms", func(f Figure) bool { return f.Median <= floor.Median+100 }))
	r.add(newFigure(FigInitToReady, "ms", i2r).withTarget("<= 100 ms", func(f Figure) bool { return f.Median <= 100 }))
	r.add(newFigure(FigReadyToPong, "ms", pong))
	cold := newFigure(FigCreateCold, "ms", wall).withFloor(boot)
	r.add(cold)
	return nil
}

// execResult is the part of an exec result the bench checks.
type execResult struct {
	ExitCode int `json:"exit_code"`
}

// pathTimes are one path's (MCP or channel) raw samples.
type pathTimes struct {
	exec        []float64
	write, read map[string][]float64 // MB/s by size name
}

func newPathTimes() pathTimes {
	return pathTimes{write: map[string][]float64{}, read: map[string][]float64{}}
}

// exchange times exec and file transfer on both paths in alternating
// rounds, so that a change in the load of a shared host falls on both
// sides: the full MCP path (client -> agentiso mcp -> daemon -> channel ->
// guest), then, with the daemon stopped (the VM keeps running), the VM's
// channel socket dialled directly with the same requests the tools send;
// then a new daemon re-attaches the VM and the workspace is adopted.
func (r *run) exchange(ctx context.Context) error {
	if err := os.MkdirAll(r.d.TransferDir(), 0o700); err != nil {
		return err
	}
	for _, sz := range transferSizes {
		if err := randomFile(filepath.Join(r.d.TransferDir(), sz.name), sz.n); err != nil {
			return err
		}
	}
	viaMCP, viaChan := newPathTimes(), newPathTimes()
	for range r.plan.rounds {
		if err := r.mcpRound(ctx, &viaMCP); err != nil {
			return err
		}
		if err := r.d.Stop(); err != nil {
			return err
		}
		r.s.Close()
		r.s = nil
		if err := r.channelRound(ctx, &viaChan); err != nil {
			return err
		}
		if err := r.d.Start(ctx); err != nil {
			return err
		}
		if err := r.connect(ctx); err != nil {
			return err
		}
		if _, err := testdaemon.Call[map[string]any](ctx, r.s, "workspace_adopt", map[string]any{"workspace_id": r.ws}); err != nil {
			return err
		}
	}

	execChan := newFigure(FigExecChannel, "ms", viaChan.exec)
	r.add(newFigure(FigExecMCP, "ms", viaMCP.exec).withFloor(execChan).
		withTarget("<= 3x raw channel", func(f Figure) bool { return *f.Ratio <= 3 }))
	r.add(execChan)
	for _, sz := range transferSizes {
		for _, dir := range []string{"write", "read"} {
			m, c := viaMCP.write[sz.name], viaChan.write[sz.name]
			if dir == "read" {
				m, c = viaMCP.read[sz.name], viaChan.read[sz.name]
			}
			cf := newFigure(FigTransfer("channel", dir, sz.name), "MB/s", c)
			r.add(newFigure(FigTransfer("MCP", dir, sz.name), "MB/s", m).withFloor(cf).
				withTarget(">= 0.5x raw channel", func(f Figure) bool { return *f.Ratio >= 0.5 }))
			r.add(cf)
		}
	}
	return nil
}

// mcpRound is one round of exchange on the MCP path.
func (r *run) mcpRound(ctx context.Context, t *pathTimes) error {
	args := map[string]any{"workspace_id": r.ws, "command": "true"}
	for i := range r.plan.execs + 1 {
		start := time.Now()
		res, err := testdaemon.Call[execResult](ctx, r.s, "exec", args)
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("exec true: exit %d", res.ExitCode)
		}
		if i > 0 { // the first warms up
			t.exec = append(t.exec, ms(time.Since(start)))
		}
	}
	for _, sz := range transferSizes {
		for range r.reps(sz.n) {
			start := time.Now()
			if _, err := testdaemon.Call[map[string]any](ctx, r.s, "file_transfer", map[string]any{"workspace_id": r.ws,
				"direction": "upload", "host_path": sz.name, "guest_path": "/root/" + sz.name}); err != nil {
				return err
			}
			t.write[sz.name] = append(t.write[sz.name], mbps(sz.n, time.Since(start)))
			start = time.Now()
			if _, err := testdaemon.Call[map[string]any](ctx, r.s, "file_transfer", map[string]any{"workspace_id": r.ws,
				"direction": "download", "host_path": "back-" + sz.name, "guest_path": "/root/" + sz.name}); err != nil {
				return err
			}
			t.read[sz.name] = append(t.read[sz.name], mbps(sz.n, time.Since(start)))
			os.Remove(filepath.Join(r.d.TransferDir(), "back-"+sz.name))
		}
	}
	return nil
}

func (r *run) reps(n int64) int {
	if n > 8<<20 {
		return r.plan.large
	}
	return r.plan.small
}

// channelRound is one round of exchange on the raw channel, with no
// daemon running. A read goes to a host file that is synced, as a download
// is.
func (r *run) channelRound(ctx context.Context, t *pathTimes) error {
	c, err := channel.Dial(ctx, r.d.ChannelSocket(r.ws), channel.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	req := protocol.Exec{Argv: []string{"/bin/sh", "-c", "true"}, Workdir: "/root", MaxOutputBytes: 256 << 10, TimeoutMs: 120000}
	for i := range r.plan.execs + 1 {
		start := time.Now()
		if _, err := c.Exec(ctx, req, nil); err != nil {
			return err
		}
		if i > 0 {
			t.exec = append(t.exec, ms(time.Since(start)))
		}
	}
	for _, sz := range transferSizes {
		src := filepath.Join(r.d.TransferDir(), sz.name)
		dst := filepath.Join(r.d.TransferDir(), "raw-back-"+sz.name)
		for range r.reps(sz.n) {
			start := time.Now()
			if err := writeFrom(ctx, c, src, "/root/raw-"+sz.name, sz.n); err != nil {
				return err
			}
			t.write[sz.name] = append(t.write[sz.name], mbps(sz.n, time.Since(start)))
			start = time.Now()
			if err := readTo(ctx, c, "/root/raw-"+sz.name, dst); err != nil {
				return err
			}
			t.read[sz.name] = append(t.read[sz.name], mbps(sz.n, time.Since(start)))
			os.Remove(dst)
		}
	}
	return nil
}

// keepConsole copies a VM's console log to opts.KeepLogs, if set.
func (r *run) keepConsole(id string) error {
	if r.opts.KeepLogs == "" {
		return nil
	}
	return copyFile(filepath.Join(r.d.DataDir(), "workspaces", id, "console.log"),
		filepath.Join(r.opts.KeepLogs, "console-"+id+".log"))
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

func writeFrom(ctx context.Context, c *channel.Client, src, dst string, n int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return c.WriteFile(ctx, dst, 0o644, f, n)
}

func readTo(ctx context.Context, c *channel.Client, src, dst string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := c.ReadFile(ctx, src, 0, 0, f); err != nil {
		return err
	}
	return f.Sync()
}

func randomFile(path string, n int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.CopyN(f, rand.Reader, n)
	return err
}
