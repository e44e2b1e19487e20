package mcpserver

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/workspace"
)

// Network is the part of the workspace manager the networking tools call.
type Network interface {
	PortForward(ctx context.Context, c workspace.Caller, ref, action string, guestPort, hostPort int) (*workspace.PortForwardResult, error)
	NetworkPolicy(ctx context.Context, c workspace.Caller, ref string, req workspace.PolicyRequest) (*workspace.PolicyResult, error)
}

type portForwardIn struct {
	WorkspaceID string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Action      string `json:"action" jsonschema:"add or remove"`
	GuestPort   int    `json:"guest_port" jsonschema:"TCP port inside the workspace"`
	HostPort    int    `json:"host_port,omitempty" jsonschema:"host port for add (1024-65535, not the daemon's own; default: a free one); ignored by remove"`
}

type networkPolicyIn struct {
	WorkspaceID   string `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	AllowInternet *bool  `json:"allow_internet,omitempty" jsonschema:"allow outbound internet access through NAT (DNS included); off blocks every egress"`
	AllowInterVM  *bool  `json:"allow_inter_vm,omitempty" jsonschema:"allow traffic with your other workspaces that allow it too"`
	AllowedPorts  *[]int `json:"allowed_ports,omitempty" jsonschema:"TCP ports of the workspace reachable from the host's configured interfaces (replaces the list)"`
}

func (t *tools) registerNetworkTools(s *mcp.Server) {
	if t.d.Network == nil {
		return
	}
	add(t, s, "port_forward",
		"Forward a host TCP port to a port of the workspace (action add), or stop forwarding it (remove). "+
			"The forward is reachable from the host's loopback and its configured interfaces only. Returns the host port.",
		func(in portForwardIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in portForwardIn) (*workspace.PortForwardResult, error) {
			return t.d.Network.PortForward(ctx, t.caller, in.WorkspaceID, in.Action, in.GuestPort, in.HostPort)
		})

	add(t, s, "network_policy",
		"Change a workspace's network policy: internet access, traffic with your other workspaces, inbound ports. "+
			"Omitted fields stay as they are. Takes effect at once, without restarting the workspace.",
		func(in networkPolicyIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in networkPolicyIn) (*workspace.PolicyResult, error) {
			return t.d.Network.NetworkPolicy(ctx, t.caller, in.WorkspaceID, workspace.PolicyRequest{
				AllowInternet: in.AllowInternet, AllowInterVM: in.AllowInterVM, AllowedPorts: in.AllowedPorts,
			})
		})
}
