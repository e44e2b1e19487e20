package vault

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/agentiso/agentiso/internal/cleanup"
	"github.com/agentiso/agentiso/internal/errdefs"
)

// Note is a file of the vault as read.
type Note struct {
	// Path is the note's vault path, in canonical form.
	Path    string
	Content []byte
	Size    int64
	ModTime time.Time
}

// WriteMode says how Write combines new content with an existing note.
type WriteMode string

// The write modes.
const (
	// Overwrite replaces the note.
	Overwrite WriteMode = "overwrite"
	// Append adds the content at the end of the note.
	Append WriteMode = "append"
	// Prepend adds the content at the start of the note's body, after its
	// frontmatter block, so the frontmatter stays first.
	Prepend WriteMode = "prepend"
)

// WriteResult describes a note after a write.
type WriteResult struct {
	Path string
	// Size is the note's size after the write.
	Size int64
	// Created is set when the note did not exist before.
	Created bool
	// Changed is false when the write left the note as it was (and so did
	// not touch the file).
	Changed bool
}

// Entry is one file or folder of a listing.
type Entry struct {
	Path    string    `json:"path"`
	IsDir   bool      `json:"is_dir"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modified"`
}

// Listing is the result of List.
type Listing struct {
	Entries []Entry
	// Truncated is set when the folder holds more than MaxListEntries.
	Truncated bool
}

// MaxListEntries bounds one listing.
const MaxListEntries = 10000

// MoveResult is the result of Move.
type MoveResult struct {
	From, To string
	// Backlinks are the notes whose wikilinks named the note at its old
	// path: they are not rewritten, so the caller knows what to update.
	Backlinks []Backlink
}

// Stats summarises the vault.
type Stats struct {
	Notes     int
	Folders   int
	SizeBytes int64
	// Tags is the number of distinct tags (ignoring case).
	Tags int
	// Links is the number of wikilinks, Broken those that name no note.
	Links, Broken int
	// Recent are the most recently modified notes, newest first.
	Recent []Entry
}

// Read reads the file at p (any text file of the vault, not only notes).
func (v *Vault) Read(ctx context.Context, p string) (*Note, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := CleanPath("path", p, false)
	if err != nil {
		return nil, err
	}
	return v.read("path", p)
}

// read reads the clean path p, following symbolic links that stay inside
// the vault, refusing folders, files larger than MaxNoteBytes and binary
// data.
func (v *Vault) read(field, p string) (*Note, error) {
	f, err := v.root.Open(p)
	if err != nil {
		return nil, fsError(field, p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fsError(field, p, err)
	}
	switch {
	case fi.IsDir():
		return nil, errdefs.Invalidf("%s: %s is a folder", field, p)
	case !fi.Mode().IsRegular():
		return nil, errdefs.Invalidf("%s: %s is not a regular file", field, p)
	case fi.Size() > v.cfg.MaxNoteBytes:
		return nil, errdefs.Invalidf("%s: %s is %d bytes, more than the vault's limit of %d", field, p, fi.Size(), v.cfg.MaxNoteBytes)
	}
	data, err := io.ReadAll(io.LimitReader(f, v.cfg.MaxNoteBytes+1))
	if err != nil {
		return nil, fsError(field, p, err)
	}
	if int64(len(data)) > v.cfg.MaxNoteBytes {
		return nil, errdefs.Invalidf("%s: %s is more than the vault's limit of %d bytes", field, p, v.cfg.MaxNoteBytes)
	}
	if !isText(data) {
		return nil, errdefs.Invalidf("%s: %s holds binary data, not text", field, p)
	}
	return &Note{Path: p, Content: data, Size: int64(len(data)), ModTime: fi.ModTime()}, nil
}

// Write writes content to the note at p according to mode, creating it and
// its folders if needed. The note is replaced atomically.
func (v *Vault) Write(ctx context.Context, p string, content []byte, mode WriteMode) (*WriteResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch mode {
	case Overwrite, Append, Prepend:
	default:
		return nil, errdefs.Invalidf("mode: must be overwrite, append or prepend")
	}
	if int64(len(content)) > v.cfg.MaxNoteBytes {
		return nil, errdefs.Invalidf("content: %d bytes is more than the vault's limit of %d", len(content), v.cfg.MaxNoteBytes)
	}
	if !isText(content) {
		return nil, errdefs.Invalidf("content: must be UTF-8 text without NUL bytes")
	}
	p, err := CleanPath("path", p, false)
	if err != nil {
		return nil, err
	}
	return v.update("path", "content", p, func(old []byte, exists bool) ([]byte, error) {
		switch {
		case !exists || mode == Overwrite:
			return content, nil
		case mode == Append:
			return append(append([]byte{}, old...), content...), nil
		default:
			d := ParseDocument(old)
			d.SetBody(append(append([]byte{}, content...), d.Body()...))
			return d.Bytes(), nil
		}
	})
}

// Update changes the note at p atomically: fn gets its content (nil and
// false when it does not exist) and returns the new content. Returning the
// old content unchanged writes nothing. No other change made through this
// Vault interleaves with one Update, so fn may read other notes (Read, List
// and Search take no lock) to check, say, that a task's dependencies form no
// cycle, and rely on what it read. fn must not call a method that writes: it
// would wait for itself.
func (v *Vault) Update(ctx context.Context, p string, fn func(old []byte, exists bool) ([]byte, error)) (*WriteResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := CleanPath("path", p, false)
	if err != nil {
		return nil, err
	}
	return v.update("path", "content", p, func(old []byte, exists bool) ([]byte, error) {
		b, err := fn(old, exists)
		if err == nil && !isText(b) {
			return nil, errdefs.Invalidf("content: must be UTF-8 text without NUL bytes")
		}
		return b, err
	})
}

// update is the one read-modify-write path: under the write lock it reads
// the clean path p (field names it in errors), lets fn compute the new
// content (sizeField names what made it too large), and writes it
// atomically, keeping the file's permissions.
func (v *Vault) update(field, sizeField, p string, fn func(old []byte, exists bool) ([]byte, error)) (*WriteResult, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	var (
		old    []byte
		exists bool
		perm   fs.FileMode = 0o644
		own    *owner      // nil: that of the folder
	)
	fi, err := v.root.Lstat(p)
	switch {
	case err == nil:
		switch {
		case fi.IsDir():
			return nil, errdefs.Invalidf("%s: %s is a folder", field, p)
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, errdefs.Invalidf("%s: %s is a symbolic link; the vault does not write through links", field, p)
		case !fi.Mode().IsRegular():
			return nil, errdefs.Invalidf("%s: %s is not a regular file", field, p)
		}
		n, err := v.read(field, p)
		if err != nil {
			return nil, err
		}
		old, exists, perm, own = n.Content, true, fi.Mode().Perm(), ownerOf(fi)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fsError(field, p, err)
	}
	b, err := fn(old, exists)
	if err != nil {
		return nil, err
	}
	if exists && bytes.Equal(b, old) {
		return &WriteResult{Path: p, Size: int64(len(old))}, nil
	}
	if int64(len(b)) > v.cfg.MaxNoteBytes {
		return nil, errdefs.Invalidf("%s: the note would be %d bytes, more than the vault's limit of %d", sizeField, len(b), v.cfg.MaxNoteBytes)
	}
	if err := v.writeAtomic(field, p, b, perm, own); err != nil {
		return nil, err
	}
	v.indexNote(p, b)
	return &WriteResult{Path: p, Size: int64(len(b)), Created: !exists, Changed: true}, nil
}

// writeAtomic replaces the file at the clean path p with data: a temporary
// file in the same folder is written, synced and renamed over p, then the
// folder is synced, so that p holds the old content or the new, even across
// a crash. The file gets mode perm and owner own (nil: the folder's owner).
func (v *Vault) writeAtomic(field, p string, data []byte, perm fs.FileMode, own *owner) error {
	dir := path.Dir(p)
	dirOwner, err := v.mkdirs(field, dir)
	if err != nil {
		return err
	}
	if own == nil {
		own = dirOwner
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := path.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := v.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fsError(field, p, err)
	}
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() { _ = v.root.Remove(tmp) })
	_, err = f.Write(data)
	if err == nil {
		err = chownFile(f, own)
	}
	if err == nil {
		err = f.Chmod(perm) // not narrowed by the umask; after chown, which clears set-id bits
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fsError(field, p, err)
	}
	if err := v.root.Rename(tmp, p); err != nil {
		return fsError(field, p, err)
	}
	cu.Release()
	v.syncDir(dir)
	return nil
}

// syncDir makes a rename in dir durable; a failure only loses durability,
// so it is logged.
func (v *Vault) syncDir(dir string) {
	d, err := v.root.Open(dir)
	if err == nil {
		err = d.Sync()
		d.Close()
	}
	if err != nil {
		v.cfg.Logger.Warn("syncing vault folder", "path", dir, "err", err)
	}
}

// Delete removes the note (or empty folder) at p. A symbolic link is
// removed itself, never its target.
func (v *Vault) Delete(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := CleanPath("path", p, false)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, err := v.root.Lstat(p); err != nil {
		return fsError("path", p, err)
	}
	if err := v.root.Remove(p); err != nil {
		return fsError("path", p, err)
	}
	v.forget(p)
	v.syncDir(path.Dir(p))
	return nil
}

// RemoveAll removes the folder (or note) at p and everything below it, as
// a team's destroy does with its folder. A missing p is not an error.
func (v *Vault) RemoveAll(ctx context.Context, p string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := CleanPath("path", p, false)
	if err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if err := v.root.RemoveAll(p); err != nil {
		return fsError("path", p, err)
	}
	v.idx.mu.Lock()
	for q := range v.idx.notes {
		if q == p || strings.HasPrefix(q, p+"/") {
			delete(v.idx.notes, q)
		}
	}
	v.idx.mu.Unlock()
	v.syncDir(path.Dir(p))
	return nil
}

// Move renames the note at from to to, creating folders as needed. An
// existing note at to is replaced only when overwrite is set; otherwise the
// move is refused, atomically (a hard link that fails if to exists, then
// the old name removed).
func (v *Vault) Move(ctx context.Context, from, to string, overwrite bool) (*MoveResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	from, err := CleanPath("path", from, false)
	if err != nil {
		return nil, err
	}
	to, err = CleanPath("new_path", to, false)
	if err != nil {
		return nil, err
	}
	if from == to {
		return nil, errdefs.Invalidf("new_path: is the same as path")
	}
	snap, err := v.refresh(ctx)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	fi, err := v.root.Lstat(from)
	if err != nil {
		return nil, fsError("path", from, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, errdefs.Invalidf("path: %s is not a note file (folders and links are not moved)", from)
	}
	switch dst, err := v.root.Lstat(to); {
	case err == nil && dst.IsDir():
		return nil, errdefs.Invalidf("new_path: %s is a folder", to)
	case err == nil && dst.Mode()&fs.ModeSymlink != 0:
		return nil, errdefs.Invalidf("new_path: %s is a symbolic link; the vault does not write through links", to)
	case err == nil && !overwrite:
		return nil, errdefs.Conflictf("new_path: %s already exists; set overwrite to replace it", to)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fsError("new_path", to, err)
	}
	if _, err := v.mkdirs("new_path", path.Dir(to)); err != nil {
		return nil, err
	}
	if overwrite {
		err = v.root.Rename(from, to)
	} else if err = v.root.Link(from, to); err == nil {
		if err = v.root.Remove(from); err != nil {
			_ = v.root.Remove(to) // leave one name, the old one
			return nil, fsError("path", from, err)
		}
	}
	if err != nil {
		return nil, fsError("new_path", to, err)
	}
	v.syncDir(path.Dir(to))
	v.syncDir(path.Dir(from))
	v.idx.mu.Lock()
	if info := v.idx.notes[from]; info != nil && v.isNote(to) {
		v.idx.notes[to] = info
	}
	delete(v.idx.notes, from)
	v.idx.mu.Unlock()
	return &MoveResult{From: from, To: to, Backlinks: snap.backlinks(from)}, nil
}

// List lists the folder dir ("" or "." for the vault root): its files and
// folders, or with recursive everything below it. Hidden names are left
// out, and so are symbolic links that lead outside the vault.
func (v *Vault) List(ctx context.Context, dir string, recursive bool) (*Listing, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := CleanPath("path", dir, true)
	if err != nil {
		return nil, err
	}
	fi, err := v.root.Stat(dir)
	if err != nil {
		return nil, fsError("path", dir, err)
	}
	if !fi.IsDir() {
		return nil, errdefs.Invalidf("path: %s is not a folder", dir)
	}
	l := &Listing{Entries: []Entry{}}
	add := func(p string, d fs.DirEntry) bool {
		if len(l.Entries) == MaxListEntries {
			l.Truncated = true
			return false
		}
		var info fs.FileInfo
		var err error
		if d.Type()&fs.ModeSymlink != 0 {
			info, err = v.root.Stat(p) // where it leads, if that is inside
		} else {
			info, err = d.Info()
		}
		if err != nil {
			return true
		}
		e := Entry{Path: p, IsDir: info.IsDir(), ModTime: info.ModTime().UTC()}
		if !e.IsDir {
			e.Size = info.Size()
		}
		l.Entries = append(l.Entries, e)
		return true
	}
	if recursive {
		err = fs.WalkDir(v.root.FS(), dir, func(p string, d fs.DirEntry, err error) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err != nil || p == dir {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !add(p, d) {
				return fs.SkipAll
			}
			return nil
		})
	} else {
		var ents []fs.DirEntry
		ents, err = fs.ReadDir(v.root.FS(), dir)
		for _, d := range ents {
			if strings.HasPrefix(d.Name(), ".") {
				continue
			}
			if !add(path.Join(dir, d.Name()), d) {
				break
			}
		}
	}
	if err != nil {
		return nil, fsError("path", dir, err)
	}
	sort.Slice(l.Entries, func(i, j int) bool { return l.Entries[i].Path < l.Entries[j].Path })
	return l, nil
}

// Frontmatter returns the frontmatter of the note at p (nil when it has
// none).
func (v *Vault) Frontmatter(ctx context.Context, p string) (map[string]any, error) {
	n, err := v.Read(ctx, p)
	if err != nil {
		return nil, err
	}
	return ParseDocument(n.Content).Frontmatter()
}

// SetFrontmatter sets one frontmatter key of the existing note at p,
// changing only that key's lines.
func (v *Vault) SetFrontmatter(ctx context.Context, p, key string, value any) (*WriteResult, error) {
	return v.editDocument(ctx, p, "value", func(d *Document) error { return d.Set(key, value) })
}

// DeleteFrontmatter removes one frontmatter key of the note at p and
// reports whether it was there.
func (v *Vault) DeleteFrontmatter(ctx context.Context, p, key string) (bool, error) {
	var found bool
	_, err := v.editDocument(ctx, p, "key", func(d *Document) (err error) {
		found, err = d.Delete(key)
		return err
	})
	return found, err
}

// Tags returns the tags of the note at p.
func (v *Vault) Tags(ctx context.Context, p string) (Tags, error) {
	n, err := v.Read(ctx, p)
	if err != nil {
		return Tags{}, err
	}
	return ParseDocument(n.Content).Tags()
}

// AddTag adds tag to the frontmatter tags of the note at p and reports
// whether it was added (false: it was listed already).
func (v *Vault) AddTag(ctx context.Context, p, tag string) (bool, error) {
	var added bool
	_, err := v.editDocument(ctx, p, "tag", func(d *Document) (err error) {
		added, err = d.AddTag(tag)
		return err
	})
	return added, err
}

// RemoveTag removes tag from the frontmatter tags of the note at p and
// reports whether it was listed there.
func (v *Vault) RemoveTag(ctx context.Context, p, tag string) (bool, error) {
	var removed bool
	_, err := v.editDocument(ctx, p, "tag", func(d *Document) (err error) {
		removed, err = d.RemoveTag(tag)
		return err
	})
	return removed, err
}

// editDocument applies edit to the parsed existing note at p, atomically.
func (v *Vault) editDocument(ctx context.Context, p, sizeField string, edit func(*Document) error) (*WriteResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := CleanPath("path", p, false)
	if err != nil {
		return nil, err
	}
	return v.update("path", sizeField, p, func(old []byte, exists bool) ([]byte, error) {
		if !exists {
			return nil, errdefs.NotFoundf("path: %s does not exist", p)
		}
		d := ParseDocument(old)
		if err := edit(d); err != nil {
			return nil, err
		}
		return d.Bytes(), nil
	})
}

// Backlinks returns the wikilinks in other notes that lead to the note at p.
func (v *Vault) Backlinks(ctx context.Context, p string) ([]Backlink, error) {
	p, err := CleanPath("path", p, false)
	if err != nil {
		return nil, err
	}
	s, err := v.refresh(ctx)
	if err != nil {
		return nil, err
	}
	return s.backlinks(p), nil
}

// Links returns the wikilinks of the note at p, each with the note it
// resolves to.
func (v *Vault) Links(ctx context.Context, p string) ([]Link, error) {
	n, err := v.Read(ctx, p)
	if err != nil {
		return nil, err
	}
	s, err := v.refresh(ctx)
	if err != nil {
		return nil, err
	}
	links := ParseDocument(n.Content).Links()
	for i := range links {
		links[i].Path = s.res.resolve(links[i].Target, n.Path)
	}
	return links, nil
}

// Stats summarises the vault, with the recent most recently modified
// notes.
func (v *Vault) Stats(ctx context.Context, recent int) (*Stats, error) {
	s, err := v.refresh(ctx)
	if err != nil {
		return nil, err
	}
	st := &Stats{Notes: len(s.paths), Folders: s.folders, Recent: []Entry{}}
	var tags []string
	seen := map[string]bool{}
	for _, p := range s.paths {
		info := s.notes[p]
		st.SizeBytes += info.size
		for _, t := range info.tags {
			if k := strings.ToLower(t); !seen[k] {
				seen[k] = true
				tags = append(tags, t)
			}
		}
		for _, l := range info.links {
			st.Links++
			if s.res.resolve(l.Target, p) == "" {
				st.Broken++
			}
		}
		st.Recent = append(st.Recent, Entry{Path: p, Size: info.size, ModTime: info.modTime.UTC()})
	}
	st.Tags = len(tags)
	sort.SliceStable(st.Recent, func(i, j int) bool { return st.Recent[i].ModTime.After(st.Recent[j].ModTime) })
	if len(st.Recent) > recent {
		st.Recent = st.Recent[:max(recent, 0)]
	}
	return st, nil
}

// isText reports whether b is UTF-8 text without NUL bytes.
func isText(b []byte) bool {
	return bytes.IndexByte(b, 0) < 0 && utf8.Valid(b)
}
