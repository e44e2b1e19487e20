package channel

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/agentiso/agentiso/internal/protocol"
)

// renewEntropy is how much fresh randomness a Renew carries: 512 bits, well
// beyond what the kernel's CRNG needs to reseed.
const renewEntropy = 64

// Renew gives the guest a fresh instance identity (protocol.Renew): fresh
// entropy from the host's RNG, the host's clock and, unless machineID is
// empty, a new machine-id. Send it first to a guest resumed from a memory
// snapshot or booted from a fork's disk.
func (c *Client) Renew(ctx context.Context, machineID string) error {
	m := protocol.Renew{Entropy: make([]byte, renewEntropy), MachineID: machineID}
	rand.Read(m.Entropy) // never fails (crypto/rand panics rather)
	m.RealtimeNs = time.Now().UnixNano()
	_, err := roundTrip[protocol.OK](ctx, c, "renewing the guest's identity", &m)
	return err
}
