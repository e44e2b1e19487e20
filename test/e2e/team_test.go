package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type teamMember struct {
	Name          string `json:"name"`
	Role          string `json:"role"`
	WorkspaceID   string `json:"workspace_id"`
	WorkspaceName string `json:"workspace_name"`
	State         string `json:"state"`
	UnreadCount   int    `json:"unread_messages"`
	PendingTasks  int    `json:"pending_tasks"`
}

type teamInfo struct {
	Name     string       `json:"name"`
	State    string       `json:"state"`
	MaxVMs   int          `json:"max_vms"`
	UsedVMs  int          `json:"used_vms"`
	SubTeams []string     `json:"sub_teams"`
	Members  []teamMember `json:"members"`
}

type teamReceived struct {
	Messages []struct {
		From        string `json:"from"`
		To          string `json:"to"`
		MessageType string `json:"message_type"`
		Content     string `json:"content"`
	} `json:"messages"`
	Count         int `json:"count"`
	DaemonResults []struct {
		TaskID   string `json:"task_id"`
		Status   string `json:"status"`
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
		Stderr   string `json:"stderr"`
		Error    string `json:"error"`
	} `json:"daemon_results"`
	DaemonPendingTasks int `json:"daemon_pending_tasks"`
}

// teamConfig keeps team VMs small: three of them boot on a shared machine.
const teamConfig = "\n[resources]\ndefault_memory_mb = 256\n"

// TestC2_TeamOverHostChannel drives a team of three real workspaces through the team
// tool over a real MCP client: create (workspaces {team}-{member}, agent
// cards in the vault), messages and a broadcast, task assignments run by a
// member's guest with their results in receive, messages that survive a
// daemon kill -9, and a destroy that leaves nothing behind.
func TestC2_TeamOverHostChannel(t *testing.T) {
	d := startDaemon(t, teamConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	s := d.client(ctx)

	start := time.Now()
	created := call[teamInfo](ctx, t, s, "team", map[string]any{"action": "create", "name": "alpha", "max_vms": 3,
		"roles": []map[string]any{
			{"name": "lead", "role": "planner", "skills": []string{"design"}, "description": "splits the work"},
			{"name": "dev", "role": "coder", "skills": []string{"go"}},
			{"name": "qa", "role": "tester"},
		}})
	t.Logf("team of 3 created in %s", time.Since(start).Round(time.Millisecond))
	if created.State != "ready" || len(created.Members) != 3 || created.UsedVMs != 3 {
		t.Fatalf("create: %+v", created)
	}
	members := map[string]teamMember{}
	for _, m := range created.Members {
		if m.State != "running" || m.WorkspaceName != "alpha-"+m.Name {
			t.Fatalf("member %+v", m)
		}
		members[m.Name] = m
	}
	l := call[listed](ctx, t, s, "workspace_list", map[string]any{})
	if l.Count != 3 {
		t.Fatalf("workspace_list after team create: %+v", l)
	}
	// The budget is full: a sub-team cannot take a VM more (H-10 over MCP;
	// the race is TestH10_SubTeamBudgetRace).
	if msg := callErr(ctx, t, s, "team", map[string]any{"action": "create", "name": "alpha-sub", "parent_team": "alpha",
		"roles": []map[string]any{{"name": "x", "role": "helper"}}}); !strings.Contains(msg, "budget") {
		t.Fatalf("sub-team over the budget: %s", msg)
	}
	// M-18 over MCP: a role name that is a path is refused, nothing made.
	if msg := callErr(ctx, t, s, "team", map[string]any{"action": "create", "name": "beta",
		"roles": []map[string]any{{"name": "../../etc", "role": "x"}}}); !strings.HasPrefix(msg, "roles[0].name:") {
		t.Fatalf("a path as a role name: %s", msg)
	}

	// Agent cards in the vault.
	card := call[map[string]any](ctx, t, s, "vault", map[string]any{"action": "read", "path": "teams/alpha/cards/dev.json"})
	if c, _ := card["content"].(string); !strings.Contains(c, `"workspace_id": "`+members["dev"].WorkspaceID+`"`) {
		t.Fatalf("dev's card: %v", card)
	}

	// C-2: the guest opens no network listener at all; team traffic comes
	// over the host channel only.
	listen := sh(ctx, t, s, members["dev"].WorkspaceID,
		`cat /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6 2>/dev/null | awk 'NR>0 && $4=="0A"' | wc -l`)
	if listen != "0" {
		t.Fatalf("the guest has %s listening TCP sockets", listen)
	}

	// Messages: direct and broadcast, stored before the answer.
	msg := func(from, to, content, typ string) map[string]any {
		return call[map[string]any](ctx, t, s, "team", map[string]any{"action": "message", "name": "alpha",
			"agent": from, "to": to, "content": content, "message_type": typ})
	}
	msg("lead", "dev", "please build it", "")
	msg("lead", "*", "standup in 5", "")
	if e := callErr(ctx, t, s, "team", map[string]any{"action": "message", "name": "alpha", "agent": "lead", "to": "dev",
		"content": strings.Repeat("x", 256<<10+1)}); !strings.HasPrefix(e, "content:") {
		t.Fatalf("over 256 KiB: %s", e)
	}

	// Task assignments: run by dev's guest, the env blocklist applied (L-9).
	if e := callErr(ctx, t, s, "team", map[string]any{"action": "message", "name": "alpha", "agent": "lead", "to": "dev",
		"message_type": "task_assignment", "content": `{"task_id":"evil","command":"id","env":{"LD_PRELOAD":"/tmp/x.so"}}`}); !strings.Contains(e, "LD_PRELOAD") {
		t.Fatalf("a blocklisted env in a task: %s", e)
	}
	task, _ := json.Marshal(map[string]any{"task_id": "build-1", "command": "echo $GREETING from $(hostname); pwd",
		"workdir": "/tmp", "env": map[string]string{"GREETING": "hello"}, "timeout_secs": 60})
	if r := msg("lead", "dev", string(task), "task_assignment"); r["task_id"] != "build-1" {
		t.Fatalf("task ack: %v", r)
	}
	var got teamReceived
	deadline := time.Now().Add(2 * time.Minute)
	var inbox []string
	for len(got.DaemonResults) == 0 && time.Now().Before(deadline) {
		got = call[teamReceived](ctx, t, s, "team", map[string]any{"action": "receive", "name": "alpha", "agent": "dev"})
		for _, m := range got.Messages {
			inbox = append(inbox, m.From+":"+m.Content)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if strings.Join(inbox, "|") != "lead:please build it|lead:standup in 5" {
		t.Fatalf("dev's inbox: %q", inbox)
	}
	if len(got.DaemonResults) != 1 {
		t.Fatalf("no task result within 2 minutes: %+v", got)
	}
	res := got.DaemonResults[0]
	if res.TaskID != "build-1" || res.Status != "done" || res.ExitCode != 0 || res.Stdout != "hello from alpha-dev\n/tmp\n" {
		t.Fatalf("task result: %+v", res)
	}

	// Six tasks at once: dev's guest runs at most four at a time.
	for range 6 {
		c, _ := json.Marshal(map[string]any{"task_id": "par", "command": `mkdir -p /tmp/run; touch /tmp/run/$$; sleep 3; n=$(ls /tmp/run | wc -l); rm /tmp/run/$$; echo $n`})
		msg("lead", "dev", string(c), "task_assignment")
	}
	var peak int
	var results int
	deadline = time.Now().Add(3 * time.Minute)
	for results < 6 && time.Now().Before(deadline) {
		r := call[teamReceived](ctx, t, s, "team", map[string]any{"action": "receive", "name": "alpha", "agent": "dev"})
		for _, x := range r.DaemonResults {
			results++
			var n int
			if err := json.Unmarshal([]byte(strings.TrimSpace(x.Stdout)), &n); err != nil || x.Status != "done" {
				t.Fatalf("parallel task: %+v", x)
			}
			peak = max(peak, n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("six 3-second tasks: at most %d at once", peak)
	if results != 6 || peak > 4 || peak < 2 {
		t.Fatalf("%d results, peak %d at once; want 6 results and 2..4 at once", results, peak)
	}

	// Messages survive a daemon kill -9.
	msg("qa", "lead", "found a bug", "")
	d.kill()
	d.start()
	s = d.client(ctx)
	// The team follows its workspaces: adopted by the new session, the
	// team is the new session's too.
	if e := callErr(ctx, t, s, "team", map[string]any{"action": "receive", "name": "alpha", "agent": "lead"}); !strings.Contains(e, "no such team") {
		t.Fatalf("before adopting: %s", e)
	}
	if r := call[adoptOut](ctx, t, s, "workspace_adopt", map[string]any{}); r.Count != 3 {
		t.Fatalf("adopting: %+v", r)
	}
	got = call[teamReceived](ctx, t, s, "team", map[string]any{"action": "receive", "name": "alpha", "agent": "lead"})
	if got.Count != 1 || got.Messages[0].Content != "found a bug" || got.Messages[0].From != "qa" {
		t.Fatalf("lead's inbox after kill -9: %+v", got)
	}
	got = call[teamReceived](ctx, t, s, "team", map[string]any{"action": "receive", "name": "alpha", "agent": "qa"})
	if got.Count != 1 || got.Messages[0].Content != "standup in 5" {
		t.Fatalf("qa's inbox after kill -9: %+v", got)
	}

	// Destroy leaves nothing behind.
	destroyed := call[map[string]any](ctx, t, s, "team", map[string]any{"action": "destroy", "name": "alpha"})
	t.Logf("destroy: %v", destroyed)
	if l := call[listed](ctx, t, s, "workspace_list", map[string]any{}); l.Count != 0 {
		t.Fatalf("workspaces left: %+v", l)
	}
	if tl := call[map[string]any](ctx, t, s, "team", map[string]any{"action": "list"}); tl["count"] != float64(0) {
		t.Fatalf("teams left: %v", tl)
	}
	if pids := d.QEMUPIDs(); len(pids) != 0 {
		t.Fatalf("QEMU processes left: %v", pids)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "data", "vault", "teams", "alpha")); !os.IsNotExist(err) {
		t.Fatalf("the team's vault folder is left: %v", err)
	}
	if e := callErr(ctx, t, s, "team", map[string]any{"action": "status", "name": "alpha"}); !strings.Contains(e, "no such team") {
		t.Fatalf("status after destroy: %s", e)
	}
}

// TestTeamMembersReachOnlyEachOther proves the team's network rule with
// packets: a member reaches another member's listening port, a workspace
// outside the team does not, and a member does not reach it either.
func TestTeamMembersReachOnlyEachOther(t *testing.T) {
	d := startDaemon(t, teamConfig+"\n[network]\nsubnet = \"10.79.0.0/24\"\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := d.client(ctx)
	tm := call[teamInfo](ctx, t, s, "team", map[string]any{"action": "create", "name": "net",
		"roles": []map[string]any{{"name": "a", "role": "x"}, {"name": "b", "role": "y"}}})
	out := call[netInfo](ctx, t, s, "workspace_create", map[string]any{"name": "outside"})
	ip := map[string]string{}
	for _, m := range tm.Members {
		ip[m.Name] = call[netInfo](ctx, t, s, "workspace_info", map[string]any{"workspace_id": m.WorkspaceID}).IP
	}
	g := func(ws string) guest {
		call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws, "path": "/root/nettool.py", "content": nettool})
		return guest{t: t, ctx: ctx, s: s, ws: netInfo{ID: ws, Name: ws}}
	}
	a, b, o := g("net-a"), g("net-b"), g("outside")
	b.background("python3 /root/nettool.py echo_server 8001")
	o.background("python3 /root/nettool.py echo_server 8001")
	b.tool("wait_port 8001")
	o.tool("wait_port 8001")
	if got := a.tool("tcp " + ip["b"] + " 8001 5"); got != "open" {
		t.Errorf("a member cannot reach another: %s", got)
	}
	if got := o.tool("tcp " + ip["b"] + " 8001 3"); !strings.HasPrefix(got, "closed") {
		t.Errorf("a workspace outside the team reached a member: %s", got)
	}
	if got := a.tool("tcp " + out.IP + " 8001 3"); !strings.HasPrefix(got, "closed") {
		t.Errorf("a member reached a workspace outside the team: %s", got)
	}
	// Destroy removes the rule with the team.
	call[map[string]any](ctx, t, s, "team", map[string]any{"action": "destroy", "name": "net"})
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": out.ID})
}
