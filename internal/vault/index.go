package vault

import (
	"context"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"time"
)

// index caches what each note's text says about it (tags, links), keyed by
// path and checked against the file's size and modification time, so that
// notes changed outside agentiso (by a person in Obsidian) are read again
// and unchanged ones are not.
type index struct {
	mu    sync.Mutex
	notes map[string]*noteInfo
}

// noteInfo is what the index knows of one note. It is never changed once
// made, so a snapshot may share it.
type noteInfo struct {
	size    int64
	modTime time.Time
	tags    []string
	links   []Link // unresolved
}

// snapshot is the index at one moment.
type snapshot struct {
	notes   map[string]*noteInfo
	paths   []string // sorted
	folders int
	res     *resolver
}

// analyze reads what the index keeps from a note's content.
func analyze(content []byte, size int64, modTime time.Time) *noteInfo {
	d := ParseDocument(content)
	info := &noteInfo{size: size, modTime: modTime, links: d.Links()}
	if t, err := d.Tags(); err == nil {
		info.tags = t.All()
	} else {
		info.tags = d.InlineTags()
	}
	return info
}

// refresh walks the vault, reads the notes that changed since the last
// walk, and returns a snapshot.
func (v *Vault) refresh(ctx context.Context) (*snapshot, error) {
	v.idx.mu.Lock()
	defer v.idx.mu.Unlock()
	seen := make(map[string]*noteInfo, len(v.idx.notes))
	folders := 0
	err := fs.WalkDir(v.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			if p == "." {
				return err
			}
			v.cfg.Logger.Warn("vault index: skipping unreadable entry", "path", p, "err", err)
			return nil
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			folders++
			return nil
		}
		if !d.Type().IsRegular() || !v.isNote(p) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if old := v.idx.notes[p]; old != nil && old.size == fi.Size() && old.modTime.Equal(fi.ModTime()) {
			seen[p] = old
			return nil
		}
		if fi.Size() > v.cfg.MaxNoteBytes {
			seen[p] = &noteInfo{size: fi.Size(), modTime: fi.ModTime()}
			return nil
		}
		content, err := v.root.ReadFile(p)
		if err != nil {
			v.cfg.Logger.Warn("vault index: skipping unreadable note", "path", p, "err", err)
			return nil
		}
		seen[p] = analyze(content, fi.Size(), fi.ModTime())
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.idx.notes = seen
	s := &snapshot{notes: seen, folders: folders}
	s.paths = make([]string, 0, len(seen))
	for p := range seen {
		s.paths = append(s.paths, p)
	}
	sort.Strings(s.paths)
	s.res = newResolver(s.paths, v.cfg.Extensions[0], v.isNote)
	return s, nil
}

// indexNote records a note just written through the vault, so the next
// refresh does not read it again.
func (v *Vault) indexNote(p string, content []byte) {
	if !v.isNote(p) {
		return
	}
	fi, err := v.root.Stat(p)
	if err != nil {
		return
	}
	info := analyze(content, fi.Size(), fi.ModTime())
	v.idx.mu.Lock()
	v.idx.notes[p] = info
	v.idx.mu.Unlock()
}

// forget drops a note from the index.
func (v *Vault) forget(p string) {
	v.idx.mu.Lock()
	delete(v.idx.notes, p)
	v.idx.mu.Unlock()
}

// backlinks returns the links in s that resolve to the note p.
func (s *snapshot) backlinks(p string) []Backlink {
	out := []Backlink{}
	for _, from := range s.paths {
		if from == p {
			continue
		}
		for _, l := range s.notes[from].links {
			if s.res.resolve(l.Target, from) == p {
				out = append(out, Backlink{Path: from, Line: l.Line, Target: l.Target})
			}
		}
	}
	return out
}
