// Package channel is the host end of the guest channel: a yamux client
// session over the Unix socket behind the VM's virtio-serial port, one
// stream per request, speaking package protocol to the guest agent.
//
// The guest is not trusted: everything it sends is bounded here as well
// (frame size, output per stream, bytes of a file read), and every call
// ends when its context does.
package channel

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Defaults for Options' zero values.
const (
	// DefaultMaxStreams is the host's cap on requests in flight to one VM
	// (finding M-22); further calls wait for a slot. It stays below the
	// agent's own per-session cap (guest.DefaultMaxStreams), so the
	// guest never has to refuse one.
	DefaultMaxStreams = 32
	// DefaultStreamWindow is how much the guest may send ahead on one
	// stream: yamux's default is 256 KiB; a larger window keeps the
	// serial link busy during output and file reads.
	DefaultStreamWindow = 1 << 20
)

// writeTimeout bounds one frame's write into the session when the call's
// context has no deadline of its own.
const writeTimeout = 60 * time.Second

// Options configures a Client.
type Options struct {
	Logger *slog.Logger
	// MaxStreams caps concurrent requests; 0 means DefaultMaxStreams.
	MaxStreams int
	// StreamWindow is the per-stream receive window in bytes, at least
	// 256 KiB; 0 means DefaultStreamWindow.
	StreamWindow uint32
	// Shared, when set, is a cap on requests in flight that this Client
	// shares with others (the daemon gives every VM's Client the same one).
	Shared *StreamLimit
}

// Client is a session with one guest agent. Its methods may be called
// concurrently.
type Client struct {
	sess   *yamux.Session
	log    *slog.Logger
	slots  chan struct{}
	shared *StreamLimit
}

// Dial connects to the Unix socket of a VM's channel chardev and starts a
// session. It returns once connected; the guest may not be serving yet
// (Ping waits for it).
func Dial(ctx context.Context, socketPath string, opts Options) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, errdefs.With(errdefs.Unavailable, "the guest channel is not reachable", fmt.Errorf("dialing %s: %w", socketPath, err))
	}
	c, err := New(conn, opts)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// New starts a session over conn, which the Client then owns.
func New(conn io.ReadWriteCloser, opts Options) (*Client, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.StreamWindow == 0 {
		opts.StreamWindow = DefaultStreamWindow
	}
	cfg := yamux.DefaultConfig()
	// No keepalive: a VM paused for a snapshot must keep its session; a
	// dead VM is noticed by its QEMU process, and every call has a
	// deadline.
	cfg.EnableKeepAlive = false
	cfg.MaxStreamWindowSize = opts.StreamWindow
	cfg.ConnectionWriteTimeout = writeTimeout
	cfg.LogOutput = nil
	cfg.Logger = slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	// The session starts at the guest's answer to this connection's
	// hello; whatever the port held before (an older session's bytes) is
	// skipped. See protocol.HelloSize.
	var nonce protocol.Nonce
	rand.Read(nonce[:])
	if _, err := conn.Write(protocol.Hello(protocol.HostHelloKind, nonce)); err != nil {
		return nil, closedError("starting the channel session", err)
	}
	hc := &helloConn{ReadWriteCloser: conn, sr: protocol.NewSessionReader(conn, protocol.GuestHelloKind), nonce: nonce}
	sess, err := yamux.Client(hc, cfg)
	if err != nil {
		return nil, fmt.Errorf("starting the channel session: %w", err)
	}
	return &Client{sess: sess, log: opts.Logger, slots: make(chan struct{}, opts.MaxStreams), shared: opts.Shared}, nil
}

// helloConn reads the session that follows the guest's hello with nonce,
// and ends it if another hello comes (the guest began a session for someone
// else). Only yamux's receive loop reads it.
type helloConn struct {
	io.ReadWriteCloser
	sr      *protocol.SessionReader
	nonce   protocol.Nonce
	started bool
}

func (c *helloConn) Read(p []byte) (int, error) {
	for !c.started {
		n, err := c.sr.Next()
		if err != nil {
			return 0, err
		}
		c.started = n == c.nonce
	}
	return c.sr.Read(p)
}

// Close ends the session; calls in flight fail, and the guest kills the
// commands they were running when its side of the session ends: at once on
// a socket, and on a VM's port at the next host's hello (a hang-up alone
// ends nothing there, since the guest cannot tell which session it belongs
// to; see guest.portConn). A call cancelled by its context closes only its
// stream, and the guest kills its command at once.
func (c *Client) Close() error { return c.sess.Close() }

// Done is closed when the session has died.
func (c *Client) Done() <-chan struct{} { return c.sess.CloseChan() }

// Ping asks the guest whether it serves. It blocks until the guest answers
// or ctx ends: requests written before the agent runs wait in QEMU's
// buffer, so readiness is the answer itself, not something to poll for.
func (c *Client) Ping(ctx context.Context) (*protocol.Pong, error) {
	pong, err := roundTrip[protocol.Pong](ctx, c, "ping", &protocol.Ping{})
	if err != nil {
		return nil, err
	}
	if pong.Version != protocol.Version {
		return nil, errdefs.Unavailablef("the guest agent speaks protocol version %d, this host %d: rebuild the guest image", pong.Version, protocol.Version)
	}
	return pong, nil
}

// Configure sets the guest's identity.
func (c *Client) Configure(ctx context.Context, m protocol.Configure) error {
	_, err := roundTrip[protocol.OK](ctx, c, "configuring the guest", &m)
	return err
}

// Shutdown asks the guest to sync its disks and power off. It returns when
// the guest has acknowledged; the VM's exit follows.
func (c *Client) Shutdown(ctx context.Context) error {
	_, err := roundTrip[protocol.OK](ctx, c, "shutting the guest down", &protocol.Shutdown{})
	return err
}

// roundTrip sends a request and reads its one answer, a *T.
func roundTrip[T any, PT interface {
	*T
	protocol.Message
}](ctx context.Context, c *Client, doing string, req protocol.Message) (PT, error) {
	st, err := c.open(ctx, doing)
	if err != nil {
		return nil, err
	}
	defer st.close()
	if err := st.send(req); err != nil {
		return nil, st.fail(err)
	}
	m, err := protocol.ReadAs[T, PT](st)
	if err != nil {
		return nil, st.fail(err)
	}
	return m, nil
}

// stream is one request's stream: it holds a slot of the client's cap and
// ends with the call's context.
type stream struct {
	*yamux.Stream
	sess  *yamux.Session
	ctx   context.Context
	doing string
	stop  func() bool
	slot  chan struct{}
	// shared is the slot taken from the Client's shared cap, or nil.
	shared chan struct{}
}

// open waits for a slot (this VM's, then the shared one) and opens a
// stream bound to ctx: its deadline becomes the stream's, and cancelling
// ctx closes the stream (the guest then stops what the request was doing).
// The slots are always taken in that order, so two requests can never each
// hold the slot the other waits for.
func (c *Client) open(ctx context.Context, doing string) (*stream, error) {
	if err := c.acquire(ctx, c.slots, doing+": waiting for a free channel stream"); err != nil {
		return nil, err
	}
	var shared chan struct{}
	if c.shared != nil {
		shared = c.shared.slots
		if err := c.acquire(ctx, shared, doing+": waiting for a free channel stream (host-wide limit)"); err != nil {
			<-c.slots
			return nil, err
		}
	}
	release := func() {
		if shared != nil {
			<-shared
		}
		<-c.slots
	}
	ys, err := c.sess.OpenStream()
	if err != nil {
		release()
		return nil, closedError(doing, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		ys.SetDeadline(dl)
	}
	st := &stream{Stream: ys, sess: c.sess, ctx: ctx, doing: doing, slot: c.slots, shared: shared}
	st.stop = context.AfterFunc(ctx, func() {
		ys.SetDeadline(time.Unix(1, 0))
		ys.Close()
	})
	return st, nil
}

// close releases the stream and its slot; a read or write still waiting
// on the stream returns.
func (s *stream) close() {
	s.stop()
	s.SetDeadline(time.Unix(1, 0))
	s.Stream.Close()
	if s.shared != nil {
		<-s.shared
	}
	<-s.slot
}

// acquire takes a slot of slots, waiting until ctx ends or the session
// dies.
func (c *Client) acquire(ctx context.Context, slots chan struct{}, waiting string) error {
	select {
	case slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctxError(ctx, waiting)
	case <-c.sess.CloseChan():
		return closedError(waiting, yamux.ErrSessionShutdown)
	}
}

// StreamLimit is a cap on requests in flight shared by several Clients.
// Each Client has its own cap (Options.MaxStreams); the daemon gives every
// VM's Client one StreamLimit as well, so a burst across many VMs cannot
// hold more than that many streams, with their goroutines and receive
// windows, at once (finding M-22). A request beyond it waits for a slot
// until its context ends.
type StreamLimit struct {
	slots chan struct{}
}

// NewStreamLimit returns a cap of n (at least 1) requests in flight.
func NewStreamLimit(n int) *StreamLimit {
	return &StreamLimit{slots: make(chan struct{}, max(n, 1))}
}

// InUse reports how many requests hold a slot now.
func (l *StreamLimit) InUse() int { return len(l.slots) }

// send writes one message. Without a deadline from the context, a single
// write is still bounded by writeTimeout.
func (s *stream) send(m protocol.Message) error {
	if _, ok := s.ctx.Deadline(); !ok {
		s.SetWriteDeadline(time.Now().Add(writeTimeout))
	}
	return protocol.Write(s, m)
}

// fail turns an error on the stream into what the caller gets: the
// guest's own refusal with its class, the context's end, or a broken
// channel.
func (s *stream) fail(err error) error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %w", s.doing, pe.Classified())
	case errdefs.Is(err, errdefs.Invalid):
		return fmt.Errorf("%s: %w", s.doing, err) // refused before sending
	case s.ctx.Err() != nil:
		return ctxError(s.ctx, s.doing)
	case isTimeout(err):
		if _, ok := s.ctx.Deadline(); ok {
			// The stream's deadline is the context's, and passed a
			// moment before the context noticed.
			err = context.DeadlineExceeded
		}
		return errdefs.With(errdefs.Timeout, s.doing+": the guest did not answer in time", err)
	case errors.Is(err, protocol.ErrMalformed), errors.Is(err, protocol.ErrFrameTooLarge):
		return fmt.Errorf("%s: the guest broke the protocol: %w", s.doing, err)
	case !s.sess.IsClosed():
		return errdefs.With(errdefs.Unavailable, s.doing+": the guest ended the request without an answer", err)
	}
	return closedError(s.doing, err)
}

// ctxError reports a call ended by its context: a passed deadline is a
// Timeout; a cancellation keeps context.Canceled in the chain.
func ctxError(ctx context.Context, doing string) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errdefs.With(errdefs.Timeout, doing+": the guest did not answer in time", context.Cause(ctx))
	}
	return fmt.Errorf("%s: %w", doing, context.Cause(ctx))
}

// closedError reports a call that failed because the channel broke.
func closedError(doing string, err error) error {
	return errdefs.With(errdefs.Unavailable, doing+": the guest channel is closed", err)
}

// isTimeout reports whether err is a passed deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
