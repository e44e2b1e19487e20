// Package hostcmd is the one way agentiso runs a program on the host: an argv,
// never a shell string, with a context, and the program's stderr in the error.
package hostcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// maxStderr bounds how much of a failing program's stderr goes into an error.
const maxStderr = 4 << 10

// Run runs name with args and returns its standard output. A non-zero exit
// becomes an error that quotes the command and the tail of its stderr.
func Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return RunIn(ctx, "", name, args...)
}

// RunIn is Run with dir as the working directory, for programs that write
// into the current directory (apt-get download). An empty dir is Run's.
func RunIn(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.Bytes(), &Error{Argv: append([]string{name}, args...), Stderr: tail(stderr.Bytes()), Err: err}
	}
	return stdout.Bytes(), nil
}

// Error is a failed host command.
type Error struct {
	Argv   []string
	Stderr string
	Err    error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("running %s: %v", strings.Join(e.Argv, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// ExitCode returns the exit code of a failed command, or -1 when err is not
// a command that ran and exited.
func ExitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func tail(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > maxStderr {
		b = b[len(b)-maxStderr:]
	}
	return string(b)
}
