package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/api"
)

// The REST API on the CLI's Unix socket: the same routes as the
// dashboard's, the caller made from the peer's credentials (root:
// administrator), no login, and the socket private to root when no group
// is configured.
func TestCLIAPISocket(t *testing.T) {
	d := startDaemon(t, "")
	sock := filepath.Join(d.RunDir, "api.sock")
	var fi os.FileInfo
	var err error
	for i := 0; i < 100; i++ {
		if fi, err = os.Stat(sock); err == nil {
			break
		}
		waitShort()
	}
	if err != nil {
		t.Fatalf("no API socket: %v\n%s", err, d.Log())
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("API socket mode %v, want 0600 (no socket_group)", fi.Mode().Perm())
	}
	c := api.UnixClient(sock)
	get := func(path string, out any) int {
		resp, err := c.Get("http://agentiso/api/v1/" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil {
			json.Unmarshal(b, out)
		}
		return resp.StatusCode
	}
	var list struct {
		Count int `json:"count"`
	}
	if st := get("workspaces", &list); st != 200 || list.Count != 0 {
		t.Fatalf("list: %d %+v", st, list)
	}
	resp, err := c.Post("http://agentiso/api/v1/workspaces", "application/json", strings.NewReader(`{"name":"bad name!"}`))
	if err != nil {
		t.Fatal(err)
	}
	var e apiError
	json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.HasPrefix(e.Error.Message, "name:") {
		t.Errorf("bad name: %d %+v", resp.StatusCode, e)
	}
	var audit struct {
		Entries []struct{ Actor, Action, Result string } `json:"entries"`
	}
	get("audit", &audit)
	found := false
	for _, en := range audit.Entries {
		found = found || en.Actor == "cli" && en.Action == "workspace_create" && en.Result == "error"
	}
	if !found {
		t.Errorf("the refused create is not in the audit log as the CLI's: %+v", audit.Entries)
	}
}

func waitShort() { time.Sleep(50 * time.Millisecond) }
