package vault

import (
	"path"
	"regexp"
	"sort"
	"strings"
)

// Link is a wikilink ([[Target]], [[Target|alias]], [[Target#heading]],
// ![[Target]]) in a note.
type Link struct {
	// Target is the note named, as written, without heading or alias.
	Target string `json:"target"`
	// Line is the line of the note (from 1) that holds the link.
	Line int `json:"line"`
	// Path is the vault path of the note the link resolves to, empty when
	// no note matches.
	Path string `json:"path,omitempty"`
}

// Backlink is a link to a note from another note.
type Backlink struct {
	// Path is the note that holds the link.
	Path string `json:"path"`
	// Line is the line of that note (from 1) that holds the link.
	Line int `json:"line"`
	// Target is the link as written.
	Target string `json:"target"`
}

// wikilink matches [[target#heading|alias]]; the target is group 1.
var wikilink = regexp.MustCompile(`!?\[\[([^\[\]|#\n]*)(?:#[^\[\]|\n]*)?(?:\|[^\[\]\n]*)?\]\]`)

// Links returns the wikilinks of the note's body, outside code, unresolved.
func (d *Document) Links() []Link {
	links := []Link{}
	first := d.bodyLine()
	eachTextLine(d.body, func(n int, line string) {
		for _, m := range wikilink.FindAllStringSubmatch(line, -1) {
			if t := strings.TrimSpace(m[1]); t != "" {
				links = append(links, Link{Target: t, Line: first + n - 1})
			}
		}
	})
	return links
}

// resolver finds the note a wikilink names, as Obsidian does: a target with
// a folder is a path from the vault root; a bare name matches any note with
// that file name, preferring one in the linking note's folder, then the one
// with the shortest path. Matching ignores case when no exact match exists.
type resolver struct {
	ext    string              // added to a target without a note extension
	isNote func(string) bool   // reports a note extension
	exact  map[string]bool     // every note path
	lower  map[string]string   // lower-cased path -> path
	byBase map[string][]string // lower-cased file name -> paths, best first
}

func newResolver(paths []string, ext string, isNote func(string) bool) *resolver {
	r := &resolver{
		ext: ext, isNote: isNote, exact: map[string]bool{}, lower: map[string]string{},
		byBase: map[string][]string{},
	}
	for _, p := range paths {
		r.exact[p] = true
		lp := strings.ToLower(p)
		if _, ok := r.lower[lp]; !ok {
			r.lower[lp] = p
		}
		base := strings.ToLower(path.Base(p))
		r.byBase[base] = append(r.byBase[base], p)
	}
	for _, list := range r.byBase {
		sort.Slice(list, func(i, j int) bool {
			di, dj := strings.Count(list[i], "/"), strings.Count(list[j], "/")
			if di != dj {
				return di < dj
			}
			return list[i] < list[j]
		})
	}
	return r
}

// resolve returns the path of the note target names when linked from the
// note at from, or "".
func (r *resolver) resolve(target, from string) string {
	t := strings.TrimPrefix(strings.TrimSpace(target), "/")
	if t == "" || strings.Contains("/"+t+"/", "/../") {
		return ""
	}
	if !r.isNote(t) {
		t += "." + r.ext
	}
	if strings.Contains(t, "/") {
		t = path.Clean(t)
		if r.exact[t] {
			return t
		}
		return r.lower[strings.ToLower(t)]
	}
	cands := r.byBase[strings.ToLower(t)]
	if len(cands) == 0 {
		return ""
	}
	dir := path.Dir(from)
	best := ""
	for _, c := range cands {
		if path.Dir(c) != dir {
			continue
		}
		if path.Base(c) == t {
			return c
		}
		if best == "" {
			best = c
		}
	}
	if best != "" {
		return best
	}
	for _, c := range cands {
		if path.Base(c) == t {
			return c
		}
	}
	return cands[0]
}
