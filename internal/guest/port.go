package guest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// SysVirtioPorts is where the kernel lists virtio-serial ports, each with
// a name file. There is no udev in the guest, so no /dev/virtio-ports links.
const SysVirtioPorts = "/sys/class/virtio-ports"

// Pauses of the port loop. While no host is connected a read on the port
// returns 0 bytes at once; the pause between such reads doubles up to
// maxRetryDelay and starts over at the next byte (see portConn). Reopening a
// port that failed waits maxRetryDelay.
const (
	minRetryDelay = 20 * time.Millisecond
	maxRetryDelay = 250 * time.Millisecond
)

// ServePort serves the host channel on the virtio-serial port named
// protocol.PortName, found in sysDir (SysVirtioPorts) with its device in
// devDir (/dev), until ctx is done. The port stays open across sessions:
// closing it would discard what a reconnecting host has already sent. A
// host hanging up ends nothing; the next host's hello ends its session (see
// portConn).
func (a *Agent) ServePort(ctx context.Context, sysDir, devDir string) error {
	lastErr := ""
	for {
		err := a.servePortOnce(ctx, sysDir, devDir)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The same failure again and again (no port yet) is logged once.
		if msg := err.Error(); msg != lastErr {
			a.log.Warn("serving the host channel, retrying", "err", err)
			lastErr = msg
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(maxRetryDelay):
		}
	}
}

// servePortOnce opens the port and serves sessions on it until it fails.
func (a *Agent) servePortOnce(ctx context.Context, sysDir, devDir string) error {
	dev, err := findPort(sysDir, devDir, protocol.PortName)
	if err != nil {
		return err
	}
	// Pollable, so deadlines work on it.
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("opening the channel port: %w", err)
	}
	defer f.Close()
	if err := f.SetDeadline(time.Time{}); err != nil {
		return fmt.Errorf("channel port %s: %w", dev, err)
	}
	a.announce(f)
	err = a.serveSessions(ctx, newPortConn(f))
	if err == nil {
		err = errors.New("the channel port ended")
	}
	return err
}

// announceWait bounds the hello an agent sends when it opens the port: a
// write blocks while no host is connected, and then there is no session to
// end.
const announceWait = time.Second

// announce tells a host that may be in a session with a previous agent
// (PID 1 restarts an agent that died) that this one knows nothing of it:
// a guest hello the host did not ask for ends the host's session (see
// channel.helloConn), so its calls fail at once instead of waiting for
// answers that will never come, and the host connects afresh. A host that
// is not in a session skips it, as it skips any hello but its own.
func (a *Agent) announce(port Conn) {
	var nonce protocol.Nonce
	if _, err := rand.Read(nonce[:]); err != nil {
		return
	}
	port.SetDeadline(time.Now().Add(announceWait))
	defer port.SetDeadline(time.Time{})
	if _, err := port.Write(protocol.Hello(protocol.GuestHelloKind, nonce)); err != nil {
		a.log.Info("no host to tell of this agent's start", "err", err)
	}
}

// portConn is the channel port as sessions read it: a read that finds no
// host connected waits and reads again, rather than end the session.
//
// A read on a virtio-serial port returns 0 bytes (io.EOF) whenever nothing
// is buffered and no host is connected. But the guest learns of the host's
// connects and hang-ups (control messages) apart from the host's bytes (the
// port's own virtqueue), in no fixed order with them: when a host hangs up
// and another connects at once (a daemon restart; vm.resetChannelPort's
// hang-up before each re-attach) the guest can read the new host's hello,
// answer it, and only then learn of the old host's hang-up. Ending the
// session at that end of file would end the new host's session, which then
// waits for answers that never come. So the end of file belongs to no
// session: a session ends at the next hello (protocol.SessionReader), and a
// host that has gone for good leaves its session, and the commands it
// started, running until the next host connects (or until their own
// timeouts).
type portConn struct {
	Conn
	mu      sync.Mutex
	changed chan struct{} // closed, and replaced, at each SetDeadline
}

func newPortConn(c Conn) *portConn {
	return &portConn{Conn: c, changed: make(chan struct{})}
}

// SetDeadline sets the port's deadline and cuts short a read's pause, so
// that ending a session (a passed deadline) does not wait for it.
func (c *portConn) SetDeadline(t time.Time) error {
	err := c.Conn.SetDeadline(t)
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	return err
}

// Read reads the port, pausing while no host is connected: the pause
// doubles from minRetryDelay up to maxRetryDelay, since such a read returns
// at once and the port cannot be polled for a host's connect.
func (c *portConn) Read(p []byte) (int, error) {
	var delay time.Duration
	for {
		c.mu.Lock()
		changed := c.changed
		c.mu.Unlock()
		n, err := c.Conn.Read(p)
		if n > 0 || len(p) == 0 || !errors.Is(err, io.EOF) {
			return n, err
		}
		delay = min(max(2*delay, minRetryDelay), maxRetryDelay)
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-changed:
			t.Stop()
		}
	}
}

// findPort returns the device of the virtio-serial port called name.
func findPort(sysDir, devDir, name string) (string, error) {
	entries, err := os.ReadDir(sysDir)
	if err != nil {
		return "", fmt.Errorf("listing virtio-serial ports: %w", err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(sysDir, e.Name(), "name"))
		if err == nil && strings.TrimSpace(string(b)) == name {
			return filepath.Join(devDir, e.Name()), nil
		}
	}
	return "", errdefs.NotFoundf("no virtio-serial port named %s in %s", name, sysDir)
}
