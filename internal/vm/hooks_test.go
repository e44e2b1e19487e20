package vm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// hookLog records the calls of a runner's AfterStart and AfterExit.
type hookLog struct {
	mu       sync.Mutex
	started  []int // PIDs AfterStart saw
	exited   []string
	failWith error
}

func (h *hookLog) install(c *Config) {
	c.AfterStart = func(_ context.Context, spec Spec, pid int) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.started = append(h.started, pid)
		return h.failWith
	}
	c.AfterExit = func(spec Spec) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.exited = append(h.exited, spec.ID)
	}
}

func (h *hookLog) calls() (started []int, exited []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.started...), append([]string(nil), h.exited...)
}

// TestHooksFollowTheVMsLife checks that AfterStart sees QEMU's PID on Start
// and on Attach, that AfterExit follows every exit but not a detach, and
// that a failing AfterStart kills the VM (and still runs AfterExit).
func TestHooksFollowTheVMsLife(t *testing.T) {
	spec := testSpec(t, "hooks1")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	var h hookLog
	r := newTestRunner(t, h.install)
	v := startTestVM(t, r, spec)
	if started, exited := h.calls(); len(started) != 1 || started[0] != v.PID() || len(exited) != 0 {
		t.Fatalf("after Start: AfterStart saw %v, AfterExit %v; want [%d] and nothing", started, exited, v.PID())
	}

	v.Detach()
	if _, exited := h.calls(); len(exited) != 0 {
		t.Fatalf("AfterExit ran for a detached VM: %v", exited)
	}
	v2, err := r.Attach(ctx, spec)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() { v2.Kill() })
	if started, _ := h.calls(); len(started) != 2 || started[1] != v2.PID() {
		t.Fatalf("after Attach: AfterStart saw %v, want a second call with pid %d", started, v2.PID())
	}
	if err := v2.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, exited := h.calls(); len(exited) != 1 || exited[0] != spec.ID {
		t.Fatalf("after Kill: AfterExit saw %v, want [%s]", exited, spec.ID)
	}

	// A failing AfterStart ends the VM, and AfterExit still undoes it.
	var bad hookLog
	bad.failWith = errdefs.Unavailablef("resources: no limits today")
	_, err = newTestRunner(t, bad.install).Start(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "no limits today") || !errdefs.Is(err, errdefs.Unavailable) {
		t.Fatalf("Start with a failing AfterStart = %v, want the hook's Unavailable error", err)
	}
	if !errors.Is(err, bad.failWith) {
		t.Errorf("Start's error does not wrap the hook's: %v", err)
	}
	checkGone(t, spec)
	if started, exited := bad.calls(); len(started) != 1 || len(exited) != 1 {
		t.Errorf("failing hook: AfterStart %v, AfterExit %v; want one call each", started, exited)
	}
}
