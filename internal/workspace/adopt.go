package workspace

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/session"
	"github.com/agentiso/agentiso/internal/state"
)

// AdoptResult is what workspace_adopt returns.
type AdoptResult struct {
	// Adopted are the workspaces that now belong to the caller.
	Adopted []Info `json:"adopted"`
	// Skipped are orphans that adopting all left where they were, and why.
	Skipped []AdoptSkip `json:"skipped"`
	Count   int         `json:"count"`
}

// AdoptSkip is an orphan that was not adopted.
type AdoptSkip struct {
	WorkspaceID string `json:"workspace_id"`
	Name        string `json:"name"`
	Reason      string `json:"reason"`
}

// policy is who may see and take whose workspaces.
func (m *Manager) policy() session.Policy {
	return session.Policy{StaleAfter: m.limits.StaleSession}
}

// Adopt makes orphans c's own: the workspace ref, or with ref empty every
// orphan c may see. An orphan's session has ended, or with force, has been
// silent for longer than the stale threshold (then the takeover is
// refused without force). Each adoption is checked against c's quotas in
// the transaction that changes the owner, so no two adoptions or creates
// can together exceed them.
func (m *Manager) Adopt(ctx context.Context, c Caller, ref string, force bool) (*AdoptResult, error) {
	var ws []state.Workspace
	var skipped []AdoptSkip
	var err error
	if ref != "" {
		var w state.Workspace
		w, err = m.adoptOne(ctx, c, ref, force)
		ws = append(ws, w)
	} else {
		ws, skipped, err = m.adoptAll(ctx, c, force)
	}
	if err != nil {
		return nil, err
	}
	// Which workspaces may talk to each other follows their owners.
	if err := m.syncRules(ctx); err != nil {
		return nil, err
	}
	res := &AdoptResult{Adopted: make([]Info, 0, len(ws)), Skipped: skipped, Count: len(ws)}
	if res.Skipped == nil {
		res.Skipped = []AdoptSkip{}
	}
	for _, w := range ws {
		res.Adopted = append(res.Adopted, *m.info(ctx, w, true))
	}
	return res, nil
}

func (m *Manager) adoptOne(ctx context.Context, c Caller, ref string, force bool) (state.Workspace, error) {
	var adopted state.Workspace
	var from string
	err := m.store.Tx(ctx, func(tx *state.Tx) error {
		w, err := lookup(ctx, tx, ref)
		if err != nil {
			return err
		}
		if w.Owner == c.SessionID {
			return errdefs.Conflictf("workspace_id: the workspace already belongs to this session")
		}
		owner, err := tx.GetSession(ctx, w.Owner)
		if err != nil {
			return err
		}
		switch m.policy().MayAdopt(c.UID, owner, force, time.Now()) {
		case session.Hidden:
			return errNoWorkspace()
		case session.NeedsForce:
			return errdefs.Conflictf("workspace_id: %s", needsForce(m.limits.StaleSession))
		}
		if err := adoptable(w); err != nil {
			return errdefs.Conflictf("workspace_id: %v", err)
		}
		used, err := tx.UsageOf(ctx, c.SessionID)
		if err != nil {
			return err
		}
		if err := m.quotas().Check(used, usageOfOne(w)); err != nil {
			return err
		}
		from = w.Owner
		adopted, err = tx.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
			r.Owner = c.SessionID
			return nil
		})
		return err
	})
	if err != nil {
		return state.Workspace{}, err
	}
	m.log.Info("workspace adopted", "workspace", adopted.ID, "from_session", from, "session", c.SessionID, "force", force)
	return adopted, nil
}

func (m *Manager) adoptAll(ctx context.Context, c Caller, force bool) ([]state.Workspace, []AdoptSkip, error) {
	var adopted []state.Workspace
	var skipped []AdoptSkip
	err := m.store.Tx(ctx, func(tx *state.Tx) error {
		adopted, skipped = nil, nil
		all, err := tx.ListWorkspaces(ctx, state.WorkspaceFilter{})
		if err != nil {
			return err
		}
		used, err := tx.UsageOf(ctx, c.SessionID)
		if err != nil {
			return err
		}
		owners := map[string]state.Session{}
		now := time.Now()
		for _, w := range all {
			if w.Owner == c.SessionID {
				continue
			}
			owner, ok := owners[w.Owner]
			if !ok {
				if owner, err = tx.GetSession(ctx, w.Owner); err != nil {
					return err
				}
				owners[w.Owner] = owner
			}
			skip := func(reason string) {
				skipped = append(skipped, AdoptSkip{WorkspaceID: w.ID, Name: w.Name, Reason: reason})
			}
			switch m.policy().MayAdopt(c.UID, owner, force, now) {
			case session.Hidden:
				continue
			case session.NeedsForce:
				skip(needsForce(m.limits.StaleSession))
				continue
			}
			if err := adoptable(w); err != nil {
				skip(err.Error())
				continue
			}
			add := usageOfOne(w)
			if err := m.quotas().Check(used, add); err != nil {
				skip(errdefs.Public(err))
				continue
			}
			w, err := tx.UpdateWorkspace(ctx, w.ID, func(r *state.Workspace) error {
				r.Owner = c.SessionID
				return nil
			})
			if err != nil {
				return err
			}
			used = used.Add(add)
			adopted = append(adopted, w)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, w := range adopted {
		m.log.Info("workspace adopted", "workspace", w.ID, "session", c.SessionID, "force", force)
	}
	return adopted, skipped, nil
}

// orphans returns the workspaces of other sessions that c may see and
// adopt, in the given states (all if none): those whose session ended or
// went stale, of c's own user unless c is root. workspace_list shows them
// with owned false, so an agent can find its work again after a reconnect.
func (m *Manager) orphans(ctx context.Context, c Caller, states []state.WorkspaceState) ([]state.Workspace, error) {
	all, err := m.store.ListWorkspaces(ctx, state.WorkspaceFilter{States: states})
	if err != nil {
		return nil, err
	}
	visible := map[string]bool{}
	now := time.Now()
	var out []state.Workspace
	for _, w := range all {
		if w.Owner == c.SessionID {
			continue
		}
		v, ok := visible[w.Owner]
		if !ok {
			owner, err := m.store.GetSession(ctx, w.Owner)
			if err != nil {
				return nil, err
			}
			v = m.policy().Visible(c.UID, owner, now)
			visible[w.Owner] = v
		}
		if v {
			out = append(out, w)
		}
	}
	return out, nil
}

// adoptable refuses a workspace in the middle of being made or removed.
func adoptable(w state.Workspace) error {
	switch w.State {
	case state.WorkspaceCreating, state.WorkspaceDestroying:
		return fmt.Errorf("the workspace is %s; adopt it when that has finished", w.State)
	}
	return nil
}

func needsForce(stale time.Duration) string {
	return fmt.Sprintf("its session has been silent for over %ds but has not ended; pass force: true to take the workspace over",
		int(stale/time.Second))
}

func usageOfOne(w state.Workspace) state.Usage {
	return state.Usage{Workspaces: 1, MemoryMB: w.MemoryMB, DiskGB: w.DiskGB}
}

// workspaceGetter is what both a Store and a Tx offer to find a workspace.
type workspaceGetter interface {
	GetWorkspace(ctx context.Context, id string) (state.Workspace, error)
	GetWorkspaceByName(ctx context.Context, name string) (state.Workspace, error)
}

// lookup finds the workspace ref (an ID or a name), whoever owns it. Not
// found is the one answer of errNoWorkspace (finding L-16).
func lookup(ctx context.Context, g workspaceGetter, ref string) (state.Workspace, error) {
	if ref == "" {
		return state.Workspace{}, errdefs.Invalidf("workspace_id: required")
	}
	var w state.Workspace
	var err error
	if _, perr := uuid.Parse(ref); perr == nil {
		w, err = g.GetWorkspace(ctx, ref)
	} else {
		w, err = g.GetWorkspaceByName(ctx, ref)
	}
	if errdefs.Is(err, errdefs.NotFound) {
		return state.Workspace{}, errNoWorkspace()
	}
	return w, err
}
