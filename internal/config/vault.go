package config

import (
	"fmt"
	"path/filepath"
	"regexp"
	"time"
)

// Vault configures the shared markdown knowledge base (the `vault` tool).
type Vault struct {
	Enabled           bool     `toml:"enabled" comment:"Offer the vault tool."`
	Path              string   `toml:"path" comment:"The vault directory (an Obsidian vault works). Empty means <data_dir>/vault."`
	MaxNoteBytes      int64    `toml:"max_note_bytes" comment:"Largest note read or written."`
	MaxPatternBytes   int      `toml:"max_pattern_bytes" comment:"Longest search query or replace pattern (regular expressions use Go's RE2)."`
	Extensions        []string `toml:"extensions" comment:"File name extensions of notes: what search, tags, links and stats consider."`
	SearchTimeoutSecs int      `toml:"search_timeout_secs" comment:"Seconds one search may take; after that it returns the hits found so far."`
}

// Bounds of the vault settings.
const (
	// MaxVaultPatternBytes is the most vault.max_pattern_bytes may allow
	// (finding M-17: the pattern length is always bounded).
	MaxVaultPatternBytes = 4096
	maxVaultNoteBytes    = 64 << 20
)

var vaultExtension = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

func defaultVault() Vault {
	return Vault{
		Enabled:           true,
		Path:              "",
		MaxNoteBytes:      10 << 20,
		MaxPatternBytes:   1024,
		Extensions:        []string{"md"},
		SearchTimeoutSecs: 10,
	}
}

// VaultDir is the vault directory.
func (c Config) VaultDir() string {
	if c.Vault.Path != "" {
		return c.Vault.Path
	}
	return filepath.Join(c.Server.DataDir, "vault")
}

// SearchTimeout bounds one vault search.
func (v Vault) SearchTimeout() time.Duration { return secs(v.SearchTimeoutSecs) }

func (v Vault) validate(p *problems) {
	if v.Path != "" {
		p.absPath("vault.path", v.Path)
	}
	p.intRange("vault.max_note_bytes", v.MaxNoteBytes, 1<<10, maxVaultNoteBytes)
	p.intRange("vault.max_pattern_bytes", int64(v.MaxPatternBytes), 16, MaxVaultPatternBytes)
	p.intRange("vault.search_timeout_secs", int64(v.SearchTimeoutSecs), 1, 300)
	if len(v.Extensions) == 0 || len(v.Extensions) > 16 {
		p.addf("vault.extensions", "must list 1 to 16 extensions")
	}
	for i, e := range v.Extensions {
		if !vaultExtension.MatchString(e) {
			p.addf(fmt.Sprintf("vault.extensions[%d]", i), "%q is not a lower-case file name extension without the dot", e)
		}
	}
}
