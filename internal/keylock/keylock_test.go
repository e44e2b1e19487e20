package keylock

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// One key is held by one goroutine at a time; the set empties afterwards.
func TestOneHolderPerKey(t *testing.T) {
	var l Locks
	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock := l.Lock("ws-1")
			n := inside.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if p := peak.Load(); p != 1 {
		t.Fatalf("%d goroutines held one key at once", p)
	}
	if n := l.Len(); n != 0 {
		t.Fatalf("%d keys left after every unlock", n)
	}
}

// Different keys do not wait for each other, and a second unlock is a no-op.
func TestKeysAreIndependent(t *testing.T) {
	var l Locks
	unlockA := l.Lock("a")
	done := make(chan struct{})
	go func() {
		l.Lock("b")()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("key b waited for key a")
	}
	if n := l.Len(); n != 1 {
		t.Fatalf("%d keys held, want 1 (a)", n)
	}
	unlockA()
	unlockA()
	if n := l.Len(); n != 0 {
		t.Fatalf("%d keys left", n)
	}
	// a is free again.
	l.Lock("a")()
}
