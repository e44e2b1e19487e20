// Command agentiso-guest is the one binary inside every workspace VM. Started
// by the kernel as PID 1 (from the initramfs) it prepares the system, switches
// to the root disk and supervises the agent; started as `agentiso-guest agent`
// (by PID 1) it serves the host channel.
package main

import (
	"os"

	"github.com/agentiso/agentiso/internal/guest"
	"github.com/agentiso/agentiso/internal/guest/pid1"
)

func main() {
	if os.Getpid() == 1 {
		pid1.Main() // never returns
	}
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(guest.Main())
	}
	os.Stderr.WriteString("agentiso-guest: runs as PID 1 inside an agentiso VM, or as `agentiso-guest agent`\n")
	os.Exit(2)
}
