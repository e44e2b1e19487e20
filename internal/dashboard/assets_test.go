package dashboard

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/agentiso/agentiso/internal/api"
)

// A binary built without the front end still serves: its page says the
// assets are missing (with the same headers), and the API works.
func TestMissingAssetsPage(t *testing.T) {
	s := newTestServer(t, listen, func(o *Options, _ *api.Options) {
		o.Assets = fstest.MapFS{"PLACEHOLDER.md": {Data: []byte("x")}}
	})
	w := s.do(s.req("GET", "/", ""))
	if w.Code != 200 || !strings.Contains(w.Body.String(), "assets are missing") || strings.Contains(w.Body.String(), "<script") {
		t.Fatalf("page: %d %s", w.Code, w.Body)
	}
	if w.Header().Get("Content-Security-Policy") == "" {
		t.Error("the placeholder page has no CSP")
	}
	if w := s.do(s.req("GET", "/assets/index.js", "")); w.Code != 404 {
		t.Errorf("asset of a missing build: %d", w.Code)
	}
	cookie, _ := s.login(t)
	if w := s.do(s.authed("GET", "/api/v1/workspaces", "", cookie, "")); w.Code != 200 {
		t.Errorf("API without the front end: %d", w.Code)
	}
}
