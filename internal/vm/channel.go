package vm

import (
	"context"
	"fmt"
	"time"

	"github.com/agentiso/agentiso/internal/protocol"
)

// Channel is the host end of the guest channel as the runner needs it.
type Channel interface {
	// Ping blocks until the guest answers or ctx ends.
	Ping(ctx context.Context) (*protocol.Pong, error)
	// Shutdown asks the guest to sync and power off.
	Shutdown(ctx context.Context) error
	Close() error
	// Done is closed when the channel session has died.
	Done() <-chan struct{}
}

// DialFunc connects to the guest channel's Unix socket.
type DialFunc func(ctx context.Context, socketPath string) (Channel, error)

// channelRetry is the pause between attempts to reach the guest.
const channelRetry = 50 * time.Millisecond

// connectChannel dials the channel and pings until the guest answers or ctx
// ends. A session that dies before the answer (the agent restarted, or a
// previous daemon's session was still being torn down in the guest) is
// replaced by a new one.
func connectChannel(ctx context.Context, dial DialFunc, path string) (Channel, *protocol.Pong, error) {
	var lastErr error
	for {
		ch, err := dial(ctx, path)
		if err == nil {
			// Closing the session is the one sure way to end a Ping
			// that waits on a guest that will never answer.
			stop := context.AfterFunc(ctx, func() { ch.Close() })
			pong, perr := ch.Ping(ctx)
			if stop() && perr == nil {
				return ch, pong, nil
			}
			ch.Close()
			err = perr
			if err == nil {
				err = context.Cause(ctx)
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("waiting for the guest to answer: %w (last error: %v)", context.Cause(ctx), lastErr)
		case <-time.After(channelRetry):
		}
	}
}
