package e2e

import (
	"context"
	_ "embed"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

//go:embed testdata/bridge_client.py
var bridgeClient string

// bridgeConfig serves the bridge on the workspaces' gateway, port 3999.
const bridgeConfig = teamConfig + `
[network]
subnet = "10.78.0.0/24"
vm_service_ports = [3999]

[bridge]
enabled = true
port = 3999
`

// bridgeAgent runs the bridge client inside a workspace: the agent in the
// VM, reaching the daemon over the workspaces' network.
type bridgeAgent struct {
	t   *testing.T
	ctx context.Context
	s   *mcp.ClientSession
	ws  string
}

func newBridgeAgent(ctx context.Context, t *testing.T, s *mcp.ClientSession, ws string) bridgeAgent {
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws, "path": "/root/bridge_client.py", "content": bridgeClient})
	return bridgeAgent{t: t, ctx: ctx, s: s, ws: ws}
}

// run runs the client with args (and TOKEN=token when token is not empty)
// and decodes its one line of JSON into out.
func (a bridgeAgent) run(out any, token string, args ...string) {
	a.t.Helper()
	cmd := "python3 /root/bridge_client.py"
	for _, x := range args {
		cmd += " '" + x + "'"
	}
	if token != "" {
		cmd = "TOKEN='" + token + "' " + cmd
	}
	r := call[execResult](a.ctx, a.t, a.s, "exec", map[string]any{"workspace_id": a.ws, "command": cmd, "timeout_secs": 180})
	if r.ExitCode != 0 {
		a.t.Fatalf("bridge client %v: exit %d\n%s\n%s", args, r.ExitCode, r.Stdout, r.Stderr)
	}
	if err := json.Unmarshal([]byte(r.Stdout), out); err != nil {
		a.t.Fatalf("bridge client %v: %q: %v", args, r.Stdout, err)
	}
}

// toolResult is a tools/call result as the client prints it.
type toolResult struct {
	IsError           bool                    `json:"isError"`
	RawContent        []struct{ Text string } `json:"content"`
	StructuredContent json.RawMessage         `json:"structuredContent"`
	HTTPError         int                     `json:"http_error"`
}

func (r toolResult) text() string {
	var sb strings.Builder
	for _, c := range r.RawContent {
		sb.WriteString(c.Text)
	}
	return sb.String()
}

// TestM5_BridgeScopedTokens runs the MCP bridge for a real team member: an
// agent inside the member's workspace, reaching the bridge over the
// workspaces' network with the token the daemon put in its guest's memory,
// gets only the allowlisted tools (M-5), only its own workspace and team; a
// wrong token is refused and, like the right one, appears in no log and
// nowhere in the host's state (M-6).
func TestM5_BridgeScopedTokens(t *testing.T) {
	d := startDaemon(t, bridgeConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := d.client(ctx)

	call[teamInfo](ctx, t, s, "team", map[string]any{"action": "create", "name": "bt", "bridge_tools": []string{"exec", "team"},
		"roles": []map[string]any{{"name": "dev", "role": "coder"}}})
	outsider := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "outsider"})

	token := sh(ctx, t, s, "bt-dev", `printf %s "$AGENTISO_BRIDGE_TOKEN"`)
	if url := sh(ctx, t, s, "bt-dev", `printf %s "$AGENTISO_BRIDGE_URL"`); len(token) != 43 || url != "http://10.78.0.1:3999/mcp" {
		t.Fatalf("the guest holds a token of %d characters and URL %q", len(token), url)
	}
	if sh(ctx, t, s, "outsider", `printf %s "${AGENTISO_BRIDGE_TOKEN:-none}"`) != "none" {
		t.Fatal("a workspace outside any team got a bridge token")
	}
	a := newBridgeAgent(ctx, t, s, "bt-dev")
	var names []string
	a.run(&names, "", "list")
	if strings.Join(names, ",") != "exec,team" {
		t.Fatalf("the bridge lists %v; want exec and team", names)
	}
	var r toolResult
	a.run(&r, "", "call", "exec", `{"workspace_id":"bt-dev","command":"hostname"}`)
	var ex execResult
	if err := json.Unmarshal(r.StructuredContent, &ex); err != nil || r.IsError || ex.Stdout != "bt-dev\n" {
		t.Fatalf("exec over the bridge: %+v", r)
	}
	for _, ref := range []string{outsider.ID, "outsider"} {
		r = toolResult{}
		a.run(&r, "", "call", "exec", `{"workspace_id":"`+ref+`","command":"id"}`)
		if !r.IsError || r.text() != "workspace_id: no such workspace in this session" {
			t.Fatalf("exec in another workspace over the bridge: %+v", r)
		}
	}
	r = toolResult{}
	a.run(&r, "", "call", "workspace_destroy", `{"workspace_id":"bt-dev"}`)
	if !r.IsError || !strings.Contains(r.text(), "not allowed") {
		t.Fatalf("a tool outside the allowlist: %+v", r)
	}
	call[map[string]any](ctx, t, s, "team", map[string]any{"action": "message", "name": "bt", "agent": "lead", "to": "dev", "content": "over to you"})
	r = toolResult{}
	a.run(&r, "", "call", "team", `{"action":"receive","name":"bt","agent":"dev"}`)
	var got teamReceived
	if err := json.Unmarshal(r.StructuredContent, &got); err != nil || got.Count != 1 || got.Messages[0].Content != "over to you" {
		t.Fatalf("receive over the bridge: %+v", r)
	}

	// A wrong token is refused.
	wrong := token[:20] + strings.Repeat("A", len(token)-20)
	r = toolResult{}
	a.run(&r, wrong, "list")
	if r.HTTPError != 401 {
		t.Fatalf("a wrong token: %+v", r)
	}
	// Destroying the team ends its token (the outsider, holding it, tries).
	call[map[string]any](ctx, t, s, "team", map[string]any{"action": "destroy", "name": "bt"})
	newBridgeAgent(ctx, t, s, "outsider")
	if r := sh(ctx, t, s, "outsider", `AGENTISO_BRIDGE_URL=http://10.78.0.1:3999/mcp TOKEN='`+token+`' AGENTISO_BRIDGE_TOKEN=x python3 /root/bridge_client.py list`); r != `{"http_error": 401}` {
		t.Fatalf("the token of a destroyed team: %s", r)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": outsider.ID})
	d.stop()

	// M-6: no part of either token in the daemon's log or its state.
	var hay []string
	hay = append(hay, d.Log())
	files, _ := filepath.Glob(filepath.Join(d.Dir, "data", "state.db*"))
	for _, f := range files {
		bs, _ := os.ReadFile(f)
		hay = append(hay, string(bs))
	}
	if !strings.Contains(d.Log(), "without a valid token") {
		t.Fatal("the refusal was not logged")
	}
	for _, tok := range []string{token, wrong} {
		for i := 0; i+8 <= len(tok); i++ {
			part := tok[i : i+8]
			if strings.Contains(part, "AAAA") {
				continue
			}
			for _, h := range hay {
				if strings.Contains(h, part) {
					t.Fatalf("the host holds part of a token (%d..%d) in its log or state", i, i+8)
				}
			}
		}
	}
}

// TestL7_BridgeTokenInGuestMemoryOnly: a member's token is in its guest
// agent's memory (the exec environment) and in no file of the guest; the
// host does not keep it either, so a restarted daemon gives the guest a
// new token and the old one stops working.
func TestL7_BridgeTokenInGuestMemoryOnly(t *testing.T) {
	d := startDaemon(t, bridgeConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := d.client(ctx)
	call[teamInfo](ctx, t, s, "team", map[string]any{"action": "create", "name": "mem",
		"roles": []map[string]any{{"name": "dev", "role": "coder"}}})
	token := sh(ctx, t, s, "mem-dev", `printf %s "$AGENTISO_BRIDGE_TOKEN"`)
	if len(token) != 43 {
		t.Fatalf("the guest holds a token of %d characters", len(token))
	}
	// The search finds a file that holds the token (the probe), and no
	// other: the guest keeps it on no disk, tmpfs or not.
	found := sh(ctx, t, s, "mem-dev", `printf %s "$AGENTISO_BRIDGE_TOKEN" > /root/probe
grep -rlF "$AGENTISO_BRIDGE_TOKEN" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null
rm /root/probe`)
	if found != "/root/probe" {
		t.Fatalf("files in the guest holding the token: %q; want only the probe", found)
	}

	d.stop()
	d.start()
	s = d.client(ctx)
	if r := call[adoptOut](ctx, t, s, "workspace_adopt", map[string]any{}); r.Count != 1 {
		t.Fatalf("adopting: %+v", r)
	}
	fresh := sh(ctx, t, s, "mem-dev", `printf %s "$AGENTISO_BRIDGE_TOKEN"`)
	if len(fresh) != 43 || fresh == token {
		t.Fatalf("after a restart the guest holds a token of %d characters, new: %v", len(fresh), fresh != token)
	}
	a := newBridgeAgent(ctx, t, s, "mem-dev")
	var r toolResult
	a.run(&r, token, "list")
	if r.HTTPError != 401 {
		t.Fatalf("the token from before the restart: %+v", r)
	}
	var names []string
	a.run(&names, "", "list")
	if len(names) == 0 {
		t.Fatal("the new token lists no tools")
	}
	call[map[string]any](ctx, t, s, "team", map[string]any{"action": "destroy", "name": "mem"})
}
