// Package bridge is the MCP bridge: a streamable-HTTP MCP endpoint for
// agents running inside workspaces. Each workspace that may use it gets its
// own bearer token (256 random bits, finding M-23) bound to that workspace,
// its team and an allowlist of tools (M-5). Tokens live in this process's
// memory only: they are never persisted on the host, never logged, not even
// a prefix (M-6), and reach the guest over the host channel as persistent
// exec environment held in the guest agent's memory, never on its disk
// (L-7). A daemon restart issues new tokens.
package bridge

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/netip"
	"sync"

	"github.com/agentiso/agentiso/internal/secret"
)

// TokenBytes is the random part of a token: 256 bits.
const TokenBytes = 32

// Grant is what a token lets its holder do.
type Grant struct {
	WorkspaceID   string
	WorkspaceName string
	// Team and Member are empty for a workspace in no team.
	Team, Member string
	// Tools is the allowlist.
	Tools []string
	// Addr is the workspace's address on the workspaces' network: the
	// token works only in requests from it. A copy of the token anywhere
	// else (in a fork that resumed the workspace's memory, or handed to a
	// peer) is refused: no other VM can send from this address (per-TAP
	// anti-spoofing). Zero only for a workspace without a network, which
	// cannot reach the bridge.
	Addr netip.Addr
}

// Tokens holds the live tokens, one per workspace. Lookups go by the
// token's SHA-256, so no comparison of the secret itself can leak it
// through its timing, and the map holds no usable token.
type Tokens struct {
	mu     sync.Mutex
	byHash map[[sha256.Size]byte]Grant
	// byWS is each workspace's current token hash.
	byWS map[string][sha256.Size]byte
}

// NewTokens returns an empty set.
func NewTokens() *Tokens {
	return &Tokens{byHash: map[[sha256.Size]byte]Grant{}, byWS: map[string][sha256.Size]byte{}}
}

// Issue makes a new token for g.WorkspaceID, replacing the workspace's
// previous one (which stops working at once).
func (t *Tokens) Issue(g Grant) (secret.Secret, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return secret.Secret{}, fmt.Errorf("making a bridge token: %w", err)
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(tok))
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.byWS[g.WorkspaceID]; ok {
		delete(t.byHash, old)
	}
	t.byHash[h] = g
	t.byWS[g.WorkspaceID] = h
	return secret.New(tok), nil
}

// Revoke ends workspace id's token.
func (t *Tokens) Revoke(workspaceID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h, ok := t.byWS[workspaceID]; ok {
		delete(t.byHash, h)
		delete(t.byWS, workspaceID)
	}
}

// Lookup returns the grant of token.
func (t *Tokens) Lookup(token string) (Grant, bool) {
	if len(token) != base64.RawURLEncoding.EncodedLen(TokenBytes) {
		return Grant{}, false
	}
	h := sha256.Sum256([]byte(token))
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.byHash[h]
	return g, ok
}
