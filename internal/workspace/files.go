package workspace

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// EditResult is what file_edit returns.
type EditResult struct {
	Path string `json:"path"`
	// Line is the 1-based line where the replaced text started.
	Line int `json:"line"`
	// Size is the file's new size in bytes.
	Size int64 `json:"size"`
}

// EditFile replaces the first exact occurrence of old in the file at path
// with new. The file is replaced atomically and keeps its mode; an old that
// does not occur is a NotFound error naming old_string, and nothing changes.
func (m *Manager) EditFile(ctx context.Context, c Caller, ref, path, old, new string) (*EditResult, error) {
	if err := checkGuestPath(path); err != nil {
		return nil, err
	}
	switch {
	case old == "":
		return nil, errdefs.Invalidf("old_string: required (the exact text to replace)")
	case len(old) > protocol.MaxEditStringBytes:
		return nil, errdefs.Invalidf("old_string: longer than %d bytes", protocol.MaxEditStringBytes)
	case len(new) > protocol.MaxEditStringBytes:
		return nil, errdefs.Invalidf("new_string: longer than %d bytes", protocol.MaxEditStringBytes)
	}
	_, ops, err := m.ops(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	res, err := ops.EditFile(ctx, protocol.FileEdit{Path: path, Old: []byte(old), New: []byte(new)})
	if err != nil {
		field := "path"
		if strings.HasPrefix(errdefs.Public(err), "old_string") {
			field = "old_string" // absent: the guest's message names it
		}
		return nil, opError(field, err)
	}
	return &EditResult{Path: path, Line: res.Line, Size: res.Size}, nil
}

// MaxListEntries is the most entries file_list returns.
const MaxListEntries = 2000

// DirEntry is one entry of a listing as tools show it.
type DirEntry struct {
	Name string `json:"name"`
	// Type is file, dir, symlink or other (devices, FIFOs, sockets).
	Type string `json:"type"`
	Size int64  `json:"size"`
	// Mode is the permission bits in octal, e.g. "0644".
	Mode  string    `json:"mode"`
	Mtime time.Time `json:"mtime"`
	// Target is a symlink's target.
	Target string `json:"target,omitempty"`
}

// Listing is what file_list returns.
type Listing struct {
	Path    string     `json:"path"`
	Entries []DirEntry `json:"entries"`
	// Total counts the directory's entries; Truncated is set when Entries
	// holds fewer (at most MaxListEntries).
	Total     int  `json:"total"`
	Truncated bool `json:"truncated"`
}

// ListDir lists the directory at path (not recursively), sorted by name.
// Entries describe themselves: a symlink shows its target, not the
// target's type and size.
func (m *Manager) ListDir(ctx context.Context, c Caller, ref, path string) (*Listing, error) {
	if err := checkGuestPath(path); err != nil {
		return nil, err
	}
	_, ops, err := m.ops(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	l, err := ops.ListDir(ctx, path, MaxListEntries)
	if err != nil {
		return nil, opError("path", err)
	}
	out := &Listing{Path: path, Entries: make([]DirEntry, 0, len(l.Entries)), Total: l.Total, Truncated: l.Truncated}
	for _, e := range l.Entries {
		out.Entries = append(out.Entries, DirEntry{
			Name: e.Name, Type: e.Type, Size: e.Size, Mode: fmt.Sprintf("%04o", e.Mode),
			Mtime: time.Unix(0, e.MtimeNs).UTC(), Target: e.Target,
		})
	}
	return out, nil
}
