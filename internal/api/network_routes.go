package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Network is the part of the workspace manager the port forward and
// network policy routes call: the same calls as the port_forward and
// network_policy tools. A workspace's forwards and policy are in its info.
type Network interface {
	PortForward(ctx context.Context, c workspace.Caller, ref, action string, guestPort, hostPort int) (*workspace.PortForwardResult, error)
	NetworkPolicy(ctx context.Context, c workspace.Caller, ref string, req workspace.PolicyRequest) (*workspace.PolicyResult, error)
}

func (a *API) networkRoutes() {
	a.handleSub("POST /api/v1/workspaces/{ws}/port_forwards", "port_forward", "add", a.addPortForward)
	a.handleSub("DELETE /api/v1/workspaces/{ws}/port_forwards/{guest_port}", "port_forward", "remove", a.removePortForward)
	a.handle("PATCH /api/v1/workspaces/{ws}/network", "network_policy", a.setNetworkPolicy)
}

func (a *API) network() (Network, error) {
	if a.o.Network == nil {
		return nil, errdefs.Unavailablef("workspace networking is not enabled on this server")
	}
	return a.o.Network, nil
}

// PortForwardRequest is the body of POST /workspaces/{ws}/port_forwards;
// host_port 0 (or absent) picks a free one.
type PortForwardRequest struct {
	GuestPort int `json:"guest_port"`
	HostPort  int `json:"host_port,omitempty"`
}

func (a *API) addPortForward(_ http.ResponseWriter, r *http.Request) (any, error) {
	n, err := a.network()
	if err != nil {
		return nil, err
	}
	var in PortForwardRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	return n.PortForward(r.Context(), caller(r), r.PathValue("ws"), "add", in.GuestPort, in.HostPort)
}

func (a *API) removePortForward(_ http.ResponseWriter, r *http.Request) (any, error) {
	n, err := a.network()
	if err != nil {
		return nil, err
	}
	p, err := strconv.Atoi(r.PathValue("guest_port"))
	if err != nil {
		return nil, errdefs.Invalidf("guest_port: must be 1-65535")
	}
	return n.PortForward(r.Context(), caller(r), r.PathValue("ws"), "remove", p, 0)
}

// PolicyRequest is the body of PATCH /workspaces/{ws}/network: the fields
// to change; absent ones stay.
type PolicyRequest struct {
	AllowInternet *bool  `json:"allow_internet,omitempty"`
	AllowInterVM  *bool  `json:"allow_inter_vm,omitempty"`
	AllowedPorts  *[]int `json:"allowed_ports,omitempty"`
}

func (a *API) setNetworkPolicy(_ http.ResponseWriter, r *http.Request) (any, error) {
	n, err := a.network()
	if err != nil {
		return nil, err
	}
	var in PolicyRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.AllowInternet == nil && in.AllowInterVM == nil && in.AllowedPorts == nil {
		return nil, errdefs.Invalidf("body: give at least one of allow_internet, allow_inter_vm, allowed_ports")
	}
	return n.NetworkPolicy(r.Context(), caller(r), r.PathValue("ws"), workspace.PolicyRequest{
		AllowInternet: in.AllowInternet, AllowInterVM: in.AllowInterVM, AllowedPorts: in.AllowedPorts,
	})
}
