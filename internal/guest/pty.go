package guest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// ptyTerm is the TERM a terminal session gets unless its request sets one:
// the host side is xterm.js.
const ptyTerm = "xterm-256color"

// ptyHangupGrace is how long a terminal's programs get after a hangup
// (SIGHUP) before they are killed, and how long output is still read after
// the shell exits.
const ptyHangupGrace = 500 * time.Millisecond

// loginShells are tried in order when a terminal request names no program.
var loginShells = [][]string{{"/bin/bash", "-l"}, {"/bin/sh", "-l"}}

// pty runs a program on a new pseudo-terminal and carries its bytes both
// ways until it ends. A terminal counts against the cap on running
// commands.
func (a *Agent) pty(st net.Conn, req *protocol.PTYOpen) {
	a.capped(st, func() (*protocol.Exit, error) { return a.runPTY(st, req) })
}

// runPTY starts the program and serves its terminal. It returns an error
// only when the program could not start.
func (a *Agent) runPTY(st net.Conn, req *protocol.PTYOpen) (*protocol.Exit, error) {
	argv := req.Argv
	if len(argv) == 0 {
		argv = loginShells[len(loginShells)-1]
		for _, sh := range loginShells {
			if _, err := os.Stat(sh[0]); err == nil {
				argv = sh
				break
			}
		}
	}
	workdir := req.Workdir
	if workdir == "" {
		workdir = "/root"
		if _, err := os.Stat(workdir); err != nil {
			workdir = "/"
		}
	}
	// The terminal's own TERM, then set_env's variables and the request's.
	env, err := execEnv(map[string]string{"TERM": ptyTerm}, a.env.snapshot(), req.Env)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = workdir
	cmd.Env = env
	start := time.Now()
	// StartWithSize makes the program a session leader with the terminal
	// as its controlling tty, so its process group is its own.
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: uint16(req.Rows), Cols: uint16(req.Cols)})
	if err != nil {
		return nil, errdefs.With(classOf(err), fmt.Sprintf("starting %s on a terminal: %s", argv[0], errText(err)), err)
	}
	defer ptmx.Close()
	// pty's setup left the descriptor blocking; non-blocking again, it is
	// served by the runtime poller, so deadlines and Close end a read.
	if rc, err := ptmx.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { _ = unix.SetNonblock(int(fd), true) })
	}
	g := &group{pgid: cmd.Process.Pid}

	waited := make(chan struct{})
	var state *os.ProcessState
	go func() {
		_ = cmd.Wait()
		state = cmd.ProcessState
		g.exited()
		close(waited)
	}()
	// Once the shell has exited, what it left writing to the terminal
	// gets a moment; then the terminal is done.
	go func() {
		<-waited
		ptmx.SetReadDeadline(time.Now().Add(ptyHangupGrace))
	}()

	inputDone := make(chan struct{})
	go func() {
		defer close(inputDone)
		a.ptyInput(st, ptmx, g, waited)
	}()

	buf := make([]byte, 32<<10)
	for {
		n, rerr := ptmx.Read(buf)
		if n > 0 {
			if err := send(st, &protocol.PTYOutput{Data: buf[:n]}); err != nil {
				hangUp(g, waited)
				break
			}
		}
		if rerr != nil {
			break // EIO: no program holds the terminal any more; or the deadline after exit
		}
	}
	hangUp(g, waited)
	<-waited
	st.SetReadDeadline(time.Unix(1, 0))
	<-inputDone

	exit := &protocol.Exit{ExitCode: -1, DurationMs: time.Since(start).Milliseconds()}
	if state != nil {
		exit.ExitCode = state.ExitCode()
		if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			exit.ExitCode = -1
			exit.Signal = unix.SignalName(ws.Signal())
		}
	}
	return exit, nil
}

// ptyInput writes what the host sends to the terminal and applies
// resizes. The stream ending (the host closed the tab, or went away)
// hangs the terminal up.
func (a *Agent) ptyInput(st net.Conn, ptmx *os.File, g *group, waited <-chan struct{}) {
	for {
		m, err := protocol.Read(st)
		if err != nil {
			select {
			case <-waited:
			default:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					a.log.Debug("terminal stream ended, hanging up", "pgid", g.pgid, "err", err)
				}
				hangUp(g, waited)
			}
			return
		}
		switch m := m.(type) {
		case *protocol.PTYInput:
			ptmx.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := ptmx.Write(m.Data); err != nil {
				a.log.Debug("writing to a terminal", "err", err)
			}
		case *protocol.PTYResize:
			if err := setWinsize(ptmx, m.Rows, m.Cols); err != nil {
				a.log.Debug("resizing a terminal", "err", err)
			}
		default:
			a.log.Warn("unexpected message on a terminal stream, hanging up", "type", m.Type())
			hangUp(g, waited)
			return
		}
	}
}

// hangUp sends SIGHUP to the terminal's process group, as a closing
// terminal does, and SIGKILL after a grace period if it is still there.
func hangUp(g *group, waited <-chan struct{}) {
	g.kill(unix.SIGHUP)
	g.kill(unix.SIGCONT)
	go func() {
		select {
		case <-waited:
		case <-time.After(ptyHangupGrace):
			g.kill(unix.SIGKILL)
		}
	}()
}

// setWinsize resizes the terminal without making its descriptor blocking
// (pty.Setsize would, through Fd).
func setWinsize(ptmx *os.File, rows, cols int) error {
	rc, err := ptmx.SyscallConn()
	if err != nil {
		return err
	}
	var ioErr error
	err = rc.Control(func(fd uintptr) {
		ioErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
	})
	if err != nil {
		return err
	}
	return ioErr
}
