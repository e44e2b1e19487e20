package channel

import (
	"context"
	"fmt"
	"sync"

	"github.com/agentiso/agentiso/internal/protocol"
)

// PTY is a program running on a terminal in the guest. Read and Wait
// belong to one goroutine; Write, Resize and Close may be called from
// others meanwhile.
type PTY struct {
	st *stream

	sendMu    sync.Mutex
	closeOnce sync.Once
}

// StartPTY starts req on a new terminal in the guest. ctx bounds the
// terminal's whole life. The PTY must be closed.
func (c *Client) StartPTY(ctx context.Context, req protocol.PTYOpen) (*PTY, error) {
	st, err := c.open(ctx, "opening a terminal")
	if err != nil {
		return nil, err
	}
	if err := st.send(&req); err != nil {
		st.close()
		return nil, st.fail(err)
	}
	return &PTY{st: st}, nil
}

// Read returns the next piece of terminal output. When the program has
// ended it returns nil data and its Exit.
func (p *PTY) Read() ([]byte, *protocol.Exit, error) {
	m, err := protocol.Read(p.st)
	if err != nil {
		return nil, nil, p.st.fail(err)
	}
	switch m := m.(type) {
	case *protocol.PTYOutput:
		return m.Data, nil, nil
	case *protocol.Exit:
		return nil, m, nil
	case *protocol.Error:
		return nil, nil, p.st.fail(m)
	}
	return nil, nil, p.st.fail(fmt.Errorf("unexpected %s message on a terminal: %w", m.Type(), protocol.ErrMalformed))
}

// Write sends input to the terminal, in chunks the protocol allows.
func (p *PTY) Write(b []byte) (int, error) {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	n := 0
	for len(b) > 0 {
		chunk := b[:min(len(b), protocol.ChunkSize)]
		if err := p.st.send(&protocol.PTYInput{Data: chunk}); err != nil {
			return n, p.st.fail(err)
		}
		n += len(chunk)
		b = b[len(chunk):]
	}
	return n, nil
}

// Resize changes the terminal's size.
func (p *PTY) Resize(rows, cols int) error {
	p.sendMu.Lock()
	defer p.sendMu.Unlock()
	if err := p.st.send(&protocol.PTYResize{Rows: rows, Cols: cols}); err != nil {
		return p.st.fail(err)
	}
	return nil
}

// Close hangs the terminal up: the guest ends its programs.
func (p *PTY) Close() error {
	p.closeOnce.Do(p.st.close)
	return nil
}
