package session

import (
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/state"
)

func TestStandingAndAdoption(t *testing.T) {
	p := Policy{StaleAfter: 60 * time.Second}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	seen := func(ago time.Duration, uid int) state.Session {
		return state.Session{UID: uid, LastSeen: now.Add(-ago)}
	}
	ended := state.Session{UID: 1000, LastSeen: now.Add(-time.Second), EndedAt: now}
	if p.TouchEvery() != 6*time.Second {
		t.Errorf("TouchEvery = %v, want a tenth of the threshold", p.TouchEvery())
	}
	for _, tc := range []struct {
		name      string
		owner     state.Session
		callerUID int
		force     bool
		standing  Standing
		verdict   Verdict
	}{
		{"live", seen(time.Second, 1000), 1000, false, Live, Hidden},
		{"live with force", seen(time.Second, 1000), 1000, true, Live, Hidden},
		// Touches come at most TouchEvery apart: a session seen 65s ago may
		// have been active 59s ago.
		{"within threshold plus touch interval", seen(65*time.Second, 1000), 1000, true, Live, Hidden},
		{"stale without force", seen(66*time.Second, 1000), 1000, false, Stale, NeedsForce},
		{"stale with force", seen(10*time.Minute, 1000), 1000, true, Stale, Allowed},
		{"ended", ended, 1000, false, Ended, Allowed},
		{"ended, other user", ended, 1001, false, Ended, Hidden},
		{"stale, other user, force", seen(time.Hour, 1000), 1001, true, Stale, Hidden},
		{"ended, root caller", ended, 0, false, Ended, Allowed},
		{"live, root caller", seen(time.Second, 1000), 0, true, Live, Hidden},
	} {
		if got := p.StandingOf(tc.owner, now); got != tc.standing {
			t.Errorf("%s: StandingOf = %v, want %v", tc.name, got, tc.standing)
		}
		if got := p.MayAdopt(tc.callerUID, tc.owner, tc.force, now); got != tc.verdict {
			t.Errorf("%s: MayAdopt = %v, want %v", tc.name, got, tc.verdict)
		}
		if got, want := p.Visible(tc.callerUID, tc.owner, now), tc.verdict != Hidden; got != want {
			t.Errorf("%s: Visible = %v, want %v", tc.name, got, want)
		}
	}
}
