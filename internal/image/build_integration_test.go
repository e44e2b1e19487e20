package image

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/guest/pid1"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/testenv"
)

// testCacheDir is the build cache the integration test uses: the real one
// by default, so a machine that has built an image once reuses its root
// filesystem (a cold debootstrap takes one to two minutes).
func testCacheDir() string {
	if d := os.Getenv("AGENTISO_TEST_IMAGE_CACHE_DIR"); d != "" {
		return d
	}
	return DefaultCacheDir
}

// buildGuestBinary builds cmd/agentiso-guest, static, into dir.
func buildGuestBinary(t *testing.T, ctx context.Context, dir string) string {
	t.Helper()
	t.Setenv("CGO_ENABLED", "0")
	out := filepath.Join(dir, "agentiso-guest")
	if _, err := hostcmd.Run(ctx, "go", "build", "-o", out, "github.com/agentiso/agentiso/cmd/agentiso-guest"); err != nil {
		t.Fatal(err)
	}
	return out
}

// stepLog records the steps a build reports.
type stepLog struct {
	mu    sync.Mutex
	steps []Step
}

func (l *stepLog) report(t *testing.T) func(Step) {
	return func(s Step) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.steps = append(l.steps, s)
		t.Log(s.String())
	}
}

// ran returns the names of the steps that ran (were done, not cached).
func (l *stepLog) ran() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, s := range l.steps {
		if s.Done && !s.Cached {
			out = append(out, s.Name)
		}
	}
	return out
}

// TestBuildAndBoot builds a real image (reusing the cached root filesystem
// when there is one), checks that a second build is a no-op and that a new
// guest binary rebuilds only the initramfs, then boots the image (see
// checkBoots).
func TestBuildAndBoot(t *testing.T) {
	testenv.Require(t, "root", "qemu", "image-tools")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	guest := buildGuestBinary(t, ctx, tmp)
	dir := filepath.Join(tmp, "images", "default")

	var log1 stepLog
	opts := BuildOptions{Dir: dir, GuestBinary: guest, CacheDir: testCacheDir(), Progress: log1.report(t)}
	img, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	m := img.Manifest
	if m.Name != "default" || m.KernelVersion == "" || len(m.Hash) != 64 || m.RootfsVirtualSize != DefaultRootfsSize {
		t.Errorf("manifest: %+v", m)
	}
	for _, p := range []string{img.KernelPath(), img.InitrdPath(), img.RootfsPath()} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o444 {
			t.Errorf("%s: mode %v, want read-only", p, st.Mode().Perm())
		}
	}
	out, err := hostcmd.Run(ctx, "qemu-img", "info", "--output=json", img.RootfsPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"format": "qcow2"`) || !strings.Contains(string(out), `"virtual-size": `+strconv.FormatInt(DefaultRootfsSize, 10)) {
		t.Errorf("base image: %s", out)
	}

	// Same inputs: nothing to do.
	var log2 stepLog
	opts.Progress = log2.report(t)
	start := time.Now()
	img2, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if img2.Manifest.Hash != m.Hash || img2.Manifest.BuiltAt != m.BuiltAt {
		t.Errorf("an up-to-date build rebuilt: %+v", img2.Manifest)
	}
	if ran := log2.ran(); len(ran) != 1 || ran[0] != "resolving kernel package" {
		t.Errorf("an up-to-date build ran %v", ran)
	}
	t.Logf("up-to-date build took %v", time.Since(start))

	// A new guest binary: a new initramfs on the same kernel and base.
	f, err := os.OpenFile(guest, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("a different build"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	var log3 stepLog
	opts.Progress = log3.report(t)
	img3, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	m3 := img3.Manifest
	if m3.Hash == m.Hash || m3.Initrd == m.Initrd || m3.Kernel != m.Kernel || m3.Rootfs != m.Rootfs {
		t.Errorf("after a new guest binary:\nold %+v\nnew %+v", m, m3)
	}
	for _, s := range log3.ran() {
		if strings.Contains(s, "rootfs") || strings.Contains(s, "ext4") || strings.Contains(s, "qcow2") {
			t.Errorf("a new guest binary reran %q", s)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, m.Initrd)); !os.IsNotExist(err) {
		t.Errorf("the old initramfs is still there: %v", err)
	}

	checkBoots(t, ctx, img3)
}

// checkBoots boots img on an overlay larger than its base and checks what
// PID 1 and the image promise: the agent answers on the channel with the
// boot timings PID 1 passed it, the root filesystem fills the overlay, the
// root password is locked, the guest leaves its OOM score alone, and a
// shutdown ends the VM. The console must show each step of PID 1.
func checkBoots(t *testing.T, ctx context.Context, img *Image) {
	t.Helper()
	const overlaySize = 10 << 30
	vm := bootImage(t, ctx, img, overlaySize)
	c, err := channel.Dial(ctx, vm.channel, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pingCtx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	pong, err := c.Ping(pingCtx)
	if err != nil {
		t.Fatalf("ping: %v; console:\n%s", err, tail(vm.console(), 40))
	}
	t.Logf("guest answered %v after QEMU started: %+v", time.Since(vm.started).Round(time.Millisecond), *pong)
	if pong.Hostname != pid1.Hostname || pong.KernelToInitNs <= 0 || pong.InitToReadyNs <= 0 {
		t.Errorf("pong: %+v", *pong)
	}

	checks := []struct {
		name, script, want string
	}{
		{"root grown to the overlay", "df -B1 --output=size / | tail -1", ""},
		{"M-20 root password locked", "grep '^root:' /etc/shadow | cut -d: -f2", "*"},
		{"H-9 OOM score untouched", "cat /proc/1/oom_score_adj /proc/self/oom_score_adj | tr '\\n' ' '", "0 0"},
		{"no SSH server", "ls /usr/sbin/sshd 2>/dev/null | wc -l", "0"},
		{"loopback up", "cat /sys/class/net/lo/operstate", "unknown"},
	}
	for _, ck := range checks {
		r, err := c.Exec(ctx, protocol.Exec{Argv: []string{"/bin/sh", "-c", ck.script}, MaxOutputBytes: 4096, TimeoutMs: 30000}, nil)
		if err != nil {
			t.Fatalf("%s: %v", ck.name, err)
		}
		got := strings.TrimSpace(r.Stdout)
		if r.Exit.ExitCode != 0 {
			t.Errorf("%s: exit %+v, stderr %q", ck.name, r.Exit, r.Stderr)
		}
		if ck.want == "" { // the filesystem size: within a few percent of the disk
			size, err := strconv.ParseInt(got, 10, 64)
			if err != nil || size < overlaySize*95/100 {
				t.Errorf("%s: / is %q bytes on a %d-byte disk", ck.name, got, int64(overlaySize))
			}
			continue
		}
		if got != ck.want {
			t.Errorf("%s: got %q, want %q", ck.name, got, ck.want)
		}
	}

	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-vm.done:
		vm.exited = true
		if err != nil {
			t.Errorf("QEMU after a guest shutdown: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("QEMU still runs 30s after the guest was told to shut down")
	}
	console := vm.console()
	for _, want := range []string{"init started at", "loaded modules", "mounted root", "grew root filesystem", "switched root", "agent started"} {
		if !hasGuestLine(console, want) {
			t.Errorf("console lacks PID 1's %q", want)
		}
	}
}

// hasGuestLine reports whether a console line from agentiso-guest holds s.
func hasGuestLine(console, s string) bool {
	for _, l := range strings.Split(console, "\n") {
		if strings.HasPrefix(l, "agentiso-guest: ") && strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// testVM is a QEMU booting an image, with its console in a file.
type testVM struct {
	consolePath string
	channel     string
	started     time.Time
	done        chan error // QEMU's exit
	exited      bool
}

func (vm *testVM) console() string {
	b, _ := os.ReadFile(vm.consolePath)
	return string(b)
}

// bootImage starts img under QEMU (TCG) on a fresh overlay of overlaySize
// bytes. QEMU is killed when the test ends, unless it has exited.
func bootImage(t *testing.T, ctx context.Context, img *Image, overlaySize int64) *testVM {
	t.Helper()
	dir := t.TempDir()
	overlay := filepath.Join(dir, "overlay.qcow2")
	if _, err := hostcmd.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-b", img.RootfsPath(), "-F", "qcow2",
		overlay, strconv.FormatInt(overlaySize, 10)); err != nil {
		t.Fatal(err)
	}
	tsc, err := qemu.HostTSCkHz()
	if err != nil {
		t.Fatal(err)
	}
	vm := &testVM{consolePath: filepath.Join(dir, "console.log"), channel: filepath.Join(dir, "ch.sock"), done: make(chan error, 1)}
	cmdline := append([]string{"console=ttyS0", "reboot=t", "panic=-1", "i8042.noaux", "i8042.nokbd", "i8042.nopnp",
		"8250.nr_uarts=1", "pci=off", "tsc_early_khz=" + strconv.FormatInt(tsc, 10)}, img.KernelArgs()...)
	argv := []string{
		"-M", "microvm", "-accel", "tcg", "-cpu", "max", "-m", "512", "-nodefaults", "-no-user-config", "-no-reboot", "-display", "none",
		"-kernel", img.KernelPath(), "-initrd", img.InitrdPath(), "-append", strings.Join(cmdline, " "),
		"-serial", "file:" + vm.consolePath,
		"-drive", "id=d0,file=" + overlay + ",format=qcow2,if=none", "-device", "virtio-blk-device,drive=d0",
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=ch0,path=" + vm.channel + ",server=on,wait=off",
		"-device", "virtserialport,chardev=ch0,name=" + protocol.PortName,
		"-device", "virtio-rng-device",
	}
	qctx, stop := context.WithCancel(ctx)
	vm.started = time.Now()
	go func() {
		_, err := hostcmd.Run(qctx, "qemu-system-x86_64", argv...)
		vm.done <- err
	}()
	t.Cleanup(func() {
		stop()
		if !vm.exited {
			<-vm.done
		}
	})
	// The channel socket exists once QEMU has set up its devices.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(vm.channel); err == nil {
			return vm
		}
		select {
		case err := <-vm.done:
			vm.exited = true
			t.Fatalf("QEMU exited at start: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("QEMU made no channel socket in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
