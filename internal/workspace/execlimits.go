package workspace

import (
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// MaxCommandBytes bounds one command's text.
const MaxCommandBytes = 256 << 10

// ExecLimits are the configured exec defaults and caps. Every edge (MCP
// tools, the REST API) turns a caller's command into an ExecRequest through
// Request, so all apply the same bounds with the same messages.
type ExecLimits struct {
	DefaultTimeout        time.Duration
	MaxTimeout            time.Duration
	DefaultMaxOutputBytes int64
	MaxOutputBytes        int64
}

// Request applies the defaults and caps to one command. Errors are Invalid
// and name the field as the tools and the API spell it.
func (l ExecLimits) Request(command string, timeoutSecs int, workdir string, env map[string]string, maxOutput int64) (ExecRequest, error) {
	if command == "" {
		return ExecRequest{}, errdefs.Invalidf("command: required")
	}
	if len(command) > MaxCommandBytes {
		return ExecRequest{}, errdefs.Invalidf("command: longer than 256 KiB")
	}
	timeout := l.DefaultTimeout
	if timeoutSecs < 0 {
		return ExecRequest{}, errdefs.Invalidf("timeout_secs: must not be negative")
	}
	if timeoutSecs > 0 {
		timeout = time.Duration(timeoutSecs) * time.Second
	}
	if timeout > l.MaxTimeout {
		return ExecRequest{}, errdefs.Invalidf("timeout_secs: at most %d", int(l.MaxTimeout/time.Second))
	}
	if maxOutput < 0 {
		return ExecRequest{}, errdefs.Invalidf("max_output_bytes: must not be negative")
	}
	if maxOutput == 0 {
		maxOutput = l.DefaultMaxOutputBytes
	}
	if maxOutput > l.MaxOutputBytes {
		return ExecRequest{}, errdefs.Invalidf("max_output_bytes: at most %d", l.MaxOutputBytes)
	}
	return ExecRequest{Command: command, Timeout: timeout, Workdir: workdir, Env: env, MaxOutputBytes: maxOutput}, nil
}
