package dashboard

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

const testToken = "correct-horse-battery-staple-0123456789"

// fakeWorkspaces stands in for the manager in these middleware tests: it
// knows one workspace, "visible", and answers like the manager for any
// other (one text, nothing echoed).
type fakeWorkspaces struct{ created []string }

func (f *fakeWorkspaces) find(ref string) (*workspace.Info, error) {
	if ref != "visible" {
		return nil, errdefs.NotFoundf("workspace_id: no such workspace in this session")
	}
	return &workspace.Info{ID: "00000000-0000-4000-8000-000000000001", Name: "visible", State: "running"}, nil
}
func (f *fakeWorkspaces) Create(_ context.Context, _ workspace.Caller, req workspace.CreateRequest) (*workspace.Info, error) {
	f.created = append(f.created, req.Name)
	return &workspace.Info{Name: req.Name, State: "running"}, nil
}
func (f *fakeWorkspaces) Destroy(_ context.Context, _ workspace.Caller, ref string) error {
	_, err := f.find(ref)
	return err
}
func (f *fakeWorkspaces) Start(_ context.Context, _ workspace.Caller, ref string) (*workspace.Info, error) {
	return f.find(ref)
}
func (f *fakeWorkspaces) Stop(_ context.Context, _ workspace.Caller, ref string) (*workspace.Info, error) {
	return f.find(ref)
}
func (f *fakeWorkspaces) List(context.Context, workspace.Caller, string) ([]workspace.Info, error) {
	i, _ := f.find("visible")
	return []workspace.Info{*i}, nil
}
func (f *fakeWorkspaces) Info(_ context.Context, _ workspace.Caller, ref string) (*workspace.Info, error) {
	return f.find(ref)
}
func (f *fakeWorkspaces) Logs(_ context.Context, _ workspace.Caller, ref, _ string, _ int) (*workspace.Logs, error) {
	_, err := f.find(ref)
	return &workspace.Logs{}, err
}
func (f *fakeWorkspaces) ExecStream(_ context.Context, _ workspace.Caller, ref string, _ workspace.ExecRequest, _ func(protocol.Stream, string)) (*workspace.ExecResult, error) {
	if _, err := f.find(ref); err != nil {
		return nil, err
	}
	return &workspace.ExecResult{Stdout: "ok\n"}, nil
}
func (f *fakeWorkspaces) WriteFile(_ context.Context, _ workspace.Caller, ref, _ string, _ []byte, _ uint32) error {
	_, err := f.find(ref)
	return err
}
func (f *fakeWorkspaces) ReadFile(_ context.Context, _ workspace.Caller, ref, _ string, _, _ int64) ([]byte, int64, error) {
	_, err := f.find(ref)
	return nil, 0, err
}
func (f *fakeWorkspaces) OpenTerminal(_ context.Context, _ workspace.Caller, ref string, _, _ int) (workspace.Terminal, error) {
	_, err := f.find(ref)
	if err == nil {
		err = errdefs.Unavailablef("workspace_id: no terminal in this test")
	}
	return nil, err
}

// testServer is a dashboard over a real state store and the fake manager.
type testServer struct {
	*Server
	store   *state.Store
	streams *api.StreamLimiter
	ws      *fakeWorkspaces
	origin  string // the dashboard's own origin
}

type serverOpt func(*Options, *api.Options)

func newTestServer(t *testing.T, listen string, opts ...serverOpt) *testServer {
	t.Helper()
	store, err := state.Open(context.Background(), filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ws := &fakeWorkspaces{}
	ao := api.Options{
		Workspaces: ws, AuditLog: store, Streams: api.NewStreamLimiter(4, 8),
		EventsInterval: 20 * time.Millisecond,
		Exec:           workspace.ExecLimits{DefaultTimeout: time.Minute, MaxTimeout: time.Hour, DefaultMaxOutputBytes: 1024, MaxOutputBytes: 4096},
	}
	tok, err := NewToken(testToken)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{
		Listen: listen, Token: tok, Sessions: store,
		Assets: fstest.MapFS{
			"index.html":       {Data: []byte(`<!doctype html><html><head><script type="module" src="/assets/app.js"></script></head><body></body></html>`)},
			"assets/app.js":    {Data: []byte(`console.log("app")`)},
			"assets/style.css": {Data: []byte(`body{}`)},
		},
	}
	for _, f := range opts {
		f(&o, &ao)
	}
	a, err := api.New(ao)
	if err != nil {
		t.Fatal(err)
	}
	o.API = a
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &testServer{Server: s, store: store, streams: ao.Streams, ws: ws, origin: "http://" + listen}
}

// req builds a request to the dashboard as a browser on its own page
// would send it: the Host and, for non-GET, the Origin of the dashboard.
func (s *testServer) req(method, path, body string) *http.Request {
	r := httptest.NewRequest(method, "http://"+strings.TrimPrefix(s.origin, "http://")+path, strings.NewReader(body))
	if method != http.MethodGet && method != http.MethodHead {
		r.Header.Set("Origin", s.origin)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

func (s *testServer) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	return w
}

// login logs in with the token and returns the session cookie and the
// CSRF token.
func (s *testServer) login(t *testing.T) (*http.Cookie, string) {
	t.Helper()
	w := s.do(s.req("POST", "/api/v1/login", `{"token":"`+testToken+`"}`))
	if w.Code != http.StatusOK {
		t.Fatalf("login: %d %s", w.Code, w.Body)
	}
	var info SessionInfo
	if err := json.Unmarshal(w.Body.Bytes(), &info); err != nil || info.CSRFToken == "" {
		t.Fatalf("login answer %s: %v", w.Body, err)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login set %d cookies, want 1", len(cookies))
	}
	return cookies[0], info.CSRFToken
}

// authed is req with the login's cookie and CSRF token.
func (s *testServer) authed(method, path, body string, cookie *http.Cookie, csrf string) *http.Request {
	r := s.req(method, path, body)
	r.AddCookie(cookie)
	if csrf != "" {
		r.Header.Set(CSRFHeader, csrf)
	}
	return r
}

func errorClass(t *testing.T, body io.Reader) string {
	t.Helper()
	var e api.ErrorBody
	if err := json.NewDecoder(body).Decode(&e); err != nil {
		t.Fatalf("error body is not JSON: %v", err)
	}
	return e.Error.Class
}
