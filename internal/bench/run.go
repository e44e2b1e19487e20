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
}

// plan is how many times each figure is sampled.
type plan struct {
	boots, execs, small, large, snaps, lists int
	idle                                     []int
	listRows                                 int
}

func (o Options) plan() plan {
	p := plan{boots: 5, execs: 30, small: 5, large: 3, snaps: 5, lists: 20, idle: []int{1, 5, 10}, listRows: 100}
	if o.Short {
		p = plan{boots: 2, execs: 10, small: 3, large: 1, snaps: 2, lists: 10, idle: []int{1, 2}, listRows: 100}
	}
	if o.IdleVMs != nil {
		p.idle = o.IdleVMs
	}
	return p
}

// Figure names, used as floors and by the e2e benchmark.
const (
	FigColdBoot      = "cold boot to guest-ready (qemu start to first answer)"
	FigKernelToInit  = "kernel start to PID 1 (same boots)"
	FigInitToReady   = "PID 1 to guest-ready (same boots)"
	FigReadyOverhead = "guest-ready minus kernel-to-PID-1"
	FigCreateCold    = "workspace_create, cold (MCP wall time)"
	FigCreatePool    = "workspace_create from the warm pool"
	FigExecMCP       = "exec `true`, MCP round trip"
	FigExecChannel   = "exec `true`, raw channel round trip"
	FigSnapDisk      = "snapshot create, disk only"
	FigSnapMem       = "snapshot create, with memory"
	FigForkDisk      = "workspace_fork from a disk snapshot"
	FigForkMem       = "workspace_fork from a memory snapshot"
	FigRestoreMem    = "snapshot restore, memory snapshot"
	FigRestoreDisk   = "snapshot restore, disk snapshot"
	FigDestroy       = "workspace_destroy (running)"
	FigList          = "workspace_list, 100 workspaces in the DB"
)

// FigTransfer names a file throughput figure: path "MCP" or "channel",
// dir "write" or "read", size "1MiB" or "64MiB".
func FigTransfer(path, dir, size string) string {
	return fmt.Sprintf("file %s %s, %s", dir, size, path)
}

// FigDaemonRSS and FigVMMemory name the memory figures at n idle VMs.
func FigDaemonRSS(n int) string { return fmt.Sprintf("daemon RSS, %d idle VMs", n) }
func FigVMMemory(n int) string  { return fmt.Sprintf("host memory per VM (QEMU PSS), %d idle VMs", n) }
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
	mcp  pathTimes // the MCP side, kept until the channel side is taken
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
	if err := r.all(ctx); err != nil {
		return nil, fmt.Errorf("%w\ndaemon log (end):\n%s", err, d.logTail())
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
	if err := r.d.start(ctx); err != nil {
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
		{"MCP exec and files", r.mcpPath},
		{"raw channel exec and files", r.channelPath},
		{"snapshots, forks, restores", r.snapshots},
		{"memory of idle VMs", r.idleMemory},
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
}

func (r *run) create(ctx context.Context, name string) (wsResult, time.Duration, error) {
	start := time.Now()
	w, err := call[wsResult](ctx, r.s, "workspace_create", map[string]any{"name": name})
	return w, time.Since(start), err
}

// destroy destroys a workspace and counts the time in the destroy figure.
func (r *run) destroy(ctx context.Context, ws string) error {
	start := time.Now()
	if _, err := call[map[string]any](ctx, r.s, "workspace_destroy", map[string]any{"workspace_id": ws}); err != nil {
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
		if i > 0 {
			if err := r.destroy(ctx, w.ID); err != nil {
				return err
			}
		}
	}
	r.ws = created[0]
	logged := r.d.boots()
	var ready, k2i, i2r, over []float64
	for _, id := range created {
		b, ok := logged[id]
		if !ok {
			return fmt.Errorf("the daemon logged no \"vm ready\" line for %s", id)
		}
		ready = append(ready, ms(b.Ready))
		k2i = append(k2i, ms(b.KernelToInit))
		i2r = append(i2r, ms(b.InitToReady))
		over = append(over, ms(b.Ready-b.KernelToInit))
	}
	floor := newFigure(FigKernelToInit, "ms", k2i)
	boot := newFigure(FigColdBoot, "ms", ready).withFloor(floor)
	r.add(boot)
	r.add(floor)
	r.add(newFigure(FigInitToReady, "ms", i2r))
	r.add(newFigure(FigReadyOverhead, "ms", over).withTarget("<= 100 ms", func(f Figure) bool { return f.Median <= 100 }))
	cold := newFigure(FigCreateCold, "ms", wall).withFloor(boot)
	r.add(cold)
	r.add(unavailable(FigCreatePool, "ms", "the warm pool is not on main yet; nothing to measure").
		withFloor(cold).withTarget("<= 0.1x cold boot", nil))
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

// mcpPath times exec and file transfer through the full MCP path:
// client -> agentiso mcp -> daemon -> channel -> guest.
func (r *run) mcpPath(ctx context.Context) error {
	if err := os.MkdirAll(r.d.transferDir(), 0o700); err != nil {
		return err
	}
	for _, sz := range transferSizes {
		if err := randomFile(filepath.Join(r.d.transferDir(), sz.name), sz.n); err != nil {
			return err
		}
	}
	t := pathTimes{write: map[string][]float64{}, read: map[string][]float64{}}
	args := map[string]any{"workspace_id": r.ws, "command": "true"}
	for i := range r.plan.execs + 1 {
		start := time.Now()
		res, err := call[execResult](ctx, r.s, "exec", args)
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
			if _, err := call[map[string]any](ctx, r.s, "file_transfer", map[string]any{"workspace_id": r.ws,
				"direction": "upload", "host_path": sz.name, "guest_path": "/root/" + sz.name}); err != nil {
				return err
			}
			t.write[sz.name] = append(t.write[sz.name], mbps(sz.n, time.Since(start)))
			start = time.Now()
			if _, err := call[map[string]any](ctx, r.s, "file_transfer", map[string]any{"workspace_id": r.ws,
				"direction": "download", "host_path": "back-" + sz.name, "guest_path": "/root/" + sz.name}); err != nil {
				return err
			}
			t.read[sz.name] = append(t.read[sz.name], mbps(sz.n, time.Since(start)))
			os.Remove(filepath.Join(r.d.transferDir(), "back-"+sz.name))
		}
	}
	r.mcp = t
	return nil
}

func (r *run) reps(n int64) int {
	if n > 8<<20 {
		return r.plan.large
	}
	return r.plan.small
}

// channelPath stops the daemon (the VM keeps running), dials the VM's
// channel socket itself and times the same requests the tools send, then
// starts a new daemon, which re-attaches the VM, and adopts the workspace.
func (r *run) channelPath(ctx context.Context) error {
	if err := r.d.stop(); err != nil {
		return err
	}
	r.s.Close()
	r.s = nil
	t, err := r.rawChannel(ctx)
	if err != nil {
		return err
	}
	if err := r.d.start(ctx); err != nil {
		return err
	}
	if err := r.connect(ctx); err != nil {
		return err
	}
	if _, err := call[map[string]any](ctx, r.s, "workspace_adopt", map[string]any{"workspace_id": r.ws}); err != nil {
		return err
	}

	execChan := newFigure(FigExecChannel, "ms", t.exec)
	r.add(newFigure(FigExecMCP, "ms", r.mcp.exec).withFloor(execChan).
		withTarget("<= 3x raw channel", func(f Figure) bool { return *f.Ratio <= 3 }))
	r.add(execChan)
	for _, sz := range transferSizes {
		for _, dir := range []string{"write", "read"} {
			m, c := r.mcp.write[sz.name], t.write[sz.name]
			if dir == "read" {
				m, c = r.mcp.read[sz.name], t.read[sz.name]
			}
			cf := newFigure(FigTransfer("channel", dir, sz.name), "MB/s", c)
			r.add(newFigure(FigTransfer("MCP", dir, sz.name), "MB/s", m).withFloor(cf).
				withTarget(">= 0.5x raw channel", func(f Figure) bool { return *f.Ratio >= 0.5 }))
			r.add(cf)
		}
	}
	return nil
}

// rawChannel is channelPath's measurement, with no daemon running. The
// requests are the ones the exec and file_transfer tools send; a read goes
// to a host file that is synced, as a download is.
func (r *run) rawChannel(ctx context.Context) (pathTimes, error) {
	t := pathTimes{write: map[string][]float64{}, read: map[string][]float64{}}
	c, err := channel.Dial(ctx, r.d.channelSocket(r.ws), channel.Options{})
	if err != nil {
		return t, err
	}
	defer c.Close()
	req := protocol.Exec{Argv: []string{"/bin/sh", "-c", "true"}, Workdir: "/root", MaxOutputBytes: 256 << 10, TimeoutMs: 120000}
	for i := range r.plan.execs + 1 {
		start := time.Now()
		if _, err := c.Exec(ctx, req, nil); err != nil {
			return t, err
		}
		if i > 0 {
			t.exec = append(t.exec, ms(time.Since(start)))
		}
	}
	for _, sz := range transferSizes {
		src := filepath.Join(r.d.transferDir(), sz.name)
		dst := filepath.Join(r.d.transferDir(), "raw-back-"+sz.name)
		for range r.reps(sz.n) {
			start := time.Now()
			if err := writeFrom(ctx, c, src, "/root/raw-"+sz.name, sz.n); err != nil {
				return t, err
			}
			t.write[sz.name] = append(t.write[sz.name], mbps(sz.n, time.Since(start)))
			start = time.Now()
			if err := readTo(ctx, c, "/root/raw-"+sz.name, dst); err != nil {
				return t, err
			}
			t.read[sz.name] = append(t.read[sz.name], mbps(sz.n, time.Since(start)))
			os.Remove(dst)
		}
	}
	return t, nil
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
