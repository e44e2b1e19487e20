package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

// CLI stream caps on the API socket.
const (
	cliStreamsPerSession = 8
	cliStreamsTotal      = 32
)

// serveAPISocket serves the REST API on the CLI's Unix socket until ctx
// ends. Who a connection is comes from the kernel (SO_PEERCRED), never
// from the request: root acts as administrator, in a session of its own
// per connection. Other users are refused for now: per-user CLI sessions
// (which workspaces a user's successive commands share) are the CLI's to
// define.
func (d *Daemon) serveAPISocket(ctx context.Context) error {
	a, err := d.newAPI(api.NewStreamLimiter(cliStreamsPerSession, cliStreamsTotal), "cli")
	if err != nil {
		return err
	}
	path := d.cfg.APISocketPath()
	ln, err := listenUnix(path, d.cfg.Server.SocketGroup)
	if err != nil {
		return err
	}
	cs := &cliSessions{store: d.store, forget: d.forgetSession, log: d.log, byConn: map[net.Conn]string{}}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { cs.serve(w, r, a) }),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext:       cs.connContext,
		ConnState:         cs.connState,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		cancel()
		srv.Close()
	}()
	d.log.Info("serving the REST API", "socket", path)
	err = srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

type cliCallerKey struct{}

// cliSessions makes one state session per connection from its peer
// credentials and ends it when the connection closes.
type cliSessions struct {
	store  *state.Store
	forget func(id string)
	log    *slog.Logger

	mu     sync.Mutex
	byConn map[net.Conn]string
}

// cliCaller is who a connection is, or why it is refused.
type cliCaller struct {
	caller workspace.Caller
	err    error
}

func (cs *cliSessions) connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return context.WithValue(ctx, cliCallerKey{}, cliCaller{err: errdefs.PermissionDeniedf("not a Unix socket connection")})
	}
	uid, pid := peerCred(uc)
	cc := cliCallerFor(uid)
	if cc.err == nil {
		sess, err := cs.store.CreateSession(ctx, state.Session{UID: uid, PID: pid, Transport: "cli"})
		if err != nil {
			cs.log.Error("creating a CLI session", "err", err)
			cc.err = errdefs.Unavailablef("the daemon could not start a session")
		} else {
			cc.caller.SessionID = sess.ID
			cs.mu.Lock()
			cs.byConn[c] = sess.ID
			cs.mu.Unlock()
		}
	}
	return context.WithValue(ctx, cliCallerKey{}, cc)
}

// cliCallerFor is the caller a peer uid acts as.
func cliCallerFor(uid int) cliCaller {
	switch {
	case uid < 0:
		return cliCaller{err: errdefs.PermissionDeniedf("peer credentials unavailable")}
	case uid != 0:
		return cliCaller{err: errdefs.PermissionDeniedf("the API socket serves root only for now; agents use `agentiso mcp`")}
	}
	return cliCaller{caller: workspace.Caller{UID: 0, Actor: "cli", Admin: true}}
}

func (cs *cliSessions) connState(c net.Conn, st http.ConnState) {
	if st != http.StateClosed && st != http.StateHijacked {
		return
	}
	cs.mu.Lock()
	id, ok := cs.byConn[c]
	delete(cs.byConn, c)
	cs.mu.Unlock()
	if ok {
		cs.forget(id)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := cs.store.EndSession(ctx, id); err != nil {
			cs.log.Warn("ending a CLI session", "err", err)
		}
	}
}

func (cs *cliSessions) serve(w http.ResponseWriter, r *http.Request, a *api.API) {
	cc, _ := r.Context().Value(cliCallerKey{}).(cliCaller)
	if cc.err != nil || cc.caller.SessionID == "" {
		err := cc.err
		if err == nil {
			err = errdefs.PermissionDeniedf("no session")
		}
		api.WriteError(w, err)
		return
	}
	a.ServeHTTP(w, r.WithContext(api.WithCaller(r.Context(), cc.caller)))
}
