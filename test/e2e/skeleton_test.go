package e2e

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

type wsInfo struct {
	ID         string `json:"workspace_id"`
	Name       string `json:"name"`
	State      string `json:"state"`
	BootTimeMs int64  `json:"boot_time_ms"`
	Resources  struct {
		VCPUs    int `json:"vcpus"`
		MemoryMB int `json:"memory_mb"`
	} `json:"resources"`
}

type execResult struct {
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated"`
	DurationMs int64  `json:"duration_ms"`
}

// TestWalkingSkeleton is the first end-to-end path: a real MCP client, over
// `agentiso mcp`'s stdio, drives a real daemon that boots a real microVM.
func TestWalkingSkeleton(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := d.client(ctx)

	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "skeleton", "memory_mb": 512})
	if ws.ID == "" || ws.Name != "skeleton" || ws.State != "running" {
		t.Fatalf("workspace_create = %+v, want a running workspace named skeleton", ws)
	}
	if ws.BootTimeMs <= 0 {
		t.Errorf("boot_time_ms = %d, want > 0", ws.BootTimeMs)
	}

	uname := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": "skeleton", "command": "uname -a"})
	if uname.ExitCode != 0 || !strings.HasPrefix(uname.Stdout, "Linux ") {
		t.Fatalf("uname -a = %+v", uname)
	}
	osr := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "cat /etc/os-release"})
	if !strings.Contains(osr.Stdout, "Debian") {
		t.Fatalf("cat /etc/os-release = %+v, want Debian", osr)
	}
	hostname := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "hostname"})
	if strings.TrimSpace(hostname.Stdout) != "skeleton" {
		t.Errorf("hostname = %q, want the workspace name", hostname.Stdout)
	}
	fail := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "echo oops >&2; exit 3"})
	if fail.ExitCode != 3 || strings.TrimSpace(fail.Stderr) != "oops" {
		t.Errorf("exit 3 = %+v", fail)
	}

	const content = "hello from the walking skeleton\nline two ✓\n"
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws.ID, "path": "/workspace/notes/hello.txt", "content": content})
	type readOut struct {
		Content string `json:"content"`
		Size    int64  `json:"size"`
	}
	got := call[readOut](ctx, t, s, "file_read", map[string]any{"workspace_id": ws.ID, "path": "/workspace/notes/hello.txt"})
	if got.Content != content || got.Size != int64(len(content)) {
		t.Fatalf("file_read = %+v, want %q", got, content)
	}

	stopped := call[wsInfo](ctx, t, s, "workspace_stop", map[string]any{"workspace_id": ws.ID})
	if stopped.State != "stopped" {
		t.Fatalf("after workspace_stop state = %q", stopped.State)
	}
	if pids := d.QEMUPIDs(); len(pids) != 0 {
		t.Fatalf("QEMU still running after stop: %v", pids)
	}
	callErr(ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "true"})

	started := call[wsInfo](ctx, t, s, "workspace_start", map[string]any{"workspace_id": ws.ID})
	if started.State != "running" {
		t.Fatalf("after workspace_start state = %q", started.State)
	}
	again := call[readOut](ctx, t, s, "file_read", map[string]any{"workspace_id": ws.ID, "path": "/workspace/notes/hello.txt"})
	if again.Content != content {
		t.Fatalf("after restart file_read = %q, want %q", again.Content, content)
	}

	type listOut struct {
		Workspaces []wsInfo `json:"workspaces"`
	}
	list := call[listOut](ctx, t, s, "workspace_list", map[string]any{})
	if len(list.Workspaces) != 1 || list.Workspaces[0].ID != ws.ID {
		t.Fatalf("workspace_list = %+v", list)
	}
	info := call[wsInfo](ctx, t, s, "workspace_info", map[string]any{"workspace_id": "skeleton"})
	if info.ID != ws.ID || info.State != "running" {
		t.Fatalf("workspace_info = %+v", info)
	}
	type logsOut struct {
		Console string `json:"console"`
	}
	logs := call[logsOut](ctx, t, s, "workspace_logs", map[string]any{"workspace_id": ws.ID, "log_type": "console"})
	if !strings.Contains(logs.Console, "agentiso") {
		t.Errorf("console log tail does not mention agentiso:\n%s", logs.Console)
	}

	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
	callErr(ctx, t, s, "workspace_info", map[string]any{"workspace_id": ws.ID})
	list = call[listOut](ctx, t, s, "workspace_list", map[string]any{})
	if len(list.Workspaces) != 0 {
		t.Fatalf("after destroy workspace_list = %+v", list)
	}

	// Nothing is left behind: no QEMU, no socket, no overlay.
	if pids := d.QEMUPIDs(); len(pids) != 0 {
		t.Errorf("QEMU still running after destroy: %v", pids)
	}
	assertNoFiles(t, d.RunDir, ".sock", "agentiso.sock", "api.sock")
	assertNoFiles(t, filepath.Join(d.Dir, "data"), ".qcow2")
}

// assertNoFiles fails if any file under root ends with suffix, except
// those named in keep (the daemon's own sockets).
func assertNoFiles(t *testing.T, root, suffix string, keep ...string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() && strings.HasSuffix(p, suffix) && !slices.Contains(keep, e.Name()) {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// TestBadInput checks that each kind of bad input is a clear tool error that
// names what was wrong, and that the daemon keeps serving afterwards.
func TestBadInput(t *testing.T) {
	// Refused creates count against the create-class rate limit (5 a
	// minute by default; TestM21_RateLimitPerSession tests it): this
	// test makes six in a row.
	d := startDaemon(t, "\n[limits]\ncreate_per_min = 20\n")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	s := d.client(ctx)

	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"workspace_info", map[string]any{"workspace_id": "no-such-ws"}, "workspace_id"},
		{"exec", map[string]any{"workspace_id": "00000000-0000-0000-0000-000000000000", "command": "true"}, "workspace_id"},
		{"workspace_create", map[string]any{"name": "bad name!"}, "name"},
		{"workspace_create", map[string]any{"name": strings.Repeat("a", 129)}, "name"},
		{"workspace_create", map[string]any{"memory_mb": 1}, "memory_mb"},
		{"workspace_create", map[string]any{"vcpus": 999}, "vcpus"},
		{"workspace_list", map[string]any{"state_filter": "sideways"}, "state_filter"},
	} {
		msg := callErr(ctx, t, s, tc.tool, tc.args)
		if !strings.Contains(msg, tc.want) {
			t.Errorf("%s(%v): error %q does not name %q", tc.tool, tc.args, msg, tc.want)
		}
	}

	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "bad-input"})
	if msg := callErr(ctx, t, s, "workspace_create", map[string]any{"name": "bad-input"}); !strings.Contains(msg, "name") {
		t.Errorf("duplicate name error %q does not name the field", msg)
	}

	start := time.Now()
	msg := callErr(ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "sleep 30", "timeout_secs": 2})
	if !strings.Contains(msg, "timed out") {
		t.Errorf("timeout error = %q", msg)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("timed-out exec took %v", el)
	}
	// The timed-out command's process group is gone.
	ps := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "pgrep -x sleep || true"})
	if strings.TrimSpace(ps.Stdout) != "" {
		t.Errorf("sleep survived its timeout: pids %q", ps.Stdout)
	}

	big := call[execResult](ctx, t, s, "exec", map[string]any{
		"workspace_id": ws.ID, "command": "head -c 3000000 /dev/zero | tr '\\0' x", "max_output_bytes": 100000})
	if !big.Truncated || len(big.Stdout) != 100000 || big.ExitCode != 0 {
		t.Errorf("oversized output: truncated=%v len=%d exit=%d", big.Truncated, len(big.Stdout), big.ExitCode)
	}

	if msg := callErr(ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "true", "env": map[string]any{"LD_PRELOAD": "/x.so"}}); !strings.Contains(msg, "LD_PRELOAD") {
		t.Errorf("blocked env error = %q", msg)
	}
	if msg := callErr(ctx, t, s, "file_read", map[string]any{"workspace_id": ws.ID, "path": "/no/such/file"}); !strings.Contains(msg, "path") {
		t.Errorf("missing file error = %q", msg)
	}
	if msg := callErr(ctx, t, s, "file_write", map[string]any{"workspace_id": ws.ID, "path": "relative.txt", "content": "x"}); !strings.Contains(msg, "path") {
		t.Errorf("relative path error = %q", msg)
	}
	// A file bigger than one protocol frame still reads back whole: bulk data
	// is chunked, never one oversized frame.
	bigContent := strings.Repeat("0123456789abcdef", 200000) // 3.2 MB
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws.ID, "path": "/tmp/big.txt", "content": bigContent})
	type readOut struct {
		Content string `json:"content"`
	}
	if got := call[readOut](ctx, t, s, "file_read", map[string]any{"workspace_id": ws.ID, "path": "/tmp/big.txt"}); got.Content != bigContent {
		t.Errorf("3.2 MB file read back with %d bytes", len(got.Content))
	}

	// An MCP message larger than the daemon accepts ends that connection
	// only; the session above keeps working.
	raw, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	go raw.Write(append([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"exec","arguments":{"command":"`), make([]byte, 40<<20)...))
	raw.SetReadDeadline(time.Now().Add(time.Minute))
	// EOF or a reset both mean the daemon closed it; a timeout means not.
	if _, err := io.ReadAll(raw); err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("oversized MCP message: the daemon did not close the connection: %v", err)
	}
	raw.Close()

	// Still serving.
	ok := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "echo alive"})
	if strings.TrimSpace(ok.Stdout) != "alive" {
		t.Fatalf("daemon stopped serving: %+v", ok)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
}
