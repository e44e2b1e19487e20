package vm

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestProcessWaitAndSignal(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p, err := openProcess(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	if p.exited() {
		t.Fatal("a running process reads as exited")
	}
	waited := make(chan error, 1)
	go func() { waited <- p.wait() }()
	select {
	case err := <-waited:
		t.Fatalf("wait returned while the process runs: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := p.signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return after the process was killed")
	}
	if !p.exited() {
		t.Error("a killed process does not read as exited")
	}
	cmd.Wait()
	// Signalling a reaped process is not an error, and reaches nobody else.
	if err := p.signal(unix.SIGKILL); err != nil {
		t.Errorf("signal after exit: %v", err)
	}
}

func TestProcessWaitEndsOnClose(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p, err := openProcess(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- p.wait() }()
	time.Sleep(50 * time.Millisecond)
	p.close()
	select {
	case err := <-waited:
		if err == nil {
			t.Error("wait after close returned nil; it must say it did not see an exit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("wait did not return after close")
	}
}

func TestOpenProcessGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := openProcess(cmd.Process.Pid); err == nil {
		t.Fatal("openProcess of a reaped process succeeded")
	}
}

func TestReadPIDFile(t *testing.T) {
	dir := t.TempDir()
	for content, ok := range map[string]bool{
		"1234\n": true, "  42 ": true, "": false, "abc": false, "-5": false, "0": false,
	} {
		p := filepath.Join(dir, "pid")
		os.WriteFile(p, []byte(content), 0o600)
		pid, err := readPIDFile(p)
		if ok != (err == nil) {
			t.Errorf("readPIDFile(%q) = %d, %v", content, pid, err)
		}
	}
	if _, err := readPIDFile(filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Errorf("missing pidfile: %v, want not-exist", err)
	}
}

func TestProcessArgv(t *testing.T) {
	argv, err := processArgv(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) != len(os.Args) || argv[0] != os.Args[0] {
		t.Errorf("processArgv(self) = %q, want %q", argv, os.Args)
	}
	if _, err := processArgv(1 << 30); err == nil {
		t.Error("processArgv of a missing pid succeeded")
	}
}
