package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// stopWait bounds the wait for a signalled process to exit.
const stopWait = 30 * time.Second

// runningVMs lists the QEMU processes of workspace VMs whose run
// directories are under vmRunDir.
func runningVMs(vmRunDir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		argv := cmdline(pid)
		if len(argv) == 0 || !strings.Contains(filepath.Base(argv[0]), "qemu-system") || zombie(pid) {
			continue
		}
		for _, a := range argv[1:] {
			if strings.Contains(a, vmRunDir+"/") {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(string(bytes.TrimSuffix(b, []byte{0})), "\x00")
}

func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}

// stopDaemon stops the daemon serving on socket, if one does: it learns
// the daemon's PID from the socket's peer credentials, checks that the
// process is an agentiso daemon, and ends it with SIGTERM (its VMs keep
// running). It returns the PID it stopped, or 0.
func stopDaemon(ctx context.Context, socket string) (int, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return 0, nil // nothing serves there
	}
	pid := -1
	if raw, err := c.(*net.UnixConn).SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				pid = int(cred.Pid)
			}
		})
	}
	c.Close()
	if pid <= 0 {
		return 0, fmt.Errorf("cannot tell which process serves %s", socket)
	}
	argv := cmdline(pid)
	if len(argv) < 2 || !strings.HasPrefix(filepath.Base(argv[0]), "agentiso") || argv[1] != "daemon" {
		return 0, fmt.Errorf("%s is served by pid %d (%q), not an agentiso daemon; stop it yourself", socket, pid, strings.Join(argv, " "))
	}
	if err := signalAndWait(pid, unix.SIGTERM); err != nil {
		return 0, fmt.Errorf("stopping the daemon (pid %d): %w", pid, err)
	}
	return pid, nil
}

// killPID kills pid and waits for it to exit.
func killPID(pid int) error { return signalAndWait(pid, unix.SIGKILL) }

// signalAndWait signals pid through a pidfd (so a reused PID is never
// hit) and waits for it to exit.
func signalAndWait(pid int, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(stopWait)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, 100)
		if n > 0 || err != nil && !errors.Is(err, unix.EINTR) {
			return nil
		}
	}
	return fmt.Errorf("pid %d still there %v after signal %v", pid, stopWait, sig)
}
