package state

import (
	"strings"
	"sync"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestSnapshotLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s)
	w := newWorkspace(t, s, owner.ID, "snap-ws")
	other := newWorkspace(t, s, owner.ID, "other-ws")

	a, err := s.CreateSnapshot(ctx, Snapshot{WorkspaceID: w.ID, Name: "a", Layer: "L1", Memory: true})
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == "" || a.State != SnapshotCreating || a.CreatedAt.IsZero() {
		t.Fatalf("CreateSnapshot = %+v, want an id, state creating and a creation time", a)
	}
	if err := s.FinishSnapshot(ctx, a.ID, 4096, 70<<20); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSnapshot(ctx, w.ID, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.State != SnapshotReady || got.DiskBytes != 4096 || got.MemoryBytes != 70<<20 || !got.Memory || got.Layer != "L1" {
		t.Fatalf("after FinishSnapshot: %+v", got)
	}
	if !got.CreatedAt.Equal(a.CreatedAt) {
		t.Errorf("created_at %v, want %v", got.CreatedAt, a.CreatedAt)
	}

	// Names are unique per workspace, not across workspaces.
	_, err = s.CreateSnapshot(ctx, Snapshot{WorkspaceID: w.ID, Name: "a", Layer: "L2"})
	wantClass(t, err, errdefs.Conflict)
	if !strings.HasPrefix(errdefs.Public(err), "name:") {
		t.Errorf("duplicate name error %q does not name the field", errdefs.Public(err))
	}
	if _, err := s.CreateSnapshot(ctx, Snapshot{WorkspaceID: other.ID, Name: "a", Layer: "L3"}); err != nil {
		t.Fatalf("the same name in another workspace: %v", err)
	}
	if _, err := s.CreateSnapshot(ctx, Snapshot{WorkspaceID: w.ID, Name: "b", Layer: "L2"}); err != nil {
		t.Fatal(err)
	}

	list, err := s.ListSnapshots(ctx, w.ID)
	if err != nil || len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("ListSnapshots = %+v, %v; want a, b oldest first", list, err)
	}
	all, err := s.ListSnapshots(ctx, "")
	if err != nil || len(all) != 3 {
		t.Fatalf("ListSnapshots(all) = %d, %v; want 3", len(all), err)
	}

	if err := s.DeleteSnapshot(ctx, list[1].ID); err != nil {
		t.Fatal(err)
	}
	wantClass(t, s.DeleteSnapshot(ctx, list[1].ID), errdefs.NotFound)
	_, err = s.GetSnapshot(ctx, w.ID, "b")
	wantClass(t, err, errdefs.NotFound)

	// A workspace's snapshots go with it.
	if err := s.DeleteWorkspace(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	if left, _ := s.ListSnapshots(ctx, w.ID); len(left) != 0 {
		t.Errorf("snapshots outlived their workspace: %+v", left)
	}
	if left, _ := s.ListSnapshots(ctx, other.ID); len(left) != 1 {
		t.Errorf("deleting one workspace removed another's snapshots: %+v", left)
	}
}

func TestSnapshotValidation(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s)
	w := newWorkspace(t, s, owner.ID, "v-ws")
	for _, tc := range []struct {
		snap  Snapshot
		class errdefs.Class
		field string
	}{
		{Snapshot{WorkspaceID: w.ID, Name: "", Layer: "L"}, errdefs.Invalid, "name"},
		{Snapshot{WorkspaceID: w.ID, Name: "../x", Layer: "L"}, errdefs.Invalid, "name"},
		{Snapshot{WorkspaceID: w.ID, Name: "ok"}, errdefs.Invalid, "layer"},
		{Snapshot{WorkspaceID: "", Name: "ok", Layer: "L"}, errdefs.Invalid, "workspace_id"},
		{Snapshot{WorkspaceID: "00000000-0000-0000-0000-000000000000", Name: "ok", Layer: "L"}, errdefs.NotFound, "workspace_id"},
	} {
		_, err := s.CreateSnapshot(ctx, tc.snap)
		if !errdefs.Is(err, tc.class) || !strings.HasPrefix(errdefs.Public(err), tc.field) {
			t.Errorf("CreateSnapshot(%+v) = %v; want %v naming %s", tc.snap, err, tc.class, tc.field)
		}
	}
	if n, _ := s.ListSnapshots(ctx, w.ID); len(n) != 0 {
		t.Errorf("refused snapshots were stored: %+v", n)
	}
}

// TestM19_SnapshotCapCheckInTxIsAtomic: the per-workspace cap is counted in
// the transaction that inserts, so concurrent creates never exceed it.
func TestM19_SnapshotCapCheckInTxIsAtomic(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s)
	w := newWorkspace(t, s, owner.ID, "cap-ws")
	const limit = 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	created := 0
	for i := range 12 {
		wg.Go(func() {
			err := s.Tx(ctx, func(tx *Tx) error {
				n, err := tx.CountSnapshots(ctx, w.ID)
				if err != nil {
					return err
				}
				if n >= limit {
					return errdefs.Quotaf("cap")
				}
				_, err = tx.CreateSnapshot(ctx, Snapshot{WorkspaceID: w.ID, Name: "s" + string(rune('a'+i)), Layer: "L"})
				return err
			})
			if err == nil {
				mu.Lock()
				created++
				mu.Unlock()
			} else if !errdefs.Is(err, errdefs.Quota) {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if list, _ := s.ListSnapshots(ctx, w.ID); created != limit || len(list) != limit {
		t.Fatalf("created %d, stored %d; want exactly %d", created, len(list), limit)
	}
}
