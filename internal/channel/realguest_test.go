package channel_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
		t.Logf("round trips (median of 10): ping %v, exec true %v, exec uname -a %v",
			median(t, func() error { _, err := c.Ping(ctx); return err }),
			median(t, func() error {
				_, err := c.Exec(ctx, protocol.Exec{Argv: []string{"true"}, MaxOutputBytes: 1}, nil)
				return err
			}),
			median(t, func() error {
				_, err := c.Exec(ctx, protocol.Exec{Argv: []string{"uname", "-a"}, MaxOutputBytes: 4096}, nil)
				return err
			}))
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

	// A daemon restart: the old session goes, a new one is served, also
	// when the host comes back at once and while the old session was still
	// sending (its bytes must not reach the new one).
	t.Run("reconnect", func(t *testing.T) {
		redial := func() time.Duration {
			t.Helper()
			c.Close()
			start := time.Now()
			c2, err := channel.Dial(ctx, vm.channel, channel.Options{})
			if err != nil {
				t.Fatal(err)
			}
			c = c2
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := c.Ping(pctx); err != nil {
				t.Fatal(err)
			}
			return time.Since(start)
		}
		var worst time.Duration
		for range 10 {
			worst = max(worst, redial())
		}
		t.Logf("10 immediate reconnects, slowest %v", worst.Round(time.Millisecond))

		for range 3 {
			streaming := make(chan struct{})
			var once sync.Once
			go c.Exec(ctx, sh("while :; do echo output of the old session; done"), func(protocol.Stream, string) {
				once.Do(func() { close(streaming) })
			})
			<-streaming
			d := redial()
			res, err := c.Exec(ctx, sh("echo clean"), nil)
			if err != nil || res.Stdout != "clean\n" {
				t.Fatalf("exec after reconnecting mid-output: %+v, %v", res, err)
			}
			t.Logf("reconnected during output in %v", d.Round(time.Millisecond))
		}
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

// median runs f ten times and returns its median duration.
func median(t *testing.T, f func() error) time.Duration {
	t.Helper()
	var ds []time.Duration
	for range 10 {
		start := time.Now()
		if err := f(); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2].Round(100 * time.Microsecond)
}
