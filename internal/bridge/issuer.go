package bridge

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/agentiso/agentiso/internal/workspace"
)

// The variables that carry the bridge to an agent inside a workspace. They
// are persistent exec environment, held in the guest agent's memory only
// (set_env), so every command the agent runs sees them and no file in the
// guest holds the token (L-7).
const (
	EnvURL   = "AGENTISO_BRIDGE_URL"
	EnvToken = "AGENTISO_BRIDGE_TOKEN"
)

// Guests is what the issuer needs of the workspace manager: a workspace's
// address, and its persistent exec environment.
type Guests interface {
	Info(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	SetEnv(ctx context.Context, c workspace.Caller, ref string, vars map[string]string, unset []string) (*workspace.EnvResult, error)
}

// Issuer issues tokens and delivers them to guests (team.Bridge).
type Issuer struct {
	Tokens *Tokens
	Guests Guests
	// URL is the endpoint as seen from inside a workspace.
	URL string
	// DefaultTools is the allowlist of a team that names none.
	DefaultTools []string
	// Scopable are the tools an allowlist may name.
	ScopableTools []string
	// OnRevoke, when set, learns of a revoked workspace (the server drops
	// its sessions).
	OnRevoke func(workspaceID string)
}

// deliverer is who delivers a token: the daemon, on behalf of the team.
var deliverer = workspace.Caller{Actor: "bridge", Admin: true}

// Grant issues workspaceID a new token for tools (nil: the default), bound
// to the workspace's current address, and puts it into the guest's memory
// over the host channel. The workspace's previous token stops working. On
// failure the new token is revoked too; the error never holds it.
func (i *Issuer) Grant(ctx context.Context, team, member, workspaceID, workspaceName string, tools []string) error {
	if tools == nil {
		tools = i.DefaultTools
	}
	w, err := i.Guests.Info(ctx, deliverer, workspaceID)
	if err != nil {
		i.Tokens.Revoke(workspaceID)
		return fmt.Errorf("finding the workspace of member %s: %w", member, err)
	}
	var addr netip.Addr
	if w.IP != "" {
		if addr, err = netip.ParseAddr(w.IP); err != nil {
			i.Tokens.Revoke(workspaceID)
			return fmt.Errorf("the address of member %s: %w", member, err)
		}
	}
	tok, err := i.Tokens.Issue(Grant{WorkspaceID: workspaceID, WorkspaceName: workspaceName, Team: team, Member: member, Tools: tools, Addr: addr})
	if err != nil {
		return err
	}
	_, err = i.Guests.SetEnv(ctx, deliverer, workspaceID, map[string]string{EnvURL: i.URL, EnvToken: tok.Reveal()}, nil)
	if err != nil {
		i.Tokens.Revoke(workspaceID)
		return fmt.Errorf("delivering the bridge token of member %s: %w", member, err)
	}
	return nil
}

// Revoke ends workspaceID's token.
func (i *Issuer) Revoke(workspaceID string) {
	i.Tokens.Revoke(workspaceID)
	if i.OnRevoke != nil {
		i.OnRevoke(workspaceID)
	}
}

// Scopable are the tools an allowlist may name.
func (i *Issuer) Scopable() []string { return i.ScopableTools }
