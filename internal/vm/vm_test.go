package vm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/testenv"
)

// helperEnv makes the test binary act as a short-lived daemon: it starts the
// VM described by the JSON spec in the variable, prints QEMU's PID and exits
// without stopping it, as a crashing daemon would.
const helperEnv = "AGENTISO_VM_TEST_START_AND_EXIT"

func TestMain(m *testing.M) {
	if js := os.Getenv(helperEnv); js != "" {
		os.Exit(startAndExit(js))
	}
	os.Exit(m.Run())
}

func startAndExit(js string) int {
	var spec Spec
	if err := json.Unmarshal([]byte(js), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r, err := NewRunner(Config{Accel: qemu.AccelTCG, Dial: testDial})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := r.Start(ctx, spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(v.PID())
	return 0
}

func newTestRunner(t testing.TB, mutate func(*Config)) *Runner {
	t.Helper()
	cfg := Config{
		Accel:       qemu.AccelTCG,
		Dial:        testDial,
		Logger:      testenv.Logger(t),
		BootTimeout: 60 * time.Second,
		StopTimeout: 10 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testSpec describes a VM booting the test image from a fresh overlay. Any
// QEMU that carries its identity is killed when the test ends, whatever
// happened to the VM value.
func testSpec(t testing.TB, id string) Spec {
	t.Helper()
	spec, _ := layeredSpec(t, id)
	return spec
}

// killStrays kills any process that is spec's QEMU, and fails the test if
// there was one: every path that starts QEMU must also end it.
func killStrays(t testing.TB, spec Spec) {
	for _, pid := range qemuPIDs(spec) {
		t.Errorf("qemu of %s (pid %d) outlived the test; killing it", spec.ID, pid)
		unix.Kill(pid, unix.SIGKILL)
	}
}

// qemuPIDs lists the running processes that are spec's QEMU.
func qemuPIDs(spec Spec) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		argv, err := processArgv(pid)
		if err != nil || !qemu.ArgvIdentifies(argv, spec.ID, spec.paths().qmp) {
			continue
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
			continue // a zombie about to be reaped is gone as far as we care
		}
		pids = append(pids, pid)
	}
	return pids
}

func startTestVM(t testing.TB, r *Runner, spec Spec) *VM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := r.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { v.Kill() })
	return v
}

// checkGone checks that spec's QEMU has exited and left no sockets or
// pidfile, while its console log stays.
func checkGone(t *testing.T, spec Spec) {
	t.Helper()
	if pids := qemuPIDs(spec); len(pids) > 0 {
		t.Errorf("qemu still running: %v", pids)
	}
	p := spec.paths()
	for _, f := range []string{p.qmp, p.console, p.channel, p.pidFile} {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was not removed (%v)", f, err)
		}
	}
	if _, err := os.Stat(p.consoleLog); err != nil {
		t.Errorf("console log is gone after stop: %v", err)
	}
}

func TestBootExecStop(t *testing.T) {
	spec := testSpec(t, "boot1")
	r := newTestRunner(t, nil)
	v := startTestVM(t, r, spec)

	boot := v.Boot()
	t.Logf("qemu start to ready: %v; kernel to init: %v", boot.Ready, boot.KernelToInit)
	if boot.Ready <= 0 || boot.KernelToInit <= 0 || boot.KernelToInit > boot.Ready {
		t.Errorf("implausible boot timing %+v", boot)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, code, err := testExec(ctx, v.Channel(), "uname", "-a")
	if err != nil || code != 0 || !strings.HasPrefix(out, "Linux ") {
		t.Fatalf("exec uname -a = %q, exit %d, %v", out, code, err)
	}

	tail, err := v.ConsoleTail(1000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tail, "Linux version") {
		t.Errorf("console tail lacks the kernel banner:\n%s", tail)
	}

	st, err := v.QMP().QueryStatus(ctx)
	if err != nil || !st.Running {
		t.Errorf("query-status = %+v, %v; want running", st, err)
	}

	start := time.Now()
	if err := v.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("graceful stop took %v", time.Since(start))
	select {
	case <-v.Done():
	default:
		t.Fatal("Done is not closed after Stop")
	}
	checkGone(t, spec)
	if err := v.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if tail, _ := ConsoleTail(spec.LogDir, 5); tail == "" {
		t.Error("console log unreadable after stop")
	}
}

var kernelLine = regexp.MustCompile(`(?m)^\[ *\d+\.\d+\] `)

func TestBootTimeoutShowsConsole(t *testing.T) {
	spec := testSpec(t, "slow1")
	r := newTestRunner(t, func(c *Config) { c.BootTimeout = 1500 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	v, err := r.Start(ctx, spec)
	if err == nil {
		v.Kill()
		t.Fatal("a VM booted within 1.5s under TCG; make the test's timeout smaller")
	}
	t.Logf("Start failed after %v: %v", time.Since(start), err)
	if !errdefs.Is(err, errdefs.Timeout) {
		t.Errorf("error class %s, want timeout", errdefs.ClassOf(err))
	}
	pub := errdefs.Public(err)
	// The tail holds kernel messages ("[    0.123456] ...").
	if !strings.Contains(pub, "did not become ready within 1.5s") || !kernelLine.MatchString(pub) {
		t.Errorf("public error text lacks the reason or the console tail:\n%s", pub)
	}
	checkGone(t, spec)
}

func TestBootFailureShowsConsole(t *testing.T) {
	spec := testSpec(t, "fail1")
	// The guest's init cannot find its root disk and gives up.
	spec.KernelArgs = append(spec.KernelArgs, "agentiso.root=/dev/vdz")
	r := newTestRunner(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := r.Start(ctx, spec)
	if err == nil {
		v.Kill()
		t.Fatal("a VM without its root disk booted")
	}
	pub := errdefs.Public(err)
	t.Logf("public error:\n%s", pub)
	if !strings.Contains(pub, "console tail:") || !strings.Contains(pub, "vdz") {
		t.Errorf("public error text lacks the console tail naming the missing disk:\n%s", pub)
	}
	checkGone(t, spec)
}

func TestAttachAfterDaemonExit(t *testing.T) {
	spec := testSpec(t, "att1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// A "daemon" process starts the VM and exits without stopping it.
	js, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+string(js))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper daemon: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if pids := qemuPIDs(spec); len(pids) != 1 || pids[0] != pid {
		t.Fatalf("after the daemon exited, qemu pids = %v, want [%d]: qemu must outlive the daemon", pids, pid)
	}

	r := newTestRunner(t, nil)
	v, err := r.Attach(ctx, spec)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { v.Kill() })
	if v.PID() != pid {
		t.Errorf("attached to pid %d, want %d", v.PID(), pid)
	}
	if out, code, err := testExec(ctx, v.Channel(), "echo", "attached"); err != nil || code != 0 || out != "attached\n" {
		t.Fatalf("exec after attach = %q, %d, %v", out, code, err)
	}

	// Once more, in-process: detach and attach with a new runner.
	v.Detach()
	v2, err := newTestRunner(t, nil).Attach(ctx, spec)
	if err != nil {
		t.Fatalf("second Attach: %v", err)
	}
	t.Cleanup(func() { v2.Kill() })
	if out, _, err := testExec(ctx, v2.Channel(), "echo", "again"); err != nil || out != "again\n" {
		t.Fatalf("exec after second attach = %q, %v", out, err)
	}
	if tail, _ := v2.ConsoleTail(500); !strings.Contains(tail, "Linux version") {
		t.Error("the console log lost the boot output across re-attach")
	}

	if err := v2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	checkGone(t, spec)

	// A stopped VM cannot be attached.
	_, err = r.Attach(ctx, spec)
	if !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("Attach to a stopped VM = %v, want NotFound", err)
	}
}

func TestAttachRefusesAnotherProcess(t *testing.T) {
	testenv.Require(t, "root")
	dir := t.TempDir()
	spec := Spec{ID: "impostor", RunDir: dir}
	// A live process that is not the VM's QEMU holds the PID.
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	if err := os.WriteFile(spec.paths().pidFile, []byte(strconv.Itoa(sleep.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := newTestRunner(t, nil).Attach(context.Background(), spec)
	if !errdefs.Is(err, errdefs.NotFound) || !strings.Contains(errdefs.Public(err), "not its qemu") {
		t.Fatalf("Attach with a foreign pid = %v, want NotFound", err)
	}
	if sleep.ProcessState != nil {
		t.Fatal("Attach touched the foreign process")
	}
	if _, err := os.Stat(spec.paths().pidFile); !errors.Is(err, os.ErrNotExist) {
		t.Error("the stale pidfile was not removed")
	}

	// No pidfile at all.
	_, err = newTestRunner(t, nil).Attach(context.Background(), Spec{ID: "nothing", RunDir: t.TempDir()})
	if !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("Attach without a pidfile = %v, want NotFound", err)
	}
}

func TestStartRefusesLongSocketPaths(t *testing.T) {
	spec := Spec{
		ID: "long", VCPUs: 1, MemoryMB: 256, Kernel: "/k", Initrd: "/i", Disk: "/d",
		RunDir: "/run/" + strings.Repeat("d", 100),
	}
	_, err := newTestRunner(t, nil).Start(context.Background(), spec)
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "Unix socket") {
		t.Fatalf("Start with a long run dir = %v, want an Invalid error about socket paths", err)
	}
	if _, err := os.Stat(spec.RunDir); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused Start created the run directory")
	}
}

func TestStartRefusesRunningVM(t *testing.T) {
	spec := testSpec(t, "dup1")
	r := newTestRunner(t, nil)
	v := startTestVM(t, r, spec)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := r.Start(ctx, spec); !errdefs.Is(err, errdefs.Conflict) {
		t.Fatalf("second Start of a running VM = %v, want Conflict", err)
	}
	if v.hasExited() {
		t.Fatal("a refused second Start stopped the running VM")
	}
	if err := v.Kill(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, spec)
}

// TestProbeBootOnThisHost boots the image under KVM through ProbeBoot. On a
// nested-PVM host (where /dev/kvm exists and ordinary guests hang) the probe
// must fail within its budget and leave nothing behind.
func TestProbeBootOnThisHost(t *testing.T) {
	spec := testSpec(t, "probe1")
	if _, err := os.Stat("/dev/kvm"); err != nil {
		t.Skip("no /dev/kvm")
	}
	ctx, cancel := context.WithTimeout(context.Background(), qemu.DefaultProbeTimeout)
	defer cancel()
	start := time.Now()
	err := ProbeBoot(ctx, Config{Accel: qemu.AccelKVM, Dial: testDial, Logger: testenv.Logger(t)}, spec)
	t.Logf("KVM probe: %v after %v", err, time.Since(start))
	_, pvm := os.Stat("/sys/module/kvm_pvm")
	_, intel := os.Stat("/sys/module/kvm_intel")
	_, amd := os.Stat("/sys/module/kvm_amd")
	if pvm == nil && intel != nil && amd != nil && err == nil {
		t.Error("a KVM guest booted on a nested-PVM host; DESIGN.md says it cannot")
	}
	if time.Since(start) > qemu.DefaultProbeTimeout+killWait {
		t.Errorf("the probe overran its budget: %v", time.Since(start))
	}
	checkGone(t, spec)
}

// BenchmarkBoot measures a cold boot: QEMU start to guest-ready, and the
// guest's share of it (kernel start to init, init to the agent serving); and
// the round trip of exec `true`.
func BenchmarkBoot(b *testing.B) {
	r := newTestRunner(b, func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) })
	var ready, k2i, i2r, execRT time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		spec := testSpec(b, fmt.Sprintf("bench%d", n))
		b.StartTimer()
		v := startTestVM(b, r, spec)
		ready += v.Boot().Ready
		k2i += v.Boot().KernelToInit
		i2r += time.Duration(v.Boot().Pong.InitToReadyNs)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t0 := time.Now()
		const rounds = 10
		for range rounds {
			if _, code, err := testExec(ctx, v.Channel(), "true"); err != nil || code != 0 {
				b.Fatalf("exec true: %d, %v", code, err)
			}
		}
		execRT += time.Since(t0) / rounds
		if err := v.Stop(ctx); err != nil {
			b.Fatal(err)
		}
		cancel()
		n++
	}
	b.ReportMetric(float64(ready.Milliseconds())/float64(n), "ready-ms")
	b.ReportMetric(float64(k2i.Milliseconds())/float64(n), "kernel-to-init-ms")
	b.ReportMetric(float64(i2r.Milliseconds())/float64(n), "init-to-ready-ms")
	b.ReportMetric(float64(execRT.Microseconds())/1000/float64(n), "exec-true-ms")
	// The kernel's own time to PID 1, in the same boots, is the floor that
	// guest-ready is measured against.
	if k2i > 0 {
		b.ReportMetric(float64(ready)/float64(k2i), "ready/kernel-to-init")
	}
}
