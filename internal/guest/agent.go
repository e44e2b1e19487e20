// Package guest is the agent that runs inside every workspace VM and serves
// the host channel (see package protocol).
package guest

// Main runs the agent until the channel port goes away for good and returns
// the process exit code. PID 1 starts it as `agentiso-guest agent` and
// restarts it if it dies.
func Main() int {
	panic("not implemented yet")
}
