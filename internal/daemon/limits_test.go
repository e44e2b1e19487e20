package daemon

import (
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestFitFDLimit(t *testing.T) {
	cfg := config.Default()
	need := fdsNeeded(cfg)
	if want := uint64(256 + 256 + 32*12); need != want {
		t.Fatalf("fdsNeeded(defaults) = %d, want %d", need, want)
	}
	for _, tc := range []struct {
		name    string
		in      unix.Rlimit
		wantCur uint64
		wantErr bool
	}{
		{"raised to need", unix.Rlimit{Cur: 256, Max: 65536}, need, false},
		{"already above", unix.Rlimit{Cur: 20000, Max: 20000}, 20000, false},
		{"hard limit too low", unix.Rlimit{Cur: 512, Max: 512}, 512, true},
	} {
		lim := tc.in
		err := fitFDLimit(&lim, need)
		if tc.wantErr {
			if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "limits.max_connections and vm.max_total_vms") {
				t.Errorf("%s: %v, want an error naming the settings", tc.name, err)
			}
			continue
		}
		if err != nil || lim.Cur != tc.wantCur || lim.Max != tc.in.Max {
			t.Errorf("%s: %+v, %v; want cur %d", tc.name, lim, err, tc.wantCur)
		}
	}
}
