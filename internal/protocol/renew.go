package protocol

import (
	"fmt"
	"regexp"
	"strings"
)

// TypeRenew asks the guest to take a fresh instance identity. -> OK
const TypeRenew Type = "renew"

// Bounds of Renew.Entropy.
const (
	MinRenewEntropy = 32
	MaxRenewEntropy = 512
)

// machineID is the form of /etc/machine-id: 32 lowercase hex digits.
var machineID = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Renew gives a guest a fresh identity as an instance. A VM resumed from a
// memory snapshot (a restore, a fork) shares its source's RNG state, clock
// and machine-id; a fork's disk is a copy of its source's. The host sends
// Renew as its first request to such a guest (before Configure and anything
// an agent asks for), the way Firecracker's snapshot documentation asks of
// a resumed guest.
type Renew struct {
	// Entropy is fresh randomness from the host's RNG
	// (MinRenewEntropy..MaxRenewEntropy bytes). The guest adds it to its
	// kernel's pool, credited, and reseeds the kernel's CRNG at once.
	Entropy []byte `json:"entropy"`
	// RealtimeNs is the host's wall clock (Unix ns) when it sent this. The
	// guest steps its clock to it: a resumed guest's clock is the
	// snapshot's.
	RealtimeNs int64 `json:"realtime_ns"`
	// MachineID, when set, replaces /etc/machine-id (32 lowercase hex
	// digits, not all zero).
	MachineID string `json:"machine_id,omitempty"`
}

func (m *Renew) validate() error {
	if n := len(m.Entropy); n < MinRenewEntropy || n > MaxRenewEntropy {
		return fmt.Errorf("entropy: %d bytes, want %d..%d", n, MinRenewEntropy, MaxRenewEntropy)
	}
	if m.RealtimeNs <= 0 {
		return fmt.Errorf("realtime_ns: must be positive")
	}
	if m.MachineID != "" && (!machineID.MatchString(m.MachineID) || strings.Trim(m.MachineID, "0") == "") {
		return fmt.Errorf("machine_id: must be 32 lowercase hex digits, not all zero")
	}
	return nil
}

func (*Renew) Type() Type { return TypeRenew }
