package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

func TestStatusOfEveryClass(t *testing.T) {
	for c, want := range map[errdefs.Class]int{
		errdefs.Invalid: 400, errdefs.NotFound: 404, errdefs.Conflict: 409, errdefs.Quota: 403,
		errdefs.PermissionDenied: 403, errdefs.RateLimited: 429, errdefs.Unavailable: 503,
		errdefs.Timeout: 504, errdefs.Internal: 500,
	} {
		if got := Status(c); got != want {
			t.Errorf("Status(%s) = %d, want %d", c, got, want)
		}
	}
}

// An internal error's detail stays in the log; the caller sees the class
// and a generic text.
func TestWriteErrorShowsOnlyPublicText(t *testing.T) {
	w := httptest.NewRecorder()
	WriteError(w, errdefs.With(errdefs.Internal, "", errString("open /var/lib/agentiso/secret: denied")))
	if w.Code != 500 || strings.Contains(w.Body.String(), "secret") || !strings.Contains(w.Body.String(), `"class":"internal"`) {
		t.Errorf("%d %s", w.Code, w.Body)
	}
}

type errString string

func (e errString) Error() string { return string(e) }

func TestDecodeNamesTheProblemNotTheInput(t *testing.T) {
	for body, want := range map[string]string{
		``:                      "body: required",
		`{"name": 5}`:           "name: wrong type",
		`{"secret-field": 1}`:   "body: not a valid JSON object",
		`{"name": "x"} trailer`: "",
	} {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		var in CreateRequest
		err := decode(r, &in)
		if want == "" {
			if err != nil {
				t.Errorf("%q: %v", body, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(errdefs.Public(err), want) || strings.Contains(errdefs.Public(err), "secret") {
			t.Errorf("%q: %v, want %q", body, err, want)
		}
	}
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "text/plain")
	if err := decode(r, &CreateRequest{}); err == nil || !strings.Contains(err.Error(), "application/json") {
		t.Errorf("text/plain body: %v", err)
	}
}

func TestStreamLimiterReleaseOnce(t *testing.T) {
	l := NewStreamLimiter(2, 3)
	r1, err := l.Acquire("a")
	if err != nil {
		t.Fatal(err)
	}
	r1()
	r1() // a second release gives back nothing more
	if mine, all := l.InUse("a"); mine != 0 || all != 0 {
		t.Fatalf("in use %d/%d after release", mine, all)
	}
	for i := 0; i < 2; i++ {
		if _, err := l.Acquire("a"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Acquire("a"); !errdefs.Is(err, errdefs.RateLimited) || !strings.Contains(err.Error(), "max_streams_per_session") {
		t.Errorf("third for one session: %v", err)
	}
	if _, err := l.Acquire("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire("c"); !errdefs.Is(err, errdefs.RateLimited) || !strings.Contains(err.Error(), "max_streams_total") {
		t.Errorf("over the total: %v", err)
	}
}

// A request without a caller (an edge that forgot to authenticate) is
// refused, not served as nobody.
func TestRequestWithoutCallerRefused(t *testing.T) {
	a, err := New(Options{Workspaces: nilWorkspaces{}, AuditLog: nilAudit{}, Streams: NewStreamLimiter(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/workspaces", nil))
	if w.Code != http.StatusUnauthorized {
		t.Errorf("no caller: %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/api/v1/workspaces", nil)
	a.ServeHTTP(w, r.WithContext(WithCaller(r.Context(), workspace.Caller{SessionID: "s"})))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"count":0`) {
		t.Errorf("with a caller: %d %s", w.Code, w.Body)
	}
}

type refuseCreates struct{ calls []string }

func (l *refuseCreates) Allow(_, tool, _ string) error {
	l.calls = append(l.calls, tool)
	if tool == "workspace_create" {
		return errdefs.RateLimitedf("rate limited: this session may make at most 5 create-class calls per minute (limits.create_per_min); retry in 12s")
	}
	return nil
}

type countActivity struct{ begun, ended int }

func (c *countActivity) Begin(string) { c.begun++ }
func (c *countActivity) End(string)   { c.ended++ }

// The API's actions pass the same rate limiter as MCP tool calls, by the
// tool name they correspond to, before they do anything; a refusal is a 429
// that says which limit and when to retry, and is audited. Every request
// counts as the session's activity.
func TestActionsPassTheRateLimiter(t *testing.T) {
	lim, act := &refuseCreates{}, &countActivity{}
	var audited []AuditRecord
	a, err := New(Options{Workspaces: nilWorkspaces{}, AuditLog: nilAudit{}, Streams: NewStreamLimiter(1, 1),
		Limiter: lim, Activity: act,
		Record: func(_ context.Context, r AuditRecord) { audited = append(audited, r) }})
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, path, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r = r.WithContext(WithCaller(r.Context(), workspace.Caller{SessionID: "s"}))
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w
	}
	w := do("POST", "/api/v1/workspaces", `{"name":"x"}`)
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "limits.create_per_min") {
		t.Fatalf("create over the limit: %d %s", w.Code, w.Body)
	}
	if len(audited) != 1 || audited[0].Action != "workspace_create" || !errdefs.Is(audited[0].Err, errdefs.RateLimited) {
		t.Errorf("audited %+v", audited)
	}
	do("POST", "/api/v1/workspaces/x/stop", "")
	do("GET", "/api/v1/workspaces", "")
	if strings.Join(lim.calls, ",") != "workspace_create,workspace_stop" {
		t.Errorf("limiter saw %v (listing is not an action)", lim.calls)
	}
	if act.begun != 3 || act.ended != 3 {
		t.Errorf("activity %d begun, %d ended; want 3, 3", act.begun, act.ended)
	}
}
