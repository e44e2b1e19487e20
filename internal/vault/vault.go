// Package vault is agentiso's shared knowledge base: a directory of markdown
// notes on the host (an Obsidian-style vault) that agents read, write and
// search with the `vault` tool, and where teams keep their agent cards and
// task boards.
//
// Confinement: every path is opened through an os.Root on the vault
// directory, so `..`, absolute paths and symbolic links that lead outside it
// are refused by the walk itself, component by component, not by a string
// check that a race could defeat. Paths are also checked up front so the
// caller learns exactly what was wrong. Hidden names (a component starting
// with '.') are refused as well: they hold editor configuration (an
// .obsidian folder holds plugins that run code on the user's desktop),
// version control, and this package's temporary files.
//
// Atomicity: every write goes to a temporary file in the same directory,
// which is synced and renamed over the note, so a reader sees the old note or
// the new one, never half of one. Writes are serialised by one mutex, so a
// read-modify-write (append, frontmatter, tags, replace) never loses another
// write made through this package; reads take no lock.
//
// Notes are files whose extension is one of Config.Extensions ("md" by
// default). Their YAML frontmatter is edited in place (see Document), their
// tags and wikilinks are indexed for search filters and backlinks.
//
// From Go (teams, the dashboard): Read, Write, Update (an atomic
// read-modify-write), List, Delete, RemoveAll, Move; Frontmatter and
// SetFrontmatter, or ParseDocument / NewDocument to build and decode a note
// with frontmatter; Tags, Links, Backlinks; Search; Stats. Errors are
// errdefs classes whose public text names the parameter ("path: ...").
package vault

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Defaults for the fields of Config left zero.
const (
	DefaultMaxNoteBytes    = 10 << 20
	DefaultMaxPatternBytes = 1024
	DefaultSearchTimeout   = 10 * time.Second
)

// Config configures a Vault.
type Config struct {
	// Root is the vault directory. It must be absolute; it is created (mode
	// 0700) when missing.
	Root string
	// MaxNoteBytes bounds a note, read or written.
	MaxNoteBytes int64
	// MaxPatternBytes bounds a search query and a replace pattern
	// (finding M-17: an unbounded regex costs the host time and memory to
	// compile).
	MaxPatternBytes int
	// Extensions are the file name extensions, without the dot, of notes:
	// the files that search, tags, links and stats consider. The first one
	// is added to a wikilink target that has none.
	Extensions []string
	// SearchTimeout bounds one search; when it passes, the hits found so far
	// are returned and marked as incomplete.
	SearchTimeout time.Duration
	// Logger receives warnings about files the index could not read.
	Logger *slog.Logger
}

// Vault is an open vault directory. Its methods are safe for concurrent use.
type Vault struct {
	cfg  Config
	root *os.Root
	exts map[string]bool

	// mu serialises every change to the vault.
	mu  sync.Mutex
	idx index
}

// tmpPrefix starts the name of every temporary file: a hidden name, which no
// caller can address and no listing shows.
const tmpPrefix = ".agentiso-tmp-"

// staleTmpAge is how old a temporary file must be before Open removes it as
// left over by a crash.
const staleTmpAge = 10 * time.Minute

// Open opens (creating if needed) the vault directory of cfg.
func Open(cfg Config) (*Vault, error) {
	if cfg.Root == "" || !filepath.IsAbs(cfg.Root) {
		return nil, fmt.Errorf("vault root %q is not an absolute path", cfg.Root)
	}
	if cfg.MaxNoteBytes <= 0 {
		cfg.MaxNoteBytes = DefaultMaxNoteBytes
	}
	if cfg.MaxPatternBytes <= 0 {
		cfg.MaxPatternBytes = DefaultMaxPatternBytes
	}
	if len(cfg.Extensions) == 0 {
		cfg.Extensions = []string{"md"}
	}
	if cfg.SearchTimeout <= 0 {
		cfg.SearchTimeout = DefaultSearchTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	exts := make(map[string]bool, len(cfg.Extensions))
	for _, e := range cfg.Extensions {
		e = strings.TrimPrefix(e, ".")
		if e == "" || strings.ContainsAny(e, "/.") {
			return nil, fmt.Errorf("vault extension %q is not a file name extension", e)
		}
		exts[strings.ToLower(e)] = true
	}
	if err := os.MkdirAll(cfg.Root, 0o700); err != nil {
		return nil, fmt.Errorf("creating vault directory: %w", err)
	}
	root, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("opening vault directory: %w", err)
	}
	v := &Vault{cfg: cfg, root: root, exts: exts}
	v.idx.notes = map[string]*noteInfo{}
	v.removeStaleTemps()
	return v, nil
}

// Close releases the vault directory.
func (v *Vault) Close() error { return v.root.Close() }

// Dir is the vault directory on the host.
func (v *Vault) Dir() string { return v.cfg.Root }

// MaxNoteBytes is the largest note the vault reads or writes.
func (v *Vault) MaxNoteBytes() int64 { return v.cfg.MaxNoteBytes }

// isNote reports whether the vault path p names a note by its extension.
func (v *Vault) isNote(p string) bool {
	ext := strings.TrimPrefix(filepath.Ext(p), ".")
	return ext != "" && v.exts[strings.ToLower(ext)]
}

// removeStaleTemps deletes temporary files a crashed writer left behind.
func (v *Vault) removeStaleTemps() {
	cutoff := time.Now().Add(-staleTmpAge)
	err := fs.WalkDir(v.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		name := d.Name()
		if d.IsDir() && p != "." && strings.HasPrefix(name, ".") {
			return fs.SkipDir
		}
		if d.Type().IsRegular() && strings.HasPrefix(name, tmpPrefix) {
			if info, err := d.Info(); err == nil && info.ModTime().Before(cutoff) {
				if err := v.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
					v.cfg.Logger.Warn("removing stale vault temporary file", "path", p, "err", err)
				}
			}
		}
		return nil
	})
	if err != nil {
		v.cfg.Logger.Warn("sweeping vault temporary files", "err", err)
	}
}
