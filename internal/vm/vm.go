package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/qemu"
)

// killWait bounds the wait for QEMU to die after SIGKILL.
const killWait = 10 * time.Second

// qemuLogCheck is how often qemu.log is checked against its bound.
const qemuLogCheck = 10 * time.Second

var (
	errQEMUExited  = errors.New("qemu exited")
	errBootTimeout = errors.New("the boot timeout passed")
)

// BootInfo is how long a VM took to become ready.
type BootInfo struct {
	// Ready is QEMU start to the guest's first answered Ping; zero for an
	// attached VM.
	Ready time.Duration
	// KernelToInit is the guest kernel's share: kernel start to PID 1.
	KernelToInit time.Duration
	// Pong is the guest's first answer.
	Pong protocol.Pong
	// LoadState is the time spent loading a saved memory state (a VM
	// started with Spec.Incoming); zero for a boot.
	LoadState time.Duration
	// Resumed is QEMU start to the guest's CPUs running (QMP answering,
	// the console connected, AfterStart done, "cont" answered); zero for
	// an attached VM.
	Resumed time.Duration
}

// VM is a running QEMU and the connections to it.
type VM struct {
	cfg   Config
	spec  Spec
	paths paths
	proc  *process
	log   *slog.Logger

	started time.Time
	boot    BootInfo

	mu      sync.Mutex
	qmp     *qemu.QMP
	ch      Channel
	console net.Conn
	clog    *consoleLog
	// consoleDone is closed when the console copier has finished.
	consoleDone chan struct{}
	// shutdownReason is the reason of QEMU's last SHUTDOWN event.
	shutdownReason string

	exited    chan struct{} // QEMU has exited
	done      chan struct{} // and everything is cleaned up (or detached)
	closeDone func()
	detached  atomic.Bool
	// stopping is set once Stop or Kill begins: a channel session that
	// ends then is not replaced.
	stopping atomic.Bool
	stopMu   sync.Mutex
}

func newVM(r *Runner, spec Spec, p paths, proc *process, log *slog.Logger) *VM {
	v := &VM{
		cfg:    r.cfg,
		spec:   spec,
		paths:  p,
		proc:   proc,
		log:    log,
		exited: make(chan struct{}),
		done:   make(chan struct{}),
	}
	v.closeDone = sync.OnceFunc(func() { close(v.done) })
	go v.boundQEMULog()
	return v
}

// ID is the VM's ID.
func (v *VM) ID() string { return v.spec.ID }

// PID is QEMU's process ID.
func (v *VM) PID() int { return v.proc.pid }

// Spec is what the VM was started or attached with.
func (v *VM) Spec() Spec { return v.spec }

// Boot reports the VM's boot timing and the guest's first answer.
func (v *VM) Boot() BootInfo { return v.boot }

// Channel is the connected guest channel.
func (v *VM) Channel() Channel {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.ch
}

// QMP is the connected QMP monitor.
func (v *VM) QMP() *qemu.QMP {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.qmp
}

// Done is closed once QEMU has exited and the VM's sockets and pidfile are
// removed, or once the VM is detached.
func (v *VM) Done() <-chan struct{} { return v.done }

// ConsoleTail returns the last n lines of the VM's console log, sanitised.
// It works after the VM has stopped.
func (v *VM) ConsoleTail(n int) (string, error) { return ConsoleTail(v.paths.logDir, n) }

// Stop shuts the VM down gracefully and waits for QEMU to exit: the guest
// agent is asked to sync and power off; if QEMU is still there after the
// stop timeout it is told to quit over QMP; after another stop timeout (or
// when ctx ends) it is killed. Sockets and pidfile are removed; the logs
// stay. Stopping a stopped VM does nothing.
func (v *VM) Stop(ctx context.Context) error {
	v.stopMu.Lock()
	defer v.stopMu.Unlock()
	v.stopping.Store(true)
	if v.hasExited() {
		<-v.done
		return nil
	}
	start := time.Now()
	step := v.cfg.StopTimeout

	if ch := v.Channel(); ch != nil {
		sctx, cancel := context.WithTimeout(ctx, step)
		err := ch.Shutdown(sctx)
		if err == nil && v.waitExited(sctx) {
			cancel()
			<-v.done
			v.log.Info("vm stopped", "how", "guest shutdown", "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		cancel()
		v.log.Warn("guest did not shut down; quitting qemu", "err", err)
	}
	if q := v.QMP(); q != nil && ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, step)
		err := q.Execute(qctx, "quit", nil, nil)
		// The reply may lose the race with QEMU closing the socket.
		if (err == nil || errors.Is(err, qemu.ErrQMPClosed)) && v.waitExited(qctx) {
			cancel()
			<-v.done
			v.log.Info("vm stopped", "how", "qmp quit", "took", time.Since(start).Round(time.Millisecond))
			return nil
		}
		cancel()
		v.log.Warn("qemu did not quit; killing it", "err", err)
	}
	return v.kill()
}

// Kill kills QEMU at once (SIGKILL) and waits for it to exit and for the
// VM's sockets and pidfile to be removed.
func (v *VM) Kill() error {
	v.stopMu.Lock()
	defer v.stopMu.Unlock()
	v.stopping.Store(true)
	return v.kill()
}

func (v *VM) kill() error {
	if !v.hasExited() {
		if err := v.proc.signal(unix.SIGKILL); err != nil {
			return fmt.Errorf("killing qemu of %s: %w", v.spec.ID, err)
		}
	}
	select {
	case <-v.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("killing qemu of %s: pid %d still there after %v", v.spec.ID, v.proc.pid, killWait)
	}
}

// Detach closes the daemon's connections to the VM and stops watching it,
// leaving QEMU running: for a daemon that stops while its VMs live on.
// Attach picks the VM up again. Done is closed; the VM value must not be
// used afterwards.
func (v *VM) Detach() {
	v.stopMu.Lock()
	defer v.stopMu.Unlock()
	if v.detached.Swap(true) {
		return
	}
	v.closeConns()
	v.finishConsole()
	v.proc.close()
	v.closeDone()
}

func (v *VM) hasExited() bool {
	select {
	case <-v.exited:
		return true
	default:
		return false
	}
}

func (v *VM) waitExited(ctx context.Context) bool {
	select {
	case <-v.exited:
		return true
	case <-ctx.Done():
		return false
	}
}

// untilExit derives a context from ctx that also ends at deadline (cause
// errBootTimeout) and when QEMU exits (cause errQEMUExited).
func (v *VM) untilExit(ctx context.Context, deadline time.Time) (context.Context, context.CancelFunc) {
	tctx, cancelTimeout := context.WithDeadlineCause(ctx, deadline, errBootTimeout)
	ectx, cancel := context.WithCancelCause(tctx)
	stop := make(chan struct{})
	go func() {
		select {
		case <-v.exited:
			cancel(errQEMUExited)
		case <-ectx.Done():
		case <-stop:
		}
	}()
	return ectx, func() {
		close(stop)
		cancel(nil)
		cancelTimeout()
	}
}

// connect attaches QMP, the console and the channel. A fresh VM (paused by
// -S) is let run once the console is connected, so no output is lost; an
// attached VM is let run only if a daemon died before doing so, and its
// channel port is reset once it runs (see resetChannelPort).
func (v *VM) connect(ctx context.Context, fresh bool) error {
	q, err := qemu.DialQMP(ctx, v.paths.qmp, v.log)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.qmp = q
	v.mu.Unlock()
	go v.watchEvents(q)

	// QMP answering means QEMU has created every chardev: the console
	// socket exists.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", v.paths.console)
	if err != nil {
		return fmt.Errorf("connecting to the console: %w", err)
	}
	clog, err := openConsoleLog(v.paths.consoleLog, v.cfg.ConsoleLogMaxBytes)
	if err != nil {
		conn.Close()
		return err
	}
	consoleDone := make(chan struct{})
	v.mu.Lock()
	v.console, v.clog, v.consoleDone = conn, clog, consoleDone
	v.mu.Unlock()
	go func() {
		defer close(consoleDone)
		if _, err := io.Copy(clog, conn); err != nil && !errors.Is(err, net.ErrClosed) {
			v.log.Warn("console log", "err", err)
		}
	}()

	cont := fresh
	if fresh && v.spec.Incoming != "" {
		if err := v.loadMemory(ctx, q); err != nil {
			return err
		}
	}
	if !fresh {
		st, err := q.QueryStatus(ctx)
		if err != nil {
			return fmt.Errorf("querying vm status: %w", err)
		}
		if st.Status == "inmigrate" {
			// A daemon died before the VM got its saved state.
			return errors.New("the vm never received the memory state it was started to resume")
		}
		// A daemon that died while the VM saved its memory for a snapshot
		// leaves the save running: run to completion it would pause the VM
		// again and hand its disk away. End it before anything else.
		if ran, err := q.StopMigration(ctx); err != nil {
			return fmt.Errorf("ending a memory save left running: %w", err)
		} else if ran {
			v.log.Warn("ended a memory save a previous daemon left running")
			if st, err = q.QueryStatus(ctx); err != nil {
				return fmt.Errorf("querying vm status: %w", err)
			}
		}
		switch st.Status {
		case "prelaunch":
			cont = true
		case "paused", "postmigrate":
			// A daemon died while the VM was paused for a snapshot: no VM
			// is meant to stay paused without a daemon that resumes it.
			v.log.Warn("resuming a vm left paused", "status", st.Status)
			cont = true
		}
	}
	if cont {
		if err := q.Execute(ctx, "cont", nil, nil); err != nil {
			return fmt.Errorf("starting the guest: %w", err)
		}
		if fresh {
			v.boot.Resumed = time.Since(v.started)
		}
	}
	if !fresh {
		// The VM runs now (cont has returned, or it was running), so
		// QEMU sees this hang-up whatever happened to the port while
		// the VM was paused. (A VM in a state that does not run, e.g.
		// crashed, does not answer the Ping below either.)
		if err := resetChannelPort(ctx, v.paths.channel); err != nil {
			return err
		}
	}

	var wait time.Duration
	if !fresh || v.spec.Incoming != "" {
		wait = resumedPingWait // the guest's agent is already up
	}
	ch, pong, err := connectChannel(ctx, v.cfg.Dial, v.paths.channel, wait)
	if err != nil {
		return err
	}
	v.mu.Lock()
	v.ch = ch
	v.mu.Unlock()
	go v.keepChannel(ch)
	v.boot.Pong = *pong
	v.boot.KernelToInit = time.Duration(pong.KernelToInitNs)
	return nil
}

// watchEvents logs QMP events and remembers why QEMU shut down.
func (v *VM) watchEvents(q *qemu.QMP) {
	for ev := range q.Events() {
		switch ev.Name {
		case "SHUTDOWN":
			reason := string(ev.Data)
			v.mu.Lock()
			v.shutdownReason = reason
			v.mu.Unlock()
			v.log.Info("qemu shutdown event", "data", reason)
		default:
			v.log.Debug("qemu event", "event", ev.Name, "data", string(ev.Data))
		}
	}
}

// bootError makes the error of a failed boot or attach, after QEMU is gone:
// its public text names what went wrong and carries the console tail (and
// QEMU's own messages if QEMU exited by itself).
func (v *VM) bootError(ctx, bootCtx context.Context, err error) error {
	v.Kill()
	if ctx.Err() != nil {
		return fmt.Errorf("starting vm %s: %w", v.spec.ID, ctx.Err())
	}
	var msg strings.Builder
	class := errdefs.Unavailable
	switch cause := context.Cause(bootCtx); {
	case errors.Is(cause, errBootTimeout):
		class = errdefs.Timeout
		fmt.Fprintf(&msg, "vm %s did not become ready within %v", v.spec.ID, v.cfg.BootTimeout)
	case errors.Is(cause, errQEMUExited):
		fmt.Fprintf(&msg, "vm %s stopped during boot", v.spec.ID)
		if qlog, _ := tailLog(v.paths.qemuLog, 10); qlog != "" {
			fmt.Fprintf(&msg, "\nqemu said:\n%s", qlog)
		}
	default:
		fmt.Fprintf(&msg, "vm %s failed to boot", v.spec.ID)
	}
	tail, _ := v.ConsoleTail(consoleTailLines)
	if tail == "" {
		tail = "(empty)"
	}
	fmt.Fprintf(&msg, "\nconsole tail:\n%s", tail)
	return errdefs.With(class, msg.String(), err)
}

// processExited runs once QEMU has exited: it closes the connections,
// finishes the console log and removes the sockets and pidfile.
func (v *VM) processExited(err error) {
	if v.detached.Load() {
		// Whoever attached since owns the VM's files and log.
		close(v.exited)
		v.closeDone()
		return
	}
	close(v.exited)
	v.closeConns()
	v.finishConsole()
	v.proc.close()
	v.mu.Lock()
	reason := v.shutdownReason
	v.mu.Unlock()
	if !v.detached.Load() {
		removeRunFiles(v.paths)
		if v.cfg.AfterExit != nil {
			v.cfg.AfterExit(v.spec)
		}
	}
	v.log.Info("qemu exited", "pid", v.proc.pid, "status", err, "shutdown", reason)
	v.closeDone()
}

// finishConsole waits for the console copier to drain what QEMU wrote
// (its connection is closed or at EOF) and closes the log.
func (v *VM) finishConsole() {
	v.mu.Lock()
	consoleDone := v.consoleDone
	v.mu.Unlock()
	if consoleDone != nil {
		<-consoleDone
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.clog != nil {
		v.clog.Close()
	}
}

func (v *VM) closeConns() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.ch != nil {
		v.ch.Close()
	}
	if v.qmp != nil {
		v.qmp.Close()
	}
	if v.console != nil {
		v.console.Close()
	}
}

// boundQEMULog keeps qemu.log under its bound. QEMU appends to it through
// its own descriptor (O_APPEND), so truncating in place is safe.
func (v *VM) boundQEMULog() {
	t := time.NewTicker(qemuLogCheck)
	defer t.Stop()
	for {
		select {
		case <-v.done:
			return
		case <-t.C:
			if fi, err := os.Stat(v.paths.qemuLog); err == nil && fi.Size() > v.cfg.QEMULogMaxBytes {
				if err := os.Truncate(v.paths.qemuLog, 0); err == nil {
					v.log.Warn("qemu.log passed its bound and was truncated", "bytes", fi.Size())
				}
			}
		}
	}
}
