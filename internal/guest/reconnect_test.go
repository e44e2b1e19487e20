package guest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/protocol"
)

// fakePort is the guest's end of a virtio-serial port as the kernel shows
// it. Two things reach the guest apart, as they do in a VM (the data on
// the port's own virtqueue, the host's connects and hang-ups as control
// messages on another): the bytes the host wrote, and whether a host is
// connected. A read returns buffered bytes; with none, it returns 0 bytes
// (io.EOF) at once when no host is connected, and waits otherwise. The
// guest's writes go to the host connection QEMU has now and wait while
// there is none. The test decides when the guest learns of a connect or a
// hang-up (setConnected), apart from which connection QEMU has (attach).
type fakePort struct {
	mu        sync.Mutex
	changed   *sync.Cond
	in        []byte    // written by the host, not yet read by the guest
	connected bool      // whether a host is connected, as the guest has it
	cur       *hostEnd  // the connection QEMU has, nil when none
	deadline  time.Time // of reads and writes (one, like the port's file)
	eofs      int       // reads that returned io.EOF
}

func newFakePort() *fakePort {
	p := &fakePort{}
	p.changed = sync.NewCond(&p.mu)
	return p
}

// passed reports whether the deadline has passed; mu is held.
func (p *fakePort) passed() bool {
	return !p.deadline.IsZero() && !time.Now().Before(p.deadline)
}

func (p *fakePort) Read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		switch {
		case p.passed():
			return 0, os.ErrDeadlineExceeded
		case len(p.in) > 0:
			n := copy(b, p.in)
			p.in = p.in[n:]
			return n, nil
		case !p.connected:
			p.eofs++
			p.changed.Broadcast()
			return 0, io.EOF
		}
		p.changed.Wait()
	}
}

func (p *fakePort) Write(b []byte) (int, error) {
	p.mu.Lock()
	for p.cur == nil && !p.passed() {
		p.changed.Wait()
	}
	if p.passed() {
		p.mu.Unlock()
		return 0, os.ErrDeadlineExceeded
	}
	h := p.cur
	p.mu.Unlock()
	// A host that has gone reads nothing more: QEMU drops what was queued
	// for it.
	h.pw.Write(b)
	return len(b), nil
}

func (p *fakePort) SetDeadline(t time.Time) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deadline = t
	p.changed.Broadcast()
	if d := time.Until(t); !t.IsZero() && d > 0 {
		time.AfterFunc(d, func() {
			p.mu.Lock()
			p.changed.Broadcast()
			p.mu.Unlock()
		})
	}
	return nil
}

func (p *fakePort) Close() error { return p.SetDeadline(time.Unix(1, 0)) }

// setConnected delivers the news of a connect (true) or a hang-up (false).
func (p *fakePort) setConnected(c bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected = c
	p.changed.Broadcast()
}

// attach makes a new host connection QEMU's current one, hanging up the
// one before (which then reads io.EOF).
func (p *fakePort) attach() *hostEnd {
	pr, pw := io.Pipe()
	h := &hostEnd{port: p, pr: pr, pw: pw}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != nil {
		p.cur.pw.Close()
	}
	p.cur = h
	p.changed.Broadcast()
	return h
}

// waitEOF waits until the guest has read io.EOF more than after times.
func (p *fakePort) waitEOF(t *testing.T, after int) {
	t.Helper()
	stop := time.AfterFunc(10*time.Second, func() {
		p.mu.Lock()
		p.changed.Broadcast()
		p.mu.Unlock()
	})
	defer stop.Stop()
	deadline := time.Now().Add(10 * time.Second)
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.eofs <= after {
		if time.Now().After(deadline) {
			t.Fatal("the guest did not read the port's end of file")
		}
		p.changed.Wait()
	}
}

func (p *fakePort) eofCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.eofs
}

// hostEnd is one host connection to the port's chardev, as QEMU's Unix
// socket gives it to the daemon.
type hostEnd struct {
	port *fakePort
	pr   *io.PipeReader
	pw   *io.PipeWriter

	mu  sync.Mutex
	got []byte // everything read from the guest
}

func (h *hostEnd) Read(b []byte) (int, error) {
	n, err := h.pr.Read(b)
	h.mu.Lock()
	h.got = append(h.got, b[:n]...)
	h.mu.Unlock()
	return n, err
}

func (h *hostEnd) Write(b []byte) (int, error) {
	p := h.port
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cur != h {
		return 0, io.ErrClosedPipe
	}
	p.in = append(p.in, b...)
	p.changed.Broadcast()
	return len(b), nil
}

// Close hangs up. The guest learns of it only by setConnected.
func (h *hostEnd) Close() error {
	p := h.port
	p.mu.Lock()
	if p.cur == h {
		p.cur = nil
	}
	p.mu.Unlock()
	h.pr.Close()
	return nil
}

// waitGuestHello waits until the guest has answered this connection's
// hello, that is, has begun its session.
func (h *hostEnd) waitGuestHello(t *testing.T) {
	t.Helper()
	prefix := protocol.Hello(protocol.GuestHelloKind, protocol.Nonce{})[:8]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		h.mu.Lock()
		ok := bytes.Contains(h.got, prefix)
		h.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the guest did not answer the hello")
		}
	}
}

// servePort runs an agent's session loop on p the way ServePort runs it on
// the real port, until the test ends.
func servePort(t *testing.T, p *fakePort) {
	t.Helper()
	a := NewAgent(testOptions(t))
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.serveSessions(ctx, newPortConn(p)) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("serveSessions: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serveSessions did not return after its context ended")
		}
		a.Close()
	})
}

// hostClient starts a host session on h, closed when the test ends.
func hostClient(t *testing.T, h *hostEnd) *channel.Client {
	t.Helper()
	c, err := channel.New(h, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ping(t *testing.T, c *channel.Client, who string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping from %s: %v", who, err)
	}
}

// TestLateHangUpDoesNotEndTheNextSession: the host hangs up and connects
// again at once (a daemon restart, vm.resetChannelPort's hang-up before a
// re-attach), and the guest takes the new host's hello before it learns
// that the old host hung up (the port's bytes and its connection news
// travel apart). The late news of the hang-up (a read with nothing to read
// and no host) must not end the session the guest has just begun: only the
// next hello ends a session.
func TestLateHangUpDoesNotEndTheNextSession(t *testing.T) {
	p := newFakePort()
	servePort(t, p)
	p.setConnected(true)
	first := hostClient(t, p.attach())
	ping(t, first, "the first host")

	// The first host hangs up and the second connects; the guest reads the
	// second's hello first and answers it.
	h2 := p.attach()
	second := hostClient(t, h2)
	h2.waitGuestHello(t)
	// Then it learns of the hang-up, and reads the port's end of file...
	n := p.eofCount()
	p.setConnected(false)
	p.waitEOF(t, n)
	// ...and of the second host's connect.
	p.setConnected(true)
	ping(t, second, "the second host")
}

// TestOldSessionEndsAtTheNextHello: a session's requests outlive its host's
// hang-up (the host may be back, see TestLateHangUpDoesNotEndTheNextSession)
// and end when the next host's hello arrives, before that host is served:
// a command the old host left running is killed then.
func TestOldSessionEndsAtTheNextHello(t *testing.T) {
	p := newFakePort()
	servePort(t, p)
	p.setConnected(true)
	h1 := p.attach()
	first := hostClient(t, h1)
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	run, err := first.StartExec(ctx, protocol.Exec{
		Argv:           []string{"/bin/sh", "-c", `echo $$ > "$1"; exec sleep 60`, "sh", pidFile},
		MaxOutputBytes: 1024,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Close()
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if pid == 0 && time.Now().After(deadline) {
			t.Fatal("the command did not start")
		}
	}
	alive := func() bool { return unix.Kill(pid, 0) == nil }

	// The host goes; the guest learns of it and reads the end of file.
	h1.Close()
	n := p.eofCount()
	p.setConnected(false)
	p.waitEOF(t, n)
	time.Sleep(100 * time.Millisecond)
	if !alive() {
		t.Fatal("the command was killed at the hang-up, before any other host came")
	}

	// The next host's hello ends the old session before the new is served.
	p.setConnected(true)
	ping(t, hostClient(t, p.attach()), "the next host")
	if alive() {
		t.Error("the old session's command still runs after the next host was served")
	}
}
