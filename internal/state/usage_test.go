package state

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestUsageOf(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	a, b := newSession(t, s), newSession(t, s)
	if u, err := s.UsageOf(ctx, a.ID); err != nil || u != (Usage{}) {
		t.Fatalf("UsageOf(no workspaces) = %+v, %v; want zero", u, err)
	}
	for i, w := range []Workspace{
		{Name: "a1", Owner: a.ID, BaseImage: "default", VCPUs: 1, MemoryMB: 512, DiskGB: 10},
		{Name: "a2", Owner: a.ID, BaseImage: "default", VCPUs: 2, MemoryMB: 1024, DiskGB: 20, State: WorkspaceStopped},
		{Name: "b1", Owner: b.ID, BaseImage: "default", VCPUs: 1, MemoryMB: 256, DiskGB: 5},
	} {
		if _, err := s.CreateWorkspace(ctx, w); err != nil {
			t.Fatalf("workspace %d: %v", i, err)
		}
	}
	var inTx Usage
	if err := s.Tx(ctx, func(tx *Tx) (err error) { inTx, err = tx.UsageOf(ctx, a.ID); return err }); err != nil {
		t.Fatal(err)
	}
	want := Usage{Workspaces: 2, MemoryMB: 1536, DiskGB: 30}
	if diff := cmp.Diff(want, inTx); diff != "" {
		t.Errorf("Tx.UsageOf(a) (-want +got):\n%s", diff)
	}
	if u, _ := s.UsageOf(ctx, b.ID); u != (Usage{Workspaces: 1, MemoryMB: 256, DiskGB: 5}) {
		t.Errorf("UsageOf(b) = %+v", u)
	}
	if got := want.Add(Usage{Workspaces: 1, MemoryMB: 1, DiskGB: 2}); got != (Usage{3, 1537, 32}) {
		t.Errorf("Add = %+v", got)
	}
}
