package vm

import (
	"context"
	"fmt"
	"net"
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

// resumedPingWait bounds one Ping to a guest that was already running (a
// re-attach, or a resumed memory state): its agent answers in milliseconds,
// unless the session the Ping started was lost. A guest resumed after the
// previous host vanished while it was paused handles the port's close and
// reopen events and the new host's bytes in no fixed order; an agent that
// ended a session at the port's end of file could take the new hello and
// then end that session on the late close, and wait for a hello that never
// came (seen once in a crash test under load). The agent now ends a session
// only at the next hello (guest.portConn); a new session (a new dial, a new
// hello) after this wait stays as the way out of any other lost session.
const resumedPingWait = 10 * time.Second

// connectChannel dials the channel and pings until the guest answers or ctx
// ends. A session that dies before the answer (the agent restarted, or a
// previous daemon's session was still being torn down in the guest), or,
// when attemptWait is set, does not answer within it, is replaced by a new
// one.
func connectChannel(ctx context.Context, dial DialFunc, path string, attemptWait time.Duration) (Channel, *protocol.Pong, error) {
	var lastErr error
	for {
		ch, err := dial(ctx, path)
		if err == nil {
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if attemptWait > 0 {
				pctx, cancel = context.WithTimeout(ctx, attemptWait)
			}
			// Closing the session is the one sure way to end a Ping
			// that waits on a guest that will never answer.
			stop := context.AfterFunc(pctx, func() { ch.Close() })
			pong, perr := ch.Ping(pctx)
			ok := stop() && perr == nil
			cancel()
			if ok {
				return ch, pong, nil
			}
			ch.Close()
			err = perr
			if err == nil || pctx.Err() != nil && ctx.Err() == nil {
				err = fmt.Errorf("no answer within %v; starting a new session", attemptWait)
			}
			if ctx.Err() != nil {
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

// resetChannelPort connects to the channel socket and hangs up at once, so
// that QEMU sees the channel's connection end while the VM runs. Attach
// does it before connecting its own session. A refused connection (QEMU's
// queue of waiting connections is short) is tried again until ctx ends.
//
// While a VM is paused, QEMU's virtio-serial device is detached from its
// chardev and takes no notice of connections coming or going. A daemon
// whose connection ends during a pause (a daemon restarted while a
// snapshot paused the VM, or a channel that broke then) leaves the port
// marked connected with nothing behind it. The first thing the resumed
// guest writes then goes to a chardev without a connection: QEMU throttles
// the port until the connection has room again, and as there is none to
// wait on, the throttle never lifts. The guest still reads what a new host
// sends, but nothing it writes leaves the VM again. A hang-up QEMU sees
// while the VM runs resets its side of the port (throttle lifted, the old
// session's queued bytes dropped, the guest told that the host has gone),
// and the connection that follows opens the port afresh. QEMU serves one
// connection at a time, in the order they were made, so the hang-up is
// handled before the next connection is opened. On a port that was sound
// it costs the guest nothing: the agent ends the old session at the next
// connection's hello, not at a hang-up.
func resetChannelPort(ctx context.Context, path string) error {
	var d net.Dialer
	for {
		conn, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("resetting the guest channel: %w (last error: %v)", context.Cause(ctx), err)
		case <-time.After(channelRetry):
		}
	}
}

// keepChannel replaces the guest channel's session whenever it dies while
// the VM runs and nobody is stopping, killing or detaching it: when PID 1
// restarted the guest's agent (the new agent announces itself with a hello,
// which ends the old session: guest.Agent.announce), or when the session
// broke. Calls on the old session fail; later calls get the new one from
// Channel. It returns when the VM is gone or detached.
func (v *VM) keepChannel(ch Channel) {
	for {
		select {
		case <-ch.Done():
		case <-v.done:
			return
		}
		if v.stopping.Load() || v.detached.Load() || v.hasExited() {
			return
		}
		// Closing the old session hangs up the port while the VM runs,
		// so QEMU opens it afresh for the next connection.
		ch.Close()
		v.log.Warn("guest channel session ended; connecting again")
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-v.done:
			case <-ctx.Done():
			}
			cancel()
		}()
		next, _, err := connectChannel(ctx, v.cfg.Dial, v.paths.channel, resumedPingWait)
		cancel()
		if err != nil {
			if !v.hasExited() && !v.detached.Load() {
				v.log.Error("guest channel lost", "err", err)
			}
			return
		}
		v.mu.Lock()
		replaced := v.ch == ch && !v.detached.Load() && !v.stopping.Load()
		if replaced {
			v.ch = next
		}
		v.mu.Unlock()
		if !replaced {
			next.Close()
			return
		}
		v.log.Info("guest channel connected again")
		if v.cfg.AfterReconnect != nil {
			go v.cfg.AfterReconnect(v.spec)
		}
		ch = next
	}
}
