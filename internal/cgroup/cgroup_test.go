package cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/testenv"
)

func TestParseMountInfoLine(t *testing.T) {
	tests := []struct {
		line string
		want mount
		ok   bool
	}{
		{"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory", mount{point: "/sys/fs/cgroup/memory", root: "/", controllers: []string{"rw", "memory"}}, true},
		{"32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct", mount{point: "/sys/fs/cgroup/cpu,cpuacct", root: "/", controllers: []string{"rw", "cpu", "cpuacct"}}, true},
		{"41 31 0:38 / /sys/fs/cgroup rw,relatime shared:4 master:2 - cgroup2 cgroup2 rw,nsdelegate", mount{point: "/sys/fs/cgroup", root: "/", v2: true}, true},
		{`50 31 0:38 /sub /mnt/my\040cgroups rw - cgroup2 cgroup2 rw`, mount{point: "/mnt/my cgroups", root: "/sub", v2: true}, true},
		{"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755", mount{}, false},
		{"garbage", mount{}, false},
		{"1 2 3:4 / /x rw - cgroup", mount{}, false},
	}
	for _, tt := range tests {
		got, ok := parseMountInfoLine(tt.line)
		if ok != tt.ok {
			t.Errorf("parseMountInfoLine(%q) ok = %v, want %v", tt.line, ok, tt.ok)
			continue
		}
		if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(mount{})); ok && diff != "" {
			t.Errorf("parseMountInfoLine(%q) (-want +got):\n%s", tt.line, diff)
		}
	}
}

func TestUnescapeOctal(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:  "/a b",
		`/a\134b`:  `/a\b`,
		`/plain`:   "/plain",
		`/end\04`:  `/end\04`,
		`/bad\09x`: `/bad\09x`,
	} {
		if got := unescapeOctal(in); got != want {
			t.Errorf("unescapeOctal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseProcCgroup(t *testing.T) {
	v1 := "9:name=systemd:/\n8:pids:/agentiso/x\n4:memory:/agentiso/x\n1:cpu,cpuacct:/agentiso/x\n0::/\n"
	got := ParseProcCgroup(v1)
	want := map[string]string{"name=systemd": "/", "pids": "/agentiso/x", "memory": "/agentiso/x", "cpu": "/agentiso/x", "cpuacct": "/agentiso/x", "": "/"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("v1 (-want +got):\n%s", diff)
	}
	if got := ParseProcCgroup("0::/agentiso/y\n"); got[""] != "/agentiso/y" {
		t.Errorf("v2: %v", got)
	}
}

func TestValidateParent(t *testing.T) {
	for parent, ok := range map[string]bool{
		"agentiso": true, "agentiso/vms": true, "agentiso.slice": true,
		"": false, "/agentiso": false, "../up": false, "a/../b": false, "a//b": false, ".hidden": false, "a b": false, "a/": false,
	} {
		if err := ValidateParent(parent); (err == nil) != ok {
			t.Errorf("ValidateParent(%q) = %v, want ok=%v", parent, err, ok)
		}
	}
}

// TestSettings pins the files and values that put limits into force on each
// version, in order.
func TestSettings(t *testing.T) {
	l := Limits{MemoryBytes: 960 << 20, Tasks: 98, CPUs: 2}
	v1 := (&Manager{layout: Layout{Version: V1}}).settings(l)
	want1 := []setting{
		{Memory, "memory.limit_in_bytes", "1006632960", false},
		{Memory, "memory.memsw.limit_in_bytes", "1006632960", true},
		{Pids, "pids.max", "98", false},
		{CPU, "cpu.cfs_period_us", "100000", false},
		{CPU, "cpu.cfs_quota_us", "200000", false},
	}
	if diff := cmp.Diff(want1, v1, cmp.AllowUnexported(setting{})); diff != "" {
		t.Errorf("v1 (-want +got):\n%s", diff)
	}
	v2 := (&Manager{layout: Layout{Version: V2}}).settings(l)
	want2 := []setting{
		{Memory, "memory.max", "1006632960", false},
		{Memory, "memory.swap.max", "0", true},
		{Pids, "pids.max", "98", false},
		{CPU, "cpu.max", "200000 100000", false},
	}
	if diff := cmp.Diff(want2, v2, cmp.AllowUnexported(setting{})); diff != "" {
		t.Errorf("v2 (-want +got):\n%s", diff)
	}
}

// TestV2ApplyOnAFakeTree runs Apply and Stats against a directory laid out
// like a cgroup v2 group (this host has no v2 memory controller to try it
// on): the writes land in the right files, the pid is checked against
// /proc/<pid>/cgroup, and a pid in the wrong group is refused.
func TestV2ApplyOnAFakeTree(t *testing.T) {
	root := t.TempDir()
	proc := t.TempDir()
	m := &Manager{
		layout:   Layout{Version: V2, Mounts: map[string]string{Memory: root, Pids: root, CPU: root}, Roots: map[string]string{Memory: "/", Pids: "/", CPU: "/"}},
		parent:   "agentiso",
		procRoot: proc,
	}
	leaf := filepath.Join(root, "agentiso", "vm1")
	for _, f := range []string{"memory.max", "memory.current", "memory.peak", "memory.events", "pids.max", "pids.current", "cpu.max", "cgroup.procs"} {
		writeTestFile(t, filepath.Join(leaf, f), "")
	}
	writeTestFile(t, filepath.Join(leaf, "memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
	writeTestFile(t, filepath.Join(leaf, "memory.current"), "1234\n")
	writeTestFile(t, filepath.Join(leaf, "pids.current"), "3\n")
	writeTestFile(t, filepath.Join(leaf, "memory.peak"), "4321\n")
	writeTestFile(t, filepath.Join(proc, "42", "cgroup"), "0::/agentiso/vm1\n")

	l := Limits{MemoryBytes: 512 << 20, Tasks: 97, CPUs: 1}
	if err := m.Apply("vm1", 42, l); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for f, want := range map[string]string{"memory.max": "536870912", "pids.max": "97", "cpu.max": "100000 100000", "cgroup.procs": "42"} {
		if b, _ := os.ReadFile(filepath.Join(leaf, f)); string(b) != want {
			t.Errorf("%s = %q, want %q", f, b, want)
		}
	}
	if _, err := os.Stat(filepath.Join(leaf, "memory.swap.max")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Apply created the optional memory.swap.max (%v); cgroup files are never created", err)
	}
	st, err := m.Stats("vm1")
	if err != nil {
		t.Fatal(err)
	}
	if st.OOMKills != 1 || st.MemoryBytes != 1234 || st.MemoryPeakBytes != 4321 || st.MemoryLimitBytes != 512<<20 || st.Tasks != 3 || st.TasksLimit != 97 {
		t.Errorf("Stats = %+v", st)
	}

	writeTestFile(t, filepath.Join(proc, "43", "cgroup"), "0::/elsewhere\n")
	if err := m.Apply("vm1", 43, l); err == nil || !strings.Contains(err.Error(), `it is in "/elsewhere"`) {
		t.Errorf("Apply for a pid that stays elsewhere = %v, want a membership error", err)
	}
	if err := m.Apply("../escape", 42, l); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("Apply(../escape) = %v, want Invalid", err)
	}
	if err := m.Apply("vm1", 42, Limits{MemoryBytes: 1, Tasks: 0, CPUs: 0}); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("Apply with zero limits = %v, want Invalid", err)
	}
}

func writeTestFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDetectIgnoresHiddenMounts: a mount table that lists cgroup
// filesystems at directories that are not (or no longer) cgroup
// filesystems yields an Unavailable error that says what is missing.
func TestDetectIgnoresHiddenMounts(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []string{"memory", "pids", "cpu"} {
		os.MkdirAll(filepath.Join(dir, c), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "cgroup.controllers"), []byte("memory pids cpu\n"), 0o644)
	mi := filepath.Join(dir, "mountinfo")
	os.WriteFile(mi, []byte(strings.Join([]string{
		"41 31 0:38 / " + dir + " rw - cgroup2 cgroup2 rw",
		"35 31 0:32 / " + filepath.Join(dir, "memory") + " rw - cgroup cgroup rw,memory",
		"36 31 0:33 / " + filepath.Join(dir, "pids") + " rw - cgroup cgroup rw,pids",
		"37 31 0:34 / " + filepath.Join(dir, "cpu") + " rw - cgroup cgroup rw,cpu",
	}, "\n")+"\n"), 0o644)
	_, err := Detect(mi)
	if !errdefs.Is(err, errdefs.Unavailable) || !strings.Contains(err.Error(), "no cgroup v1 hierarchy for memory, pids, cpu") {
		t.Fatalf("Detect = %v, want Unavailable naming the missing controllers", err)
	}
	if _, err := Detect(filepath.Join(dir, "nope")); !errdefs.Is(err, errdefs.Unavailable) {
		t.Fatalf("Detect(missing mountinfo) = %v, want Unavailable", err)
	}
}

func testParent(t *testing.T) string {
	b := make([]byte, 4)
	rand.Read(b)
	return "agentiso-test-" + hex.EncodeToString(b)
}

// TestApplyOnThisHost confines a real process with real limits: the
// limits read back, the process is a member in every hierarchy, Stats sees
// it, and once it has exited Remove and RemoveParent leave nothing.
func TestApplyOnThisHost(t *testing.T) {
	testenv.Require(t, "root")
	m, err := New(Options{Parent: testParent(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.RemoveParent() })
	t.Logf("layout: %s", m.Layout())
	m.removeWait = 300 * time.Millisecond

	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); m.Remove("p1") })
	l := Limits{MemoryBytes: 64 << 20, Tasks: 8, CPUs: 1}
	if err := m.Apply("p1", cmd.Process.Pid, l); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/cgroup")
	member := ParseProcCgroup(string(b))
	for _, c := range Controllers {
		key := c
		if m.Layout().Version == V2 {
			key = ""
		}
		if want := filepath.Join(m.Layout().Roots[c], m.parent, "p1"); member[key] != want {
			t.Errorf("%s group = %q, want %q", c, member[key], want)
		}
	}
	st, err := m.Stats("p1")
	if err != nil {
		t.Fatal(err)
	}
	if st.MemoryLimitBytes != 64<<20 || st.TasksLimit != 8 || st.Tasks != 1 {
		t.Errorf("Stats = %+v, want limit 64 MiB, 8 tasks, 1 running", st)
	}
	groups, _ := m.Groups()
	if len(groups) != 1 || groups[0] != "p1" {
		t.Errorf("Groups = %v, want [p1]", groups)
	}
	// Applying again (as after a daemon restart) is harmless, with the
	// same limits or larger ones.
	if err := m.Apply("p1", cmd.Process.Pid, l); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	l.MemoryBytes = 96 << 20
	if err := m.Apply("p1", cmd.Process.Pid, l); err != nil {
		t.Fatalf("Apply with a larger memory limit: %v", err)
	}
	l.MemoryBytes = 64 << 20
	if err := m.Apply("p1", cmd.Process.Pid, l); err != nil {
		t.Fatalf("Apply with a smaller memory limit: %v", err)
	}

	if err := m.Remove("p1"); err == nil {
		t.Fatal("Remove of a group with a live process succeeded")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if err := m.Remove("p1"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if err := m.RemoveParent(); err != nil {
		t.Fatalf("RemoveParent: %v", err)
	}
	for _, c := range Controllers {
		if _, err := os.Stat(filepath.Join(m.Layout().Mounts[c], m.parent)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s parent still there: %v", c, err)
		}
	}
}

// TestCPUQuotaBites puts two CPU-bound processes in a group limited to one
// core: together they get at most about one core, and the kernel reports
// throttling whenever they asked for more.
func TestCPUQuotaBites(t *testing.T) {
	testenv.Require(t, "root")
	m, err := New(Options{Parent: testParent(t)})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.RemoveParent() })
	var pids []int
	for range 2 {
		cmd := exec.Command("sha256sum", "/dev/zero")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		if err := m.Apply("spin", cmd.Process.Pid, Limits{MemoryBytes: 64 << 20, Tasks: 8, CPUs: 1}); err != nil {
			t.Fatalf("Apply: %v", err)
		}
		pids = append(pids, cmd.Process.Pid)
	}
	t.Cleanup(func() {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
		m.Remove("spin")
	})
	ticks := func() int64 {
		var sum int64
		for _, pid := range pids {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
			f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
			ut, _ := strconv.ParseInt(f[11], 10, 64)
			st, _ := strconv.ParseInt(f[12], 10, 64)
			sum += ut + st
		}
		return sum
	}
	start, t0 := time.Now(), ticks()
	time.Sleep(3 * time.Second)
	cores := float64(ticks()-t0) / 100 / time.Since(start).Seconds()
	stat, _ := os.ReadFile(filepath.Join(m.Dir(CPU, "spin"), "cpu.stat"))
	t.Logf("two spinners under a 1-core quota used %.2f cores; cpu.stat: %s", cores, strings.ReplaceAll(strings.TrimSpace(string(stat)), "\n", ", "))
	if cores > 1.1 {
		t.Errorf("the group used %.2f cores, want at most 1", cores)
	}
	throttled, _ := readKeyed(filepath.Join(m.Dir(CPU, "spin"), "cpu.stat"), "nr_throttled")
	if throttled == 0 && cores > 0.9 {
		t.Errorf("the group ran near its quota without being throttled once")
	}
}
