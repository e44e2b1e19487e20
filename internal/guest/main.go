package guest

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/guest/pid1"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Main runs the agent until it is told to stop (SIGTERM, SIGINT) and
// returns the process exit code. PID 1 starts it as `agentiso-guest agent`,
// with its boot measurements in the environment, and restarts it if it
// dies. The log goes to stderr, which PID 1 points at the console.
func Main() int {
	log := pid1.NewConsoleLogger(os.Stderr).With("component", "agent")
	a := NewAgent(Options{
		Logger:       log,
		KernelToInit: envDuration(log, pid1.EnvKernelToInitNs),
		InitStart:    envDuration(log, pid1.EnvInitStartNs),
	})
	ctx, stop := signal.NotifyContext(context.Background(), unix.SIGTERM, unix.SIGINT)
	defer stop()
	log.Info("agent serving the host channel", "version", a.opts.Version, "port", protocol.PortName)
	err := a.ServePort(ctx, SysVirtioPorts, "/dev")
	a.Close()
	if ctx.Err() != nil {
		log.Info("agent stopped")
		return 0
	}
	log.Error("agent failed", "err", err)
	return 1
}

// envDuration reads a nanosecond count PID 1 left in the environment.
func envDuration(log *slog.Logger, name string) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return 0
	}
	ns, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		log.Warn("ignoring a malformed boot measurement", "var", name, "value", s)
		return 0
	}
	return time.Duration(ns)
}
