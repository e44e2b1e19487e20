package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/config"
	agentisod "github.com/agentiso/agentiso/internal/daemon"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/testdaemon"
	"github.com/agentiso/agentiso/internal/testenv"
	"github.com/agentiso/agentiso/internal/vm"
)

// hideCgroupsEnv makes the test binary a launcher: in the mount namespace
// of its own it was started in, it mounts an empty tmpfs over
// /sys/fs/cgroup and runs its arguments (a daemon on a host without
// cgroups).
const hideCgroupsEnv = "AGENTISO_E2E_HIDE_CGROUPS"

func execWithoutCgroups(argv []string) int {
	if len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "hide cgroups: nothing to run")
		return 2
	}
	if err := syscall.Mount("none", "/sys/fs/cgroup", "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "size=64k"); err != nil {
		fmt.Fprintln(os.Stderr, "hide cgroups:", err)
		return 2
	}
	os.Unsetenv(hideCgroupsEnv)
	err := syscall.Exec(argv[0], argv, os.Environ())
	fmt.Fprintln(os.Stderr, "hide cgroups: exec:", err)
	return 2
}

// defaultCgroupParent is the daemon's cgroup parent in these tests.
var defaultCgroupParent = config.Default().Resources.CgroupParent

// qemuOf returns the PID of workspace id's QEMU.
func (d *daemon) qemuOf(t *testing.T, id string) int {
	t.Helper()
	for _, pid := range d.QEMUPIDs() {
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if strings.Contains(string(b), "guest="+id+",") {
			return pid
		}
	}
	t.Fatalf("no QEMU runs for workspace %s", id)
	return 0
}

// vmGroup is a running VM's QEMU and the cgroups it is in.
type vmGroup struct {
	pid    int
	layout cgroup.Layout
	// paths are the QEMU's group per controller, as /proc/<pid>/cgroup
	// names them.
	paths map[string]string
}

func groupOf(t *testing.T, pid int) vmGroup {
	t.Helper()
	layout, err := cgroup.Detect("")
	if err != nil {
		t.Fatalf("this host has no usable cgroups: %v", err)
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	member := cgroup.ParseProcCgroup(string(b))
	g := vmGroup{pid: pid, layout: layout, paths: map[string]string{}}
	for _, c := range cgroup.Controllers {
		key := c
		if layout.Version == cgroup.V2 {
			key = ""
		}
		g.paths[c] = member[key]
	}
	return g
}

func (g vmGroup) dir(c string) string { return filepath.Join(g.layout.Mounts[c], g.paths[c]) }

func (g vmGroup) read(t *testing.T, c, v1File, v2File string) string {
	t.Helper()
	f := v1File
	if g.layout.Version == cgroup.V2 {
		f = v2File
	}
	b, err := os.ReadFile(filepath.Join(g.dir(c), f))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func (g vmGroup) readInt(t *testing.T, c, v1File, v2File string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(strings.Fields(g.read(t, c, v1File, v2File))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkLimits checks that workspace id's QEMU, pid, is in a group of its
// own named after the workspace, under the default parent and not under the
// daemon's own group, with the limits its size gives.
func checkLimits(t *testing.T, d *daemon, id string, pid int, vcpus, memoryMB int) vmGroup {
	t.Helper()
	g := groupOf(t, pid)
	dg := groupOf(t, d.PID())
	for _, c := range cgroup.Controllers {
		if want := filepath.Join(g.layout.Roots[c], defaultCgroupParent, id); g.paths[c] != want {
			t.Errorf("QEMU's %s group is %q, want %q", c, g.paths[c], want)
		}
		if dp := dg.paths[c]; dp != "/" && strings.HasPrefix(g.paths[c], dp+"/") {
			t.Errorf("QEMU's %s group %q is under the daemon's own %q: a service restart would reach it", c, g.paths[c], dp)
		}
	}
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	accel := qemu.AccelKVM
	if strings.Contains(string(cmdline), "\x00-accel\x00tcg") {
		accel = qemu.AccelTCG
	}
	want := agentisod.VMLimits(vm.Spec{VCPUs: vcpus, MemoryMB: memoryMB}, config.Default(), accel)
	if got := g.readInt(t, cgroup.Memory, "memory.limit_in_bytes", "memory.max"); got != want.MemoryBytes {
		t.Errorf("memory limit %d, want %d (%d MiB guest under %s)", got, want.MemoryBytes, memoryMB, accel)
	}
	if got := g.readInt(t, cgroup.Pids, "pids.max", "pids.max"); got != want.Tasks {
		t.Errorf("tasks limit %d, want %d", got, want.Tasks)
	}
	if got := g.readInt(t, cgroup.CPU, "cpu.cfs_quota_us", "cpu.max"); got != int64(vcpus)*100000 {
		t.Errorf("cpu quota %d µs per 100 ms, want %d", got, vcpus*100000)
	}
	return g
}

func gone(t *testing.T, g vmGroup) {
	t.Helper()
	for _, c := range cgroup.Controllers {
		if _, err := os.Stat(g.dir(c)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the VM's %s cgroup %s is still there (%v)", c, g.dir(c), err)
		}
	}
}

func processGone(pid int) bool {
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	return err != nil || testdaemon.IsZombie(string(st))
}

// TestH8_WorkspaceLimitsFollowItsSize: each workspace's QEMU runs in a
// cgroup of its own, outside the daemon's, with the memory, tasks and CPU
// limits its size gives; the default limit leaves room for a guest that
// uses all of its memory and a busy code cache; the groups survive a daemon
// restart with their VMs, the group of a VM that died meanwhile is removed
// on start, and destroy removes the rest. The daemon's secret does not
// reach QEMU's environment (L-11).
func TestH8_WorkspaceLimitsFollowItsSize(t *testing.T) {
	const token = "e2e-admin-token-that-must-not-leak"
	t.Setenv(config.AdminTokenEnv, token)
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	s := d.client(ctx)

	a := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "limits-a", "memory_mb": 256, "vcpus": 1})
	apid := d.qemuOf(t, a.ID)
	ag := checkLimits(t, d, a.ID, apid, 1, 256)
	adj, _ := os.ReadFile("/proc/" + strconv.Itoa(apid) + "/oom_score_adj")
	t.Logf("QEMU's oom_score_adj: %s", strings.TrimSpace(string(adj)))
	if env, err := os.ReadFile("/proc/" + strconv.Itoa(apid) + "/environ"); err != nil || strings.Contains(string(env), token) || strings.Contains(string(env), config.AdminTokenEnv) {
		t.Errorf("QEMU's environment holds the admin token (err %v)", err)
	}

	// A guest that fills its memory and translates a lot of code stays
	// within the default limit.
	fill := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": a.ID, "timeout_secs": 300,
		"command": "python3 -c \"x = b'a' * (150 << 20); print(len(x))\"; " +
			"n=0; for b in /usr/bin/*; do n=$((n+1)); [ $n -gt 250 ] && break; timeout 2 $b --version >/dev/null 2>&1 </dev/null; done; echo ran $n"})
	if !strings.Contains(fill.Stdout, "157286400") || !strings.Contains(fill.Stdout, "ran 251") {
		t.Errorf("filling the guest's memory and code cache: %+v", fill)
	}
	peak := ag.readInt(t, cgroup.Memory, "memory.max_usage_in_bytes", "memory.peak")
	limit := ag.readInt(t, cgroup.Memory, "memory.limit_in_bytes", "memory.max")
	t.Logf("QEMU of a 256 MiB guest: peak %d MiB of a %d MiB limit", peak>>20, limit>>20)
	if kills := oomKills(t, ag); kills != 0 {
		t.Errorf("the VM's cgroup OOM-killed %d processes under normal use", kills)
	}
	if info := call[wsInfo](ctx, t, s, "workspace_info", map[string]any{"workspace_id": a.ID}); info.State != "running" {
		t.Fatalf("after filling its memory the workspace is %s", info.State)
	}

	b := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "limits-b", "memory_mb": 128, "vcpus": 2})
	bpid := d.qemuOf(t, b.ID)
	bg := checkLimits(t, d, b.ID, bpid, 2, 128)

	// The VMs outlive the daemon in their groups; B dies meanwhile.
	d.stop()
	for _, g := range []vmGroup{ag, bg} {
		if processGone(g.pid) || groupOf(t, g.pid).paths[cgroup.Memory] != g.paths[cgroup.Memory] {
			t.Fatalf("QEMU %d left its group or died with the daemon", g.pid)
		}
	}
	syscall.Kill(bpid, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); !processGone(bpid) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	d.start()
	// Sessions end with their connection, and adopting another session's
	// workspaces is issue 3's: read the states from the database.
	if st := d.workspaceState(ctx, t, b.ID); st != "stopped" {
		t.Errorf("B, killed while the daemon was down, is %s", st)
	}
	gone(t, bg)
	if st := d.workspaceState(ctx, t, a.ID); st != "running" {
		t.Fatalf("A, re-attached, is %s", st)
	}
	checkLimits(t, d, a.ID, apid, 1, 256)

	// A re-attached VM that exits loses its group too.
	syscall.Kill(apid, syscall.SIGKILL)
	for deadline := time.Now().Add(30 * time.Second); d.workspaceState(ctx, t, a.ID) != "stopped" && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	if st := d.workspaceState(ctx, t, a.ID); st != "stopped" {
		t.Errorf("A, killed after re-attach, is %s", st)
	}
	gone(t, ag)
	if strings.Contains(d.Log(), token) {
		t.Error("the daemon log shows the admin token")
	}
}

// workspaceState reads workspace id's state from the daemon's database.
func (d *daemon) workspaceState(ctx context.Context, t *testing.T, id string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+d.StatePath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var st string
	if err := db.QueryRowContext(ctx, `SELECT state FROM workspaces WHERE id = ?`, id).Scan(&st); err != nil {
		t.Fatalf("reading the state of %s: %v", id, err)
	}
	return st
}

func oomKills(t *testing.T, g vmGroup) int64 {
	t.Helper()
	text := g.read(t, cgroup.Memory, "memory.oom_control", "memory.events")
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

// cpuTicks is a process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return ut + st
}

func threads(t *testing.T, pid int) int64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// TestH8_ForkBombStaysBounded runs a fork bomb in a guest. The guest's
// processes live inside the VM; on the host, what must stay bounded is its
// QEMU: its threads within the tasks limit, its memory within the memory
// limit, its CPU time within one core per vCPU. The daemon keeps answering
// and the workspace can still be destroyed, leaving nothing behind.
func TestH8_ForkBombStaysBounded(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "bomb", "memory_mb": 256, "vcpus": 1})
	pid := d.qemuOf(t, ws.ID)
	g := checkLimits(t, d, ws.ID, pid, 1, 256)
	taskLimit := g.readInt(t, cgroup.Pids, "pids.max", "pids.max")
	memLimit := g.readInt(t, cgroup.Memory, "memory.limit_in_bytes", "memory.max")

	bombDone := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, _ := s.CallTool(ctx, &mcp.CallToolParams{Name: "exec", Arguments: map[string]any{
			"workspace_id": ws.ID, "timeout_secs": 25, "command": "bomb() { bomb | bomb & }; bomb; sleep 30",
		}})
		bombDone <- res
	}()

	time.Sleep(5 * time.Second) // let it grow
	start, startTicks := time.Now(), cpuTicks(t, pid)
	var maxThreads, maxMem int64
	for i := 0; i < 15; i++ {
		time.Sleep(time.Second)
		maxThreads = max(maxThreads, threads(t, pid))
		maxMem = max(maxMem, g.readInt(t, cgroup.Memory, "memory.usage_in_bytes", "memory.current"))
	}
	cores := float64(cpuTicks(t, pid)-startTicks) / 100 / time.Since(start).Seconds()
	t.Logf("during the bomb: QEMU used %.2f cores, %d threads (limit %d), %d MiB (limit %d MiB); cpu.stat: %s",
		cores, maxThreads, taskLimit, maxMem>>20, memLimit>>20, strings.ReplaceAll(g.read(t, cgroup.CPU, "cpu.stat", "cpu.stat"), "\n", ", "))
	if cores > 1.05 {
		t.Errorf("QEMU of a 1-vCPU VM used %.2f cores", cores)
	}
	if maxThreads > taskLimit || maxMem > memLimit {
		t.Errorf("QEMU went past its limits: %d threads, %d bytes", maxThreads, maxMem)
	}

	// The daemon answers another session meanwhile.
	other := d.client(ctx)
	asked := time.Now()
	call[map[string]any](ctx, t, other, "workspace_list", map[string]any{})
	if took := time.Since(asked); took > 10*time.Second {
		t.Errorf("workspace_list took %v during the bomb", took)
	}
	select {
	case <-bombDone:
	case <-ctx.Done():
		t.Fatal("the bomb's exec never returned")
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
	if !processGone(pid) {
		t.Error("QEMU still runs after destroy")
	}
	gone(t, g)
	assertNoFiles(t, filepath.Join(d.Dir, "data"), ".qcow2", "")
}

// TestH8_CgroupRequiredWithoutCgroupsFailsCleanly runs the daemon on a
// "host" with no cgroup filesystem (an empty tmpfs over /sys/fs/cgroup in a
// mount namespace of its own). With resources.cgroup_required (the
// default) workspace_create fails with an error that names the setting and
// leaves nothing behind; with it off the workspace runs, unlimited, and the
// daemon says so in its log.
func TestH8_CgroupRequiredWithoutCgroupsFailsCleanly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	d := startDaemonOpts(t, "", "", daemonOpts{hideCgroups: true})
	s := d.client(ctx)
	msg := callErr(ctx, t, s, "workspace_create", map[string]any{"name": "unlimited"})
	t.Logf("workspace_create without cgroups: %s", msg)
	if !strings.Contains(msg, "resources.cgroup_required") {
		t.Errorf("workspace_create error %q does not name resources.cgroup_required", msg)
	}
	if pids := d.QEMUPIDs(); len(pids) != 0 {
		t.Errorf("QEMU left running: %v", pids)
	}
	type listOut struct {
		Workspaces []wsInfo `json:"workspaces"`
	}
	if l := call[listOut](ctx, t, s, "workspace_list", map[string]any{}); len(l.Workspaces) != 0 {
		t.Errorf("workspace_list after the failed create = %+v", l)
	}
	assertNoFiles(t, filepath.Join(d.Dir, "data"), ".qcow2", "")
	assertNoFiles(t, d.RunDir, ".sock", "agentiso.sock", "api.sock")
	assertNoFiles(t, d.RunDir, ".pid", "")
	for _, dir := range []string{filepath.Join(d.Dir, "data", "workspaces"), filepath.Join(d.RunDir, "vms")} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("%s holds %d entries after the failed create", dir, len(entries))
		}
	}
	// The same name is free: nothing of the failed create remains.
	msg = callErr(ctx, t, s, "workspace_create", map[string]any{"name": "unlimited"})
	if !strings.Contains(msg, "resources.cgroup_required") {
		t.Errorf("second create: %q", msg)
	}

	opt := startDaemonOpts(t, "", "\n[resources]\ncgroup_required = false\n", daemonOpts{hideCgroups: true})
	s = opt.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "unlimited"})
	if ws.State != "running" {
		t.Fatalf("with cgroup_required = false: %+v", ws)
	}
	if !strings.Contains(opt.Log(), "VMs run without resource limits") {
		t.Errorf("the daemon did not warn that VMs run without limits:\n%s", opt.Log())
	}
	adj, _ := os.ReadFile("/proc/" + strconv.Itoa(opt.qemuOf(t, ws.ID)) + "/oom_score_adj")
	if strings.TrimSpace(string(adj)) != "0" {
		t.Errorf("an unlimited VM's OOM score is %s, want the default 0 (H-9)", adj)
	}
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
}

// TestL11_DaemonRefusesAPublicSecretFile: a secret file other users can
// read stops the daemon at start, with the fix, and without the secret.
func TestL11_DaemonRefusesAPublicSecretFile(t *testing.T) {
	testenv.Require(t, "root")
	dir := t.TempDir()
	const token = "public-token-value"
	tokenFile := filepath.Join(dir, "admin_token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run, err := os.MkdirTemp("/tmp", "ag")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(run)
	cfgPath := filepath.Join(dir, "config.toml")
	cfg := fmt.Sprintf("[server]\ndata_dir = %q\nrun_dir = %q\nsocket_path = %q\nsocket_group = \"\"\n\n[secrets]\nadmin_token_file = %q\n",
		filepath.Join(dir, "data"), run, filepath.Join(run, "agentiso.sock"), tokenFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(agentisoBinary(t), "daemon", "--config", cfgPath)
	for _, kv := range os.Environ() { // the file, not the environment
		if !strings.HasPrefix(kv, config.AdminTokenEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the daemon started with a world-readable secret file:\n%s", out)
	}
	if !strings.Contains(string(out), "chmod 0600 "+tokenFile) || strings.Contains(string(out), token) {
		t.Errorf("daemon output %q: want the chmod fix and not the token", out)
	}
}

// TestCheckCoversTheHostService: `agentiso check` against a running daemon
// reports the cgroups, the OOM score, the unit, the daemon's own limits,
// the secrets and the config file, each with a fix when it is not ok.
func TestCheckCoversTheHostService(t *testing.T) {
	d := startDaemon(t, "")
	out, _ := agentiso(t, "check", "--json", "--config", d.ConfigPath)
	var results []struct {
		Name, Status, Detail, Fix string
	}
	if err := json.Unmarshal([]byte(out), &results); err != nil {
		t.Fatalf("check --json: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, r := range results {
		got[r.Name] = r.Status
		if r.Status != "ok" && r.Fix == "" {
			t.Errorf("%s is %s without a fix: %s", r.Name, r.Status, r.Detail)
		}
	}
	for name, want := range map[string]string{"cgroups": "ok", "daemon limits": "ok", "secrets": "ok", "config file": "ok", "daemon": "ok"} {
		if got[name] != want {
			t.Errorf("check %q = %q, want %q\n%s", name, got[name], want, out)
		}
	}
	for _, name := range []string{"oom score", "service unit"} {
		if got[name] == "" {
			t.Errorf("check has no %q entry\n%s", name, out)
		}
	}
}
