package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/api"
	"github.com/agentiso/agentiso/internal/testenv"
)

// TestDashboardInBrowser runs web/e2e/dashboard.e2e.mjs: Debian's
// headless Chromium, driven by playwright-core, uses the dashboard of a
// real daemon with real VMs (log in, create a workspace, terminals, exec,
// files, a snapshot, a one-member team whose tasks are dragged on the
// kanban and one moved by the CLI while the page watches, a message to it,
// vault notes, every screen, destroy, log out).
// Screenshots of each screen are saved in test-artifacts/dashboard/.
func TestDashboardInBrowser(t *testing.T) {
	testenv.Require(t, "root", "qemu", "image", "chromium", "web")
	section, base := dashboardConfig(t)
	d := startDaemonOpts(t, "", section, daemonOpts{hostNetwork: true})
	waitDashboard(t, base)
	root := testenv.RepoRoot()
	artifacts := filepath.Join(root, "test-artifacts", "dashboard")
	os.RemoveAll(artifacts)

	vaultDir := filepath.Join(d.Dir, "data", "vault")

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", filepath.Join("e2e", "dashboard.e2e.mjs"))
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(), "DASHBOARD_URL="+base, "DASHBOARD_TOKEN="+dashToken,
		"ARTIFACTS_DIR="+artifacts, "CHROMIUM="+testenv.ChromiumPath, "WORKSPACE=browser-ws",
		"TEAM=crew", "VAULT_DIR="+vaultDir, "AGENTISO_BIN="+d.Bin, "API_SOCKET="+filepath.Join(d.RunDir, "api.sock"))
	out, err := cmd.CombinedOutput()
	t.Logf("browser test:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed (%v); screenshots in %s", err, artifacts)
	}
	shots, _ := filepath.Glob(filepath.Join(artifacts, "*.png"))
	if len(shots) < 19 {
		t.Errorf("%d screenshots, want one per screen (19)", len(shots))
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
	for _, want := range []string{"dashboard_login", "dashboard_logout", "workspace_create", "terminal", "exec", "file_write", "file_read", "snapshot", "vault", "workspace_destroy",
		"team.create", "team.add_task", "team.move_task", "team.message"} {
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

	// The kanban's moves changed the task notes' frontmatter on disk, kept
	// the rest, and regenerated the board's index.
	tasks := filepath.Join(vaultDir, "teams", "crew", "tasks")
	for file, wants := range map[string][]string{
		"design.md": {"status: blocked", "owner: dev", "# Design the parser"},
		"build.md":  {"status: done", "depends_on:", "- design"},
		"INDEX.md":  {"| [[design]] | blocked | dev |", "| [[build]] | done | dev | design |"},
	} {
		b, err := os.ReadFile(filepath.Join(tasks, file))
		for _, w := range wants {
			if err != nil || !strings.Contains(string(b), w) {
				t.Errorf("%s on disk lacks %q: %v\n%s", file, w, err, b)
			}
		}
	}
	// The team's message is in its member's inbox, unread: the dashboard
	// showed it without taking it.
	var team struct {
		Members []struct {
			Name   string `json:"name"`
			Unread int    `json:"unread_messages"`
		} `json:"members"`
	}
	if st := c.do("GET", "teams/crew", nil, &team); st != 200 || len(team.Members) != 1 || team.Members[0].Unread != 1 {
		t.Errorf("team status: %d %+v", st, team)
	}
	var destroyed struct {
		Workspaces []string `json:"destroyed_workspaces"`
	}
	if st := c.do("DELETE", "teams/crew", nil, &destroyed); st != 200 || strings.Join(destroyed.Workspaces, ",") != "crew-dev" {
		t.Errorf("destroying the team: %d %+v", st, destroyed)
	}
	if _, err := os.Stat(tasks); !os.IsNotExist(err) {
		t.Errorf("the destroyed team's board is still on disk: %v", err)
	}
}

// TestDashboardNetworkInBrowser runs web/e2e/network.e2e.mjs: Chromium,
// started inside the network namespace of a daemon with workspace
// networking on (where its dashboard listens), creates a workspace, adds a
// port forward, changes the network policy and removes the forward.
// Screenshots are saved in test-artifacts/dashboard-network/. The daemon's
// state is then read over the CLI's API socket, through which a forward to
// a server in the workspace is made, used from loopback and removed.
func TestDashboardNetworkInBrowser(t *testing.T) {
	testenv.Require(t, "root", "qemu", "image", "chromium", "web", "netns")
	section, base := dashboardConfig(t)
	d := startDaemon(t, section)
	root := testenv.RepoRoot()
	artifacts := filepath.Join(root, "test-artifacts", "dashboard-network")
	os.RemoveAll(artifacts)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", d.Netns, "node", filepath.Join("e2e", "network.e2e.mjs"))
	cmd.Dir = filepath.Join(root, "web")
	cmd.Env = append(os.Environ(), "DASHBOARD_URL="+base, "DASHBOARD_TOKEN="+dashToken,
		"ARTIFACTS_DIR="+artifacts, "CHROMIUM="+testenv.ChromiumPath, "WORKSPACE=net-ws")
	out, err := cmd.CombinedOutput()
	t.Logf("browser test:\n%s", out)
	if err != nil {
		t.Fatalf("the browser test failed (%v); screenshots in %s\n%s", err, artifacts, d.Log())
	}
	if shots, _ := filepath.Glob(filepath.Join(artifacts, "*.png")); len(shots) < 4 {
		t.Errorf("%d screenshots, want 4", len(shots))
	}

	c := api.UnixClient(filepath.Join(d.RunDir, "api.sock"))
	call := func(method, path string, out any) int {
		req, _ := http.NewRequest(method, "http://agentiso/api/v1/"+path, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	var w struct {
		Network struct {
			AllowInterVM bool  `json:"allow_inter_vm"`
			AllowedPorts []int `json:"allowed_ports"`
		} `json:"network"`
		PortForwards []struct{} `json:"port_forwards"`
	}
	if st := call("GET", "workspaces/net-ws", &w); st != 200 || !w.Network.AllowInterVM || fmt.Sprint(w.Network.AllowedPorts) != "[22 8080]" || len(w.PortForwards) != 0 {
		t.Errorf("the workspace after the browser: %d %+v", st, w)
	}
	var audit struct {
		Entries []struct{ Actor, Action, Result string } `json:"entries"`
	}
	call("GET", "audit?limit=1000", &audit)
	var got []string
	for _, en := range audit.Entries {
		if en.Actor == "dashboard" {
			got = append(got, en.Action+":"+en.Result)
		}
	}
	for _, want := range []string{"port_forward.add:ok", "port_forward.add:error", "network_policy:ok", "port_forward.remove:ok"} {
		if !slices.Contains(got, want) {
			t.Errorf("the audit log has no dashboard %s (has %v)", want, got)
		}
	}
	// A forward made through the API's route carries traffic to the
	// workspace, and stops when removed through it.
	post := func(path, body string, out any) int {
		resp, err := c.Post("http://agentiso/api/v1/"+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if out != nil {
			json.NewDecoder(resp.Body).Decode(out)
		}
		return resp.StatusCode
	}
	if st := post("workspaces/net-ws/exec", `{"command":"setsid python3 -m http.server 8080 >/dev/null 2>&1 < /dev/null &"}`, nil); st != 200 {
		t.Fatalf("starting a server in the workspace: %d", st)
	}
	var fwd struct {
		HostPort int `json:"host_port"`
	}
	if st := post("workspaces/net-ws/port_forwards", `{"guest_port":8080}`, &fwd); st != 200 || fwd.HostPort == 0 {
		t.Fatalf("adding a forward: %d %+v", st, fwd)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", fwd.HostPort)
	waitFor(t, time.Minute, "the forward from loopback", func() bool { return dialRead(t, d.Netns, addr, 3*time.Second) })
	if st := call("DELETE", "workspaces/net-ws/port_forwards/8080", nil); st != 200 {
		t.Fatalf("removing the forward: %d", st)
	}
	if dialRead(t, d.Netns, addr, 2*time.Second) {
		t.Error("the removed forward still reaches the workspace")
	}
	if st := call("DELETE", "workspaces/net-ws", nil); st != 200 {
		t.Errorf("destroying the workspace: %d", st)
	}
}
