package channel_test

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/image"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/testenv"
)

// realVM is a guest image booted under QEMU (TCG) for the test.
type realVM struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	channel string // the channel chardev's socket
	console *bytes.Buffer
	mu      sync.Mutex
}

// bootImage starts the test image's VM on a fresh overlay and returns once
// QEMU runs the guest; the guest may still be booting.
func bootImage(t *testing.T) *realVM {
	t.Helper()
	testenv.Require(t, "root", "qemu", "qemu-img", "image")
	img, err := image.Load(testenv.ImageDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	dir := t.TempDir()
	disk := filepath.Join(dir, "disk.qcow2")
	if _, err := hostcmd.Run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", img.RootfsPath(), disk); err != nil {
		t.Fatal(err)
	}
	tsc, err := qemu.HostTSCkHz()
	if err != nil {
		t.Logf("no host TSC rate (%v): booting without tsc_early_khz", err)
	}
	cfg := qemu.MachineConfig{
		ID: "channel-test", Accel: qemu.AccelTCG, VCPUs: 1, MemoryMB: 256,
		Kernel: img.KernelPath(), Initrd: img.InitrdPath(), KernelArgs: img.KernelArgs(), TSCkHz: tsc,
		Disk:          disk,
		QMPSocket:     filepath.Join(dir, "qmp.sock"),
		ConsoleSocket: filepath.Join(dir, "console.sock"),
		ChannelSocket: filepath.Join(dir, "channel.sock"),
		PIDFile:       filepath.Join(dir, "qemu.pid"),
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	argv := qemu.Argv("qemu-system-x86_64", cfg)
	vm := &realVM{cmd: exec.Command(argv[0], argv[1:]...), exited: make(chan struct{}), channel: cfg.ChannelSocket, console: new(bytes.Buffer)}
	vm.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	vm.cmd.Stderr = os.Stderr
	if err := vm.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { vm.cmd.Wait(); close(vm.exited) }()
	t.Cleanup(func() {
		select {
		case <-vm.exited:
		default:
			syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
			<-vm.exited
		}
		if t.Failed() {
			vm.mu.Lock()
			t.Logf("guest console:\n%s", vm.console.String())
			vm.mu.Unlock()
		}
	})

	q, err := qemu.DialQMP(ctx, cfg.QMPSocket, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	var d net.Dialer
	con, err := d.DialContext(ctx, "unix", cfg.ConsoleSocket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { con.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := con.Read(buf)
			vm.mu.Lock()
			vm.console.Write(buf[:n])
			vm.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	if err := q.Execute(ctx, "cont", nil, nil); err != nil {
		t.Fatal(err)
	}
	return vm
}

// TestRealGuest runs the agent of the built image over the real channel: a
// virtio-serial port under QEMU, reached through its chardev socket.
func TestRealGuest(t *testing.T) {
	vm := bootImage(t)
	ctx := testCtx(t)
	start := time.Now()
	c, err := channel.Dial(ctx, vm.channel, channel.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pong, err := c.Ping(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first ping after %v: kernel %v, init to ready %v, agent %s",
		time.Since(start).Round(time.Millisecond), time.Duration(pong.KernelToInitNs).Round(time.Millisecond),
		time.Duration(pong.InitToReadyNs).Round(time.Millisecond), pong.AgentVersion)

	t.Run("exec", func(t *testing.T) {
		start := time.Now()
		res, err := c.Exec(ctx, protocol.Exec{Argv: []string{"uname", "-a"}, MaxOutputBytes: 4096}, nil)
		if err != nil || res.Exit.ExitCode != 0 || !strings.Contains(res.Stdout, "Linux") {
			t.Fatalf("uname -a: %+v, %v", res, err)
		}
		t.Logf("uname -a round trip %v", time.Since(start).Round(time.Millisecond))
		start = time.Now()
		req := sh(`head -c 3000000 /dev/zero | tr '\0' x`)
		req.MaxOutputBytes = 1 << 20
		res, err = c.Exec(ctx, req, nil)
		if err != nil || len(res.Stdout) != 1<<20 || !res.Truncated {
			t.Fatalf("large output: %d bytes, truncated %v, %v", len(res.Stdout), res != nil && res.Truncated, err)
		}
		t.Logf("3 MB of output (1 MiB kept) in %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("files", func(t *testing.T) {
		const size = 16 << 20
		sent := sha256.New()
		start := time.Now()
		if err := c.WriteFile(ctx, "/root/upload", 0o600, io.TeeReader(pseudoRandom(size), sent), size); err != nil {
			t.Fatal(err)
		}
		up := time.Since(start)
		read := sha256.New()
		start = time.Now()
		info, err := c.ReadFile(ctx, "/root/upload", 0, 0, read)
		if err != nil {
			t.Fatal(err)
		}
		down := time.Since(start)
		if info.Size != size || info.Mode != 0o600 || !bytes.Equal(sent.Sum(nil), read.Sum(nil)) {
			t.Fatalf("round trip changed the file (info %+v)", info)
		}
		mbps := func(d time.Duration) float64 { return size / d.Seconds() / 1e6 }
		t.Logf("16 MiB up %v (%.1f MB/s), down %v (%.1f MB/s)", up.Round(time.Millisecond), mbps(up), down.Round(time.Millisecond), mbps(down))
	})

	// A daemon restart: the old session goes, a new one is served.
	t.Run("reconnect", func(t *testing.T) {
		c.Close()
		start := time.Now()
		c2, err := channel.Dial(ctx, vm.channel, channel.Options{})
		if err != nil {
			t.Fatal(err)
		}
		c = c2
		if _, err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("reconnected in %v", time.Since(start).Round(time.Millisecond))
	})

	t.Run("shutdown", func(t *testing.T) {
		start := time.Now()
		if err := c.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-vm.exited:
			t.Logf("QEMU exited %v after Shutdown (%v)", time.Since(start).Round(time.Millisecond), vm.cmd.ProcessState)
		case <-time.After(20 * time.Second):
			t.Fatal("the guest acknowledged Shutdown but QEMU still runs")
		}
		if !vm.cmd.ProcessState.Success() {
			t.Errorf("QEMU exit status %v", vm.cmd.ProcessState)
		}
	})
	c.Close()
}
