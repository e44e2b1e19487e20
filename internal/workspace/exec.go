package workspace

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// defaultWorkdir is where commands run unless told otherwise.
const defaultWorkdir = "/root"

// channelSlack is how much longer than a command's own timeout the host
// waits for the guest's answer before giving up on the channel.
const channelSlack = 15 * time.Second

// Exec runs req.Command with /bin/sh -c in the workspace. A command that
// outlives its timeout has its whole process group killed in the guest and
// becomes a Timeout error.
func (m *Manager) Exec(ctx context.Context, c Caller, ref string, req ExecRequest) (*ExecResult, error) {
	return m.ExecStream(ctx, c, ref, req, nil)
}

// ExecStream is Exec that also hands output to onOutput as it arrives.
func (m *Manager) ExecStream(ctx context.Context, c Caller, ref string, req ExecRequest, onOutput func(protocol.Stream, string)) (*ExecResult, error) {
	return m.run(ctx, c, ref, protocol.Exec{
		Argv:           []string{"/bin/sh", "-c", req.Command},
		Workdir:        req.Workdir,
		Env:            req.Env,
		TimeoutMs:      req.Timeout.Milliseconds(),
		MaxOutputBytes: req.MaxOutputBytes,
	}, req.Timeout, onOutput)
}

// run runs msg in workspace ref's guest. A command that outlives timeout
// has its whole process group killed in the guest and becomes a Timeout
// error.
func (m *Manager) run(ctx context.Context, c Caller, ref string, msg protocol.Exec, timeout time.Duration, onOutput func(protocol.Stream, string)) (*ExecResult, error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	_, g, err := m.liveVM(w)
	if err != nil {
		return nil, err
	}
	if msg.Workdir == "" {
		msg.Workdir = defaultWorkdir
	}
	if err := protocol.CheckEnv(msg.Env); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if msg.Workdir[0] != '/' {
		return nil, errdefs.Invalidf("workdir: must be an absolute path")
	}
	cctx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, timeout+channelSlack)
		defer cancel()
	}
	res, err := g.Exec(cctx, msg, onOutput)
	if err != nil {
		return nil, guestError("exec", err)
	}
	if res.Exit.TimedOut {
		return nil, errdefs.Timeoutf("exec timed out after %s; its process group was killed. "+
			"Raise timeout_secs for long commands", timeout)
	}
	return &ExecResult{
		ExitCode:   res.Exit.ExitCode,
		Stdout:     res.Stdout,
		Stderr:     res.Stderr,
		Truncated:  res.Truncated,
		DurationMs: res.Exit.DurationMs,
	}, nil
}

// WriteFile writes content to path in the workspace, creating parents.
func (m *Manager) WriteFile(ctx context.Context, c Caller, ref, path string, content []byte, mode uint32) error {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return err
	}
	if err := checkGuestPath(path); err != nil {
		return err
	}
	_, g, err := m.liveVM(w)
	if err != nil {
		return err
	}
	if err := g.WriteFile(ctx, path, mode, bytes.NewReader(content), int64(len(content))); err != nil {
		return guestError("path", err)
	}
	return nil
}

// ReadFile reads up to limit bytes of path from offset. It returns the bytes
// and the file's whole size.
func (m *Manager) ReadFile(ctx context.Context, c Caller, ref, path string, offset, limit int64) ([]byte, int64, error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, 0, err
	}
	if err := checkGuestPath(path); err != nil {
		return nil, 0, err
	}
	_, g, err := m.liveVM(w)
	if err != nil {
		return nil, 0, err
	}
	var buf bytes.Buffer
	fi, err := g.ReadFile(ctx, path, offset, limit, &buf)
	if err != nil {
		return nil, 0, guestError("path", err)
	}
	return buf.Bytes(), fi.Size, nil
}

// checkGuestPath accepts absolute guest paths.
func checkGuestPath(p string) error {
	if p == "" {
		return errdefs.Invalidf("path: required")
	}
	if p[0] != '/' {
		return errdefs.Invalidf("path: must be absolute (e.g. /workspace/file.txt)")
	}
	return nil
}

// guestError makes a guest's refusal name the field it concerns, and keeps
// its class. A broken channel is an Unavailable error.
func guestError(field string, err error) error {
	c := errdefs.ClassOf(err)
	if c == errdefs.Internal {
		return errdefs.With(errdefs.Unavailable, "the workspace's guest agent did not answer", err)
	}
	msg := errdefs.Public(err)
	if len(msg) < len(field) || msg[:len(field)] != field {
		msg = fmt.Sprintf("%s: %s", field, msg)
	}
	return errdefs.With(c, msg, err)
}
