package guest

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// socketPair returns the two ends of a connected Unix stream socket pair.
func socketPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int, name string) net.Conn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	return conn(fds[0], "host"), conn(fds[1], "guest")
}

// testOptions are agent options that leave the test machine alone.
func testOptions(t testing.TB) Options {
	return Options{
		EtcDir:      t.TempDir(),
		SetHostname: func(string) error { return nil },
		Hostname:    func() (string, error) { return "test-guest", nil },
		PowerOff:    func() error { t.Error("PowerOff called"); return nil },
	}
}

// rawSession serves a real agent over a socket pair and returns the host's
// yamux session, for tests that speak the wire protocol by hand.
func rawSession(t *testing.T, opts Options) *yamux.Session {
	t.Helper()
	hostConn, guestConn := socketPair(t)
	a := NewAgent(opts)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx, guestConn) }()
	// The host's side of the session handshake.
	nonce := protocol.Nonce{4, 2}
	hostConn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := hostConn.Write(protocol.Hello(protocol.HostHelloKind, nonce)); err != nil {
		t.Fatal(err)
	}
	answer := make([]byte, protocol.HelloSize)
	if _, err := io.ReadFull(hostConn, answer); err != nil || !bytes.Equal(answer, protocol.Hello(protocol.GuestHelloKind, nonce)) {
		t.Fatalf("the agent answered the hello with %q, %v", answer, err)
	}
	hostConn.SetDeadline(time.Time{})
	cfg := yamux.DefaultConfig()
	cfg.LogOutput = io.Discard
	sess, err := yamux.Client(hostConn, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sess.Close()
		cancel()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after the session ended")
		}
		a.Close()
	})
	return sess
}

// rawRequest opens a stream, writes payload as one frame and returns the
// first answer.
func rawRequest(t *testing.T, sess *yamux.Session, payload string) protocol.Message {
	t.Helper()
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	if _, err := st.Write(append(frame, payload...)); err != nil {
		t.Fatal(err)
	}
	m, err := protocol.Read(st)
	if err != nil {
		t.Fatalf("reading the answer to %s: %v", payload, err)
	}
	return m
}

func wantError(t *testing.T, m protocol.Message, class errdefs.Class, text string) {
	t.Helper()
	e, ok := m.(*protocol.Error)
	if !ok {
		t.Fatalf("answer %#v, want an error", m)
	}
	if got := errdefs.ParseClass(e.Class); got != class {
		t.Errorf("error class %s (%q), want %s", e.Class, e.Message, class)
	}
	if !strings.Contains(e.Message, text) {
		t.Errorf("error %q does not say %q", e.Message, text)
	}
}

// The guest applies the env blocklist itself: a host (or anything else
// that reaches the channel) cannot get LD_PRELOAD into a command by
// skipping the host-side check.
func TestM9_GuestRefusesBlockedEnv(t *testing.T) {
	sess := rawSession(t, testOptions(t))
	for _, name := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "BASH_FUNC_ls%%", "GLIBC_TUNABLES"} {
		m := rawRequest(t, sess, `{"type":"exec","body":{"argv":["/bin/true"],"max_output_bytes":10,"env":{"`+name+`":"x"}}}`)
		wantError(t, m, errdefs.Invalid, name)
	}
}

func TestUnknownTypeIsRefusedAndTheSessionGoesOn(t *testing.T) {
	sess := rawSession(t, testOptions(t))
	wantError(t, rawRequest(t, sess, `{"type":"launch_missiles","body":{}}`), errdefs.Invalid, "unknown message type")
	wantError(t, rawRequest(t, sess, `{"type":`), errdefs.Invalid, "decoding frame")
	wantError(t, rawRequest(t, sess, `{"type":"ok"}`), errdefs.Invalid, "does not start a request")
	if m := rawRequest(t, sess, `{"type":"ping"}`); m.Type() != protocol.TypePong {
		t.Fatalf("ping after refusals answered %#v", m)
	}
}

func TestOversizedRequestIsRefusedUnread(t *testing.T) {
	sess := rawSession(t, testOptions(t))
	st, err := sess.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	st.Write(binary.BigEndian.AppendUint32(nil, 2<<30))
	m, err := protocol.Read(st)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, m, errdefs.Invalid, "maximum frame size")
}

func TestPongReportsBootTimes(t *testing.T) {
	opts := testOptions(t)
	opts.Version = "v9"
	opts.KernelToInit = 1500 * time.Millisecond
	opts.InitStart = time.Nanosecond
	sess := rawSession(t, opts)
	pong, ok := rawRequest(t, sess, `{"type":"ping"}`).(*protocol.Pong)
	if !ok {
		t.Fatal("no pong")
	}
	if pong.Version != protocol.Version || pong.AgentVersion != "v9" || pong.Hostname != "test-guest" {
		t.Errorf("pong %+v", pong)
	}
	if pong.KernelToInitNs != int64(1500*time.Millisecond) {
		t.Errorf("KernelToInitNs %d", pong.KernelToInitNs)
	}
	if pong.InitToReadyNs <= 0 || pong.InitToReadyNs >= pong.UptimeNs {
		t.Errorf("InitToReadyNs %d, UptimeNs %d: want 0 < ready < uptime", pong.InitToReadyNs, pong.UptimeNs)
	}
}

func TestShutdownAnswersThenPowersOff(t *testing.T) {
	opts := testOptions(t)
	powered := make(chan struct{})
	opts.PowerOff = func() error { close(powered); return nil }
	sess := rawSession(t, opts)
	if m := rawRequest(t, sess, `{"type":"shutdown"}`); m.Type() != protocol.TypeOK {
		t.Fatalf("shutdown answered %#v", m)
	}
	select {
	case <-powered:
	case <-time.After(5 * time.Second):
		t.Fatal("PowerOff was not called")
	}
}
