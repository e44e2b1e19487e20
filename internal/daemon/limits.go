package daemon

import (
	"context"
	"fmt"
	"log/slog"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/session"
	"github.com/agentiso/agentiso/internal/state"
)

// newLimiter is the rate limiter of every tool call, from [limits].
func newLimiter(l config.Limits) (*session.Limiter, error) {
	return session.NewLimiter(session.LimiterConfig{
		Session: session.Rates{Create: l.CreatePerMin, Exec: l.ExecPerMin, Default: l.DefaultPerMin},
		Global:  session.Rates{Create: l.GlobalCreatePerMin, Exec: l.GlobalExecPerMin, Default: l.GlobalDefaultPerMin},
	})
}

// Descriptors the daemon may hold, by what holds them (finding M-22: the
// limits on connections and VMs are chosen so that together they fit the
// process's descriptor limit, checked at start).
const (
	// fdsPerConnection: the client's socket.
	fdsPerConnection = 1
	// fdsPerVM: QMP, console and channel sockets, the console log, the
	// QEMU log, the pidfile check and a file transfer, with room to spare.
	fdsPerVM = 12
	// fdsBase: the state database and its WAL, the listener, logs, the
	// runtime's own, and short-lived files (images, probes).
	fdsBase = 256
)

// fdsNeeded is how many descriptors the configured limits may use at once.
func fdsNeeded(cfg config.Config) uint64 {
	return uint64(fdsBase + cfg.Limits.MaxConnections*fdsPerConnection + cfg.VM.MaxTotalVMs*fdsPerVM)
}

// checkFDLimit raises the soft descriptor limit to what the configuration
// needs, up to the hard limit, and refuses to start when even the hard limit
// is too low: better a clear error now than a failed accept or VM start
// under load.
func checkFDLimit(cfg config.Config, log *slog.Logger) error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("reading the descriptor limit: %w", err)
	}
	need := fdsNeeded(cfg)
	if err := fitFDLimit(&lim, need); err != nil {
		return err
	}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raising the descriptor limit to %d: %w", lim.Cur, err)
	}
	log.Debug("descriptor limit", "soft", lim.Cur, "hard", lim.Max, "needed", need)
	return nil
}

// fitFDLimit raises lim.Cur to need if lim.Max allows, or says which
// settings to change.
func fitFDLimit(lim *unix.Rlimit, need uint64) error {
	if lim.Max < need {
		return errdefs.Invalidf("the daemon may need %d file descriptors (limits.max_connections and vm.max_total_vms) but its hard limit is %d: "+
			"lower those settings or raise LimitNOFILE in the service unit", need, lim.Max)
	}
	if lim.Cur < need {
		lim.Cur = need
	}
	return nil
}

// endPreviousSessions ends the sessions a previous daemon left open (it
// stopped without ending them, as a crash does): no connection of theirs
// can exist any more, so their workspaces are orphans that their agents, on
// reconnecting, find with workspace_list and take back with
// workspace_adopt. Call it once this daemon owns the socket.
func endPreviousSessions(ctx context.Context, store *state.Store, log *slog.Logger) error {
	open, err := store.ListSessions(ctx, state.SessionFilter{ActiveOnly: true})
	if err != nil {
		return fmt.Errorf("listing sessions: %w", err)
	}
	for _, s := range open {
		if err := store.EndSession(ctx, s.ID); err != nil {
			return fmt.Errorf("ending a session of the previous daemon: %w", err)
		}
	}
	if len(open) > 0 {
		log.Info("ended the sessions of the previous daemon; their workspaces can be adopted", "sessions", len(open))
	}
	return nil
}
