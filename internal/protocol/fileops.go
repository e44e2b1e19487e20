package protocol

import (
	"errors"
	"fmt"
)

// File operations beyond whole-file transfer: an in-place edit and a
// directory listing.

// The message types of file operations.
const (
	TypeFileEdit   Type = "file_edit"   // -> FileEdited
	TypeFileEdited Type = "file_edited" //
	TypeFileList   Type = "file_list"   // -> DirEntries*, ListEnd
	TypeDirEntries Type = "dir_entries" //
	TypeListEnd    Type = "list_end"    //
)

// Limits of file operations.
const (
	// MaxEditStringBytes bounds FileEdit's Old and New. They travel as
	// base64 (4/3 of their size), so both fit one frame.
	MaxEditStringBytes = 256 << 10
	// MaxListEntries bounds FileList.MaxEntries.
	MaxListEntries = 10000
	// MaxListBatchBytes bounds the names and link targets in one DirEntries
	// message, and MaxListBatchEntries its entries: JSON escaping can grow
	// names sixfold, and each entry adds its fields; both together stay
	// well inside MaxFrameSize.
	MaxListBatchBytes   = 96 << 10
	MaxListBatchEntries = 512
)

// FileEdit replaces the first occurrence of Old in the file at Path with
// New. The file is replaced atomically and keeps its mode; a symlink is
// followed, so its target is edited. The guest answers FileEdited, or an
// Error of class not_found when Old does not occur.
type FileEdit struct {
	Path string `json:"path"`
	Old  []byte `json:"old"`
	New  []byte `json:"new"`
}

func (m *FileEdit) validate() error {
	if err := checkGuestPath("path", m.Path); err != nil {
		return err
	}
	switch {
	case len(m.Old) == 0:
		return errors.New("old_string: must not be empty")
	case len(m.Old) > MaxEditStringBytes:
		return fmt.Errorf("old_string: longer than %d bytes", MaxEditStringBytes)
	case len(m.New) > MaxEditStringBytes:
		return fmt.Errorf("new_string: longer than %d bytes", MaxEditStringBytes)
	}
	return nil
}

// FileEdited answers FileEdit.
type FileEdited struct {
	// Line is the 1-based line on which the replaced text started.
	Line int `json:"line"`
	// Size is the file's new size in bytes.
	Size int64 `json:"size"`
}

// FileList asks for the entries of the directory at Path, at most
// MaxEntries of them, sorted by name. The guest answers with DirEntries
// messages and a ListEnd.
type FileList struct {
	Path       string `json:"path"`
	MaxEntries int    `json:"max_entries"`
}

func (m *FileList) validate() error {
	if err := checkGuestPath("path", m.Path); err != nil {
		return err
	}
	if m.MaxEntries <= 0 || m.MaxEntries > MaxListEntries {
		return fmt.Errorf("max_entries: must be 1..%d", MaxListEntries)
	}
	return nil
}

// The entry types of DirEntry.Type.
const (
	EntryFile    = "file"
	EntryDir     = "dir"
	EntrySymlink = "symlink"
	EntryOther   = "other" // devices, FIFOs, sockets
)

// DirEntry is one entry of a directory. Size, Mode and MtimeNs describe the
// entry itself (a symlink, not its target).
type DirEntry struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Size    int64  `json:"size"`
	Mode    uint32 `json:"mode"`
	MtimeNs int64  `json:"mtime_ns"`
	// Target is a symlink's target.
	Target string `json:"target,omitempty"`
}

// DirEntries is a batch of a directory's entries.
type DirEntries struct {
	Entries []DirEntry `json:"entries"`
}

func (m *DirEntries) validate() error {
	for i, e := range m.Entries {
		switch e.Type {
		case EntryFile, EntryDir, EntrySymlink, EntryOther:
		default:
			return fmt.Errorf("entries[%d].type: unknown type %q", i, e.Type)
		}
		if e.Name == "" {
			return fmt.Errorf("entries[%d].name: must not be empty", i)
		}
	}
	return nil
}

// ListEnd ends a listing. Total counts every entry of the directory;
// Truncated is set when fewer than Total were sent.
type ListEnd struct {
	Total     int  `json:"total"`
	Truncated bool `json:"truncated"`
}

func (*FileEdit) Type() Type   { return TypeFileEdit }
func (*FileEdited) Type() Type { return TypeFileEdited }
func (*FileList) Type() Type   { return TypeFileList }
func (*DirEntries) Type() Type { return TypeDirEntries }
func (*ListEnd) Type() Type    { return TypeListEnd }
