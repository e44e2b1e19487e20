package channel_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest"
)

// running starts a long command and returns once the guest runs it.
func running(t *testing.T, c *channel.Client) *channel.ExecHandle {
	t.Helper()
	h, err := c.StartExec(testCtx(t), sh(`echo $$; exec sleep 300`))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ids := newPids()
	go h.Wait(ids.output)
	ids.next(t)
	return h
}

// eventually retries f until it succeeds or 5 seconds pass.
func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Errorf("%s: %v", what, err)
}

// The agent refuses requests beyond its per-session cap instead of taking
// on unbounded work.
func TestGuestStreamCap(t *testing.T) {
	p := newPair(t, guest.Options{MaxStreams: 2}, channel.Options{MaxStreams: 10})
	first := running(t, p.c)
	running(t, p.c)
	_, err := p.c.Ping(testCtx(t))
	if !errdefs.Is(err, errdefs.Unavailable) || !strings.Contains(errdefs.Public(err), "too many requests") {
		t.Fatalf("third request: %v, want Unavailable (too many requests)", err)
	}
	first.Close()
	eventually(t, "ping after a slot freed", func() error { _, err := p.c.Ping(testCtx(t)); return err })
}

// The host caps its requests to one VM; more wait for a slot, bounded by
// their context (M-22: a burst cannot exhaust host descriptors or memory).
func TestM22_HostStreamCap(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{MaxStreams: 1})
	h := running(t, p.c)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := p.c.Ping(ctx)
	if !errdefs.Is(err, errdefs.Timeout) || !strings.Contains(err.Error(), "waiting for a free channel stream") {
		t.Fatalf("ping beyond the cap: %v, want a Timeout while waiting for a slot", err)
	}

	answered := make(chan error, 1)
	go func() {
		_, err := p.c.Ping(testCtx(t))
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("ping ran beyond the cap: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	h.Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting ping did not get the freed slot")
	}
}

// The daemon's cap across all VMs: requests to one VM can hold every shared
// slot, and a request to another VM then waits for one, bounded by its
// context, however free that VM's own cap is (M-22's global part).
func TestM22_GlobalStreamCap(t *testing.T) {
	shared := channel.NewStreamLimit(2)
	a := newPair(t, guest.Options{}, channel.Options{MaxStreams: 10, Shared: shared})
	b := newPair(t, guest.Options{}, channel.Options{MaxStreams: 10, Shared: shared})
	first := running(t, a.c)
	running(t, a.c)
	if n := shared.InUse(); n != 2 {
		t.Fatalf("shared slots in use = %d, want 2", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := b.c.Ping(ctx)
	if !errdefs.Is(err, errdefs.Timeout) || !strings.Contains(err.Error(), "host-wide limit") {
		t.Fatalf("ping to another VM beyond the shared cap: %v, want a Timeout waiting for a host-wide slot", err)
	}
	if n := shared.InUse(); n != 2 {
		t.Fatalf("a request that timed out holds a slot: %d in use, want 2", n)
	}

	answered := make(chan error, 1)
	go func() {
		_, err := b.c.Ping(testCtx(t))
		answered <- err
	}()
	select {
	case err := <-answered:
		t.Fatalf("ping ran beyond the shared cap: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting ping did not get the freed shared slot")
	}
	eventually(t, "shared slots released", func() error {
		if n := shared.InUse(); n != 1 {
			return fmt.Errorf("%d in use, want 1 (the second command)", n)
		}
		return nil
	})
}

func TestGuestExecCap(t *testing.T) {
	p := newPair(t, guest.Options{MaxExecs: 1}, channel.Options{})
	running(t, p.c)
	_, err := p.c.Exec(testCtx(t), sh("true"), nil)
	if !errdefs.Is(err, errdefs.Unavailable) || !strings.Contains(errdefs.Public(err), "too many commands") {
		t.Fatalf("second command: %v, want Unavailable (too many commands)", err)
	}
	if _, err := p.c.Ping(testCtx(t)); err != nil {
		t.Errorf("ping while commands are capped: %v", err)
	}
}

func TestConcurrentRequests(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 24 {
		wg.Go(func() {
			switch i % 4 {
			case 0:
				_, err := p.c.Ping(ctx)
				errs <- err
			case 1:
				res, err := p.c.Exec(ctx, sh(fmt.Sprintf("seq 1 %d", 1000*i)), nil)
				if err == nil && !strings.HasSuffix(res.Stdout, fmt.Sprintf("\n%d\n", 1000*i)) {
					err = fmt.Errorf("exec %d: output ends %q", i, res.Stdout[max(0, len(res.Stdout)-20):])
				}
				errs <- err
			case 2, 3:
				path := filepath.Join(dir, fmt.Sprint(i))
				data := bytes.Repeat([]byte{byte(i)}, 300<<10+i)
				err := p.c.WriteFile(ctx, path, 0, bytes.NewReader(data), int64(len(data)))
				if err == nil {
					var got bytes.Buffer
					_, err = p.c.ReadFile(ctx, path, 0, 0, &got)
					if err == nil && !bytes.Equal(got.Bytes(), data) {
						err = fmt.Errorf("file %d came back different", i)
					}
				}
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
