package session

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Toucher records that a session was seen (state.Store.TouchSession).
type Toucher interface {
	TouchSession(ctx context.Context, id string) error
}

// touchTimeout bounds one write of last_seen.
const touchTimeout = 5 * time.Second

// Tracker keeps each session's last_seen current while the session is
// active: at the start and end of each request, and throughout requests
// still in flight (a ten-minute command keeps its session live). It writes
// at most once every interval per session, so activity costs little.
type Tracker struct {
	store Toucher
	every time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu       sync.Mutex
	sessions map[string]*activity
}

type activity struct {
	inFlight int
	touched  time.Time
}

// NewTracker returns a Tracker that writes to store at most once every
// interval per session (Policy.TouchEvery). Run keeps requests in flight
// counted.
func NewTracker(store Toucher, every time.Duration, log *slog.Logger) *Tracker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Tracker{store: store, every: every, log: log, now: time.Now, sessions: map[string]*activity{}}
}

// Begin records the start of a request of session id.
func (t *Tracker) Begin(id string) {
	t.mu.Lock()
	a := t.sessions[id]
	if a == nil {
		a = &activity{}
		t.sessions[id] = a
	}
	a.inFlight++
	due := t.due(a)
	t.mu.Unlock()
	if due {
		t.touch(id)
	}
}

// End records the end of a request that Begin recorded.
func (t *Tracker) End(id string) {
	t.mu.Lock()
	a := t.sessions[id]
	if a == nil {
		t.mu.Unlock()
		return
	}
	if a.inFlight > 0 {
		a.inFlight--
	}
	due := t.due(a)
	t.mu.Unlock()
	if due {
		t.touch(id)
	}
}

// Forget drops session id; call it when the session ends.
func (t *Tracker) Forget(id string) {
	t.mu.Lock()
	delete(t.sessions, id)
	t.mu.Unlock()
}

// Run touches, every interval, each session with a request in flight, until
// ctx ends.
func (t *Tracker) Run(ctx context.Context) {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		var busy []string
		t.mu.Lock()
		for id, a := range t.sessions {
			if a.inFlight > 0 && t.due(a) {
				busy = append(busy, id)
			}
		}
		t.mu.Unlock()
		for _, id := range busy {
			t.touch(id)
		}
	}
}

// due reports whether a's last write is an interval old, and if so
// counts the write as done now. t.mu is held.
func (t *Tracker) due(a *activity) bool {
	now := t.now()
	if now.Sub(a.touched) < t.every {
		return false
	}
	a.touched = now
	return true
}

func (t *Tracker) touch(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), touchTimeout)
	defer cancel()
	err := t.store.TouchSession(ctx, id)
	// A session that has just ended cannot be touched, and need not be.
	if err != nil && !errdefs.Is(err, errdefs.Conflict) {
		t.log.Warn("recording session activity", "session", id, "err", err)
	}
}
