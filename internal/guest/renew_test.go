package guest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/protocol"
)

func TestRenewAppliesAFreshIdentity(t *testing.T) {
	etc := t.TempDir()
	if err := os.WriteFile(filepath.Join(etc, "machine-id"), []byte("ffffffffffffffffffffffffffffffff\n"), 0o444); err != nil {
		t.Fatal(err)
	}
	var order []string
	var gotEntropy []byte
	var gotClock time.Time
	a := NewAgent(Options{
		EtcDir: etc,
		AddEntropy: func(b []byte) error {
			order = append(order, "entropy")
			gotEntropy = append([]byte(nil), b...)
			return nil
		},
		SetClock: func(t time.Time) error {
			order = append(order, "clock")
			gotClock = t
			return nil
		},
	})
	entropy := bytes.Repeat([]byte{0x5a}, 64)
	now := time.Date(2026, 11, 29, 4, 0, 0, 123, time.UTC)
	err := a.renew(&protocol.Renew{Entropy: entropy, RealtimeNs: now.UnixNano(), MachineID: "0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	if len(order) != 2 || order[0] != "entropy" {
		t.Errorf("steps ran in order %v; the RNG must be reseeded first", order)
	}
	if !bytes.Equal(gotEntropy, entropy) {
		t.Errorf("entropy passed on = %x", gotEntropy)
	}
	if !gotClock.Equal(now) {
		t.Errorf("clock set to %v, want %v", gotClock, now)
	}
	b, err := os.ReadFile(filepath.Join(etc, "machine-id"))
	if err != nil || string(b) != "0123456789abcdef0123456789abcdef\n" {
		t.Errorf("machine-id = %q, %v", b, err)
	}
	if fi, _ := os.Stat(filepath.Join(etc, "machine-id")); fi.Mode().Perm() != 0o444 {
		t.Errorf("machine-id mode %v, want 0444", fi.Mode().Perm())
	}

	// Without a machine id the file stays as it is.
	if err := a.renew(&protocol.Renew{Entropy: entropy, RealtimeNs: 1}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(etc, "machine-id")); string(b) != "0123456789abcdef0123456789abcdef\n" {
		t.Errorf("a Renew without machine_id changed it to %q", b)
	}
}

func TestRenewStopsAtAFailedReseed(t *testing.T) {
	etc := t.TempDir()
	clockSet := false
	a := NewAgent(Options{
		EtcDir:     etc,
		AddEntropy: func([]byte) error { return errors.New("no /dev/random") },
		SetClock:   func(time.Time) error { clockSet = true; return nil },
	})
	err := a.renew(&protocol.Renew{Entropy: make([]byte, 32), RealtimeNs: 1, MachineID: "0123456789abcdef0123456789abcdef"})
	if err == nil {
		t.Fatal("renew succeeded although the RNG was not reseeded")
	}
	if clockSet {
		t.Error("renew went on after the reseed failed")
	}
	if _, err := os.Stat(filepath.Join(etc, "machine-id")); !os.IsNotExist(err) {
		t.Error("renew wrote a machine-id after the reseed failed")
	}
}
