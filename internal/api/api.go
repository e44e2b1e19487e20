// Package api is agentiso's REST API: the same operations as the MCP tools,
// over HTTP with JSON, for people rather than agents. The dashboard serves
// it over TCP behind a login; a CLI can serve it over a Unix socket with
// peer credentials. Either edge authenticates the connection and puts the
// resulting workspace.Caller in the request's context (WithCaller); this
// package never decides who the caller is, it only acts as them.
//
// Errors are JSON {"error": {"class", "message"}} with a status from the
// errdefs class. Only the public text of a classified error is sent, so an
// error never names an object the caller may not see (finding L-16).
// docs/api.md describes every route.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/team"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Prefix is the path every route of this API starts with.
const Prefix = "/api/v1/"

// maxBodyBytes bounds a request body: a file write carries at most this
// much content.
const maxBodyBytes = 8 << 20

// Workspaces is the part of the workspace manager the API calls.
type Workspaces interface {
	Create(ctx context.Context, c workspace.Caller, req workspace.CreateRequest) (*workspace.Info, error)
	Destroy(ctx context.Context, c workspace.Caller, ref string) error
	Start(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	Stop(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	List(ctx context.Context, c workspace.Caller, stateFilter string) ([]workspace.Info, error)
	Info(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	Logs(ctx context.Context, c workspace.Caller, ref, logType string, maxLines int) (*workspace.Logs, error)
	ExecStream(ctx context.Context, c workspace.Caller, ref string, req workspace.ExecRequest, onOutput func(protocol.Stream, string)) (*workspace.ExecResult, error)
	WriteFile(ctx context.Context, c workspace.Caller, ref, path string, content []byte, mode uint32) error
	ReadFile(ctx context.Context, c workspace.Caller, ref, path string, offset, limit int64) (data []byte, size int64, err error)
	OpenTerminal(ctx context.Context, c workspace.Caller, ref string, rows, cols int) (workspace.Terminal, error)
}

// AuditLog is where the audit screen reads from.
type AuditLog interface {
	ListAudit(ctx context.Context, f state.AuditFilter) ([]state.AuditEntry, error)
}

// AuditRecord is one API action for the audit log.
type AuditRecord struct {
	Caller   workspace.Caller
	Action   string
	Target   string
	Err      error
	Duration time.Duration
}

// Limiter decides whether a session may act now; a refusal is an
// errdefs.RateLimited error.
type Limiter interface {
	Allow(sessionID, tool, action string) error
}

// Activity learns when a session's requests start and end.
type Activity interface {
	Begin(sessionID string)
	End(sessionID string)
}

// Features says which parts of the product this daemon serves, so a client
// shows only screens whose data exists. Parts still being built are false.
type Features struct {
	Workspaces bool `json:"workspaces"`
	Terminal   bool `json:"terminal"`
	Snapshots  bool `json:"snapshots"`
	Network    bool `json:"network"`
	Teams      bool `json:"teams"`
	Vault      bool `json:"vault"`
	Pool       bool `json:"pool"`
}

// Options configures an API.
type Options struct {
	Workspaces Workspaces
	// Snapshots serves the snapshot and fork routes; nil leaves them
	// unavailable.
	Snapshots Snapshots
	// Vault serves the vault routes; nil (the vault disabled) leaves them
	// unavailable.
	Vault Vault
	// Teams serves the team routes and the live updates of teams; nil
	// leaves them unavailable.
	Teams Teams
	// Network serves the port forward and network policy routes; nil
	// (workspace networking off) leaves them unavailable.
	Network  Network
	AuditLog AuditLog
	// Record, when set, receives every action that changes or reads a
	// workspace.
	Record func(ctx context.Context, r AuditRecord)
	// Host reports host metrics; nil leaves the host route unavailable.
	Host func(ctx context.Context) (*HostStats, error)
	Exec workspace.ExecLimits
	// MaxFileReadBytes bounds one file read.
	MaxFileReadBytes int64
	// Streams caps concurrent long-lived responses (WebSocket, SSE).
	Streams  *StreamLimiter
	Features Features
	// Limiter, when set, is the rate limit (package session) every
	// recorded action passes first, by the MCP tool name it corresponds
	// to (workspace_create is a create, exec an exec).
	Limiter Limiter
	// Activity, when set, learns when each session's requests start and
	// end, so a session with the dashboard open is not taken for gone.
	Activity Activity
	// EventsInterval is how often the live-updates socket looks for
	// changes; 0 means one second.
	EventsInterval time.Duration
	Logger         *slog.Logger
}

// API serves the REST API.
type API struct {
	o   Options
	log *slog.Logger
	mux *http.ServeMux
}

// New returns the API for o.
func New(o Options) (*API, error) {
	if o.Workspaces == nil || o.AuditLog == nil || o.Streams == nil {
		return nil, errors.New("api: workspaces, audit log and stream limiter are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.EventsInterval <= 0 {
		o.EventsInterval = time.Second
	}
	if o.MaxFileReadBytes <= 0 {
		o.MaxFileReadBytes = 8 << 20
	}
	a := &API{o: o, log: o.Logger, mux: http.NewServeMux()}
	a.routes()
	return a, nil
}

// ServeHTTP serves a request whose context carries its Caller
// (WithCaller); one without is refused.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, ok := CallerFrom(r.Context()); !ok {
		WriteError(w, errdefs.PermissionDeniedf("not logged in"))
		return
	}
	a.mux.ServeHTTP(w, r)
}

type callerKey struct{}

// WithCaller returns ctx carrying c, the caller the edge authenticated.
func WithCaller(ctx context.Context, c workspace.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller WithCaller put in ctx.
func CallerFrom(ctx context.Context) (workspace.Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(workspace.Caller)
	return c, ok
}

func caller(r *http.Request) workspace.Caller {
	c, _ := CallerFrom(r.Context())
	return c
}

// handler is a route's body: it returns the value to send as JSON, or an
// error. A handler that wrote its own response returns (nil, nil).
type handler func(w http.ResponseWriter, r *http.Request) (any, error)

// handle registers pattern. action names the route in the audit log and,
// as the MCP tool it corresponds to, in the rate limit; an empty action is
// not recorded (polling reads of lists and metrics).
func (a *API) handle(pattern, action string, h handler) { a.handleSub(pattern, action, "", h) }

// handleSub is handle for a route that is one action of a tool with
// several (team create, port_forward add): the rate limit takes its class
// from both, and the audit log records "tool.sub".
func (a *API) handleSub(pattern, tool, sub string, h handler) {
	action := tool
	if sub != "" {
		action = tool + "." + sub
	}
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		c := caller(r)
		if a.o.Activity != nil {
			a.o.Activity.Begin(c.SessionID)
			defer a.o.Activity.End(c.SessionID)
		}
		var out any
		var err error
		if tool != "" && a.o.Limiter != nil {
			err = a.o.Limiter.Allow(c.SessionID, tool, sub)
		}
		if err == nil {
			out, err = h(w, r)
		}
		if tool != "" && a.o.Record != nil {
			a.o.Record(r.Context(), AuditRecord{
				Caller: c, Action: action, Target: auditTarget(r, out),
				Err: err, Duration: time.Since(start),
			})
		}
		switch {
		case err != nil:
			a.logError(r, err)
			WriteError(w, err)
		case out != nil:
			writeJSON(w, http.StatusOK, out)
		}
	})
}

// auditTarget names the object a request acted on: its workspace, or its
// team (and task); a create names what it made.
func auditTarget(r *http.Request, out any) string {
	if ws := r.PathValue("ws"); ws != "" {
		return ws
	}
	if tm := r.PathValue("team"); tm != "" {
		if task := r.PathValue("task"); task != "" {
			return tm + "/" + task
		}
		return tm
	}
	if info, ok := out.(*workspace.Info); ok && info != nil {
		return info.ID
	}
	if info, ok := out.(*team.Info); ok && info != nil {
		return info.Name
	}
	return ""
}

func (a *API) logError(r *http.Request, err error) {
	if errdefs.ClassOf(err) == errdefs.Internal {
		a.log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		a.log.Debug("api request refused", "method", r.Method, "path", r.URL.Path, "err", err)
	}
}

// Status is the HTTP status for an error class.
func Status(c errdefs.Class) int {
	switch c {
	case errdefs.Invalid:
		return http.StatusBadRequest
	case errdefs.NotFound:
		return http.StatusNotFound
	case errdefs.Conflict:
		return http.StatusConflict
	case errdefs.Quota, errdefs.PermissionDenied:
		return http.StatusForbidden
	case errdefs.RateLimited:
		return http.StatusTooManyRequests
	case errdefs.Unavailable:
		return http.StatusServiceUnavailable
	case errdefs.Timeout:
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

// WriteError sends err as an error response: its class's status and its
// public text only.
func WriteError(w http.ResponseWriter, err error) {
	var b ErrorBody
	c := errdefs.ClassOf(err)
	b.Error.Class = c.String()
	b.Error.Message = errdefs.Public(err)
	st := Status(c)
	if c == errdefs.PermissionDenied && b.Error.Message == "not logged in" {
		st = http.StatusUnauthorized
	}
	writeJSON(w, st, b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// decode reads a JSON request body into v. Its errors never echo the
// body: they say only that it is not what the route takes.
func decode(r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return errdefs.Invalidf("body: must be application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errdefs.Invalidf("body: larger than %d bytes", maxBodyBytes)
		}
		if errors.Is(err, io.EOF) {
			return errdefs.Invalidf("body: required")
		}
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) && ute.Field != "" {
			return errdefs.Invalidf("%s: wrong type", ute.Field)
		}
		return errdefs.With(errdefs.Invalid, "body: not a valid JSON object for this request", err)
	}
	return nil
}

func isJSON(ct string) bool {
	return len(ct) >= 16 && ct[:16] == "application/json"
}
