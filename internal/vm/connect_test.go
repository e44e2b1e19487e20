package vm

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/protocol"
)

// lostSession is a channel whose guest never answers (its session was lost
// in the guest) unless answers is set.
type lostSession struct {
	answers bool
	once    sync.Once
	done    chan struct{}
}

func (c *lostSession) Ping(ctx context.Context) (*protocol.Pong, error) {
	if c.answers {
		return &protocol.Pong{}, nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, context.Canceled
	}
}
func (c *lostSession) Shutdown(context.Context) error { return nil }
func (c *lostSession) Close() error                   { c.once.Do(func() { close(c.done) }); return nil }
func (c *lostSession) Done() <-chan struct{}          { return c.done }

// TestConnectChannelReplacesASilentSession: with a wait per attempt (a
// guest that was already running), a session the guest never answers is
// replaced by a new one; without it (a boot), the one Ping waits on.
func TestConnectChannelReplacesASilentSession(t *testing.T) {
	var dials []*lostSession
	dial := func(context.Context, string) (Channel, error) {
		c := &lostSession{answers: len(dials) == 1, done: make(chan struct{})}
		dials = append(dials, c)
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ch, _, err := connectChannel(ctx, dial, "unused", 50*time.Millisecond)
	if err != nil || ch != dials[1] {
		t.Fatalf("connectChannel = %v, %v after %d dials; want the second session", ch, err, len(dials))
	}
	select {
	case <-dials[0].done:
	default:
		t.Error("the silent session was not closed")
	}

	dials = nil
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, _, err := connectChannel(short, dial, "unused", 0); err == nil || len(dials) != 1 {
		t.Errorf("without a per-attempt wait: err %v after %d dials; want one dial waiting until the deadline", err, len(dials))
	}
}
