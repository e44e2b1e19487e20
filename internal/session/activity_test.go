package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/state"
)

// countingToucher counts writes per session (a fake for the Tracker's
// throttling; the e2e tests use the real store).
type countingToucher struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingToucher) TouchSession(_ context.Context, id string) error {
	c.mu.Lock()
	c.n[id]++
	c.mu.Unlock()
	return nil
}

func (c *countingToucher) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

func TestTrackerThrottlesWrites(t *testing.T) {
	store := &countingToucher{n: map[string]int{}}
	tr := NewTracker(store, time.Minute, nil)
	clk := &clock{t: time.Unix(1000, 0)}
	tr.now = clk.now
	for range 50 {
		tr.Begin("a")
		tr.End("a")
	}
	if n := store.count("a"); n != 1 {
		t.Errorf("%d writes for 50 calls within one interval, want 1", n)
	}
	clk.advance(time.Minute)
	tr.Begin("a")
	if n := store.count("a"); n != 2 {
		t.Errorf("%d writes after an interval, want 2", n)
	}
	tr.End("a")
	tr.Forget("a")
	tr.End("a") // after Forget: ignored, no entry made
	if len(tr.sessions) != 0 {
		t.Errorf("sessions after Forget: %v", tr.sessions)
	}
}

// A session with a request in flight stays live however long the request
// takes: Run keeps touching it, in the real store.
func TestTrackerKeepsLongRequestsLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := state.Open(ctx, t.TempDir()+"/state.db")
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	busy, err := store.CreateSession(ctx, state.Session{UID: 0, Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := store.CreateSession(ctx, state.Session{UID: 0, Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	p := Policy{StaleAfter: 3 * time.Second} // wide enough that a loaded machine still touches in time
	tr := NewTracker(store, p.TouchEvery(), nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { tr.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	tr.Begin(busy.ID) // a long request
	tr.Begin(idle.ID) // a short one
	tr.End(idle.ID)
	time.Sleep(p.StaleAfter + 3*p.TouchEvery())
	now := time.Now()
	b, _ := store.GetSession(ctx, busy.ID)
	i, _ := store.GetSession(ctx, idle.ID)
	if s := p.StandingOf(b, now); s != Live {
		t.Errorf("session with a request in flight: standing %v, last seen %v ago", s, now.Sub(b.LastSeen))
	}
	if s := p.StandingOf(i, now); s != Stale {
		t.Errorf("idle session: standing %v, last seen %v ago, want stale", s, now.Sub(i.LastSeen))
	}
	tr.End(busy.ID)
}
