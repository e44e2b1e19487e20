package api

import (
	"context"

	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

// nilWorkspaces has no workspaces at all.
type nilWorkspaces struct{}

func (nilWorkspaces) Create(context.Context, workspace.Caller, workspace.CreateRequest) (*workspace.Info, error) {
	return nil, nil
}
func (nilWorkspaces) Destroy(context.Context, workspace.Caller, string) error { return nil }
func (nilWorkspaces) Start(context.Context, workspace.Caller, string) (*workspace.Info, error) {
	return nil, nil
}
func (nilWorkspaces) Stop(context.Context, workspace.Caller, string) (*workspace.Info, error) {
	return nil, nil
}
func (nilWorkspaces) List(context.Context, workspace.Caller, string) ([]workspace.Info, error) {
	return nil, nil
}
func (nilWorkspaces) Info(context.Context, workspace.Caller, string) (*workspace.Info, error) {
	return nil, nil
}
func (nilWorkspaces) Logs(context.Context, workspace.Caller, string, string, int) (*workspace.Logs, error) {
	return nil, nil
}
func (nilWorkspaces) ExecStream(context.Context, workspace.Caller, string, workspace.ExecRequest, func(protocol.Stream, string)) (*workspace.ExecResult, error) {
	return nil, nil
}
func (nilWorkspaces) WriteFile(context.Context, workspace.Caller, string, string, []byte, uint32) error {
	return nil
}
func (nilWorkspaces) ReadFile(context.Context, workspace.Caller, string, string, int64, int64) ([]byte, int64, error) {
	return nil, 0, nil
}
func (nilWorkspaces) OpenTerminal(context.Context, workspace.Caller, string, int, int) (workspace.Terminal, error) {
	return nil, nil
}

type nilAudit struct{}

func (nilAudit) ListAudit(context.Context, state.AuditFilter) ([]state.AuditEntry, error) {
	return nil, nil
}
