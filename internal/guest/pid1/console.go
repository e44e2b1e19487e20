package pid1

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// consolePrefix starts every line PID 1 writes, so its lines stand out among
// the kernel's in the console log the host keeps.
const consolePrefix = "agentiso-guest: "

// NewConsoleLogger logs to the console. The wall clock is meaningless this
// early (it may not even be set), so each record carries the time since boot.
// The agent logs the same way, so the console log reads as one.
func NewConsoleLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&prefixWriter{w: w, prefix: consolePrefix}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.String("t", fmt.Sprintf("%.6f", bootTime().Seconds()))
			}
			return a
		},
	}))
}

// prefixWriter prefixes each Write, which slog's handlers make once per
// record.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, err := io.WriteString(p.w, p.prefix); err != nil {
		return 0, err
	}
	return p.w.Write(b)
}

// fatal reports err on the console and reboots. With -no-reboot the VM ends
// and the host finds the reason in the console tail.
func fatal(log *slog.Logger, err error) {
	log.Error("fatal, rebooting", "err", err)
	drainConsole()
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	// Reboot returned, so it failed. PID 1 exiting makes the kernel panic,
	// and panic=-1 reboots at once.
	os.Exit(1)
}

// drainConsole waits, briefly, until the console has sent what was written
// to it, so a reboot does not cut off the reason for it.
func drainConsole() {
	done := make(chan struct{})
	go func() {
		// TCSBRK with a non-zero argument is tcdrain(3).
		_ = unix.IoctlSetInt(int(os.Stderr.Fd()), unix.TCSBRK, 1)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(time.Second):
	}
}

// handleShutdownSignals makes SIGTERM and SIGINT (what the kernel sends init
// for ctrl-alt-del once that is disabled) a clean power-off.
func handleShutdownSignals(log *slog.Logger) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGTERM, unix.SIGINT)
	go func() {
		sig := <-ch
		log.Info("powering off", "signal", sig.String())
		drainConsole()
		unix.Sync()
		if err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF); err != nil {
			fatal(log, fmt.Errorf("powering off: %w", err))
		}
	}()
}
