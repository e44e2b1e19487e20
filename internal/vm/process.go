package vm

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// process is a QEMU process held by a pidfd, so signals and exit detection
// can never reach another process that reuses the PID.
type process struct {
	pid   int
	pidfd *os.File // non-blocking, registered with Go's poller
}

// openProcess opens a pidfd for pid. A process that no longer exists gives
// an error wrapping unix.ESRCH.
func openProcess(pid int) (*process, error) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("opening pidfd for %d: %w", pid, err)
	}
	return &process{pid: pid, pidfd: os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))}, nil
}

// exited reports, without blocking, whether the process has exited.
func (p *process) exited() bool {
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return true
	}
	var done bool
	rc.Control(func(fd uintptr) { done = pidfdReadable(int(fd)) })
	return done
}

// wait blocks until the process exits (the pidfd becomes readable), without
// a thread per process: Go's poller waits on the pidfd. It returns early
// with an error only if the pidfd is closed.
func (p *process) wait() error {
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool { return pidfdReadable(int(fd)) })
}

// signal sends sig to the process; an exited process is not an error.
func (p *process) signal(sig unix.Signal) error {
	rc, err := p.pidfd.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), sig, nil, 0) }); err != nil {
		return err
	}
	if errors.Is(serr, unix.ESRCH) {
		return nil
	}
	return serr
}

func (p *process) close() error { return p.pidfd.Close() }

func pidfdReadable(fd int) bool {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}

// readPIDFile reads the PID QEMU wrote to path.
func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s holds %.20q, not a PID", path, b)
	}
	return pid, nil
}

// processArgv reads a process's command line.
func processArgv(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil, nil
	}
	return strings.Split(string(b), "\x00"), nil
}
