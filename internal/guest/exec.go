package guest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// execPath is the PATH a command gets unless its request sets one.
const execPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseEnv is what every command's environment starts from. Nothing of the
// agent's own environment leaks through.
var baseEnv = map[string]string{
	"PATH": execPath,
	"HOME": "/root",
	"USER": "root",
	"LANG": "C.UTF-8",
	// Output goes to a pipe, not a terminal.
	"TERM": "dumb",
}

// execEnv is a command's environment: baseEnv, then each layer in turn
// (the persistent variables of set_env, then the request's own), sorted.
// Each layer was checked against the blocklist when it arrived (protocol
// validates every SetEnv, Exec and JobStart); the whole is checked again
// here, the one place every command's environment passes, so no source of
// environment can bring a blocked name in (M-9, L-9).
func execEnv(layers ...map[string]string) ([]string, error) {
	env := maps.Clone(baseEnv)
	for _, l := range layers {
		maps.Copy(env, l)
	}
	for k := range env {
		if protocol.EnvBlocked(k) {
			return nil, errdefs.Invalidf("env: %s is blocked (it changes how every program is loaded or run)", k)
		}
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out, nil
}

// exec runs one command and streams its output and exit to the host.
func (a *Agent) exec(st net.Conn, req *protocol.Exec) {
	a.capped(st, func() (*protocol.Exit, error) { return a.runCommand(st, req) })
}

// capped runs run in one of the MaxExecs slots for running commands and
// answers the host with its Exit, or its error; with every slot taken it
// refuses at once. The slot is free again before the answer leaves, so a
// host that starts its next command on the answer finds it free.
func (a *Agent) capped(st net.Conn, run func() (*protocol.Exit, error)) {
	select {
	case a.execs <- struct{}{}:
	default:
		a.fail(st, errdefs.Unavailablef("too many commands running (at most %d)", a.opts.MaxExecs))
		return
	}
	exit, err := func() (*protocol.Exit, error) {
		defer func() { <-a.execs }()
		return run()
	}()
	if err != nil {
		a.fail(st, err)
		return
	}
	a.reply(st, exit)
}

// runCommand starts req, forwards its output while it runs, and returns
// its Exit. It returns an error only when the command could not start.
func (a *Agent) runCommand(st net.Conn, req *protocol.Exec) (*protocol.Exit, error) {
	cmd, err := a.command(req.Argv, req.Workdir, req.Env)
	if err != nil {
		return nil, err
	}
	if len(req.Stdin) > 0 {
		cmd.Stdin = bytes.NewReader(req.Stdin)
	}
	var sendMu sync.Mutex
	sendOut := func(m *protocol.Output) error {
		sendMu.Lock()
		defer sendMu.Unlock()
		return send(st, m)
	}
	outW := &outputWriter{stream: protocol.Stdout, left: req.MaxOutputBytes, send: sendOut}
	errW := &outputWriter{stream: protocol.Stderr, left: req.MaxOutputBytes, send: sendOut}
	stdout, err := newOutputPipe(outW, a.opts.OutputGrace)
	if err != nil {
		return nil, err
	}
	defer stdout.close()
	stderr, err := newOutputPipe(errW, a.opts.OutputGrace)
	if err != nil {
		return nil, err
	}
	defer stderr.close()
	cmd.Stdout, cmd.Stderr = stdout.child, stderr.child
	// exec.Cmd copies stdin in a goroutine; with a WaitDelay, Wait closes
	// that pipe once the command has exited rather than wait for a process
	// it left holding stdin unread.
	cmd.WaitDelay = a.opts.OutputGrace

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, errdefs.With(classOf(err), fmt.Sprintf("starting %s: %s", req.Argv[0], errText(err)), err)
	}
	g := &group{pgid: cmd.Process.Pid}
	// The command has its copies; the pipes end when it and whatever it
	// started have closed theirs.
	stdout.child.Close()
	stderr.child.Close()
	// Output is read while the command runs, as it comes.
	go stdout.forward()
	go stderr.forward()

	var timedOut atomic.Bool
	if req.TimeoutMs > 0 {
		t := time.AfterFunc(time.Duration(req.TimeoutMs)*time.Millisecond, func() {
			timedOut.Store(true)
			g.kill(unix.SIGKILL)
		})
		defer t.Stop()
	}
	watched := make(chan struct{})
	var stopWatching atomic.Bool
	go func() {
		defer close(watched)
		a.watchExec(st, g, &stopWatching)
	}()

	waitErr := cmd.Wait()
	stdout.drain()
	stderr.drain()
	g.exited()
	stopWatching.Store(true)
	st.SetReadDeadline(time.Unix(1, 0))
	<-watched

	if cmd.ProcessState == nil {
		return nil, fmt.Errorf("waiting for %s: %w", req.Argv[0], waitErr)
	}
	exit := &protocol.Exit{
		ExitCode:   cmd.ProcessState.ExitCode(),
		TimedOut:   timedOut.Load(),
		Truncated:  outW.truncated || errW.truncated,
		DurationMs: time.Since(start).Milliseconds(),
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		exit.ExitCode = -1
		exit.Signal = unix.SignalName(ws.Signal())
	}
	return exit, nil
}

// command prepares argv to run in workdir ("/" when empty) with the
// persistent environment and env on top, in a process group of its own, so
// a timeout, a signal or the host giving up reaches everything it started.
func (a *Agent) command(argv []string, workdir string, env map[string]string) (*exec.Cmd, error) {
	if workdir == "" {
		workdir = "/"
	}
	if fi, err := os.Stat(workdir); err != nil {
		return nil, fsError("workdir", workdir, err)
	} else if !fi.IsDir() {
		return nil, errdefs.Invalidf("workdir %s: not a directory", workdir)
	}
	cmdEnv, err := execEnv(a.env.snapshot(), env)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if cmd.Err != nil {
		return nil, errdefs.With(classOf(cmd.Err), fmt.Sprintf("argv[0] %s: %s", argv[0], errText(cmd.Err)), cmd.Err)
	}
	cmd.Dir = workdir
	cmd.Env = cmdEnv
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// watchExec reads the exec stream while the command runs: Signal messages
// signal the process group; the stream ending (the host closed it, gave up
// or went away) kills the group, since nobody waits for the result any
// more. stop is set, and the read deadline passed, when the command is done.
func (a *Agent) watchExec(st net.Conn, g *group, stop *atomic.Bool) {
	for {
		m, err := protocol.Read(st)
		if stop.Load() {
			return
		}
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				a.log.Debug("exec stream ended before the command, killing it", "pgid", g.pgid, "err", err)
			}
			g.kill(unix.SIGKILL)
			return
		}
		sig, ok := m.(*protocol.Signal)
		if !ok {
			a.log.Warn("unexpected message on an exec stream, killing the command", "type", m.Type())
			g.kill(unix.SIGKILL)
			return
		}
		// protocol validated the name, so the lookup cannot fail.
		g.kill(unix.SignalNum(sig.Signal))
	}
}

// group is a command's process group.
type group struct {
	pgid int

	mu   sync.Mutex
	done bool
}

// kill sends sig to every process of the group, unless the command has
// been waited for (its pgid may then name another group).
func (g *group) kill(sig syscall.Signal) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.done {
		_ = unix.Kill(-g.pgid, sig)
	}
}

func (g *group) exited() {
	g.mu.Lock()
	g.done = true
	g.mu.Unlock()
}

// maxDrain bounds how long output is still forwarded after the command
// exits, should something it left behind keep writing.
const maxDrain = 10 * time.Second

// outputSink receives a command's output from an outputPipe: an
// outputWriter (exec) or a tailBuffer (background jobs).
type outputSink interface {
	io.Writer
	// flush is called once the output has ended.
	flush()
}

// outputPipe carries one output stream of a command to an outputSink.
// The agent reads the pipe itself, rather than letting exec.Cmd copy it,
// to tell output still queued in the pipe (always delivered) from a pipe
// held open, idle, by a process the command left in the background (not
// waited for).
type outputPipe struct {
	child *os.File // the command's end
	r     *os.File
	out   outputSink

	grace    time.Duration
	draining atomic.Bool
	done     chan struct{}
}

func newOutputPipe(out outputSink, grace time.Duration) (*outputPipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating an output pipe: %w", err)
	}
	return &outputPipe{child: w, r: r, out: out, grace: grace, done: make(chan struct{})}, nil
}

// forward copies the pipe to the writer until the pipe ends, the writer
// fails (the host is gone) or, once draining, the pipe stays empty for the
// grace period.
func (p *outputPipe) forward() {
	defer close(p.done)
	buf := make([]byte, 32<<10)
	for {
		n, err := p.r.Read(buf)
		if n > 0 {
			if _, err := p.out.Write(buf[:n]); err != nil {
				return
			}
			if p.draining.Load() {
				p.r.SetReadDeadline(time.Now().Add(p.grace))
			}
		}
		if err != nil {
			return
		}
	}
}

// drain waits, after the command has exited, for its remaining output:
// until the pipe ends, or has been empty for grace, or maxDrain passed.
func (p *outputPipe) drain() {
	p.draining.Store(true)
	p.r.SetReadDeadline(time.Now().Add(p.grace))
	select {
	case <-p.done:
	case <-time.After(maxDrain):
		p.r.Close() // ends a read; a send to a slow host ends by its own deadline
		<-p.done
	}
	p.out.flush()
}

// close releases the pipe (and the command's end, if it never started).
func (p *outputPipe) close() {
	p.child.Close()
	p.r.Close()
}

// outputWriter forwards one output stream of a command as Output messages:
// chunks of at most ChunkSize bytes that never end inside a UTF-8 sequence,
// at most left bytes in all. Past that it keeps accepting, and drops, what
// the command writes, so the command never blocks on a full pipe and the
// agent never buffers more than one chunk (finding M-10).
type outputWriter struct {
	stream protocol.Stream
	send   func(*protocol.Output) error
	left   int64

	buf       []byte // the chunk being built; starts with held bytes
	held      int    // bytes of an unfinished UTF-8 sequence at buf's start
	truncated bool
	err       error // the first failed send; the command's output goes nowhere
}

// Write implements io.Writer.
func (w *outputWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && w.err == nil && !w.truncated {
		if w.buf == nil {
			w.buf = make([]byte, 0, protocol.ChunkSize)
		}
		take := min(len(p), protocol.ChunkSize-w.held)
		w.buf = append(w.buf[:w.held], p[:take]...)
		p = p[take:]
		w.emit(false)
	}
	if w.err != nil {
		return 0, w.err
	}
	return n, nil
}

// flush sends what is held back at the end of the output.
func (w *outputWriter) flush() {
	if w.held > 0 && w.err == nil && !w.truncated {
		w.buf = w.buf[:w.held]
		w.emit(true)
	}
}

// emit sends buf up to its last complete character (all of it when final),
// within the byte budget, and keeps the unfinished rest for the next write.
func (w *outputWriter) emit(final bool) {
	n := len(w.buf)
	if int64(n) > w.left {
		n = protocol.RuneBoundary(w.buf, int(w.left))
		w.truncated = true
	} else if !final {
		n = protocol.RuneBoundary(w.buf, n)
	}
	if n > 0 {
		if err := w.send(&protocol.Output{Stream: w.stream, Data: string(w.buf[:n])}); err != nil {
			w.err = fmt.Errorf("sending %s: %w", w.stream, err)
			return
		}
		w.left -= int64(n)
	}
	if w.truncated {
		w.held = 0
		return
	}
	w.held = copy(w.buf, w.buf[n:])
}
