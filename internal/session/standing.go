package session

import (
	"time"

	"github.com/agentiso/agentiso/internal/state"
)

// Standing is where a workspace's owner session is, as another session
// looking at the workspace sees it.
type Standing int

// The standings.
const (
	// Live: the owner is connected and has been active recently. Its
	// workspaces are its own; others cannot see or take them.
	Live Standing = iota
	// Stale: the owner has not ended but has been silent for longer than
	// the stale threshold. Its workspaces are listed to others as orphans
	// and may be taken over with force.
	Stale
	// Ended: the owner's connection is gone. Its workspaces are orphans
	// that another session may adopt.
	Ended
)

// Policy decides who may see and take whose workspaces.
type Policy struct {
	// StaleAfter is how long a session may be silent before it counts as
	// stale (server.stale_session_secs, finding L-12).
	StaleAfter time.Duration
}

// TouchEvery is how often a session's last_seen is written while it is
// active. StandingOf allows for it, so a session never counts as stale
// before it has really been silent for StaleAfter.
func (p Policy) TouchEvery() time.Duration {
	return max(p.StaleAfter/10, 100*time.Millisecond)
}

// StandingOf returns the standing of owner at now.
func (p Policy) StandingOf(owner state.Session, now time.Time) Standing {
	switch {
	case !owner.Active():
		return Ended
	case now.Sub(owner.LastSeen) >= p.StaleAfter+p.TouchEvery():
		return Stale
	}
	return Live
}

// Visible reports whether a caller with callerUID may see, as an orphan,
// a workspace of owner at now: the owner must have ended or gone stale, and
// belong to the same user, unless the caller is root. Another user's
// workspaces may hold that user's secrets; root can read them anyway.
func (p Policy) Visible(callerUID int, owner state.Session, now time.Time) bool {
	if callerUID != 0 && callerUID != owner.UID {
		return false
	}
	return p.StandingOf(owner, now) != Live
}

// Verdict is the answer to an adoption request.
type Verdict int

// The verdicts.
const (
	// Hidden: the caller may not see the workspace; answer as for one that
	// does not exist (finding L-16).
	Hidden Verdict = iota
	// NeedsForce: the owner is stale but has not ended; only force takes
	// the workspace over.
	NeedsForce
	// Allowed: the caller may adopt it, quotas permitting.
	Allowed
)

// MayAdopt decides whether a caller with callerUID may adopt a workspace of
// owner at now.
func (p Policy) MayAdopt(callerUID int, owner state.Session, force bool, now time.Time) Verdict {
	if !p.Visible(callerUID, owner, now) {
		return Hidden
	}
	if p.StandingOf(owner, now) == Stale && !force {
		return NeedsForce
	}
	return Allowed
}
