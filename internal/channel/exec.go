package channel

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/agentiso/agentiso/internal/protocol"
)

// ExecResult is a finished command.
type ExecResult struct {
	Exit           protocol.Exit
	Stdout, Stderr string
	// Truncated is true when output past MaxOutputBytes was dropped, by
	// the guest or, for a guest sending more than asked, here.
	Truncated bool
}

// ExecHandle is a command running in the guest. Wait reads its output and
// result; Signal and Close may be called meanwhile from other goroutines.
type ExecHandle struct {
	st  *stream
	max int64

	sendMu    sync.Mutex
	closeOnce sync.Once
}

// Exec runs req in the guest and returns when it has ended. onOutput, when
// set, sees each piece of output as it arrives (what is kept in the result
// too). Cancelling ctx closes the stream, and the guest kills the
// command's process group.
func (c *Client) Exec(ctx context.Context, req protocol.Exec, onOutput func(protocol.Stream, string)) (*ExecResult, error) {
	h, err := c.StartExec(ctx, req)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return h.Wait(onOutput)
}

// StartExec starts req in the guest. ctx bounds the command's whole life:
// when it ends, the command is killed. The handle must be closed.
func (c *Client) StartExec(ctx context.Context, req protocol.Exec) (*ExecHandle, error) {
	st, err := c.open(ctx, "running "+argv0(req.Argv))
	if err != nil {
		return nil, err
	}
	if err := st.send(&req); err != nil {
		st.close()
		return nil, st.fail(err)
	}
	return &ExecHandle{st: st, max: req.MaxOutputBytes}, nil
}

// Wait reads output until the command's Exit. Output beyond
// MaxOutputBytes per stream is not kept, even if the guest sends it.
func (h *ExecHandle) Wait(onOutput func(protocol.Stream, string)) (*ExecResult, error) {
	var out [2]strings.Builder // stdout, stderr
	res := &ExecResult{}
	for {
		m, err := protocol.Read(h.st)
		if err != nil {
			return nil, h.st.fail(err)
		}
		switch m := m.(type) {
		case *protocol.Output:
			b := &out[0]
			if m.Stream == protocol.Stderr {
				b = &out[1]
			}
			data := m.Data
			if room := h.max - int64(b.Len()); int64(len(data)) > room {
				data = data[:protocol.RuneBoundary(data, int(max(room, 0)))]
				res.Truncated = true
			}
			if data == "" {
				continue
			}
			b.WriteString(data)
			if onOutput != nil {
				onOutput(m.Stream, data)
			}
		case *protocol.Exit:
			res.Exit = *m
			res.Stdout, res.Stderr = out[0].String(), out[1].String()
			res.Truncated = res.Truncated || m.Truncated
			return res, nil
		case *protocol.Error:
			return nil, h.st.fail(m)
		default:
			return nil, h.st.fail(fmt.Errorf("unexpected %s message in a command's output: %w", m.Type(), protocol.ErrMalformed))
		}
	}
}

// Signal sends sig (one protocol.Signal allows, e.g. "SIGTERM") to the
// command's process group.
func (h *ExecHandle) Signal(sig string) error {
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	if err := h.st.send(&protocol.Signal{Signal: sig}); err != nil {
		return h.st.fail(err)
	}
	return nil
}

// Close ends the exec: a command still running is killed by the guest.
func (h *ExecHandle) Close() error {
	h.closeOnce.Do(h.st.close)
	return nil
}

// argv0 names a command in errors.
func argv0(argv []string) string {
	if len(argv) == 0 {
		return "a command"
	}
	return argv[0]
}
