package guest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sort"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// maxEditFileBytes bounds the file file_edit rewrites: it is read whole
// into memory.
const maxEditFileBytes = 32 << 20

// editFile replaces the first occurrence of req.Old in a file. A symlink
// is followed, so its target is edited, not replaced by a regular file. The
// file is replaced atomically with its mode kept; edits are serialised, so
// two of them on one file never lose one another's change.
func (a *Agent) editFile(req *protocol.FileEdit) (*protocol.FileEdited, error) {
	a.editMu.Lock()
	defer a.editMu.Unlock()
	p := filepath.Clean(req.Path)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, fsError("editing", p, err)
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, fsError("editing", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fsError("editing", p, err)
	}
	switch {
	case fi.IsDir():
		return nil, errdefs.Invalidf("editing %s: is a directory", p)
	case !fi.Mode().IsRegular():
		return nil, errdefs.Invalidf("editing %s: not a regular file", p)
	case fi.Size() > maxEditFileBytes:
		return nil, errdefs.Invalidf("editing %s: %d bytes is more than file_edit handles (%d); use file_transfer", p, fi.Size(), maxEditFileBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxEditFileBytes+1))
	if err != nil {
		return nil, fsError("editing", p, err)
	}
	if len(data) > maxEditFileBytes {
		return nil, errdefs.Invalidf("editing %s: more than file_edit handles (%d bytes); use file_transfer", p, maxEditFileBytes)
	}
	i := bytes.Index(data, req.Old)
	if i < 0 {
		return nil, errdefs.NotFoundf("old_string: not found in %s (it must match exactly, whitespace included)", p)
	}
	err = writeAtomic(real, fileMode(fi), func(w *os.File) error {
		for _, part := range [][]byte{data[:i], req.New, data[i+len(req.Old):]} {
			if _, err := w.Write(part); err != nil {
				return fsError("writing", p, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &protocol.FileEdited{
		Line: 1 + bytes.Count(data[:i], []byte("\n")),
		Size: int64(len(data) - len(req.Old) + len(req.New)),
	}, nil
}

// listDir sends the entries of a directory: DirEntries batches, sorted by
// name, then ListEnd with the directory's total. Of a directory with more
// than MaxEntries entries, the first MaxEntries read are sent (in name
// order among themselves); names are read in batches, so a huge directory
// costs no more memory than that.
func (a *Agent) listDir(st net.Conn, req *protocol.FileList) error {
	p := filepath.Clean(req.Path)
	f, err := os.Open(p)
	if err != nil {
		return fsError("listing", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fsError("listing", p, err)
	}
	if !fi.IsDir() {
		return errdefs.Invalidf("listing %s: not a directory", p)
	}
	var names []string
	total := 0
	for {
		batch, err := f.Readdirnames(1024)
		total += len(batch)
		if room := req.MaxEntries - len(names); room > 0 {
			names = append(names, batch[:min(room, len(batch))]...)
		}
		if errors.Is(err, io.EOF) || (err == nil && len(batch) == 0) {
			break
		}
		if err != nil {
			return fsError("listing", p, err)
		}
	}
	sort.Strings(names)

	var batch protocol.DirEntries
	batchBytes, sent := 0, 0
	flush := func() error {
		if len(batch.Entries) == 0 {
			return nil
		}
		err := send(st, &batch)
		batch.Entries, batchBytes = batch.Entries[:0], 0
		return err
	}
	for _, name := range names {
		e, ok := dirEntry(p, name)
		if !ok {
			continue // gone since it was listed
		}
		if n := len(e.Name) + len(e.Target); batchBytes+n > protocol.MaxListBatchBytes || len(batch.Entries) == protocol.MaxListBatchEntries {
			if err := flush(); err != nil {
				return nil // the host is gone
			}
		}
		batch.Entries = append(batch.Entries, e)
		batchBytes += len(e.Name) + len(e.Target)
		sent++
	}
	if err := flush(); err != nil {
		return nil
	}
	a.reply(st, &protocol.ListEnd{Total: total, Truncated: sent < total})
	return nil
}

// dirEntry describes dir/name itself (a symlink, not its target).
func dirEntry(dir, name string) (protocol.DirEntry, bool) {
	full := filepath.Join(dir, name)
	fi, err := os.Lstat(full)
	if err != nil {
		return protocol.DirEntry{}, false
	}
	e := protocol.DirEntry{Name: name, Size: fi.Size(), Mode: fileMode(fi), MtimeNs: fi.ModTime().UnixNano()}
	switch m := fi.Mode(); {
	case m.IsRegular():
		e.Type = protocol.EntryFile
	case m.IsDir():
		e.Type = protocol.EntryDir
	case m&fs.ModeSymlink != 0:
		e.Type = protocol.EntrySymlink
		e.Target, _ = os.Readlink(full)
	default:
		e.Type = protocol.EntryOther
	}
	return e, true
}
