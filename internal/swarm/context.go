package swarm

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/vault"
)

// Context bounds.
const (
	// MaxSharedContextBytes bounds shared_context, and the notes that
	// vault_context gathers (L-15).
	MaxSharedContextBytes = 1 << 20
	// MaxVaultQueries bounds vault_context.
	MaxVaultQueries = 10
	// vaultSearchHits is how many matching lines one search contributes.
	vaultSearchHits = 20
)

// Where the context reaches the workers, and the variables that point
// there.
const (
	SharedContextPath = "/tmp/shared_context.md"
	VaultContextPath  = "/tmp/vault_context.md"
	SharedContextEnv  = "SHARED_CONTEXT"
	VaultContextEnv   = "VAULT_CONTEXT"
)

// VaultQuery is one entry of vault_context: a note to read whole, or a
// search whose matching lines are gathered.
type VaultQuery struct {
	// Kind is "search" (the default) or "read".
	Kind string
	// Query is the text to search for, or the note's path to read.
	Query string
}

// checkSharedContext refuses a shared context over the bound.
func checkSharedContext(s string) error {
	if len(s) > MaxSharedContextBytes {
		return errdefs.Invalidf("shared_context: %d bytes; at most %d (1 MiB)", len(s), MaxSharedContextBytes)
	}
	return nil
}

// vaultContext resolves the queries against the vault into one markdown
// document, at most MaxSharedContextBytes: every note is read, and every
// search run, before any worker is made, so a bad query fails the call
// while nothing exists yet.
func (s *Service) vaultContext(ctx context.Context, qs []VaultQuery) (string, error) {
	if len(qs) == 0 {
		return "", nil
	}
	if s.vault == nil {
		return "", errdefs.Unavailablef("vault_context: the vault is disabled on this host ([vault] enabled)")
	}
	if len(qs) > MaxVaultQueries {
		return "", errdefs.Invalidf("vault_context: at most %d queries", MaxVaultQueries)
	}
	var b strings.Builder
	b.WriteString("# Vault context\n")
	for i, q := range qs {
		field := fmt.Sprintf("vault_context[%d]", i)
		if q.Query == "" {
			return "", errdefs.Invalidf("%s.query: required", field)
		}
		switch q.Kind {
		case "read":
			n, err := s.vault.Read(ctx, q.Query)
			if err != nil {
				return "", renameField(err, "path", field+".query")
			}
			fmt.Fprintf(&b, "\n## %s\n\n%s\n", n.Path, strings.TrimRight(string(n.Content), "\n"))
		case "", "search":
			r, err := s.vault.Search(ctx, vault.SearchQuery{Query: q.Query, MaxResults: vaultSearchHits})
			if err != nil {
				return "", renameField(err, "query", field+".query")
			}
			fmt.Fprintf(&b, "\n## Search: %s\n\n", q.Query)
			if len(r.Hits) == 0 {
				b.WriteString("(no matches)\n")
			}
			for _, h := range r.Hits {
				fmt.Fprintf(&b, "- %s:%d: %s\n", h.Path, h.LineNumber, h.Line)
			}
		default:
			return "", errdefs.Invalidf("%s.kind: must be search or read", field)
		}
		if b.Len() > MaxSharedContextBytes {
			return "", errdefs.Invalidf("vault_context: the notes gathered exceed %d bytes (1 MiB); ask for fewer", MaxSharedContextBytes)
		}
	}
	return b.String(), nil
}
