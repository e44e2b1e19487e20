package channel_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest"
)

func TestRenew(t *testing.T) {
	var mu sync.Mutex
	var seeds [][]byte
	var clocks []time.Time
	p := newPair(t, guest.Options{
		// Never the real ones in a test: they would reseed and set the
		// clock of the machine the test runs on.
		AddEntropy: func(b []byte) error {
			mu.Lock()
			defer mu.Unlock()
			seeds = append(seeds, append([]byte(nil), b...))
			return nil
		},
		SetClock: func(t time.Time) error {
			mu.Lock()
			defer mu.Unlock()
			clocks = append(clocks, t)
			return nil
		},
	}, channel.Options{})
	ctx := testCtx(t)
	if err := p.c.Renew(ctx, "00112233445566778899aabbccddeeff"); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Renew(ctx, ""); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seeds) != 2 || len(seeds[0]) < 32 || bytes.Equal(seeds[0], seeds[1]) || bytes.Equal(seeds[0], make([]byte, len(seeds[0]))) {
		t.Errorf("entropy sent: %x; want two different fresh seeds", seeds)
	}
	for _, c := range clocks {
		if d := time.Since(c); d < 0 || d > 10*time.Second {
			t.Errorf("clock sent %v, %v from the host's", c, d)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(p.host.etc, "machine-id")); string(b) != "00112233445566778899aabbccddeeff\n" {
		t.Errorf("machine-id = %q", b)
	}
	err := p.c.Renew(ctx, "not-a-machine-id")
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "machine_id") {
		t.Errorf("bad machine id: %v", err)
	}
}
