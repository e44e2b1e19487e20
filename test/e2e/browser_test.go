package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/testenv"
)

// TestDashboardInBrowser runs web/e2e/dashboard.e2e.mjs: Debian's
// headless Chromium, driven by playwright-core, uses the dashboard of a
// real daemon with real VMs (log in, create a workspace, terminals, exec,
// files, a snapshot, vault notes, every screen, destroy, log out). Screenshots of each screen are
// saved in test-artifacts/dashboard/.
func TestDashboardInBrowser(t *testing.T) {
	testenv.Require(t, "root", "qemu", "image", "chromium", "web")
	section, base := dashboardConfig(t)
	d := startDaemonOpts(t, "", section, daemonOpts{hostNetwork: true})
	waitDashboard(t, base)
	root := testenv.RepoRoot()
	artifacts := filepath.Join(root, "test-artifacts", "dashboard")
	os.RemoveAll(artifacts)

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("e2e", "dashboard.e2e.mjs"))
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(), "DASHBOARD_URL="+base, "DASHBOARD_TOKEN="+dashToken,
		"ARTIFACTS_DIR="+artifacts, "CHROMIUM="+testenv.ChromiumPath, "WORKSPACE=browser-ws")
	out, err := cmd.CombinedOutput()
	t.Logf("browser test:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed (%v); screenshots in %s", err, artifacts)
	}
	shots, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	if len(shots) < 16 {
		t.Errorf("%d screenshots, want one per screen (16)", len(shots))
	}

	// What the browser did happened in the daemon.
	c := loginDashboard(t, base)
	var e apiError
	if st := c.do("GET", "workspaces/browser-ws", nil, &e); st != 404 {
		t.Errorf("the destroyed workspace is still there: %d", st)
	}
	var audit struct {
		Entries []struct{ Actor, Action, Result string } `json:"entries"`
	}
	c.do("GET", "audit?limit=1000", nil, &audit)
	var got []string
	for _, en := range audit.Entries {
		if en.Actor == "dashboard" && en.Result == "ok" {
			got = append(got, en.Action)
		}
	}
	for _, want := range []string{"dashboard_login", "dashboard_logout", "workspace_create", "terminal", "exec", "file_write", "file_read", "snapshot", "vault", "workspace_destroy"} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Errorf("the audit log has no successful dashboard %s (has %v)", want, got)
		}
	}
	// The notes the browser wrote are in the vault on disk.
	b, err := os.ReadFile(filepath.Join(d.Dir, "data", "vault", "ideas.md"))
	if err != nil || !strings.Contains(string(b), "edited-in-browser") {
		t.Errorf("the edited note on disk: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(d.Dir, "data", "vault", "projects", "plan.md")); err != nil || !strings.Contains(string(b), "tags: [planning, browser]") {
		t.Errorf("the new note on disk: %q, %v", b, err)
	}
}
