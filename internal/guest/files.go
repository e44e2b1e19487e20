package guest

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// defaultFileMode is the mode of a new file whose request gives none.
const defaultFileMode = 0o644

// writeFile receives an upload. Parents are created (0755). Unless it
// appends, the file is written beside its target and renamed over it, so
// nobody ever sees half of it. An error is returned as soon as it happens:
// the host stops sending when it reads the answer.
func (a *Agent) writeFile(st net.Conn, req *protocol.FileWrite) error {
	p := filepath.Clean(req.Path)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fsError("creating the parents of", p, err)
	}
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		return errdefs.Invalidf("writing %s: is a directory", p)
	}
	fill := func(f *os.File) error { return receive(st, f, p, req.Size) }
	if req.Append {
		return appendFile(p, req.Mode, fill)
	}
	return writeAtomic(p, replacementMode(p, req.Mode), fill)
}

// replacementMode is the mode for a file that replaces p: mode when given,
// else p's own (replacing a script keeps it executable), else the default.
func replacementMode(p string, mode uint32) uint32 {
	if mode != 0 {
		return mode
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return fileMode(fi)
	}
	return defaultFileMode
}

// receive copies an upload's Data messages to w until DataEnd. With size
// >= 0 the upload must be exactly size bytes.
func receive(st net.Conn, w io.Writer, p string, size int64) error {
	var got int64
	for {
		st.SetReadDeadline(time.Now().Add(requestTimeout))
		m, err := protocol.Read(st)
		if err != nil {
			if errors.Is(err, protocol.ErrMalformed) {
				return errdefs.Invalidf("upload of %s: %v", p, err)
			}
			return errdefs.With(errdefs.Unavailable, "upload of "+p+" ended early", err)
		}
		switch m := m.(type) {
		case *protocol.Data:
			got += int64(len(m.Bytes))
			if size >= 0 && got > size {
				return errdefs.Invalidf("upload of %s: more than the announced %d bytes", p, size)
			}
			if _, err := w.Write(m.Bytes); err != nil {
				return fsError("writing", p, err)
			}
		case *protocol.DataEnd:
			if size >= 0 && got != size {
				return errdefs.Invalidf("upload of %s: got %d bytes, announced %d", p, got, size)
			}
			return nil
		default:
			return errdefs.Invalidf("upload of %s: unexpected %s message", p, m.Type())
		}
	}
}

// writeAtomic creates or replaces p with what fill writes, with the given
// mode (umask does not apply). The data is synced before the rename, so
// after a crash p is either the old file or the new one.
func writeAtomic(p string, mode uint32, fill func(*os.File) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(p), ".agentiso-upload-*")
	if err != nil {
		return fsError("writing", p, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chmod(osMode(mode)); err != nil {
		return fsError("setting the mode of", p, err)
	}
	if err := f.Sync(); err != nil {
		return fsError("writing", p, err)
	}
	if err := f.Close(); err != nil {
		return fsError("writing", p, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return fsError("writing", p, err)
	}
	return nil
}

// appendFile appends what fill writes to p, creating it if needed; a mode
// given is applied, a new file without one gets the default.
func appendFile(p string, mode uint32, fill func(*os.File) error) error {
	created := false
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, defaultFileMode)
	if err != nil {
		return fsError("appending to", p, err)
	}
	defer f.Close()
	if mode == 0 && created {
		mode = defaultFileMode
	}
	if mode != 0 {
		if err := f.Chmod(osMode(mode)); err != nil {
			return fsError("setting the mode of", p, err)
		}
	}
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return fsError("appending to", p, err)
	}
	return nil
}

// readFile sends a file: FileInfo, Data chunks from Offset (at most Limit
// bytes when Limit > 0), DataEnd. It reads to the end rather than to the
// size stat reported, so files like those in /proc, whose size is 0, work.
func (a *Agent) readFile(st net.Conn, req *protocol.FileRead) error {
	p := filepath.Clean(req.Path)
	f, err := os.Open(p)
	if err != nil {
		return fsError("reading", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fsError("reading", p, err)
	}
	switch {
	case fi.IsDir():
		return errdefs.Invalidf("reading %s: is a directory", p)
	case !fi.Mode().IsRegular():
		return errdefs.Invalidf("reading %s: not a regular file", p)
	}
	if req.Offset > 0 {
		if _, err := f.Seek(req.Offset, io.SeekStart); err != nil {
			return fsError("reading", p, err)
		}
	}
	info := &protocol.FileInfo{Size: fi.Size(), Mode: fileMode(fi), MtimeNs: fi.ModTime().UnixNano()}
	if err := send(st, info); err != nil {
		return nil // the host is gone; nobody to tell
	}
	var r io.Reader = f
	if req.Limit > 0 {
		r = io.LimitReader(f, req.Limit)
	}
	buf := make([]byte, protocol.ChunkSize)
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if err := send(st, &protocol.Data{Bytes: buf[:n]}); err != nil {
				return nil
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fsError("reading", p, err)
		}
	}
	a.reply(st, &protocol.DataEnd{})
	return nil
}

// fileMode is fi's mode as chmod(2) takes it: permission bits with
// setuid, setgid and sticky.
func fileMode(fi fs.FileInfo) uint32 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Mode & 0o7777
	}
	return uint32(fi.Mode().Perm())
}

// osMode converts chmod(2) bits to an fs.FileMode for os.Chmod.
func osMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&syscall.S_ISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}
