package cli

import (
	"context"
	"errors"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// The exit codes of the agentiso command. `agentiso exec` exits with the
// command's own code instead when the command ran; so a script that needs
// to tell them apart uses `exec --json`, which exits 0 and reports the
// command's code in the JSON.
const (
	ExitOK = 0
	// ExitError is any other failure (a daemon-side fault).
	ExitError = 1
	// ExitUsage is a command line or a request that is not valid: an
	// unknown command or flag, a missing argument, a bad name or value.
	ExitUsage = 2
	// ExitNotFound: no such workspace or snapshot (that this caller may
	// see).
	ExitNotFound = 3
	// ExitConflict: the object is not in a state that allows the action
	// (a stopped workspace, a snapshot forks stand on, a name in use).
	ExitConflict = 4
	// ExitUnavailable: the daemon is up but cannot do it now (a guest not
	// answering, a feature not enabled).
	ExitUnavailable = 5
	// ExitTimeout: the action or the command ran out of time.
	ExitTimeout = 6
	// ExitRefused: not allowed: permission, quota or rate limit.
	ExitRefused = 7
	// ExitUnreachable: the daemon's API socket could not be reached.
	ExitUnreachable = 8
	// ExitInterrupted: stopped by SIGINT or SIGTERM (128+2, as shells
	// report it); an exec'd command is killed with its request.
	ExitInterrupted = 130
)

// ExitCode is the exit code for err (nil is ExitOK).
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, ErrUnreachable) {
		return ExitUnreachable
	}
	if errors.Is(err, context.Canceled) {
		return ExitInterrupted
	}
	switch errdefs.ClassOf(err) {
	case errdefs.Invalid:
		return ExitUsage
	case errdefs.NotFound:
		return ExitNotFound
	case errdefs.Conflict:
		return ExitConflict
	case errdefs.Unavailable:
		return ExitUnavailable
	case errdefs.Timeout:
		return ExitTimeout
	case errdefs.PermissionDenied, errdefs.Quota, errdefs.RateLimited:
		return ExitRefused
	}
	return ExitError
}
