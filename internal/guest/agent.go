// Package guest is the agent that runs inside every workspace VM and serves
// the host channel (see package protocol): one yamux session per host
// connection on the channel's virtio-serial port, one request per stream.
//
// The agent opens no network listener of any kind: the host channel is its
// only way in (security findings C-2, M-11).
package guest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Defaults for Options' zero values.
const (
	// DefaultMaxStreams bounds the requests one host session may have in
	// flight; more are refused (unavailable). The host keeps its own,
	// lower cap and waits for a slot instead.
	DefaultMaxStreams = 64
	// DefaultMaxExecs bounds the commands running at once, all sessions
	// together.
	DefaultMaxExecs = 32
	// DefaultOutputGrace is how long a command's output pipes are still
	// read after it exits: a process it left in the background may hold
	// them open, and the exec must not wait for that process to end.
	DefaultOutputGrace = 100 * time.Millisecond
)

// Timeouts of the agent's own waits on the host.
const (
	// requestTimeout bounds the wait for a new stream's request message
	// and, in an upload, for each next chunk.
	requestTimeout = 60 * time.Second
	// writeTimeout bounds each write to the host: a host that stops
	// reading for this long has gone.
	writeTimeout = 60 * time.Second
)

// streamWindow is how much the host may send ahead on one stream (file
// uploads). Four times yamux's default: fewer window updates on the slow
// serial link, and still bounded per stream.
const streamWindow = 1 << 20

// Options configures an Agent. The zero value is what runs in the VM; tests
// replace the parts that would change the machine they run on.
type Options struct {
	Logger *slog.Logger
	// Version is the agent version reported in Pong; empty means the
	// binary's module version.
	Version string
	// KernelToInit and InitStart are PID 1's measurements on
	// CLOCK_BOOTTIME (see pid1.EnvKernelToInitNs); zero when unknown.
	KernelToInit time.Duration
	InitStart    time.Duration
	// MaxStreams is the per-session request cap; 0 means DefaultMaxStreams.
	MaxStreams int
	// MaxExecs is the cap on running commands; 0 means DefaultMaxExecs.
	MaxExecs int
	// OutputGrace: see DefaultOutputGrace; 0 means the default.
	OutputGrace time.Duration
	// MaxJobs, JobOutputBudget, JobRetention and JobReadLinger bound the
	// background jobs (see the Default constants in jobs.go); 0 means the
	// default.
	MaxJobs         int
	JobOutputBudget int64
	JobRetention    time.Duration
	JobReadLinger   time.Duration
	// Now is the clock of job retention; nil means time.Now.
	Now func() time.Time
	// EtcDir holds the hostname and hosts files; empty means /etc.
	EtcDir string
	// SetHostname sets the kernel's hostname; nil means sethostname(2).
	SetHostname func(name string) error
	// Hostname reads it; nil means os.Hostname.
	Hostname func() (string, error)
	// SysClassNet lists the network interfaces; empty means
	// /sys/class/net.
	SysClassNet string
	// RunIP runs iproute2's ip; nil means the ip program.
	RunIP func(ctx context.Context, args ...string) error
	// PowerOff ends the machine after a Shutdown request has been
	// answered; nil means syncing the disks and powering off.
	PowerOff func() error
	// AddEntropy credits host entropy to the kernel and reseeds its CRNG;
	// SetClock steps the wall clock. nil means the real ones (see renew.go).
	AddEntropy func(b []byte) error
	SetClock   func(t time.Time) error
}

// Agent serves host channel sessions. One Agent serves any number of
// sessions over its life (the daemon may reconnect); the command cap is
// shared by all of them.
type Agent struct {
	opts  Options
	log   *slog.Logger
	execs chan struct{} // one token per running command

	readyOnce sync.Once
	ready     time.Duration // CLOCK_BOOTTIME when the first session started

	env    envStore  // set_env's variables (env.go)
	jobs   *jobTable // background jobs (jobs.go)
	editMu sync.Mutex
}

// NewAgent returns an Agent for opts, with defaults filled in.
func NewAgent(opts Options) *Agent {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Version == "" {
		opts.Version = buildVersion()
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = DefaultMaxStreams
	}
	if opts.MaxExecs <= 0 {
		opts.MaxExecs = DefaultMaxExecs
	}
	if opts.OutputGrace <= 0 {
		opts.OutputGrace = DefaultOutputGrace
	}
	if opts.EtcDir == "" {
		opts.EtcDir = "/etc"
	}
	if opts.SetHostname == nil {
		opts.SetHostname = func(name string) error { return unix.Sethostname([]byte(name)) }
	}
	if opts.Hostname == nil {
		opts.Hostname = os.Hostname
	}
	if opts.SysClassNet == "" {
		opts.SysClassNet = "/sys/class/net"
	}
	if opts.RunIP == nil {
		opts.RunIP = runIP
	}
	if opts.PowerOff == nil {
		opts.PowerOff = powerOff
	}
	if opts.MaxJobs <= 0 {
		opts.MaxJobs = DefaultMaxJobs
	}
	if opts.JobOutputBudget <= 0 {
		opts.JobOutputBudget = DefaultJobOutputBudget
	}
	if opts.JobRetention <= 0 {
		opts.JobRetention = DefaultJobRetention
	}
	if opts.JobReadLinger <= 0 {
		opts.JobReadLinger = DefaultJobReadLinger
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AddEntropy == nil {
		opts.AddEntropy = addEntropy
	}
	if opts.SetClock == nil {
		opts.SetClock = setClock
	}
	return &Agent{
		opts:  opts,
		log:   opts.Logger,
		execs: make(chan struct{}, opts.MaxExecs),
		jobs: newJobTable(jobOptions{
			max: opts.MaxJobs, budget: opts.JobOutputBudget, retention: opts.JobRetention,
			readLinger: opts.JobReadLinger, grace: opts.OutputGrace, now: opts.Now,
		}),
	}
}

// Close kills the agent's background jobs and waits until they are reaped.
// Jobs outlive host sessions, not the agent: call Close once the agent has
// stopped serving.
func (a *Agent) Close() { a.jobs.close() }

// Serve serves host sessions over conn until conn ends or ctx is done, and
// closes conn. Every session starts at a host's hello (see
// protocol.HelloSize): the agent ends the session it had, answers with its
// own hello and runs a yamux server (the host is the client) for the new
// one. It returns nil when conn ends.
func (a *Agent) Serve(ctx context.Context, conn Conn) error {
	defer conn.Close()
	err := a.serveSessions(ctx, conn)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Conn is the byte stream the channel runs over: the virtio-serial port in
// the VM, a socket in tests. Deadlines end a session's reads and writes
// without closing the stream, which outlives sessions.
type Conn interface {
	io.ReadWriteCloser
	SetDeadline(t time.Time) error
}

// serveSessions serves one session after another on conn, and returns nil
// when conn ends (io.EOF). A session ends only at the next host's hello (or
// when it breaks, or ctx ends); on the channel port conn is a portConn,
// whose reads do not end while no host is connected.
func (a *Agent) serveSessions(ctx context.Context, conn Conn) error {
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	sr := protocol.NewSessionReader(conn, protocol.HostHelloKind)
	for {
		nonce, err := sr.Next()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("waiting for a host: %w", err)
		}
		served, err := a.session(ctx, conn, sr, nonce)
		if err != nil {
			// A broken session (a host that spoke garbage) ends; the
			// stream goes on to the next hello.
			a.log.Warn("host session failed", "requests", served, "err", err)
		} else {
			a.log.Info("host session ended", "requests", served)
		}
		// The session's teardown passed the deadlines; the next one
		// starts without (unless ctx has ended meanwhile).
		conn.SetDeadline(time.Time{})
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// session answers a host's hello and serves the session that follows it.
func (a *Agent) session(ctx context.Context, conn Conn, sr *protocol.SessionReader, nonce protocol.Nonce) (int, error) {
	conn.SetDeadline(time.Now().Add(writeTimeout))
	if _, err := conn.Write(protocol.Hello(protocol.GuestHelloKind, nonce)); err != nil {
		a.log.Warn("answering a host's hello", "err", err)
		return 0, nil // the host is gone already; wait for the next
	}
	conn.SetDeadline(time.Time{})
	return a.serve(ctx, &sessionConn{Reader: sr, conn: conn})
}

// sessionConn is one session's view of the stream: its reads end at the
// next hello, and closing it ends pending reads and writes but leaves the
// stream open for the next session.
type sessionConn struct {
	io.Reader
	conn Conn
}

func (c *sessionConn) Write(p []byte) (int, error) { return c.conn.Write(p) }
func (c *sessionConn) Close() error                { return c.conn.SetDeadline(time.Unix(1, 0)) }

// serve runs one yamux session over conn and says how many requests it
// carried. It returns when the session ends, after its requests have.
func (a *Agent) serve(ctx context.Context, conn io.ReadWriteCloser) (int, error) {
	sess, err := yamux.Server(conn, yamuxConfig(a.log))
	if err != nil {
		conn.Close()
		return 0, fmt.Errorf("starting the channel session: %w", err)
	}
	a.readyOnce.Do(func() { a.ready = bootTime() })
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()

	slots := make(chan struct{}, a.opts.MaxStreams)
	var wg sync.WaitGroup
	served := 0
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			sess.Close()
			wg.Wait()
			if hostGone(err) {
				return served, nil
			}
			return served, fmt.Errorf("accepting a request: %w", err)
		}
		served++
		select {
		case slots <- struct{}{}:
		default:
			a.fail(st, errdefs.Unavailablef("too many requests in flight (at most %d per session)", a.opts.MaxStreams))
			st.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer st.Close()
			a.handle(st)
		}()
	}
}

// handle serves one request stream.
func (a *Agent) handle(st net.Conn) {
	st.SetReadDeadline(time.Now().Add(requestTimeout))
	m, err := protocol.Read(st)
	if err != nil {
		switch {
		case errors.Is(err, protocol.ErrMalformed), errors.Is(err, protocol.ErrFrameTooLarge):
			a.fail(st, errdefs.Invalidf("%v", err))
		case isTimeout(err):
			a.fail(st, errdefs.Timeoutf("no request within %s of opening the stream", requestTimeout))
		case !errors.Is(err, io.EOF):
			a.log.Debug("reading a request", "err", err)
		}
		return
	}
	st.SetReadDeadline(time.Time{})

	switch m := m.(type) {
	case *protocol.Ping:
		a.reply(st, a.pong())
	case *protocol.Configure:
		a.replyDone(st, a.configure(m))
	case *protocol.Renew:
		a.replyDone(st, a.renew(m))
	case *protocol.Exec:
		a.exec(st, m)
	case *protocol.FileWrite:
		a.replyDone(st, a.writeFile(st, m))
	case *protocol.FileRead:
		if err := a.readFile(st, m); err != nil {
			a.fail(st, err)
		}
	case *protocol.Shutdown:
		a.shutdown(st)
	case *protocol.SetEnv:
		names, err := a.env.set(m)
		a.replyOr(st, &protocol.EnvSet{Names: names}, err)
	case *protocol.JobStart:
		s, err := a.startJob(m)
		a.replyOr(st, s, err)
	case *protocol.JobPoll:
		if err := a.pollJob(st, m); err != nil {
			a.fail(st, err)
		}
	case *protocol.JobKill:
		s, err := a.killJob(m)
		a.replyOr(st, s, err)
	case *protocol.FileEdit:
		r, err := a.editFile(m)
		a.replyOr(st, r, err)
	case *protocol.FileList:
		if err := a.listDir(st, m); err != nil {
			a.fail(st, err)
		}
	case *protocol.PTYOpen:
		a.pty(st, m)
	default:
		a.fail(st, errdefs.Invalidf("a %s message does not start a request", m.Type()))
	}
}

// reply sends m to the host.
func (a *Agent) reply(st net.Conn, m protocol.Message) {
	if err := send(st, m); err != nil {
		a.log.Debug("answering a request", "type", m.Type(), "err", err)
	}
}

// fail answers a request with err as a protocol Error.
func (a *Agent) fail(st net.Conn, err error) {
	a.log.Debug("request failed", "err", err)
	a.reply(st, protocol.ErrorFrom(err))
}

// replyDone answers a request that has no result: OK, or the error.
func (a *Agent) replyDone(st net.Conn, err error) {
	if err != nil {
		a.fail(st, err)
		return
	}
	a.reply(st, &protocol.OK{})
}

// replyOr answers a request with m, or with err when it is set.
func (a *Agent) replyOr(st net.Conn, m protocol.Message, err error) {
	if err != nil {
		a.fail(st, err)
		return
	}
	a.reply(st, m)
}

// send writes one message with the write deadline.
func send(st net.Conn, m protocol.Message) error {
	st.SetWriteDeadline(time.Now().Add(writeTimeout))
	return protocol.Write(st, m)
}

// pong answers Ping.
func (a *Agent) pong() *protocol.Pong {
	host, err := a.opts.Hostname()
	if err != nil {
		a.log.Warn("reading the hostname", "err", err)
	}
	p := &protocol.Pong{
		Version:        protocol.Version,
		AgentVersion:   a.opts.Version,
		Hostname:       host,
		KernelToInitNs: a.opts.KernelToInit.Nanoseconds(),
		UptimeNs:       bootTime().Nanoseconds(),
	}
	if a.opts.InitStart > 0 {
		p.InitToReadyNs = (a.ready - a.opts.InitStart).Nanoseconds()
	}
	return p
}

// shutdown answers OK and then ends the machine. The answer is on its way
// to the host (written to the port) before the power goes.
func (a *Agent) shutdown(st net.Conn) {
	a.reply(st, &protocol.OK{})
	st.Close()
	a.log.Info("powering off at the host's request")
	if err := a.opts.PowerOff(); err != nil {
		a.log.Error("powering off", "err", err)
	}
}

// powerOff syncs the disks and powers the machine off. QEMU runs with
// -no-reboot, so should power-off be refused, a restart ends the VM too.
func powerOff() error {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	if err == nil {
		return nil
	}
	if err2 := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err2 != nil {
		return fmt.Errorf("power off: %w; restart: %w", err, err2)
	}
	return nil
}

// yamuxConfig is the session configuration for the serial link. Keepalive
// is off: a paused VM (snapshots) must not lose its session, and the host
// notices a dead VM by its QEMU process, not by pings.
func yamuxConfig(log *slog.Logger) *yamux.Config {
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.MaxStreamWindowSize = streamWindow
	cfg.ConnectionWriteTimeout = writeTimeout
	cfg.LogOutput = nil
	cfg.Logger = slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	return cfg
}

// hostGone reports whether err ending a session means only that the host
// went away (or ctx ended it), which is how every session ends.
func hostGone(err error) bool {
	for _, e := range []error{io.EOF, yamux.ErrSessionShutdown, net.ErrClosed, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// isTimeout reports whether err is a passed deadline.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// bootTime is CLOCK_BOOTTIME: time since the kernel started.
func bootTime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// buildVersion is the module version the binary was built from.
func buildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "devel"
}
