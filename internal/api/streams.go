package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/workspace"
)

// StreamLimiter caps concurrent long-lived responses (WebSocket and SSE:
// live updates, terminals, streamed exec) per session and for all sessions
// together (finding M-15), so no login can hold the daemon's connections or
// file descriptors.
type StreamLimiter struct {
	perSession, total int

	mu        sync.Mutex
	bySession map[string]int
	all       int
}

// NewStreamLimiter returns a limiter allowing perSession streams to one
// session and total to all.
func NewStreamLimiter(perSession, total int) *StreamLimiter {
	return &StreamLimiter{perSession: perSession, total: total, bySession: map[string]int{}}
}

// Acquire takes a stream slot for session, or refuses with a RateLimited
// error that says which cap was hit. release gives the slot back; calling
// it more than once is harmless.
func (l *StreamLimiter) Acquire(session string) (release func(), err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bySession[session] >= l.perSession {
		return nil, errdefs.RateLimitedf("streams: this session already has %d open streams (dashboard.max_streams_per_session); close a terminal or tab", l.perSession)
	}
	if l.all >= l.total {
		return nil, errdefs.RateLimitedf("streams: the daemon already serves %d streams (dashboard.max_streams_total); try again later", l.total)
	}
	l.bySession[session]++
	l.all++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.all--
			if l.bySession[session]--; l.bySession[session] <= 0 {
				delete(l.bySession, session)
			}
		})
	}, nil
}

// InUse returns the open streams of session and of all sessions.
func (l *StreamLimiter) InUse(session string) (mine, all int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bySession[session], l.all
}

func wantsEventStream(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/event-stream")
}

// execStream runs a command and sends its output as server-sent events as
// it arrives: "output" {stream, data}, then "exit" (the result) or
// "error" {class, message}.
func (a *API) execStream(w http.ResponseWriter, r *http.Request, req workspace.ExecRequest) error {
	c := caller(r)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	var sendErr error
	send := func(event string, v any) {
		if sendErr != nil {
			return
		}
		b, _ := json.Marshal(v)
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if _, sendErr = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b); sendErr == nil {
			sendErr = rc.Flush()
		}
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	res, err := a.o.Workspaces.ExecStream(ctx, c, r.PathValue("ws"), req, func(s protocol.Stream, data string) {
		send("output", map[string]string{"stream": string(s), "data": data})
		if sendErr != nil {
			cancel() // the reader is gone: the command ends with the request
		}
	})
	if err != nil {
		var b ErrorBody
		b.Error.Class, b.Error.Message = errdefs.ClassOf(err).String(), errdefs.Public(err)
		send("error", b.Error)
		return nil
	}
	send("exit", res)
	return nil
}

// wsReadLimit bounds one message a client sends on a WebSocket.
const wsReadLimit = 64 << 10

// accept upgrades to a WebSocket. The edge has already checked the Origin
// (same origin only); the library checks it again.
func accept(w http.ResponseWriter, r *http.Request) (*websocket.Conn, error) {
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{})
	if err != nil {
		return nil, errdefs.With(errdefs.Invalid, "websocket: upgrade refused", err)
	}
	conn.SetReadLimit(wsReadLimit)
	return conn, nil
}

// terminalControl is a text message on a terminal socket.
type terminalControl struct {
	Type string `json:"type"`
	Rows int    `json:"rows,omitempty"`
	Cols int    `json:"cols,omitempty"`
	// ExitCode and Signal are set on "exit".
	ExitCode *int   `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	// Message is set on "error".
	Message string `json:"message,omitempty"`
}

// terminal serves a terminal over a WebSocket: binary messages are the
// terminal's bytes both ways; text messages are JSON control:
// {"type":"resize","rows","cols"} from the client, {"type":"exit",...}
// and {"type":"error","message"} from the server.
func (a *API) terminal(w http.ResponseWriter, r *http.Request) (any, error) {
	c := caller(r)
	q := r.URL.Query()
	rows, err := intParam(q.Get("rows"), "rows", 24, 1, protocol.MaxPTYDim)
	if err != nil {
		return nil, err
	}
	cols, err := intParam(q.Get("cols"), "cols", 80, 1, protocol.MaxPTYDim)
	if err != nil {
		return nil, err
	}
	release, err := a.o.Streams.Acquire(c.SessionID)
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	// Opened before the upgrade, so a refusal is an ordinary HTTP error.
	term, err := a.o.Workspaces.OpenTerminal(ctx, c, r.PathValue("ws"), rows, cols)
	if err != nil {
		return nil, err
	}
	defer term.Close()
	conn, err := accept(w, r)
	if err != nil {
		return nil, err
	}
	defer conn.CloseNow()

	go func() {
		defer cancel()
		for {
			typ, msg, err := conn.Read(ctx)
			if err != nil {
				return
			}
			if typ == websocket.MessageBinary {
				if _, err := term.Write(msg); err != nil {
					return
				}
				continue
			}
			var ctl terminalControl
			if json.Unmarshal(msg, &ctl) != nil || ctl.Type != "resize" {
				continue
			}
			if ctl.Rows >= 1 && ctl.Rows <= protocol.MaxPTYDim && ctl.Cols >= 1 && ctl.Cols <= protocol.MaxPTYDim {
				_ = term.Resize(ctl.Rows, ctl.Cols)
			}
		}
	}()
	go func() {
		<-ctx.Done()
		term.Close() // ends a Read waiting on the guest
	}()
	for {
		data, exit, err := term.Read()
		switch {
		case err != nil:
			if ctx.Err() == nil {
				writeControl(ctx, conn, terminalControl{Type: "error", Message: errdefs.Public(err)})
				conn.Close(websocket.StatusInternalError, "terminal failed")
			}
			return nil, nil
		case exit != nil:
			code := exit.ExitCode
			writeControl(ctx, conn, terminalControl{Type: "exit", ExitCode: &code, Signal: exit.Signal})
			conn.Close(websocket.StatusNormalClosure, "the shell exited")
			return nil, nil
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		err = conn.Write(wctx, websocket.MessageBinary, data)
		wcancel()
		if err != nil {
			return nil, nil
		}
	}
}

func writeControl(ctx context.Context, conn *websocket.Conn, ctl terminalControl) {
	b, _ := json.Marshal(ctl)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_ = conn.Write(wctx, websocket.MessageText, b)
}

// Event is one message on the live-updates socket.
type Event struct {
	// Type is "workspaces" (the whole list, sent when it changes),
	// "teams" (every team with its members and task board, sent when
	// anything of it changes) or "host" (metrics, sent every few seconds).
	Type string `json:"type"`
	// Workspaces is set (possibly empty) on "workspaces" events.
	Workspaces *[]workspace.Info `json:"workspaces,omitempty"`
	// Teams is set (possibly empty) on "teams" events.
	Teams *[]TeamView `json:"teams,omitempty"`
	Host  *HostStats  `json:"host,omitempty"`
}

// hostEvery is how many event intervals pass between host metrics.
const hostEvery = 5

// events is the one live-updates WebSocket a dashboard keeps open: the
// workspace list and the teams whenever they change, host metrics every
// few seconds.
// Clients send nothing but pings.
func (a *API) events(w http.ResponseWriter, r *http.Request) (any, error) {
	c := caller(r)
	release, err := a.o.Streams.Acquire(c.SessionID)
	if err != nil {
		return nil, err
	}
	defer release()
	conn, err := accept(w, r)
	if err != nil {
		return nil, err
	}
	defer conn.CloseNow()
	ctx := conn.CloseRead(r.Context())

	var last, lastTeams []byte
	tick := time.NewTicker(a.o.EventsInterval)
	defer tick.Stop()
	for n := 0; ; n++ {
		list, err := a.o.Workspaces.List(ctx, c, "")
		if err != nil && ctx.Err() == nil {
			a.log.Warn("events: listing workspaces", "err", err)
		}
		if err == nil {
			if list == nil {
				list = []workspace.Info{}
			}
			for i := range list {
				list[i].UptimeSecs = 0 // changes every second; clients derive it from started_at
			}
			b, _ := json.Marshal(Event{Type: "workspaces", Workspaces: &list})
			if !bytes.Equal(b, last) {
				if err := writeEvent(ctx, conn, b); err != nil {
					return nil, nil
				}
				last = b
			}
		}
		if a.o.Teams != nil {
			if views, err := a.teamViews(ctx, c); err == nil {
				b, _ := json.Marshal(Event{Type: "teams", Teams: &views})
				if !bytes.Equal(b, lastTeams) {
					if err := writeEvent(ctx, conn, b); err != nil {
						return nil, nil
					}
					lastTeams = b
				}
			} else if ctx.Err() == nil {
				a.log.Warn("events: listing teams", "err", err)
			}
		}
		if a.o.Host != nil && c.Admin && n%hostEvery == 0 {
			if hs, err := a.o.Host(ctx); err == nil {
				b, _ := json.Marshal(Event{Type: "host", Host: hs})
				if err := writeEvent(ctx, conn, b); err != nil {
					return nil, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			conn.Close(websocket.StatusNormalClosure, "")
			return nil, nil
		case <-tick.C:
		}
	}
}

func writeEvent(ctx context.Context, conn *websocket.Conn, b []byte) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return conn.Write(wctx, websocket.MessageText, b)
}
