package api

import (
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
