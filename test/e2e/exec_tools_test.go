package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/testdaemon"
)

type jobOut struct {
	Action      string `json:"action"`
	JobID       uint32 `json:"job_id"`
	Pid         int    `json:"pid"`
	Running     bool   `json:"running"`
	ExitCode    *int   `json:"exit_code"`
	Signal      string `json:"signal"`
	Stdout      string `json:"stdout"`
	Stderr      string `json:"stderr"`
	StdoutBytes int64  `json:"stdout_bytes"`
	Truncated   bool   `json:"truncated"`
	SignalSent  string `json:"signal_sent"`
}

// pollJob polls a job until done says so.
func pollJob(ctx context.Context, t *testing.T, s *mcp.ClientSession, ws string, id uint32, done func(jobOut) bool) jobOut {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j := call[jobOut](ctx, t, s, "exec_background", map[string]any{"workspace_id": ws, "action": "poll", "job_id": id})
		if done(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d: gave up waiting, last poll %+v", id, j)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func jobEnded(j jobOut) bool { return !j.Running }

// wantErr calls a tool that must fail and checks its message names want.
func wantErr(ctx context.Context, t *testing.T, s *mcp.ClientSession, tool string, args map[string]any, want string) string {
	t.Helper()
	msg := callErr(ctx, t, s, tool, args)
	if !strings.Contains(msg, want) {
		t.Errorf("%s(%v): error %q does not name %q", tool, args, msg, want)
	}
	return msg
}

// TestBackgroundJobs drives exec_background over MCP: output so far while a
// job runs, its result after (still there on the next poll), kill of the
// whole process group by signal name or number, bounded output (M-10), and
// a job that outlives a daemon restart.
func TestBackgroundJobs(t *testing.T) {
	d := startDaemon(t, fastPolls)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "jobs"}).ID
	bg := func(args map[string]any) jobOut {
		t.Helper()
		args["workspace_id"] = ws
		return call[jobOut](ctx, t, s, "exec_background", args)
	}

	start := bg(map[string]any{"action": "start", "command": "echo started; echo oops >&2; sleep 3; echo done; exit 3"})
	if start.JobID == 0 || !start.Running || start.ExitCode != nil || start.Pid <= 0 {
		t.Fatalf("start = %+v", start)
	}
	early := pollJob(ctx, t, s, ws, start.JobID, func(j jobOut) bool { return j.Stdout != "" })
	if !early.Running || early.Stdout != "started\n" || early.ExitCode != nil {
		t.Errorf("poll while running = %+v, want the output so far and no exit code", early)
	}
	end := pollJob(ctx, t, s, ws, start.JobID, jobEnded)
	if end.ExitCode == nil || *end.ExitCode != 3 || end.Stdout != "started\ndone\n" || end.Stderr != "oops\n" {
		t.Errorf("finished job = %+v", end)
	}
	if again := bg(map[string]any{"action": "poll", "job_id": start.JobID}); again.Stdout != end.Stdout || again.ExitCode == nil {
		t.Errorf("second poll after the end = %+v: the result must not vanish", again)
	}

	// Kill reaches the whole process group; numbers and names both work.
	// (Not SIGINT: a non-interactive shell starts background commands with
	// SIGINT ignored, so the job's child rightly survives it.)
	for _, sig := range []any{15, "TERM", "hup", nil} {
		j := bg(map[string]any{"action": "start", "command": "sleep 1000 & echo $!; wait"})
		out := pollJob(ctx, t, s, ws, j.JobID, func(j jobOut) bool { return strings.HasSuffix(j.Stdout, "\n") })
		child := strings.TrimSpace(out.Stdout)
		args := map[string]any{"action": "kill", "job_id": j.JobID}
		if sig != nil {
			args["signal"] = sig
		}
		k := bg(args)
		want := map[any]string{15: "SIGTERM", "TERM": "SIGTERM", "hup": "SIGHUP", nil: "SIGKILL"}[sig]
		if k.Running || k.SignalSent != want || k.Signal != want {
			t.Errorf("kill with %v = %+v, want ended by %s", sig, k, want)
		}
		alive := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "kill -0 " + child + " 2>/dev/null && echo alive || echo gone"})
		if strings.TrimSpace(alive.Stdout) != "gone" {
			t.Errorf("kill with %v: the job's child %s survived", sig, child)
		}
	}

	// M-10: however much a job writes, the guest keeps and sends only the
	// last max_output_bytes of it.
	big := bg(map[string]any{"action": "start", "command": "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo tail-marker", "max_output_bytes": 1000})
	out := pollJob(ctx, t, s, ws, big.JobID, jobEnded)
	if len(out.Stdout) != 1000 || !out.Truncated || out.StdoutBytes != 3000013 || !strings.HasSuffix(out.Stdout, "x\ntail-marker\n") {
		t.Errorf("3 MB job: kept %d bytes, truncated %v, counted %d, ends %q", len(out.Stdout), out.Truncated, out.StdoutBytes, out.Stdout[max(0, len(out.Stdout)-20):])
	}

	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"action": "launch"}, "action"},
		{map[string]any{"action": "start"}, "command"},
		{map[string]any{"action": "poll"}, "job_id"},
		{map[string]any{"action": "poll", "job_id": 999}, "job_id"},
		{map[string]any{"action": "kill", "job_id": start.JobID, "signal": "SIGSTOP"}, "signal"},
		{map[string]any{"action": "kill", "job_id": start.JobID, "signal": 19}, "signal"},
		{map[string]any{"action": "start", "command": "true", "max_output_bytes": 2 << 20}, "max_output_bytes"},
		{map[string]any{"action": "start", "command": "true", "workdir": "relative"}, "workdir"},
		{map[string]any{"action": "start", "command": "true", "workdir": "/no/such/dir"}, "workdir"},
	} {
		tc.args["workspace_id"] = ws
		wantErr(ctx, t, s, "exec_background", tc.args, tc.want)
	}

	// Jobs live in the guest: a daemon restart finds them again.
	survivor := bg(map[string]any{"action": "start", "command": "echo before; sleep 8; echo after-restart"})
	d.stop()
	d.start()
	s = d.client(ctx)
	adopt(ctx, t, s, ws)
	res := pollJob(ctx, t, s, ws, survivor.JobID, jobEnded)
	if res.ExitCode == nil || *res.ExitCode != 0 || res.Stdout != "before\nafter-restart\n" {
		t.Errorf("job across a daemon restart = %+v", res)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws})
}

// TestM9_BlockedEnvRefusedOnEverySource checks the env blocklist on every
// way a variable reaches a command over MCP (M-9, L-9): set_env, exec's
// env, a background job's env and exec_parallel's env. Refusals name the
// variable and change nothing.
func TestM9_BlockedEnvRefusedOnEverySource(t *testing.T) {
	d := startDaemon(t, fastPolls)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "env-m9"}).ID
	for _, name := range []string{"LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "GLIBC_TUNABLES"} {
		env := map[string]any{name: "/tmp/x"}
		wantErr(ctx, t, s, "set_env", map[string]any{"workspace_id": ws, "vars": env}, name)
		wantErr(ctx, t, s, "set_env", map[string]any{"workspace_id": ws, "vars": map[string]any{"FINE": "1", name: "x"}}, name)
		wantErr(ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "true", "env": env}, name)
		wantErr(ctx, t, s, "exec_background", map[string]any{"workspace_id": ws, "action": "start", "command": "true", "env": env}, name)
		wantErr(ctx, t, s, "exec_parallel", map[string]any{"workspace_ids": []string{ws}, "commands": "true", "env": env}, name)
	}
	// Nothing was set by the refused calls: FINE came with a blocked name.
	got := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": `echo "[$FINE][$LD_PRELOAD]"`})
	if got.Stdout != "[][]\n" {
		t.Errorf("after refusals the environment holds %q", got.Stdout)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws})
}

// TestSetEnv checks that set_env's variables reach later execs and jobs, a
// call's own env overrides them, their values are never echoed and never
// reach a disk (the guest's or the host's), and a foreign session can do
// nothing with them (L-16).
func TestSetEnv(t *testing.T) {
	d := startDaemon(t, fastPolls)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "env"}).ID
	secret := "sk-" + randomHex(t, 16)

	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "set_env", Arguments: map[string]any{
		"workspace_id": ws, "vars": map[string]any{"API_KEY": secret, "MODE": "persistent"}}})
	if err != nil || res.IsError {
		t.Fatalf("set_env: %v %s", err, testdaemon.Text(res))
	}
	raw, _ := json.Marshal(res)
	if bytes.Contains(raw, []byte(secret)) {
		t.Errorf("set_env echoed a value: %s", raw)
	}
	var set struct {
		Names []string `json:"names"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	json.Unmarshal(b, &set)
	if strings.Join(set.Names, ",") != "API_KEY,MODE" {
		t.Errorf("set_env names = %v", set.Names)
	}

	e := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": `echo "$API_KEY $MODE"`, "env": map[string]any{"MODE": "per-call"}})
	if e.Stdout != secret+" per-call\n" {
		t.Errorf("exec sees %q", e.Stdout)
	}
	j := call[jobOut](ctx, t, s, "exec_background", map[string]any{"workspace_id": ws, "action": "start", "command": `echo "$API_KEY $MODE"`})
	if out := pollJob(ctx, t, s, ws, j.JobID, jobEnded); out.Stdout != secret+" persistent\n" {
		t.Errorf("job sees %q", out.Stdout)
	}
	un := call[struct {
		Names []string `json:"names"`
	}](ctx, t, s, "set_env", map[string]any{"workspace_id": ws, "vars": map[string]any{}, "unset": []string{"MODE"}})
	if strings.Join(un.Names, ",") != "API_KEY" {
		t.Errorf("after unset names = %v", un.Names)
	}
	wantErr(ctx, t, s, "set_env", map[string]any{"workspace_id": ws, "vars": map[string]any{}}, "vars")
	wantErr(ctx, t, s, "set_env", map[string]any{"workspace_id": ws, "vars": map[string]any{"1BAD": "x"}}, "vars")

	// A foreign session gets the one answer that echoes nothing (L-16).
	other := d.client(ctx)
	unknown := callErr(ctx, t, other, "workspace_info", map[string]any{"workspace_id": "never-existed"})
	for _, tc := range []struct {
		tool string
		args map[string]any
	}{
		{"set_env", map[string]any{"workspace_id": "env", "vars": map[string]any{"X": "1"}}},
		{"exec_background", map[string]any{"workspace_id": "env", "action": "poll", "job_id": j.JobID}},
		{"file_list", map[string]any{"workspace_id": "env", "path": "/"}},
		{"file_edit", map[string]any{"workspace_id": "env", "path": "/etc/hostname", "old_string": "env", "new_string": "x"}},
		{"file_transfer", map[string]any{"workspace_id": "env", "direction": "download", "host_path": "x", "guest_path": "/etc/hostname"}},
	} {
		if msg := callErr(ctx, t, other, tc.tool, tc.args); msg != unknown {
			t.Errorf("%s on a foreign workspace: %q, want %q", tc.tool, msg, unknown)
		}
	}
	msg := callErr(ctx, t, other, "exec_parallel", map[string]any{"workspace_ids": []string{"env"}, "commands": "true"})
	if strings.Contains(msg, ws) || !strings.Contains(msg, "workspace_ids[0]: no such workspace in this session") {
		t.Errorf("exec_parallel on a foreign workspace: %q", msg)
	}

	// Held in memory only: after a sync in the guest, no file of the
	// daemon (state, logs, the workspace's disk layers) holds the value.
	call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "sync"})
	filepath.WalkDir(d.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("the set_env value reached %s", p)
		}
		return nil
	})
	// ... so a stopped workspace has lost it.
	call[wsInfo](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": ws})
	call[wsInfo](ctx, t, s, "workspace_start", map[string]any{"workspace_id": ws})
	if e := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": `echo "[$API_KEY]"`}); e.Stdout != "[]\n" {
		t.Errorf("after a restart of the workspace API_KEY is %q", e.Stdout)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws})
}

// adopt gives workspace ws to client s's session after a daemon
// restart, which ended the session that made it.
func adopt(ctx context.Context, t testing.TB, s *mcp.ClientSession, ws string) {
	t.Helper()
	r := call[adoptOut](ctx, t, s, "workspace_adopt", map[string]any{"workspace_id": ws})
	if r.Count != 1 {
		t.Fatalf("adopting %s after the restart: %+v", ws, r)
	}
}

// fastPolls lifts the exec and default rate limits (limits_test.go tests
// them) for tests that poll jobs several times a second.
const fastPolls = "\n[limits]\nexec_per_min = 100000\nglobal_exec_per_min = 100000\ndefault_per_min = 100000\nglobal_default_per_min = 100000\n"

func randomHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type parallelOut struct {
	Results []struct {
		WorkspaceID string `json:"workspace_id"`
		Name        string `json:"name"`
		ExitCode    *int   `json:"exit_code"`
		Stdout      string `json:"stdout"`
		Error       string `json:"error"`
	} `json:"results"`
	Summary struct {
		Total, Succeeded, Failed, Errors int
		DurationMs                       int64 `json:"duration_ms"`
	} `json:"summary"`
}

// TestExecParallel runs commands in two workspaces at once: one command for
// all, one per workspace, refusals that run nothing, and a stopped
// workspace that is its own result's error only.
func TestExecParallel(t *testing.T) {
	d := startDaemon(t, fastPolls)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := d.client(ctx)
	a := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "par-a"})
	b := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "par-b"})

	all := call[parallelOut](ctx, t, s, "exec_parallel", map[string]any{"workspace_ids": []string{"par-a", b.ID}, "commands": "hostname"})
	if len(all.Results) != 2 || all.Summary.Total != 2 || all.Summary.Succeeded != 2 {
		t.Fatalf("one command for all = %+v", all)
	}
	for i, want := range []wsInfo{a, b} {
		r := all.Results[i]
		if r.WorkspaceID != want.ID || r.Name != want.Name || strings.TrimSpace(r.Stdout) != want.Name {
			t.Errorf("result %d = %+v, want %s's hostname", i, r, want.Name)
		}
	}

	each := call[parallelOut](ctx, t, s, "exec_parallel", map[string]any{"workspace_ids": []string{a.ID, b.ID}, "commands": []string{"exit 0", "echo no >&2; exit 5"}})
	if each.Summary.Succeeded != 1 || each.Summary.Failed != 1 || *each.Results[1].ExitCode != 5 {
		t.Errorf("one command each = %+v", each)
	}

	// At once, not one after the other.
	slow := call[parallelOut](ctx, t, s, "exec_parallel", map[string]any{"workspace_ids": []string{a.ID, b.ID}, "commands": "sleep 3"})
	if slow.Summary.Succeeded != 2 || slow.Summary.DurationMs >= 5500 {
		t.Errorf("two 3 s commands took %d ms in all: not concurrent", slow.Summary.DurationMs)
	}

	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"workspace_ids": []string{a.ID, b.ID}, "commands": []string{"true"}}, "commands"},
		{map[string]any{"workspace_ids": []string{}, "commands": "true"}, "workspace_ids"},
		{map[string]any{"workspace_ids": []string{a.ID, "nope"}, "commands": "true"}, "workspace_ids[1]"},
		{map[string]any{"workspace_ids": []string{a.ID, "par-a"}, "commands": "true"}, "workspace_ids[1]"},
		{map[string]any{"workspace_ids": []string{a.ID}, "commands": []string{""}}, "commands[0]"},
		{map[string]any{"workspace_ids": []string{a.ID}, "commands": 7}, "commands"},
		{map[string]any{"workspace_ids": []string{a.ID}, "commands": "true", "timeout_secs": -1}, "timeout_secs"},
	} {
		wantErr(ctx, t, s, "exec_parallel", tc.args, tc.want)
	}
	// Refused calls ran nothing: a marker command never ran.
	wantErr(ctx, t, s, "exec_parallel", map[string]any{"workspace_ids": []string{a.ID, "nope"}, "commands": "touch /tmp/ran"}, "workspace_ids[1]")
	if e := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": a.ID, "command": "test -e /tmp/ran && echo ran || echo clean"}); strings.TrimSpace(e.Stdout) != "clean" {
		t.Errorf("a refused exec_parallel ran its command")
	}

	call[wsInfo](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": b.ID})
	part := call[parallelOut](ctx, t, s, "exec_parallel", map[string]any{"workspace_ids": []string{a.ID, b.ID}, "commands": "echo hi"})
	if part.Summary.Succeeded != 1 || part.Summary.Errors != 1 || part.Results[1].ExitCode != nil || !strings.Contains(part.Results[1].Error, "not running") {
		t.Errorf("with one workspace stopped = %+v", part)
	}
	for _, w := range []wsInfo{a, b} {
		call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": w.ID})
	}
}

type listOut struct {
	Path    string `json:"path"`
	Entries []struct {
		Name   string    `json:"name"`
		Type   string    `json:"type"`
		Size   int64     `json:"size"`
		Mode   string    `json:"mode"`
		Mtime  time.Time `json:"mtime"`
		Target string    `json:"target"`
	} `json:"entries"`
	Total     int  `json:"total"`
	Truncated bool `json:"truncated"`
}

// TestFileOps covers file_edit, file_list and file_transfer over MCP,
// with their refusals: an absent old_string, a host path outside the
// transfer directory or leading out of it through a symlink, and a file
// above files.max_transfer_bytes.
func TestFileOps(t *testing.T) {
	d := startDaemon(t, fastPolls+"\n[files]\nmax_transfer_bytes = 8388608\n")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "files"}).ID
	transfer := filepath.Join(d.Dir, "transfer")

	// file_edit
	const orig = "def main():\n    print('hello')\n    print('hello')\n"
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws, "path": "/workspace/app.py", "content": orig, "mode": "0755"})
	ed := call[struct {
		Line int   `json:"line"`
		Size int64 `json:"size"`
	}](ctx, t, s, "file_edit", map[string]any{"workspace_id": ws, "path": "/workspace/app.py", "old_string": "print('hello')", "new_string": "print('bye')"})
	const edited = "def main():\n    print('bye')\n    print('hello')\n"
	type readOut struct {
		Content string `json:"content"`
	}
	if got := call[readOut](ctx, t, s, "file_read", map[string]any{"workspace_id": ws, "path": "/workspace/app.py"}); got.Content != edited || ed.Line != 2 || ed.Size != int64(len(edited)) {
		t.Errorf("after file_edit: %q, line %d size %d", got.Content, ed.Line, ed.Size)
	}
	wantErr(ctx, t, s, "file_edit", map[string]any{"workspace_id": ws, "path": "/workspace/app.py", "old_string": "print('absent')", "new_string": "x"}, "old_string")
	wantErr(ctx, t, s, "file_edit", map[string]any{"workspace_id": ws, "path": "/workspace/app.py", "old_string": "", "new_string": "x"}, "old_string")
	wantErr(ctx, t, s, "file_edit", map[string]any{"workspace_id": ws, "path": "/workspace/none.py", "old_string": "a", "new_string": "x"}, "path")
	if got := call[readOut](ctx, t, s, "file_read", map[string]any{"workspace_id": ws, "path": "/workspace/app.py"}); got.Content != edited {
		t.Errorf("a refused edit changed the file: %q", got.Content)
	}

	// file_list
	call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "mkdir /workspace/sub && ln -s app.py /workspace/link"})
	l := call[listOut](ctx, t, s, "file_list", map[string]any{"workspace_id": ws, "path": "/workspace"})
	byName := map[string]int{}
	for i, e := range l.Entries {
		byName[e.Name] = i
	}
	if l.Total != 3 || l.Truncated || len(l.Entries) != 3 {
		t.Fatalf("file_list = %+v", l)
	}
	app, sub, link := l.Entries[byName["app.py"]], l.Entries[byName["sub"]], l.Entries[byName["link"]]
	if app.Type != "file" || app.Size != int64(len(edited)) || app.Mode != "0755" || time.Since(app.Mtime) > 10*time.Minute {
		t.Errorf("app.py entry = %+v", app)
	}
	if sub.Type != "dir" || link.Type != "symlink" || link.Target != "app.py" {
		t.Errorf("sub, link entries = %+v, %+v", sub, link)
	}
	wantErr(ctx, t, s, "file_list", map[string]any{"workspace_id": ws, "path": "/workspace/app.py"}, "path")
	wantErr(ctx, t, s, "file_list", map[string]any{"workspace_id": ws, "path": "relative"}, "path")

	// file_transfer: a binary file up and back down.
	data := make([]byte, 3<<20+17)
	rand.Read(data)
	if err := os.WriteFile(filepath.Join(transfer, "in.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	type xferOut struct {
		HostPath string `json:"host_path"`
		Bytes    int64  `json:"bytes"`
	}
	up := call[xferOut](ctx, t, s, "file_transfer", map[string]any{"workspace_id": ws, "direction": "upload", "host_path": "in.bin", "guest_path": "/workspace/data.bin"})
	sum := sha256.Sum256(data)
	if e := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "sha256sum /workspace/data.bin"}); up.Bytes != int64(len(data)) || !strings.HasPrefix(e.Stdout, hex.EncodeToString(sum[:])) {
		t.Errorf("upload: %+v; in the guest %q", up, e.Stdout)
	}
	down := call[xferOut](ctx, t, s, "file_transfer", map[string]any{"workspace_id": ws, "direction": "download", "host_path": filepath.Join(transfer, "back", "out.bin"), "guest_path": "/workspace/data.bin"})
	if got, err := os.ReadFile(filepath.Join(transfer, "back", "out.bin")); err != nil || !bytes.Equal(got, data) || down.Bytes != int64(len(data)) {
		t.Errorf("download: %+v, %v, equal %v", down, err, bytes.Equal(got, data))
	}

	// Refusals: outside the transfer directory, through symlinks, too big.
	secretDir := t.TempDir()
	os.WriteFile(filepath.Join(secretDir, "secret"), []byte("host secret"), 0o600)
	os.Symlink(filepath.Join(secretDir, "secret"), filepath.Join(transfer, "to-secret"))
	os.Symlink(secretDir, filepath.Join(transfer, "to-dir"))
	os.WriteFile(filepath.Join(transfer, "big.bin"), make([]byte, 9<<20), 0o644)
	for _, tc := range []struct {
		dir, host, want string
	}{
		{"upload", "/etc/passwd", "host_path"},
		{"upload", "../../etc/passwd", "host_path"},
		{"upload", "to-secret", "host_path: resolves outside"},
		{"upload", "to-dir/secret", "host_path: resolves outside"},
		{"download", "to-dir/stolen", "host_path: resolves outside"},
		{"download", filepath.Join(secretDir, "stolen"), "host_path"},
		{"upload", "big.bin", "files.max_transfer_bytes"},
		{"upload", "missing.bin", "host_path"},
		{"sideways", "in.bin", "direction"},
	} {
		msg := wantErr(ctx, t, s, "file_transfer", map[string]any{"workspace_id": ws, "direction": tc.dir, "host_path": tc.host, "guest_path": "/workspace/x"}, tc.want)
		if strings.Contains(msg, secretDir) {
			t.Errorf("%s %s: the error shows where a link leads: %q", tc.dir, tc.host, msg)
		}
	}
	wantErr(ctx, t, s, "file_transfer", map[string]any{"workspace_id": ws, "direction": "download", "host_path": "too-big.bin", "guest_path": "/workspace/big"}, "guest_path")
	call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "head -c 9437184 /dev/zero > /workspace/big"})
	wantErr(ctx, t, s, "file_transfer", map[string]any{"workspace_id": ws, "direction": "download", "host_path": "too-big.bin", "guest_path": "/workspace/big"}, "files.max_transfer_bytes")
	if e := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws, "command": "test -e /workspace/x && echo there || echo none"}); strings.TrimSpace(e.Stdout) != "none" {
		t.Errorf("a refused upload reached the guest")
	}
	if entries, _ := os.ReadDir(secretDir); len(entries) != 1 {
		t.Errorf("a refused download wrote outside the transfer directory: %v", entries)
	}
	if _, err := os.Stat(filepath.Join(transfer, "too-big.bin")); err == nil {
		t.Errorf("a refused download left its file")
	}
	left, _ := filepath.Glob(filepath.Join(transfer, ".agentiso-download-*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws})
}
