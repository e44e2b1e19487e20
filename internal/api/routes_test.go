package api

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/workspace"
)

// A daemon without snapshots or a vault answers their routes with 503 and
// a message saying so; the vault is refused to a caller who is not an
// administrator; a bad body names the field.
func TestSnapshotAndVaultRoutesRefuse(t *testing.T) {
	a, err := New(Options{Workspaces: nilWorkspaces{}, AuditLog: nilAudit{}, Streams: NewStreamLimiter(1, 1)})
	if err != nil {
		t.Fatal(err)
	}
	admin := workspace.Caller{SessionID: "s", Admin: true}
	serve := func(c workspace.Caller, method, path, body string) (int, string) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		r = r.WithContext(WithCaller(r.Context(), c))
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	for _, tc := range []struct{ method, path, body, want string }{
		{"GET", "/api/v1/workspaces/w/snapshots", "", "snapshots are not available"},
		{"POST", "/api/v1/workspaces/w/snapshots", `{"name":"s"}`, "snapshots are not available"},
		{"POST", "/api/v1/workspaces/w/snapshots/s/restore", "", "snapshots are not available"},
		{"DELETE", "/api/v1/workspaces/w/snapshots/s", "", "snapshots are not available"},
		{"POST", "/api/v1/workspaces/w/fork", `{"snapshot_name":"s"}`, "snapshots are not available"},
		{"GET", "/api/v1/vault/notes", "", "vault is not enabled"},
		{"PUT", "/api/v1/vault/note", `{"path":"a.md","content":""}`, "vault is not enabled"},
	} {
		if code, body := serve(admin, tc.method, tc.path, tc.body); code != 503 || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, code, body)
		}
	}

	v, err := vault.Open(vault.Config{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	a.o.Vault, a.o.Snapshots = v, fakeSnapshots{}
	if code, body := serve(workspace.Caller{SessionID: "agent"}, "GET", "/api/v1/vault/note?path=a.md", ""); code != 403 {
		t.Errorf("a non-admin read the vault: %d %s", code, body)
	}
	if code, body := serve(admin, "POST", "/api/v1/workspaces/w/snapshots", `{}`); code != 400 || !strings.Contains(body, "name: required") {
		t.Errorf("snapshot without a name: %d %s", code, body)
	}
	if code, body := serve(admin, "POST", "/api/v1/workspaces/w/fork", `{"count":2}`); code != 400 || !strings.Contains(body, "snapshot_name: required") {
		t.Errorf("fork without a snapshot: %d %s", code, body)
	}
	// A round trip through the real vault: write, read with tags and
	// backlinks, search.
	if code, body := serve(admin, "PUT", "/api/v1/vault/note", `{"path":"b.md","content":"---\ntags: [x]\n---\nsee [[a]]\n"}`); code != 200 {
		t.Fatalf("write: %d %s", code, body)
	}
	serve(admin, "PUT", "/api/v1/vault/note", `{"path":"a.md","content":"hello\n"}`)
	if code, body := serve(admin, "GET", "/api/v1/vault/note?path=a.md", ""); code != 200 || !strings.Contains(body, `"backlinks":[{"path":"b.md"`) {
		t.Errorf("read a.md: %d %s", code, body)
	}
	if code, body := serve(admin, "GET", "/api/v1/vault/note?path=b.md", ""); code != 200 || !strings.Contains(body, `"tags":["x"]`) {
		t.Errorf("read b.md: %d %s", code, body)
	}
	if code, body := serve(admin, "GET", "/api/v1/vault/search?q=hello", ""); code != 200 || !strings.Contains(body, `"path":"a.md"`) {
		t.Errorf("search: %d %s", code, body)
	}
	if code, body := serve(admin, "GET", "/api/v1/vault/note?path=../etc/passwd", ""); code != 400 {
		t.Errorf("a path outside the vault: %d %s", code, body)
	}
}

type fakeSnapshots struct{}

func (fakeSnapshots) SnapshotCreate(context.Context, workspace.Caller, string, workspace.SnapshotRequest) (*workspace.SnapshotInfo, error) {
	return &workspace.SnapshotInfo{}, nil
}
func (fakeSnapshots) SnapshotRestore(context.Context, workspace.Caller, string, string) (*workspace.RestoreResult, error) {
	return &workspace.RestoreResult{}, nil
}
func (fakeSnapshots) SnapshotList(context.Context, workspace.Caller, string) ([]workspace.SnapshotInfo, error) {
	return nil, nil
}
func (fakeSnapshots) SnapshotDelete(context.Context, workspace.Caller, string, string) error {
	return nil
}
func (fakeSnapshots) Fork(context.Context, workspace.Caller, string, workspace.ForkRequest) (*workspace.ForkResult, error) {
	return &workspace.ForkResult{}, nil
}
