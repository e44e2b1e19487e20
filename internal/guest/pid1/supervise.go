package pid1

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Restart backoff for the agent: it doubles from minRestartDelay up to
// maxRestartDelay while the agent keeps dying young, and starts over once a
// run lasted stableRun.
const (
	minRestartDelay = 100 * time.Millisecond
	maxRestartDelay = 5 * time.Second
	stableRun       = 30 * time.Second
)

// supervisor starts the agent and restarts it when it exits, and reaps every
// other process that ends up as PID 1's child. The agent is not PID 1, so its
// own os/exec Wait calls never race this reaper.
type supervisor struct {
	log  *slog.Logger
	path string // the executable; argv[0] is only its name
	argv []string
	env  []string
}

// run supervises forever; it returns only if it cannot go on.
func (s *supervisor) run() error {
	devNull, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening /dev/null: %w", err)
	}
	defer devNull.Close()

	agent := 0 // the agent's pid, 0 while it is not running
	var started time.Time
	var delay time.Duration
	for {
		if agent == 0 {
			time.Sleep(delay)
			pid, err := syscall.ForkExec(s.path, s.argv, &syscall.ProcAttr{
				Dir:   "/",
				Env:   s.env,
				Files: []uintptr{devNull.Fd(), os.Stdout.Fd(), os.Stderr.Fd()},
				// Its own session: a signal meant for the agent's process
				// group never reaches PID 1, and the reverse.
				Sys: &syscall.SysProcAttr{Setsid: true},
			})
			if err != nil {
				delay = restartDelay(delay, 0)
				s.log.Error("starting the agent", "err", err, "retry_in", delay)
				continue
			}
			agent, started = pid, time.Now()
			s.log.Info("agent started", "pid", pid)
		}

		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// ECHILD cannot happen while the agent runs; anything else is
			// a broken kernel interface and not worth spinning on.
			return fmt.Errorf("waiting for children: %w", err)
		case pid == agent:
			ran := time.Since(started)
			delay = restartDelay(delay, ran)
			s.log.Error("agent exited, restarting", "status", describeExit(ws), "ran", ran.Round(time.Millisecond), "restart_in", delay)
			agent = 0
		}
	}
}

// restartDelay returns the wait before the next start of the agent, given
// the previous wait and how long the last run lasted.
func restartDelay(prev, ran time.Duration) time.Duration {
	if ran >= stableRun || prev == 0 {
		return minRestartDelay
	}
	return min(prev*2, maxRestartDelay)
}

// describeExit says how a process ended.
func describeExit(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return fmt.Sprintf("exit %d", ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + unix.SignalName(ws.Signal())
	default:
		return fmt.Sprintf("wait status %#x", uint32(ws))
	}
}
