package workspace

import (
	"context"
	"errors"
	"fmt"

	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/vm"
)

// StartedFunc learns that workspace id runs on a guest whose memory is not
// the one it had before: after workspace_start, and after a restore that
// booted it. Whatever the daemon keeps in a guest's memory only (the MCP
// bridge's token) must be given again. It runs after the workspace's lock
// is released, so it may act on the workspace.
type StartedFunc func(ctx context.Context, workspaceID string)

// OnStarted sets the function told of every (re)start. Call it before
// serving requests.
func (m *Manager) OnStarted(f StartedFunc) { m.onStarted.Store(&f) }

// started tells the OnStarted function that workspace id runs afresh.
func (m *Manager) started(ctx context.Context, id string) {
	if f := m.onStarted.Load(); f != nil && *f != nil {
		(*f)(context.WithoutCancel(ctx), id)
	}
}

// GuestReconnected is the vm runner's AfterReconnect: the channel of VM
// spec reached a guest again after its session died, perhaps a new agent
// that PID 1 started (vm.keepChannel). For a workspace's VM it is a start
// as far as what lives in guest memory only is concerned.
func (m *Manager) GuestReconnected(spec vm.Spec) {
	m.started(context.Background(), spec.ID)
}

// dropInstanceEnv removes from a fork's guest the persistent environment
// that belongs to the workspace whose memory it resumed (Options.InstanceEnv:
// the bridge's URL and token). It runs right after Renew, before the fork
// is configured, recorded running or handed to anyone.
func (m *Manager) dropInstanceEnv(ctx context.Context, v *vm.VM) error {
	if len(m.instanceEnv) == 0 {
		return nil
	}
	ops, ok := v.Channel().(guestOps)
	if !ok {
		return errors.New("guest channel does not support set_env")
	}
	if _, err := ops.SetEnv(ctx, protocol.SetEnv{Unset: m.instanceEnv}); err != nil {
		return fmt.Errorf("clearing the source's credentials in fork %s: %w", v.ID(), err)
	}
	return nil
}
