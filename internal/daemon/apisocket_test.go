package daemon

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
)

// Only root's connections act on the API socket, as administrator; the
// uid comes from the kernel, so nothing a client sends changes it.
func TestCLICallerFromPeerUID(t *testing.T) {
	root := cliCallerFor(0)
	if root.err != nil || !root.caller.Admin || root.caller.Actor != "cli" {
		t.Errorf("root: %+v", root)
	}
	for _, uid := range []int{-1, 1, 1000, 65534} {
		c := cliCallerFor(uid)
		if !errdefs.Is(c.err, errdefs.PermissionDenied) || c.caller.Admin {
			t.Errorf("uid %d: %+v, want a refusal", uid, c)
		}
	}
	if msg := cliCallerFor(1000).err.Error(); !strings.Contains(msg, "agentiso mcp") {
		t.Errorf("the refusal does not say what to use instead: %q", msg)
	}
}

func TestCheckDashboard(t *testing.T) {
	cfg := config.Default()
	cfg.Server.DataDir = t.TempDir()
	t.Setenv(config.AdminTokenEnv, "")
	os.Unsetenv(config.AdminTokenEnv)
	if r := checkDashboard(cfg)[0]; r.Status != OK || !strings.Contains(r.Detail, "dashboard-token") {
		t.Errorf("loopback default: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(cfg.Server.DataDir, "dashboard-token")); err == nil {
		t.Error("check generated a token")
	}
	cfg.Dashboard.Listen = "0.0.0.0:7070"
	if r := checkDashboard(cfg)[0]; r.Status != Fail || !strings.Contains(r.Fix, "secrets.admin_token_file") {
		t.Errorf("non-loopback without a token: %+v", r)
	}
	// The token the daemon would load (config.LoadSecrets) is the one
	// checked: from the environment, then a file.
	t.Setenv(config.AdminTokenEnv, "an-admin-token-of-enough-length")
	if r := checkDashboard(cfg)[0]; r.Status != OK || !strings.Contains(r.Detail, "$"+config.AdminTokenEnv) {
		t.Errorf("non-loopback with a token in the environment: %+v", r)
	}
	t.Setenv(config.AdminTokenEnv, "tiny-tok")
	if r := checkDashboard(cfg)[0]; r.Status != Fail || !strings.Contains(r.Detail, "$"+config.AdminTokenEnv) || strings.Contains(r.Detail, "tiny-tok") {
		t.Errorf("a short token: %+v", r)
	}
	os.Unsetenv(config.AdminTokenEnv)
	cfg.Secrets.AdminTokenFile = filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(cfg.Secrets.AdminTokenFile, []byte("an-admin-token-from-a-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := checkDashboard(cfg)[0]; r.Status != OK || !strings.Contains(r.Detail, cfg.Secrets.AdminTokenFile) {
		t.Errorf("non-loopback with a token file: %+v", r)
	}
	cfg.Dashboard.Enabled = false
	if r := checkDashboard(cfg); len(r) != 1 || r[0].Status != OK {
		t.Errorf("disabled: %+v", r)
	}
}
