package workspace

import "context"

// PauseAtEnv names the environment variable that makes the daemon stop at
// one named point of a multi-step operation (create, snapshot, fork) and
// wait there, so that an end-to-end test can kill -9 it exactly there and
// check what the next daemon repairs. Unset (always, outside tests) every
// pause point is inert: one string comparison.
//
// The points: create.started (record "creating", disk made, VM started,
// guest not yet given its identity), create.booted (VM running with its
// identity, record still "creating"),
// snapshot.recorded (record "creating", nothing frozen), snapshot.saved
// (layer frozen and memory saved, VM still paused, record "creating"),
// fork.disks (fork records "creating", their disks made, no VM) and
// fork.booted (a fork's VM running, its record still "creating").
const PauseAtEnv = "AGENTISO_TEST_PAUSE_AT"

// pausePoint blocks while the operation is at the point named by
// Options.PauseAt, until ctx ends. It logs that it was reached: a test
// waits for that line, then kills the daemon.
func (m *Manager) pausePoint(ctx context.Context, point string) {
	if m.pauseAt == "" || m.pauseAt != point {
		return
	}
	m.log.Warn("test pause point reached; waiting to be killed", "point", point)
	<-ctx.Done()
}
