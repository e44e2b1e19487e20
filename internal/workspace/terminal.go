package workspace

import (
	"context"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Terminal is an interactive shell on a terminal in a workspace. Read
// belongs to one goroutine; Write, Resize and Close may be called from
// others.
type Terminal interface {
	// Read returns the next output, or the shell's exit once it has
	// ended.
	Read() (data []byte, exit *protocol.Exit, err error)
	Write(p []byte) (int, error)
	Resize(rows, cols int) error
	// Close hangs the terminal up; the guest ends its programs.
	Close() error
}

// terminalGuest is a guest that serves terminals (package channel's
// Client does).
type terminalGuest interface {
	StartPTY(ctx context.Context, req protocol.PTYOpen) (*channel.PTY, error)
}

// OpenTerminal starts a login shell on a rows x cols terminal in the
// workspace. ctx bounds the terminal's life; Close ends it sooner.
func (m *Manager) OpenTerminal(ctx context.Context, c Caller, ref string, rows, cols int) (Terminal, error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	if rows < 1 || rows > protocol.MaxPTYDim || cols < 1 || cols > protocol.MaxPTYDim {
		return nil, errdefs.Invalidf("rows, cols: must be 1..%d", protocol.MaxPTYDim)
	}
	_, g, err := m.liveVM(w)
	if err != nil {
		return nil, err
	}
	tg, ok := g.(terminalGuest)
	if !ok {
		return nil, errdefs.Unavailablef("workspace_id: this workspace's guest does not serve terminals")
	}
	p, err := tg.StartPTY(ctx, protocol.PTYOpen{Rows: rows, Cols: cols})
	if err != nil {
		return nil, guestError("terminal", err)
	}
	return p, nil
}
