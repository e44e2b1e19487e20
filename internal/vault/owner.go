package vault

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// owner is a file's user and group.
type owner struct{ uid, gid int }

// ownerOf returns the owner of a file, or nil when the platform does not
// say.
func ownerOf(fi fs.FileInfo) *owner {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return &owner{int(st.Uid), int(st.Gid)}
	}
	return nil
}

// The daemon runs as root, and a vault may be a person's own folder (their
// Obsidian vault): what the daemon writes there must stay theirs. A note
// written over keeps its owner; a new note or folder gets the owner of the
// folder it is made in. Only root can give files away, so other users skip
// this (their files are theirs already).

// chownFile gives the open file f to o.
func chownFile(f *os.File, o *owner) error {
	if o == nil || os.Geteuid() != 0 {
		return nil
	}
	return f.Chown(o.uid, o.gid)
}

// mkdirs creates the missing folders of the clean path dir, each owned like
// its parent, and returns the owner of dir.
func (v *Vault) mkdirs(field, dir string) (*owner, error) {
	fi, err := v.root.Stat(".")
	if err != nil {
		return nil, fsError(field, dir, err)
	}
	o := ownerOf(fi)
	if dir == "." {
		return o, nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		p := path.Join(parts[:i+1]...)
		fi, err := v.root.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			o = ownerOf(fi)
			continue
		case err == nil:
			return nil, errdefs.Invalidf("%s: %s is not a folder", field, p)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fsError(field, p, err)
		}
		if err := v.root.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fsError(field, p, err)
		}
		if o != nil && os.Geteuid() == 0 {
			if err := v.root.Lchown(p, o.uid, o.gid); err != nil {
				return nil, fsError(field, p, err)
			}
		}
	}
	return o, nil
}
