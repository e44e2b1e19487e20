// Package pid1 is what agentiso-guest does as the VM's init: mount the
// pseudo-filesystems, load modules, switch to the root disk, start the agent
// and reap every orphan for the life of the VM.
package pid1

// Main is PID 1. It never returns.
func Main() {
	panic("not implemented yet")
}
