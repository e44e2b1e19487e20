package qemu

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/testenv"
)

// startPausedQEMU starts a QEMU that only listens on QMP: a microvm with no
// kernel, paused (-S), so no guest ever runs. It is killed when the test
// ends.
func startPausedQEMU(t *testing.T) (qmpPath string, cmd *exec.Cmd) {
	t.Helper()
	testenv.Require(t, "qemu")
	qmpPath = filepath.Join(t.TempDir(), "qmp.sock")
	cmd = exec.Command("qemu-system-x86_64",
		"-machine", "microvm", "-accel", "tcg", "-nodefaults", "-no-user-config",
		"-display", "none", "-S",
		"-chardev", socketChardev("qmp", qmpPath), "-mon", "chardev=qmp,mode=control")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting qemu: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return qmpPath, cmd
}

func dialTestQMP(t *testing.T, path string) *QMP {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q, err := DialQMP(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// waitEvent reads events until one named name arrives.
func waitEvent(t *testing.T, q *QMP, name string) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-q.Events():
			if !ok {
				t.Fatalf("waiting for %s: event channel closed", name)
			}
			if ev.Name == name {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event within 10s", name)
		}
	}
}

func TestQMPAgainstQEMU(t *testing.T) {
	path, _ := startPausedQEMU(t)
	q := dialTestQMP(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if v := q.Version(); v.Major < 7 {
		t.Errorf("Version() = %+v, want QEMU 7 or later", v)
	}

	st, err := q.QueryStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Running || st.Status != "prelaunch" {
		t.Errorf("status before cont = %+v, want prelaunch, not running", st)
	}

	t.Run("stop and cont emit events", func(t *testing.T) {
		if err := q.Execute(ctx, "cont", nil, nil); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, q, "RESUME")
		if st, err := q.QueryStatus(ctx); err != nil || !st.Running {
			t.Fatalf("after cont: %+v, %v; want running", st, err)
		}
		if err := q.Execute(ctx, "stop", nil, nil); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, q, "STOP")
		if st, err := q.QueryStatus(ctx); err != nil || st.Running || st.Status != "paused" {
			t.Fatalf("after stop: %+v, %v; want paused", st, err)
		}
	})

	t.Run("unknown command is a QMPError", func(t *testing.T) {
		err := q.Execute(ctx, "no-such-command", nil, nil)
		var qe *QMPError
		if !errors.As(err, &qe) || qe.Class != "CommandNotFound" {
			t.Fatalf("Execute(no-such-command) = %v, want a CommandNotFound QMPError", err)
		}
	})

	t.Run("bad arguments are a QMPError", func(t *testing.T) {
		err := q.Execute(ctx, "query-status", map[string]int{"bogus": 1}, nil)
		var qe *QMPError
		if !errors.As(err, &qe) || qe.Class != "GenericError" {
			t.Fatalf("Execute(query-status, bogus) = %v, want a GenericError QMPError", err)
		}
	})

	t.Run("concurrent commands get their own replies", func(t *testing.T) {
		errs := make(chan error, 20)
		for range 20 {
			go func() {
				var names []struct {
					Name string `json:"name"`
				}
				err := q.Execute(ctx, "query-commands", nil, &names)
				if err == nil && len(names) < 50 {
					err = errors.New("query-commands answered too few commands")
				}
				errs <- err
			}()
		}
		for range 20 {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("getfd passes a descriptor", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		if err := q.GetFD(ctx, "testfd", w); err != nil {
			t.Fatal(err)
		}
		// QEMU now knows the name: closefd succeeds once, then fails.
		if err := q.Execute(ctx, "closefd", map[string]string{"fdname": "testfd"}, nil); err != nil {
			t.Fatalf("closefd of a passed fd: %v", err)
		}
		if err := q.Execute(ctx, "closefd", map[string]string{"fdname": "testfd"}, nil); err == nil {
			t.Fatal("closefd of an unknown fd name succeeded")
		}
		// getfd without a descriptor is refused.
		if err := q.Execute(ctx, "getfd", map[string]string{"fdname": "nofd"}, nil); err == nil {
			t.Fatal("getfd without a descriptor succeeded")
		}
	})

	t.Run("quit ends the connection", func(t *testing.T) {
		if err := q.Execute(ctx, "quit", nil, nil); err != nil {
			t.Fatal(err)
		}
		waitEvent(t, q, "SHUTDOWN")
		select {
		case <-q.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("connection did not end after quit")
		}
		if err := q.Execute(ctx, "query-status", nil, nil); !errors.Is(err, ErrQMPClosed) {
			t.Fatalf("Execute after quit = %v, want ErrQMPClosed", err)
		}
	})
}

func TestDialQMPWaitsForSocket(t *testing.T) {
	testenv.Require(t, "qemu")
	// Dial before QEMU exists: DialQMP waits for the socket.
	path := filepath.Join(t.TempDir(), "qmp.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	result := make(chan error, 1)
	go func() {
		q, err := DialQMP(ctx, path, nil)
		if err == nil {
			q.Close()
		}
		result <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cmd := exec.Command("qemu-system-x86_64",
		"-machine", "microvm", "-accel", "tcg", "-nodefaults", "-no-user-config",
		"-display", "none", "-S",
		"-chardev", socketChardev("qmp", path), "-mon", "chardev=qmp,mode=control")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := <-result; err != nil {
		t.Fatalf("DialQMP while QEMU starts: %v", err)
	}
}

func TestDialQMPHonoursDeadline(t *testing.T) {
	path := filepath.Join(t.TempDir(), "never.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := DialQMP(ctx, path, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DialQMP(missing socket) = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("DialQMP took %v past a 100ms deadline", d)
	}
}

func TestDialQMPSilentServer(t *testing.T) {
	// Something listens on the socket but never greets.
	path := filepath.Join(t.TempDir(), "silent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = DialQMP(ctx, path, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DialQMP(silent server) = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("DialQMP took %v past a 100ms deadline", d)
	}
}
