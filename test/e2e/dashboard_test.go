package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/testenv"
)

const dashToken = "e2e-admin-token-0123456789abcdef"

// freePort returns a loopback TCP port nothing listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// dashboardConfig is a [dashboard] section on a free port and a
// [secrets] section naming a token file, and the dashboard's base URL.
func dashboardConfig(t *testing.T) (string, string) {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(dashToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	return fmt.Sprintf("\n[dashboard]\nlisten = \"127.0.0.1:%d\"\n\n[secrets]\nadmin_token_file = %q\n", port, tokenFile),
		fmt.Sprintf("http://127.0.0.1:%d", port)
}

// dashClient is a logged-in browser-like client of the dashboard's API.
type dashClient struct {
	t    *testing.T
	base string
	http *http.Client
	csrf string
}

// waitDashboard waits until the dashboard answers.
func waitDashboard(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard at %s did not answer: %v", base, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loginDashboard(t *testing.T, base string) *dashClient {
	t.Helper()
	return loginDashboardWith(t, base, dashToken)
}

// loginDashboardWith logs in with token.
func loginDashboardWith(t *testing.T, base, token string) *dashClient {
	t.Helper()
	waitDashboard(t, base)
	jar, _ := cookiejar.New(nil)
	c := &dashClient{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 5 * time.Minute}}
	var s struct {
		CSRF string `json:"csrf_token"`
	}
	if st := c.do("POST", "login", map[string]string{"token": token}, &s); st != 200 {
		t.Fatalf("login: %d", st)
	}
	c.csrf = s.CSRF
	return c
}

// do calls the API as the dashboard's page would and decodes the answer
// into out; it returns the status.
func (c *dashClient) do(method, path string, body, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, c.base+"/api/v1/"+path, r)
	req.Header.Set("Origin", c.base)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", c.csrf)
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: decoding %s: %v", method, path, b, err)
		}
	}
	if resp.StatusCode >= 400 && out == nil {
		c.t.Logf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Class   string `json:"class"`
		Message string `json:"message"`
	} `json:"error"`
}

type dashWorkspace struct {
	ID           string `json:"workspace_id"`
	Name         string `json:"name"`
	State        string `json:"state"`
	Owned        bool   `json:"owned"`
	OwnerSession string `json:"owner_session"`
}

// The REST API the dashboard uses, against a real daemon and real VMs:
// the admin sees every session's workspaces while MCP sessions stay blind
// to each other's; exec streams output; a terminal runs a command; files
// round-trip; actions land in the audit log as the dashboard's.
func TestDashboardAPI(t *testing.T) {
	section, base := dashboardConfig(t)
	d := startDaemonOpts(t, "", section, daemonOpts{hostNetwork: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c := loginDashboard(t, base)

	// An agent's workspace, made over MCP.
	agent := d.client(ctx)
	mine := call[wsInfo](ctx, t, agent, "workspace_create", map[string]any{"name": "agent-ws", "memory_mb": 256})

	var created dashWorkspace
	if st := c.do("POST", "workspaces", map[string]any{"name": "dash-ws", "memory_mb": 256}, &created); st != 200 || created.State != "running" {
		t.Fatalf("create: %d %+v", st, created)
	}
	var list struct {
		Workspaces []dashWorkspace `json:"workspaces"`
	}
	c.do("GET", "workspaces", nil, &list)
	seen := map[string]dashWorkspace{}
	for _, w := range list.Workspaces {
		seen[w.Name] = w
	}
	if w, ok := seen["agent-ws"]; !ok || w.Owned || w.OwnerSession == "" {
		t.Errorf("the admin's list shows the agent's workspace as %+v (present %v), want it, not owned, with its owner", w, ok)
	}
	if w := seen["dash-ws"]; !w.Owned {
		t.Errorf("the dashboard's own workspace: %+v", w)
	}
	// L-16 still holds for MCP: the agent does not see the dashboard's
	// workspace, and its refusal does not echo the name.
	msg := callErr(ctx, t, agent, "workspace_info", map[string]any{"workspace_id": "dash-ws"})
	if strings.Contains(msg, "dash-ws") {
		t.Errorf("MCP refusal echoes the name: %q", msg)
	}
	ml := call[struct {
		Workspaces []wsInfo `json:"workspaces"`
	}](ctx, t, agent, "workspace_list", nil)
	for _, w := range ml.Workspaces {
		if w.Name == "dash-ws" {
			t.Error("an MCP session lists the dashboard's workspace")
		}
	}
	// The admin acts on the agent's workspace.
	var res struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if st := c.do("POST", "workspaces/"+mine.ID+"/exec", map[string]any{"command": "hostname"}, &res); st != 200 || strings.TrimSpace(res.Stdout) != "agent-ws" {
		t.Fatalf("admin exec in the agent's workspace: %d %+v", st, res)
	}
	var stopped dashWorkspace
	if st := c.do("POST", "workspaces/"+mine.ID+"/stop", nil, &stopped); st != 200 || stopped.State != "stopped" {
		t.Fatalf("admin stop of the agent's workspace: %d %+v", st, stopped)
	}

	t.Run("exec streams output as it comes", func(t *testing.T) {
		req, _ := http.NewRequest("POST", base+"/api/v1/workspaces/dash-ws/exec",
			strings.NewReader(`{"command":"echo first; sleep 2; echo second >&2; exit 4"}`))
		req.Header.Set("Origin", base)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("X-CSRF-Token", c.csrf)
		start := time.Now()
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var events []string
		var firstAt time.Duration
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "data: ") {
				events = append(events, line[6:])
				if firstAt == 0 && strings.Contains(line, "first") {
					firstAt = time.Since(start)
				}
			}
		}
		all := strings.Join(events, "\n")
		var first, second struct{ Stream, Data string }
		var exit struct {
			ExitCode int `json:"exit_code"`
		}
		if len(events) != 3 || json.Unmarshal([]byte(events[0]), &first) != nil || json.Unmarshal([]byte(events[1]), &second) != nil ||
			json.Unmarshal([]byte(events[2]), &exit) != nil || first != (struct{ Stream, Data string }{"stdout", "first\n"}) ||
			second.Stream != "stderr" || exit.ExitCode != 4 {
			t.Fatalf("events:\n%s", all)
		}
		if total := time.Since(start); firstAt == 0 || firstAt > total-time.Second {
			t.Errorf("first output came at %v of %v: not streamed", firstAt, total)
		}
	})

	t.Run("terminal runs a command", func(t *testing.T) {
		h := http.Header{"Origin": {base}}
		for _, ck := range c.http.Jar.Cookies(mustURL(base)) {
			h.Add("Cookie", ck.Name+"="+ck.Value)
		}
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		defer wcancel()
		conn, _, err := websocket.Dial(wctx, "ws"+strings.TrimPrefix(base, "http")+"/api/v1/workspaces/dash-ws/terminal?rows=30&cols=100",
			&websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		conn.Write(wctx, websocket.MessageText, []byte(`{"type":"resize","rows":40,"cols":120}`))
		conn.Write(wctx, websocket.MessageBinary, []byte("stty size; echo term-$((6*7)) $TERM\r"))
		var out strings.Builder
		for !strings.Contains(out.String(), "term-42 xterm-256color") || !strings.Contains(out.String(), "40 120") {
			typ, b, err := conn.Read(wctx)
			if err != nil {
				t.Fatalf("reading the terminal (so far %q): %v", out.String(), err)
			}
			if typ == websocket.MessageBinary {
				out.Write(b)
			}
		}
		conn.Write(wctx, websocket.MessageBinary, []byte("exit 3\r"))
		for {
			typ, b, err := conn.Read(wctx)
			if err != nil {
				t.Fatalf("no exit message: %v", err)
			}
			if typ == websocket.MessageText {
				if !strings.Contains(string(b), `"exit_code":3`) {
					t.Errorf("exit message %s", b)
				}
				break
			}
		}
	})

	t.Run("files round-trip", func(t *testing.T) {
		if st := c.do("PUT", "workspaces/dash-ws/files", map[string]any{"path": "/root/n.txt", "content": "héllo\n"}, nil); st != 200 {
			t.Fatalf("write: %d", st)
		}
		var f struct {
			Content string `json:"content"`
		}
		if st := c.do("GET", "workspaces/dash-ws/files?path=/root/n.txt", nil, &f); st != 200 || f.Content != "héllo\n" {
			t.Fatalf("read: %d %q", st, f.Content)
		}
	})

	t.Run("L-16 dashboard path: errors echo nothing", func(t *testing.T) {
		const secret = "no-such-ws-8123"
		for _, p := range []string{"workspaces/" + secret, "workspaces/" + secret + "/logs", secret} {
			var e apiError
			if st := c.do("GET", p, nil, &e); st != 404 || strings.Contains(e.Error.Message, secret) {
				t.Errorf("GET %s: %d %+v", p, st, e)
			}
		}
		var e apiError
		if st := c.do("POST", "workspaces", map[string]any{"name": "bad name!"}, &e); st != 400 || !strings.HasPrefix(e.Error.Message, "name:") {
			t.Errorf("bad name: %d %+v, want a 400 naming the field", st, e)
		}
	})

	t.Run("stop, start, destroy", func(t *testing.T) {
		var w dashWorkspace
		if st := c.do("POST", "workspaces/dash-ws/stop", nil, &w); st != 200 || w.State != "stopped" {
			t.Fatalf("stop: %d %+v", st, w)
		}
		if st := c.do("POST", "workspaces/dash-ws/start", nil, &w); st != 200 || w.State != "running" {
			t.Fatalf("start: %d %+v", st, w)
		}
		if st := c.do("DELETE", "workspaces/dash-ws", nil, nil); st != 200 {
			t.Fatalf("destroy: %d", st)
		}
		var e apiError
		if st := c.do("GET", "workspaces/dash-ws", nil, &e); st != 404 {
			t.Errorf("after destroy: %d", st)
		}
	})

	var audit struct {
		Entries []struct {
			Actor, Action, Result, Target string
		} `json:"entries"`
	}
	c.do("GET", "audit?limit=1000", nil, &audit)
	actions := map[string]bool{}
	for _, e := range audit.Entries {
		if e.Actor == "dashboard" {
			actions[e.Action] = true
		}
	}
	for _, want := range []string{"dashboard_login", "workspace_create", "exec", "terminal", "file_write", "workspace_stop", "workspace_destroy"} {
		if !actions[want] {
			t.Errorf("audit log has no dashboard %s entry (has %v)", want, actions)
		}
	}
	var host struct {
		VMsRunning       int   `json:"vms_running"`
		MemoryTotalBytes int64 `json:"memory_total_bytes"`
	}
	if st := c.do("GET", "host", nil, &host); st != 200 || host.VMsRunning != 0 || host.MemoryTotalBytes == 0 {
		t.Errorf("host metrics: %d %+v (want no VM running)", st, host)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// H-1 at the daemon: a dashboard on a non-loopback address without an
// admin token keeps the whole daemon from starting, with a message that
// says how to fix it.
func TestH1_DaemonRefusesNonLoopbackDashboardWithoutToken(t *testing.T) {
	testenv.Require(t, "root", "qemu", "image")
	bin := agentisoBinary(t)
	dir := t.TempDir()
	runDir, err := os.MkdirTemp("/tmp", "ag")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(runDir)
	cfg := fmt.Sprintf(`[server]
data_dir = %q
run_dir = %q
socket_path = %q
socket_group = ""

[image]
dir = %q

[vm]
accel = "tcg"

[dashboard]
listen = "0.0.0.0:%d"
`, filepath.Join(dir, "data"), runDir, filepath.Join(runDir, "agentiso.sock"), testenv.ImageDir(), freePort(t))
	path := filepath.Join(dir, "config.toml")
	os.WriteFile(path, []byte(cfg), 0o600)
	cmd := exec.Command(bin, "daemon", "--config", path)
	cmd.Env = withoutEnv(config.AdminTokenEnv)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the daemon started (and ended cleanly):\n%s", out)
	}
	if !strings.Contains(string(out), "secrets.admin_token_file") || !strings.Contains(string(out), "non-loopback") {
		t.Errorf("the refusal does not say how to fix it:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(runDir, "agentiso.sock")); err == nil {
		t.Error("the daemon's socket exists: it served before refusing")
	}
}

// withoutEnv is this process's environment without the variable name.
func withoutEnv(name string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// The admin token has one way in, config.LoadSecrets, whether it comes
// from $AGENTISO_ADMIN_TOKEN or secrets.admin_token_file (TestDashboardAPI
// logs in with a file's): a daemon given it in its environment takes it
// for the dashboard (on a non-loopback address, where nothing else would
// do), a wrong token is refused, and QEMU, started after the daemon
// cleared its environment, does not inherit it (L-11).
func TestL11_AdminTokenFromTheEnvironment(t *testing.T) {
	const token = "e2e-env-admin-token-5f0c9a7e21"
	t.Setenv(config.AdminTokenEnv, token)
	port := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	d := startDaemonOpts(t, "", fmt.Sprintf("\n[dashboard]\nlisten = \"0.0.0.0:%d\"\n", port), daemonOpts{hostNetwork: true})

	waitDashboard(t, base)
	wrong := &dashClient{t: t, base: base, http: &http.Client{Timeout: time.Minute}}
	if st := wrong.do("POST", "login", map[string]string{"token": dashToken}, nil); st != http.StatusForbidden {
		t.Errorf("login with another token: %d, want 403", st)
	}
	c := loginDashboardWith(t, base, token)
	if strings.Contains(d.Log(), token) {
		t.Error("the daemon log holds the admin token")
	}
	if !strings.Contains(d.Log(), "$"+config.AdminTokenEnv) {
		t.Errorf("the daemon log does not say where the token came from:\n%s", d.Log())
	}

	var ws dashWorkspace
	if st := c.do("POST", "workspaces", map[string]any{"name": "env-token", "memory_mb": 256}, &ws); st != 200 || ws.State != "running" {
		t.Fatalf("create: %d %+v", st, ws)
	}
	pid := d.qemuOf(t, ws.ID)
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(env), token) || strings.Contains(string(env), config.AdminTokenEnv) {
		t.Error("QEMU's environment holds the admin token")
	}
	if st := c.do("DELETE", "workspaces/"+ws.ID, nil, nil); st != 200 {
		t.Errorf("destroy: %d", st)
	}
}
