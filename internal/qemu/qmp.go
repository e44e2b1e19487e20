package qemu

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxQMPMessage bounds one message from QEMU. QEMU writes one JSON object per
// line; the largest answer agentiso could ask for (query-qmp-schema) is a few
// hundred KiB. A QEMU taken over by its guest cannot make the daemon buffer
// without bound.
const maxQMPMessage = 4 << 20

// qmpEventBuffer is how many events wait for a reader before new ones are
// dropped.
const qmpEventBuffer = 64

// ErrQMPClosed is returned by calls on a QMP connection that has ended.
var ErrQMPClosed = errors.New("qmp connection closed")

// QMPError is an error QEMU answered a command with.
type QMPError struct {
	Class string `json:"class"`
	Desc  string `json:"desc"`
}

func (e *QMPError) Error() string { return e.Class + ": " + e.Desc }

// Event is an asynchronous QMP event (SHUTDOWN, STOP, RESUME, ...).
type Event struct {
	Name string
	Data json.RawMessage
	Time time.Time
}

// QMPVersion is the QEMU version from the QMP greeting.
type QMPVersion struct {
	Major   int    `json:"major"`
	Minor   int    `json:"minor"`
	Micro   int    `json:"micro"`
	Package string `json:"-"`
}

// QMP is a connection to a QEMU's QMP monitor. Commands may be issued
// concurrently; replies are matched by id.
type QMP struct {
	conn    *net.UnixConn
	log     *slog.Logger
	version QMPVersion

	writeMu sync.Mutex
	nextID  atomic.Uint64

	mu      sync.Mutex
	pending map[string]chan qmpMessage
	err     error // why the connection ended; set once, before done closes

	events chan Event
	done   chan struct{}
}

// qmpMessage is any message QEMU sends after the greeting.
type qmpMessage struct {
	ID     string          `json:"id"`
	Return json.RawMessage `json:"return"`
	Error  *QMPError       `json:"error"`

	Event     string          `json:"event"`
	Data      json.RawMessage `json:"data"`
	Timestamp struct {
		Seconds      int64 `json:"seconds"`
		Microseconds int64 `json:"microseconds"`
	} `json:"timestamp"`
}

// DialQMP connects to the QMP socket at path, waiting for QEMU to create it
// until ctx ends, reads the greeting and negotiates capabilities. log may be
// nil.
func DialQMP(ctx context.Context, path string, log *slog.Logger) (*QMP, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	conn, err := dialUnixWait(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("connecting to qmp: %w", err)
	}
	q := &QMP{
		conn:    conn,
		log:     log,
		pending: make(map[string]chan qmpMessage),
		events:  make(chan Event, qmpEventBuffer),
		done:    make(chan struct{}),
	}
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 64<<10), maxQMPMessage)
	if err := q.greet(ctx, sc); err != nil {
		conn.Close()
		return nil, err
	}
	go q.readLoop(sc)
	if err := q.Execute(ctx, "qmp_capabilities", nil, nil); err != nil {
		q.Close()
		return nil, fmt.Errorf("negotiating qmp capabilities: %w", err)
	}
	return q, nil
}

func (q *QMP) greet(ctx context.Context, sc *bufio.Scanner) error {
	stop := context.AfterFunc(ctx, func() { q.conn.SetReadDeadline(time.Unix(1, 0)) })
	scanned := sc.Scan()
	if !stop() {
		// ctx ended, and the read deadline is (or is about to be) past.
		return fmt.Errorf("reading qmp greeting: %w", ctx.Err())
	}
	if !scanned {
		err := sc.Err()
		if err == nil {
			err = io.EOF
		}
		return fmt.Errorf("reading qmp greeting: %w", err)
	}
	var g struct {
		QMP *struct {
			Version struct {
				QEMU    QMPVersion `json:"qemu"`
				Package string     `json:"package"`
			} `json:"version"`
		} `json:"QMP"`
	}
	if err := json.Unmarshal(sc.Bytes(), &g); err != nil || g.QMP == nil {
		return fmt.Errorf("reading qmp greeting: not a greeting: %.200q", sc.Bytes())
	}
	q.version = g.QMP.Version.QEMU
	q.version.Package = g.QMP.Version.Package
	return nil
}

// Version is the QEMU version the greeting announced.
func (q *QMP) Version() QMPVersion { return q.version }

// Events delivers QMP events in order. It is closed when the connection
// ends. Events that find the buffer full are dropped (and logged), so a
// consumer that does not read never blocks the connection.
func (q *QMP) Events() <-chan Event { return q.events }

// Done is closed when the connection has ended (QEMU exited or Close).
func (q *QMP) Done() <-chan struct{} { return q.done }

// Err returns why the connection ended, or nil while it is up.
func (q *QMP) Err() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

// Close ends the connection. Calls waiting for a reply return ErrQMPClosed.
func (q *QMP) Close() error {
	err := q.conn.Close()
	<-q.done
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Execute runs cmd with args (nil for none) and decodes the reply into
// result (nil to discard it). A command QEMU refuses gives a *QMPError.
func (q *QMP) Execute(ctx context.Context, cmd string, args, result any) error {
	return q.ExecuteWithFiles(ctx, cmd, args, result)
}

// ExecuteWithFiles is Execute, passing files to QEMU with the command
// (SCM_RIGHTS), as getfd and add-fd expect.
func (q *QMP) ExecuteWithFiles(ctx context.Context, cmd string, args, result any, files ...*os.File) error {
	id := strconv.FormatUint(q.nextID.Add(1), 10)
	req := struct {
		Execute   string `json:"execute"`
		Arguments any    `json:"arguments,omitempty"`
		ID        string `json:"id"`
	}{cmd, args, id}
	b, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding qmp %s: %w", cmd, err)
	}
	b = append(b, '\n')

	reply := make(chan qmpMessage, 1)
	q.mu.Lock()
	if q.err != nil {
		err := q.err
		q.mu.Unlock()
		return fmt.Errorf("qmp %s: %w", cmd, err)
	}
	q.pending[id] = reply
	q.mu.Unlock()
	defer func() {
		q.mu.Lock()
		delete(q.pending, id)
		q.mu.Unlock()
	}()

	if err := q.write(ctx, b, files); err != nil {
		return fmt.Errorf("sending qmp %s: %w", cmd, err)
	}
	select {
	case m := <-reply:
		if m.Error != nil {
			return fmt.Errorf("qmp %s: %w", cmd, m.Error)
		}
		if result != nil {
			if err := json.Unmarshal(m.Return, result); err != nil {
				return fmt.Errorf("decoding qmp %s reply: %w", cmd, err)
			}
		}
		return nil
	case <-q.done:
		return fmt.Errorf("qmp %s: %w", cmd, q.Err())
	case <-ctx.Done():
		return fmt.Errorf("qmp %s: %w", cmd, ctx.Err())
	}
}

// GetFD passes f to QEMU under name (QMP getfd), for commands that take
// "fd:<name>", such as migrate. QEMU holds its own copy; the caller may
// close f afterwards.
func (q *QMP) GetFD(ctx context.Context, name string, f *os.File) error {
	return q.ExecuteWithFiles(ctx, "getfd", map[string]string{"fdname": name}, nil, f)
}

// Status is the answer to query-status.
type Status struct {
	Running bool   `json:"running"`
	Status  string `json:"status"`
}

// QueryStatus returns the VM's run state ("prelaunch", "running", "paused",
// "shutdown", ...).
func (q *QMP) QueryStatus(ctx context.Context) (Status, error) {
	var s Status
	err := q.Execute(ctx, "query-status", nil, &s)
	return s, err
}

func (q *QMP) write(ctx context.Context, b []byte, files []*os.File) error {
	q.writeMu.Lock()
	defer q.writeMu.Unlock()
	// A QEMU that stops reading cannot hold the caller past ctx.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		q.conn.SetWriteDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
			q.conn.SetWriteDeadline(time.Time{})
		}
	}()
	if len(files) == 0 {
		_, err := q.conn.Write(b)
		return err
	}
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	// The descriptors travel with the first byte of the message; QEMU
	// attaches them to the command it is reading.
	n, _, err := q.conn.WriteMsgUnix(b, unix.UnixRights(fds...), nil)
	runtime.KeepAlive(files) // the descriptors stay open until sent
	if err != nil {
		return err
	}
	if n < len(b) {
		_, err = q.conn.Write(b[n:])
	}
	return err
}

func (q *QMP) readLoop(sc *bufio.Scanner) {
	err := q.read(sc)
	q.mu.Lock()
	q.err = err
	q.mu.Unlock()
	q.conn.Close()
	close(q.done)
	close(q.events)
}

func (q *QMP) read(sc *bufio.Scanner) error {
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m qmpMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("%w: decoding a message: %w", ErrQMPClosed, err)
		}
		if m.Event != "" {
			ev := Event{
				Name: m.Event,
				Data: m.Data,
				Time: time.Unix(m.Timestamp.Seconds, m.Timestamp.Microseconds*1000),
			}
			select {
			case q.events <- ev:
			default:
				q.log.Warn("qmp event dropped: nobody is reading events", "event", ev.Name)
			}
			continue
		}
		q.mu.Lock()
		reply, ok := q.pending[m.ID]
		q.mu.Unlock()
		if !ok {
			q.log.Debug("qmp reply for no pending command", "id", m.ID)
			continue
		}
		reply <- m
	}
	if err := sc.Err(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("%w: %w", ErrQMPClosed, err)
	}
	return ErrQMPClosed
}

// dialUnixWait connects to the Unix socket at path, retrying while it does
// not exist yet or refuses connections (QEMU is still starting), until ctx
// ends.
func dialUnixWait(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	backoff := 2 * time.Millisecond
	for {
		c, err := d.DialContext(ctx, "unix", path)
		if err == nil {
			return c.(*net.UnixConn), nil
		}
		if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for %s: %w", path, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 50*time.Millisecond)
	}
}
