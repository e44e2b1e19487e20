package workspace

import (
	"context"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// ArgvRequest is one program run directly in the guest, without a shell:
// what tools that build a command from their parameters (git) use, so no
// parameter can ever be read as shell syntax.
type ArgvRequest struct {
	// Argv is the program and its arguments; Argv[0] is looked up in PATH.
	Argv    []string
	Workdir string
	Env     map[string]string
	// Timeout kills the program's process group when it passes; required.
	Timeout        time.Duration
	MaxOutputBytes int64
	// Stdin, when set, is the program's standard input (at most
	// protocol.ChunkSize bytes).
	Stdin []byte
}

// ExecArgv runs req.Argv in the workspace. Like Exec, a program that
// outlives its timeout is killed with its process group and becomes a
// Timeout error; a non-zero exit is a result, not an error.
func (m *Manager) ExecArgv(ctx context.Context, c Caller, ref string, req ArgvRequest) (*ExecResult, error) {
	if len(req.Argv) == 0 || req.Argv[0] == "" {
		return nil, errdefs.Invalidf("argv: must not be empty")
	}
	for _, a := range req.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return nil, errdefs.Invalidf("argv: must not contain NUL")
		}
	}
	if req.Timeout <= 0 {
		return nil, errdefs.Invalidf("timeout: must be positive")
	}
	if req.MaxOutputBytes <= 0 || req.MaxOutputBytes > protocol.MaxExecOutputBytes {
		return nil, errdefs.Invalidf("max_output_bytes: must be 1..%d", protocol.MaxExecOutputBytes)
	}
	if len(req.Stdin) > protocol.ChunkSize {
		return nil, errdefs.Invalidf("stdin: at most %d bytes", protocol.ChunkSize)
	}
	return m.run(ctx, c, ref, protocol.Exec{
		Argv:           req.Argv,
		Workdir:        req.Workdir,
		Env:            req.Env,
		TimeoutMs:      req.Timeout.Milliseconds(),
		MaxOutputBytes: req.MaxOutputBytes,
		Stdin:          req.Stdin,
	}, req.Timeout, nil)
}
