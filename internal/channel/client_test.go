package channel_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest"
	"github.com/agentiso/agentiso/internal/protocol"
)

// fakeHost stands in for what the agent would change on a real VM.
type fakeHost struct {
	mu       sync.Mutex
	hostname string
	powered  chan struct{}
	etc      string
}

// pair is a real agent serving a real client over a Unix socket pair.
type pair struct {
	c     *channel.Client
	host  *fakeHost
	agent *guest.Agent
}

// newPair starts an agent and a client connected to it; both end with the
// test.
func newPair(t testing.TB, agentOpts guest.Options, clientOpts channel.Options) *pair {
	t.Helper()
	h := &fakeHost{hostname: "workspace", powered: make(chan struct{}), etc: t.TempDir()}
	agentOpts.EtcDir = h.etc
	agentOpts.SetHostname = func(name string) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.hostname = name
		return nil
	}
	agentOpts.Hostname = func() (string, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.hostname, nil
	}
	var once sync.Once
	agentOpts.PowerOff = func() error { once.Do(func() { close(h.powered) }); return nil }

	hostConn, guestConn := socketPair(t)
	a := guest.NewAgent(agentOpts)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, guestConn) }()
	c, err := channel.New(hostConn, clientOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("agent Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the agent did not stop after the session ended")
		}
		a.Close()
	})
	return &pair{c: c, host: h, agent: a}
}

func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) net.Conn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0]), conn(fds[1])
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestPing(t *testing.T) {
	p := newPair(t, guest.Options{Version: "v0.test"}, channel.Options{})
	pong, err := p.c.Ping(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if pong.Version != protocol.Version || pong.AgentVersion != "v0.test" || pong.Hostname != "workspace" || pong.UptimeNs <= 0 {
		t.Errorf("pong %+v", pong)
	}
}

// The host may write its first request before the agent serves (QEMU
// buffers it): Ping waits for the answer rather than failing.
func TestPingWaitsForTheAgent(t *testing.T) {
	hostConn, guestConn := socketPair(t)
	c, err := channel.New(hostConn, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	answered := make(chan error, 1)
	go func() {
		_, err := c.Ping(testCtx(t))
		answered <- err
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-answered:
		t.Fatalf("Ping returned before any agent ran: %v", err)
	default:
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go guest.NewAgent(guest.Options{}).Serve(ctx, guestConn)
	if err := <-answered; err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestPingHonoursItsDeadline(t *testing.T) {
	hostConn, _ := socketPair(t) // nobody serves the other end
	c, err := channel.New(hostConn, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Ping(ctx)
	if !errdefs.Is(err, errdefs.Timeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ping to nobody: %v, want a Timeout wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Ping took %v past a 200ms deadline", d)
	}
}

func TestConfigure(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	if err := p.c.Configure(ctx, protocol.Configure{Hostname: "ws-42"}); err != nil {
		t.Fatal(err)
	}
	pong, err := p.c.Ping(ctx)
	if err != nil || pong.Hostname != "ws-42" {
		t.Errorf("after Configure, Ping = %+v, %v", pong, err)
	}
	if b, _ := os.ReadFile(filepath.Join(p.host.etc, "hosts")); !strings.Contains(string(b), "127.0.1.1\tws-42\n") {
		t.Errorf("hosts file:\n%s", b)
	}
	err = p.c.Configure(ctx, protocol.Configure{Hostname: "bad_name"})
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "hostname") {
		t.Errorf("bad hostname: %v", err)
	}
}

func TestShutdown(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	if err := p.c.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.host.powered:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent acknowledged Shutdown but did not power off")
	}
}

func TestDoneWhenTheGuestGoes(t *testing.T) {
	hostConn, guestConn := socketPair(t)
	c, err := channel.New(hostConn, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	guestConn.Close()
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the connection ended")
	}
	if _, err := c.Ping(testCtx(t)); !errdefs.Is(err, errdefs.Unavailable) {
		t.Errorf("Ping on a dead session: %v, want Unavailable", err)
	}
}

func TestDial(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "channel.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		conn, err := l.Accept()
		if err == nil {
			guest.NewAgent(guest.Options{}).Serve(ctx, conn)
		}
	}()
	c, err := channel.Dial(testCtx(t), sock, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := channel.Dial(testCtx(t), sock+".missing", channel.Options{}); !errdefs.Is(err, errdefs.Unavailable) {
		t.Errorf("Dial of a missing socket: %v, want Unavailable", err)
	}
}
