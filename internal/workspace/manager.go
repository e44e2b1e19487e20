// Package workspace is the lifecycle manager: the one place that orchestrates
// a workspace's VM, disk, guest channel and persisted state. Edges (MCP
// tools, CLI, dashboard) call it with the Caller the daemon assigned; it
// enforces ownership, so a session only ever sees its own workspaces.
package workspace

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/image"
	"github.com/agentiso/agentiso/internal/keylock"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/storage"
	"github.com/agentiso/agentiso/internal/vm"
)

// VMRunner starts and re-attaches workspace VMs (package vm).
type VMRunner interface {
	Start(ctx context.Context, spec vm.Spec) (*vm.VM, error)
	Attach(ctx context.Context, spec vm.Spec) (*vm.VM, error)
}

// Guest is what the manager asks of a running VM's guest agent. The channel
// a VM was started with (package channel) provides it.
type Guest interface {
	Configure(ctx context.Context, m protocol.Configure) error
	Exec(ctx context.Context, req protocol.Exec, onOutput func(protocol.Stream, string)) (*channel.ExecResult, error)
	WriteFile(ctx context.Context, path string, mode uint32, r io.Reader, size int64) error
	ReadFile(ctx context.Context, path string, offset, limit int64, w io.Writer) (*protocol.FileInfo, error)
}

// Limits are the resource defaults and bounds from the configuration.
type Limits struct {
	DefaultVCPUs, DefaultMemoryMB, DefaultDiskGB int
	MaxVCPUs, MaxMemoryMB, MaxDiskGB             int
	// MaxWorkspacesPerSession bounds one session's workspaces;
	// MaxMemoryMBPerSession and MaxDiskGBPerSession the sums of their sizes.
	MaxWorkspacesPerSession int
	MaxMemoryMBPerSession   int
	MaxDiskGBPerSession     int
	// MaxTotalVMs bounds the workspaces of all sessions together.
	MaxTotalVMs int
	// MinMemoryMB is the smallest guest that boots.
	MinMemoryMB int
	// MaxSnapshotsPerWorkspace bounds one workspace's snapshots; new
	// snapshots and forks are refused when they would leave less than
	// MinFreeBytes, or MinFreePercent of the storage filesystem, free (M-19).
	MaxSnapshotsPerWorkspace int
	MinFreeBytes             int64
	MinFreePercent           int
	// StaleSession is how long a session may be silent before another may
	// take over its workspaces with workspace_adopt's force.
	StaleSession time.Duration
}

// Options configures a Manager.
type Options struct {
	Store  *state.Store
	Runner VMRunner
	Disks  storage.Backend
	// Image is the base image every workspace boots.
	Image *image.Image
	// RunDir holds one short directory per running VM (sockets, pidfile).
	RunDir string
	// LogDir holds one directory per workspace with its console and QEMU
	// logs; they outlive the VM and go with the workspace.
	LogDir string
	Limits Limits
	// Transfer confines file_transfer on the host (transfer.go).
	Transfer TransferLimits
	Logger   *slog.Logger
	// PauseAt names a pause point for crash tests (pausepoint.go); empty
	// outside tests.
	PauseAt string
	// Template and Pool make creates fast (template.go, pool.go).
	Template TemplateOptions
	Pool     PoolOptions
	// Network, when set, gives every workspace a network interface on the
	// bridge; nil means workspaces have none.
	Network *NetworkOptions
	// InstanceEnv names persistent exec environment that belongs to one
	// workspace only (the MCP bridge's URL and token): a fork resumed from
	// a memory snapshot drops it before anything else (hooks.go).
	InstanceEnv []string
}

// Manager owns every workspace's lifecycle.
type Manager struct {
	store    *state.Store
	runner   VMRunner
	disks    storage.Backend
	image    *image.Image
	runDir   string
	logDir   string
	limits   Limits
	transfer TransferLimits
	net      *netState
	log      *slog.Logger
	pauseAt  string
	template TemplateOptions
	pool     PoolOptions

	// tmpl is the built memory template, tmplPending the layer of the one
	// being built; tmplKick wakes the builder.
	tmplMu       sync.Mutex
	tmpl         *template
	tmplPending  string
	tmplBuilding bool
	tmplKick     chan struct{}
	// ps is the warm pool; poolKick wakes its filler. Lock order: a state
	// transaction, then poolMu.
	poolMu   sync.Mutex
	ps       poolState
	poolKick chan struct{}
	// stopBackground ends the template builder and the pool filler.
	stopBackground context.CancelFunc
	background     sync.WaitGroup
	// locks serialise lifecycle operations on one workspace.
	locks keylock.Locks

	mu sync.Mutex
	// live holds the VMs of running workspaces, by workspace ID.
	live map[string]*vm.VM
	// stopping marks VMs whose exit the manager caused, so their watcher
	// does not record it as a crash.
	stopping map[string]bool

	// usage caches disk usage measurements (usage.go).
	usage usageCache

	// instanceEnv and onStarted: hooks.go.
	instanceEnv []string
	onStarted   atomic.Pointer[StartedFunc]
}

// New returns a Manager. Call Recover before serving requests.
func New(o Options) (*Manager, error) {
	if o.Store == nil || o.Runner == nil || o.Disks == nil || o.Image == nil {
		return nil, errors.New("workspace manager: store, runner, disks and image are required")
	}
	if err := o.Limits.check(); err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{o.RunDir, o.LogDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("creating %s: %w", d, err)
		}
	}
	ns, err := newNetState(o.Network)
	if err != nil {
		return nil, err
	}
	return &Manager{
		store: o.Store, runner: o.Runner, disks: o.Disks, image: o.Image,
		runDir: o.RunDir, logDir: o.LogDir, limits: o.Limits, transfer: o.Transfer, net: ns, log: o.Logger,
		pauseAt: o.PauseAt, template: o.Template, pool: o.Pool, instanceEnv: o.InstanceEnv,
		tmplKick: make(chan struct{}, 1), poolKick: make(chan struct{}, 1),
		live: map[string]*vm.VM{}, stopping: map[string]bool{},
	}, nil
}

// errNoWorkspace is the one answer for a workspace the caller may not see:
// it does not say whether the workspace exists, nor echo its name (L-16).
func errNoWorkspace() error {
	return errdefs.NotFoundf("workspace_id: no such workspace in this session")
}

// resolve finds the workspace ref (an ID or a name) owned by c, or any
// workspace for an admin.
func (m *Manager) resolve(ctx context.Context, c Caller, ref string) (state.Workspace, error) {
	w, err := lookup(ctx, m.store, ref)
	if err != nil {
		return state.Workspace{}, err
	}
	if !c.mayAct(w) {
		return state.Workspace{}, errNoWorkspace()
	}
	return w, nil
}

// mayAct reports whether c may see and act on w: its owner, or an admin.
func (c Caller) mayAct(w state.Workspace) bool {
	return c.Admin || w.Owner == c.SessionID
}

// lock takes the lifecycle lock of workspace id.
func (m *Manager) lock(id string) func() { return m.locks.Lock(id) }

// liveVM returns the running VM of workspace id, or an error that says the
// workspace is not running.
func (m *Manager) liveVM(w state.Workspace) (*vm.VM, Guest, error) {
	m.mu.Lock()
	v := m.live[w.ID]
	m.mu.Unlock()
	if v == nil || w.State != state.WorkspaceRunning {
		return nil, nil, errdefs.Conflictf("workspace_id: the workspace is %s, not running (start it with workspace_start)", displayState(w.State))
	}
	g, ok := v.Channel().(Guest)
	if !ok || g == nil {
		return nil, nil, errdefs.Unavailablef("workspace_id: the workspace's guest agent is not connected")
	}
	return v, g, nil
}

// spec is the VM description of workspace w.
func (m *Manager) spec(w state.Workspace, disk string) vm.Spec {
	return vm.Spec{
		ID:         w.ID,
		VCPUs:      w.VCPUs,
		MemoryMB:   w.MemoryMB,
		Kernel:     m.image.KernelPath(),
		Initrd:     m.image.InitrdPath(),
		KernelArgs: m.image.KernelArgs(),
		Disk:       disk,
		RunDir:     filepath.Join(m.runDir, w.ID),
		LogDir:     m.logsOf(w.ID),
		Net:        m.netSpec(w),
	}
}

func (m *Manager) logsOf(id string) string { return filepath.Join(m.logDir, id) }

// boot starts workspace w's VM on its disk, gives the guest its identity and
// starts watching for the VM's exit. It does not change state.
func (m *Manager) boot(ctx context.Context, w state.Workspace) (*vm.VM, error) {
	disk, err := m.disks.Path(w.ID)
	if err != nil {
		return nil, fmt.Errorf("finding disk of %s: %w", w.ID, err)
	}
	if err := m.prepareTAP(w); err != nil {
		return nil, err
	}
	v, err := m.runner.Start(ctx, m.spec(w, disk))
	if err != nil {
		return nil, err
	}
	if err := m.configure(ctx, v, w); err != nil {
		_ = v.Kill()
		return nil, err
	}
	m.adopt(w.ID, v)
	return v, nil
}

// configure gives the guest its identity.
func (m *Manager) configure(ctx context.Context, v *vm.VM, w state.Workspace) error {
	g, ok := v.Channel().(Guest)
	if !ok {
		return errors.New("guest channel does not support configure")
	}
	if err := g.Configure(ctx, protocol.Configure{Hostname: Hostname(w.Name), Network: m.guestNet(w)}); err != nil {
		return fmt.Errorf("configuring guest of %s: %w", w.ID, err)
	}
	return nil
}

// adopt records v as workspace id's running VM and watches for its exit.
func (m *Manager) adopt(id string, v *vm.VM) {
	m.mu.Lock()
	m.live[id] = v
	m.mu.Unlock()
	go m.watch(id, v)
}

// watch waits for v to exit. An exit the manager did not cause (a crash, a
// poweroff inside the guest) marks the workspace stopped with the reason.
func (m *Manager) watch(id string, v *vm.VM) {
	<-v.Done()
	m.mu.Lock()
	if m.live[id] == v {
		delete(m.live, id)
	}
	expected := m.stopping[id]
	m.mu.Unlock()
	if expected {
		return
	}
	unlock := m.lock(id)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w, err := m.store.UpdateWorkspace(ctx, id, func(w *state.Workspace) error {
		if w.State != state.WorkspaceRunning || w.PID != v.PID() {
			return errUnchanged
		}
		w.State = state.WorkspaceStopped
		w.PID = 0
		w.LastError = "the VM exited on its own (guest poweroff or crash); see workspace_logs"
		return nil
	})
	if err != nil && !errors.Is(err, errUnchanged) && !errdefs.Is(err, errdefs.NotFound) {
		m.log.Error("recording VM exit", "workspace", id, "err", err)
		return
	}
	if err == nil {
		m.dropTAP(w)
		m.log.Warn("workspace VM exited unexpectedly", "workspace", id)
	}
}

// errUnchanged makes an UpdateWorkspace func leave the record as it is.
var errUnchanged = errors.New("unchanged")

// stopVM stops v gracefully (or kills it when graceful is false) and waits
// for its exit, marking the exit as expected.
func (m *Manager) stopVM(ctx context.Context, id string, v *vm.VM, graceful bool) error {
	m.mu.Lock()
	m.stopping[id] = true
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.stopping, id)
		if m.live[id] == v {
			delete(m.live, id)
		}
		m.mu.Unlock()
	}()
	var err error
	if graceful {
		err = v.Stop(ctx)
	} else {
		err = v.Kill()
	}
	if err != nil {
		return err
	}
	select {
	case <-v.Done():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the VM of %s to exit: %w", id, ctx.Err())
	}
}

// StartBackground starts building the memory template (when enabled and
// missing) and filling the warm pool (when enabled). Call it once, after
// Recover; Close stops both.
func (m *Manager) StartBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	m.stopBackground = cancel
	if m.template.Enabled {
		m.tmplMu.Lock()
		m.tmplBuilding = m.tmpl == nil // before the pool looks
		m.tmplMu.Unlock()
		m.background.Go(func() { m.templateLoop(ctx) })
	}
	if m.poolTarget() > 0 {
		m.background.Go(func() { m.poolLoop(ctx) })
	}
}

// Close detaches from every running VM without stopping it: VMs outlive the
// daemon, and the next daemon re-attaches to them. The warm pool's VMs,
// which have no record, are ended, as is a template build under way.
func (m *Manager) Close() {
	if m.stopBackground != nil {
		m.stopBackground()
	}
	m.background.Wait()
	m.drainPool()
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, v := range m.live {
		m.stopping[id] = true
		v.Detach()
	}
	m.live = map[string]*vm.VM{}
}

// Hostname derives a valid hostname from a workspace name: characters other
// than letters, digits and '-' become '-', at most 63, no '-' at either end.
func Hostname(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	h := strings.Trim(string(b), "-")
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-")
	}
	if h == "" {
		return "workspace"
	}
	return h
}

func displayState(s state.WorkspaceState) string {
	if s == "" {
		return "unknown"
	}
	return string(s)
}
