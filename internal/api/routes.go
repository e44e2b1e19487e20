package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

func (a *API) routes() {
	a.handle("GET /api/v1/features", "", func(http.ResponseWriter, *http.Request) (any, error) {
		return a.o.Features, nil
	})
	a.handle("GET /api/v1/workspaces", "", a.listWorkspaces)
	a.handle("POST /api/v1/workspaces", "workspace_create", a.createWorkspace)
	a.handle("GET /api/v1/workspaces/{ws}", "", a.workspaceInfo)
	a.handle("DELETE /api/v1/workspaces/{ws}", "workspace_destroy", a.destroyWorkspace)
	a.handle("POST /api/v1/workspaces/{ws}/start", "workspace_start", a.startWorkspace)
	a.handle("POST /api/v1/workspaces/{ws}/stop", "workspace_stop", a.stopWorkspace)
	a.handle("GET /api/v1/workspaces/{ws}/logs", "workspace_logs", a.workspaceLogs)
	a.handle("POST /api/v1/workspaces/{ws}/exec", "exec", a.exec)
	a.handle("GET /api/v1/workspaces/{ws}/files", "file_read", a.readFile)
	a.handle("PUT /api/v1/workspaces/{ws}/files", "file_write", a.writeFile)
	a.handle("GET /api/v1/workspaces/{ws}/terminal", "terminal", a.terminal)
	a.handle("GET /api/v1/events", "", a.events)
	a.handle("GET /api/v1/audit", "", a.audit)
	a.handle("GET /api/v1/host", "", a.host)
	a.snapshotRoutes()
	a.vaultRoutes()
	a.teamRoutes()
	a.networkRoutes()
	// Anything else under the prefix: one answer that echoes nothing of
	// the path.
	a.handle(Prefix, "", func(http.ResponseWriter, *http.Request) (any, error) {
		return nil, errdefs.NotFoundf("no such API route")
	})
}

// WorkspaceList is the answer of GET /workspaces.
type WorkspaceList struct {
	Workspaces []workspace.Info `json:"workspaces"`
	Count      int              `json:"count"`
}

func (a *API) listWorkspaces(_ http.ResponseWriter, r *http.Request) (any, error) {
	st := r.URL.Query().Get("state")
	switch st {
	case "", "running", "stopped", "creating", "error":
	default:
		return nil, errdefs.Invalidf("state: must be one of running, stopped, creating, error")
	}
	list, err := a.o.Workspaces.List(r.Context(), caller(r), st)
	if err != nil {
		return nil, err
	}
	if list == nil {
		list = []workspace.Info{}
	}
	return &WorkspaceList{Workspaces: list, Count: len(list)}, nil
}

// CreateRequest is the body of POST /workspaces.
type CreateRequest struct {
	Name          string `json:"name,omitempty"`
	BaseImage     string `json:"base_image,omitempty"`
	VCPUs         int    `json:"vcpus,omitempty"`
	MemoryMB      int    `json:"memory_mb,omitempty"`
	DiskGB        int    `json:"disk_gb,omitempty"`
	AllowInternet *bool  `json:"allow_internet,omitempty"`
	FromPool      bool   `json:"from_pool,omitempty"`
}

func (a *API) createWorkspace(_ http.ResponseWriter, r *http.Request) (any, error) {
	var in CreateRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return a.o.Workspaces.Create(r.Context(), caller(r), workspace.CreateRequest{
		Name: in.Name, BaseImage: in.BaseImage, VCPUs: in.VCPUs, MemoryMB: in.MemoryMB,
		DiskGB: in.DiskGB, AllowInternet: in.AllowInternet, FromPool: in.FromPool,
	})
}

func (a *API) workspaceInfo(_ http.ResponseWriter, r *http.Request) (any, error) {
	return a.o.Workspaces.Info(r.Context(), caller(r), r.PathValue("ws"))
}

// Done answers an action that has no other result.
type Done struct {
	WorkspaceID string `json:"workspace_id"`
	State       string `json:"state"`
}

func (a *API) destroyWorkspace(_ http.ResponseWriter, r *http.Request) (any, error) {
	ref := r.PathValue("ws")
	if err := a.o.Workspaces.Destroy(r.Context(), caller(r), ref); err != nil {
		return nil, err
	}
	return &Done{WorkspaceID: ref, State: "destroyed"}, nil
}

func (a *API) startWorkspace(_ http.ResponseWriter, r *http.Request) (any, error) {
	return a.o.Workspaces.Start(r.Context(), caller(r), r.PathValue("ws"))
}

func (a *API) stopWorkspace(_ http.ResponseWriter, r *http.Request) (any, error) {
	return a.o.Workspaces.Stop(r.Context(), caller(r), r.PathValue("ws"))
}

func (a *API) workspaceLogs(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	typ := q.Get("type")
	if typ == "" {
		typ = "all"
	}
	switch typ {
	case "console", "stderr", "all":
	default:
		return nil, errdefs.Invalidf("type: must be console, stderr or all")
	}
	lines, err := intParam(q.Get("lines"), "lines", 200, 1, 10000)
	if err != nil {
		return nil, err
	}
	return a.o.Workspaces.Logs(r.Context(), caller(r), r.PathValue("ws"), typ, lines)
}

// ExecRequest is the body of POST /workspaces/{ws}/exec.
type ExecRequest struct {
	Command        string            `json:"command"`
	TimeoutSecs    int               `json:"timeout_secs,omitempty"`
	Workdir        string            `json:"workdir,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	MaxOutputBytes int64             `json:"max_output_bytes,omitempty"`
}

func (a *API) exec(w http.ResponseWriter, r *http.Request) (any, error) {
	var in ExecRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	req, err := a.o.Exec.Request(in.Command, in.TimeoutSecs, in.Workdir, in.Env, in.MaxOutputBytes)
	if err != nil {
		return nil, err
	}
	// A command holds its connection until it ends (up to the exec
	// timeout), streamed or not: it takes a stream slot either way.
	release, err := a.o.Streams.Acquire(caller(r).SessionID)
	if err != nil {
		return nil, err
	}
	defer release()
	if wantsEventStream(r) {
		return nil, a.execStream(w, r, req)
	}
	return a.o.Workspaces.ExecStream(r.Context(), caller(r), r.PathValue("ws"), req, nil)
}

// FileContent is a text file's content, read or to write.
type FileContent struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	// Size is the whole file's size (on read).
	Size int64 `json:"size,omitempty"`
	// Mode is the permission bits of a new file (on write); 0 is 0644.
	Mode uint32 `json:"mode,omitempty"`
}

func (a *API) readFile(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	path := q.Get("path")
	offset, err := intParam(q.Get("offset"), "offset", 0, 0, 1<<62)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(q.Get("limit"), "limit", int(a.o.MaxFileReadBytes), 1, int(a.o.MaxFileReadBytes))
	if err != nil {
		return nil, err
	}
	data, size, err := a.o.Workspaces.ReadFile(r.Context(), caller(r), r.PathValue("ws"), path, int64(offset), int64(limit))
	if err != nil {
		return nil, err
	}
	text, ok := workspace.TextOf(data, int64(offset)+int64(len(data)) < size)
	if !ok {
		return nil, errdefs.Invalidf("path: the file is not text (binary content is not shown)")
	}
	return &FileContent{Path: path, Content: text, Size: size}, nil
}

func (a *API) writeFile(_ http.ResponseWriter, r *http.Request) (any, error) {
	var in FileContent
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if err := a.o.Workspaces.WriteFile(r.Context(), caller(r), r.PathValue("ws"), in.Path, []byte(in.Content), in.Mode); err != nil {
		return nil, err
	}
	return &FileContent{Path: in.Path, Size: int64(len(in.Content))}, nil
}

// AuditList is the answer of GET /audit.
type AuditList struct {
	Entries []AuditEntry `json:"entries"`
}

// AuditEntry is one audit record as the API shows it.
type AuditEntry struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	SessionID  string    `json:"session_id"`
	Actor      string    `json:"actor"`
	Action     string    `json:"action"`
	Target     string    `json:"target"`
	Result     string    `json:"result"`
	ErrorClass string    `json:"error_class,omitempty"`
	DurationMs int64     `json:"duration_ms"`
}

// audit lists the audit log, newest first: all of it for an admin, the
// caller's own session's entries otherwise.
func (a *API) audit(_ http.ResponseWriter, r *http.Request) (any, error) {
	q := r.URL.Query()
	limit, err := intParam(q.Get("limit"), "limit", state.DefaultAuditLimit, 1, state.MaxAuditLimit)
	if err != nil {
		return nil, err
	}
	c := caller(r)
	f := state.AuditFilter{Limit: limit, Session: q.Get("session")}
	if !c.Admin {
		f.Session = c.SessionID
	}
	entries, err := a.o.AuditLog.ListAudit(r.Context(), f)
	if err != nil {
		return nil, err
	}
	out := &AuditList{Entries: make([]AuditEntry, 0, len(entries))}
	for _, e := range entries {
		out.Entries = append(out.Entries, AuditEntry{
			ID: e.ID, Time: e.Time, SessionID: e.SessionID, Actor: e.Actor, Action: e.Action,
			Target: e.Target, Result: string(e.Result), ErrorClass: e.ErrorClass, DurationMs: e.DurationMs,
		})
	}
	return out, nil
}

func (a *API) host(_ http.ResponseWriter, r *http.Request) (any, error) {
	if a.o.Host == nil {
		return nil, errdefs.Unavailablef("host metrics are not available")
	}
	if !caller(r).Admin {
		return nil, errdefs.PermissionDeniedf("host metrics are for administrators")
	}
	return a.o.Host(r.Context())
}

// intParam parses an optional integer query parameter within lo..hi.
func intParam(s, name string, def, lo, hi int) (int, error) {
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, errdefs.Invalidf("%s: must be an integer %d..%d", name, lo, hi)
	}
	return n, nil
}
