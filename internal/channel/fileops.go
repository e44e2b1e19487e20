package channel

import (
	"context"
	"fmt"

	"github.com/agentiso/agentiso/internal/protocol"
)

// EditFile replaces the first occurrence of m.Old in a guest file with
// m.New.
func (c *Client) EditFile(ctx context.Context, m protocol.FileEdit) (*protocol.FileEdited, error) {
	return roundTrip[protocol.FileEdited](ctx, c, "editing "+m.Path, &m)
}

// Listing is a directory's entries as the guest listed them.
type Listing struct {
	Entries []protocol.DirEntry
	// Total counts every entry of the directory; Truncated is set when
	// Entries holds fewer.
	Total     int
	Truncated bool
}

// ListDir lists the directory at path, at most maxEntries entries. A guest
// that sends more breaks the protocol.
func (c *Client) ListDir(ctx context.Context, path string, maxEntries int) (*Listing, error) {
	st, err := c.open(ctx, "listing "+path)
	if err != nil {
		return nil, err
	}
	defer st.close()
	if err := st.send(&protocol.FileList{Path: path, MaxEntries: maxEntries}); err != nil {
		return nil, st.fail(err)
	}
	l := &Listing{}
	for {
		m, err := protocol.Read(st)
		if err != nil {
			return nil, st.fail(err)
		}
		switch m := m.(type) {
		case *protocol.DirEntries:
			if len(l.Entries)+len(m.Entries) > maxEntries {
				return nil, st.fail(fmt.Errorf("the guest listed more than the %d entries asked for: %w", maxEntries, protocol.ErrMalformed))
			}
			l.Entries = append(l.Entries, m.Entries...)
		case *protocol.ListEnd:
			l.Total, l.Truncated = m.Total, m.Truncated
			return l, nil
		case *protocol.Error:
			return nil, st.fail(m)
		default:
			return nil, st.fail(fmt.Errorf("unexpected %s message in a listing: %w", m.Type(), protocol.ErrMalformed))
		}
	}
}
