package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dialAsEnv makes the test binary, started by TestMain, only try to connect
// to the Unix socket named by its first argument and report the outcome in
// its exit code (0 connected, 13 permission denied, 1 anything else). The
// test starts it as an unprivileged user.
const dialAsEnv = "AGENTISO_E2E_DIAL"

func dialAndExit(argv []string) int {
	if len(argv) != 1 {
		fmt.Fprintln(os.Stderr, "dial: want one socket path")
		return 2
	}
	c, err := net.Dial("unix", argv[0])
	if err == nil {
		c.Close()
		return 0
	}
	fmt.Fprintln(os.Stderr, err)
	if errors.Is(err, syscall.EACCES) {
		return 13
	}
	return 1
}

// TestL5_GuestChannelReachableOnlyByTheDaemon: the original relayed a vsock
// channel nobody authenticated. Here the only way into a guest's agent, and
// the VM's QMP and console, are Unix sockets in a root-owned 0700 directory
// per VM: no other user on the host can connect to them, which the test
// shows by trying as the unprivileged user nobody.
func TestL5_GuestChannelReachableOnlyByTheDaemon(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	d := startDaemon(t, "")
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "l5"})

	// The test binary, copied where nobody may run it.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.MkdirTemp("", "agentiso-l5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pub) })
	os.Chmod(pub, 0o755)
	prober := filepath.Join(pub, "e2e.test")
	copyFile(t, exe, prober, 0o755)

	vmDir := filepath.Join(d.RunDir, "vms", ws.ID)
	var sockets []string
	filepath.WalkDir(vmDir, func(p string, e os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".sock") {
			sockets = append(sockets, p)
		}
		return nil
	})
	for _, want := range []string{"channel.sock", "qmp.sock", "console.sock"} {
		if !containsBase(sockets, want) {
			t.Errorf("%s: no %s among %v", vmDir, want, sockets)
		}
	}
	fi, err := os.Stat(vmDir)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: owner uid %d, mode %v; want root and 0700", vmDir, st.Uid, fi.Mode().Perm())
	}
	// The daemon's run directory may be open to the agentiso group (its MCP
	// socket lives there); the VMs' directories must hold on their own.
	if err := os.Chmod(d.RunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// A control: the probe, run as nobody, does connect to a socket open to all.
	open, err := net.Listen("unix", filepath.Join(pub, "open.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	os.Chmod(filepath.Join(pub, "open.sock"), 0o777)
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	if code := probe(t, prober, filepath.Join(pub, "open.sock"), nobody); code != 0 {
		t.Fatalf("the probe as nobody cannot connect to a socket open to all (exit %d)", code)
	}
	for _, sock := range sockets {
		if code := probe(t, prober, sock, nobody); code != 13 {
			t.Errorf("user nobody connecting to %s: exit %d, want 13 (permission denied)", sock, code)
		}
	}
	// The workspace still works: nothing above disturbed the daemon's channel.
	r := call[execResult](ctx, t, s, "exec", map[string]any{"workspace_id": ws.ID, "command": "echo still-here"})
	if strings.TrimSpace(r.Stdout) != "still-here" {
		t.Errorf("exec after the probes: %+v", r)
	}
}

// probe runs the test binary as cred to dial sock and
// returns its exit code.
func probe(t *testing.T, bin, sock string, cred *syscall.Credential) int {
	t.Helper()
	cmd := exec.Command(bin, sock)
	cmd.Env = append(os.Environ(), dialAsEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		t.Logf("probe %s as %+v: %s", sock, cred, strings.TrimSpace(string(out)))
		return ee.ExitCode()
	default:
		t.Fatalf("running the probe: %v", err)
		return -1
	}
}

func containsBase(paths []string, base string) bool {
	for _, p := range paths {
		if filepath.Base(p) == base {
			return true
		}
	}
	return false
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}
