package state

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func newSession(t *testing.T, s *Store) Session {
	t.Helper()
	sess, err := s.CreateSession(testCtx(t), Session{UID: 1000, PID: 4242, Transport: "stdio"})
	if err != nil {
		t.Fatalf("CreateSession: %v", err)
	}
	return sess
}

func workspace(owner, name string) Workspace {
	return Workspace{Name: name, Owner: owner, BaseImage: "default", VCPUs: 1, MemoryMB: 512, DiskGB: 10}
}

func newWorkspace(t *testing.T, s *Store, owner, name string) Workspace {
	t.Helper()
	w, err := s.CreateWorkspace(testCtx(t), workspace(owner, name))
	if err != nil {
		t.Fatalf("CreateWorkspace(%s): %v", name, err)
	}
	return w
}

func wantClass(t *testing.T, err error, c errdefs.Class) {
	t.Helper()
	if !errdefs.Is(err, c) {
		t.Fatalf("error = %v (class %v), want class %v", err, errdefs.ClassOf(err), c)
	}
}

func TestWorkspaceRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s)
	in := Workspace{
		Name: "dev-1", Owner: owner.ID, State: WorkspaceRunning, BaseImage: "default",
		VCPUs: 2, MemoryMB: 1024, DiskGB: 20, AllowInternet: true,
		IP: "10.99.0.2", MAC: "02:00:0a:63:00:02", PID: 12345,
		ForkedFrom: &ForkedFrom{WorkspaceID: "8d6c2b5e-0d0e-4a43-9d8f-2f6d5c1f0a11", SnapshotName: "clean"},
		FromPool:   true, BootTimeMs: 180, LastError: "",
		StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	created, err := s.CreateWorkspace(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if created.ID == "" || created.CreatedAt.IsZero() || !created.UpdatedAt.Equal(created.CreatedAt) {
		t.Errorf("CreateWorkspace did not assign ID and times: %+v", created)
	}
	byID, err := s.GetWorkspace(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, byID); diff != "" {
		t.Errorf("GetWorkspace differs from what CreateWorkspace returned (-want +got):\n%s", diff)
	}
	byName, err := s.GetWorkspaceByName(ctx, "dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(created, byName); diff != "" {
		t.Errorf("GetWorkspaceByName differs (-want +got):\n%s", diff)
	}
	in.ID, in.CreatedAt, in.UpdatedAt = created.ID, created.CreatedAt, created.UpdatedAt
	if diff := cmp.Diff(in, byID); diff != "" {
		t.Errorf("stored workspace differs from the input (-want +got):\n%s", diff)
	}
}

func TestCreateWorkspaceDefaultsToCreating(t *testing.T) {
	s := newStore(t)
	w := newWorkspace(t, s, newSession(t, s).ID, "w")
	if w.State != WorkspaceCreating {
		t.Errorf("State = %q, want creating", w.State)
	}
}

func TestCreateWorkspaceConflicts(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	alice, bob := newSession(t, s), newSession(t, s)
	first := workspace(alice.ID, "secret-project-x")
	first.IP, first.MAC = "10.99.0.2", "02:00:00:00:00:02"
	if _, err := s.CreateWorkspace(ctx, first); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		w     Workspace
		field string
	}{
		{"same name, other session", workspace(bob.ID, "secret-project-x"), "name:"},
		{"same ip", func() Workspace { w := workspace(bob.ID, "b"); w.IP = "10.99.0.2"; return w }(), "ip:"},
		{"same mac", func() Workspace { w := workspace(bob.ID, "c"); w.MAC = "02:00:00:00:00:02"; return w }(), "mac:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.CreateWorkspace(ctx, tt.w)
			wantClass(t, err, errdefs.Conflict)
			pub := errdefs.Public(err)
			if !strings.HasPrefix(pub, tt.field) {
				t.Errorf("message %q does not start with %q", pub, tt.field)
			}
			// Finding L-16: never echo another session's names or ids.
			for _, leak := range []string{"secret-project-x", alice.ID, "10.99.0.2", "02:00:00:00:00:02"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q echoes %q", err, leak)
				}
			}
		})
	}
	if n, err := s.CountWorkspaces(ctx, ""); err != nil || n != 1 {
		t.Errorf("CountWorkspaces = %d, %v; want 1 (the refused creates left nothing)", n, err)
	}
}

func TestCreateWorkspaceEmptyAddressesDoNotConflict(t *testing.T) {
	s := newStore(t)
	owner := newSession(t, s).ID
	newWorkspace(t, s, owner, "a")
	newWorkspace(t, s, owner, "b") // both have IP "" and MAC ""
}

func TestCreateWorkspaceInvalid(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s).ID
	tests := []struct {
		name   string
		modify func(*Workspace)
		class  errdefs.Class
		field  string
	}{
		{"bad name", func(w *Workspace) { w.Name = "../etc" }, errdefs.Invalid, "name:"},
		{"empty name", func(w *Workspace) { w.Name = "" }, errdefs.Invalid, "name:"},
		{"no owner", func(w *Workspace) { w.Owner = "" }, errdefs.Invalid, "owner:"},
		{"unknown owner", func(w *Workspace) { w.Owner = "4f1b9f4e-0000-4000-8000-000000000000" }, errdefs.NotFound, "owner: no such session"},
		{"bad state", func(w *Workspace) { w.State = "paused" }, errdefs.Invalid, "state:"},
		{"no image", func(w *Workspace) { w.BaseImage = "" }, errdefs.Invalid, "base_image:"},
		{"zero vcpus", func(w *Workspace) { w.VCPUs = 0 }, errdefs.Invalid, "vcpus:"},
		{"zero memory", func(w *Workspace) { w.MemoryMB = 0 }, errdefs.Invalid, "memory_mb:"},
		{"zero disk", func(w *Workspace) { w.DiskGB = 0 }, errdefs.Invalid, "disk_gb:"},
		{"negative pid", func(w *Workspace) { w.PID = -1 }, errdefs.Invalid, "pid:"},
		{"bad id", func(w *Workspace) { w.ID = "not-a-uuid" }, errdefs.Invalid, "workspace_id:"},
		{"fork without source", func(w *Workspace) { w.ForkedFrom = &ForkedFrom{SnapshotName: "s"} }, errdefs.Invalid, "forked_from.workspace_id:"},
		{"fork bad snapshot", func(w *Workspace) { w.ForkedFrom = &ForkedFrom{WorkspaceID: "x", SnapshotName: "a/b"} }, errdefs.Invalid, "forked_from.snapshot_name:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := workspace(owner, "ok-name")
			tt.modify(&w)
			_, err := s.CreateWorkspace(ctx, w)
			wantClass(t, err, tt.class)
			if pub := errdefs.Public(err); !strings.HasPrefix(pub, tt.field) {
				t.Errorf("message %q does not start with %q", pub, tt.field)
			}
		})
	}
}

func TestCreateWorkspaceWithGivenID(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s).ID
	w := workspace(owner, "a")
	w.ID = "0b7e4a52-6c51-4a8e-9a57-4b0f4c6a1d2e"
	got, err := s.CreateWorkspace(ctx, w)
	if err != nil || got.ID != w.ID {
		t.Fatalf("CreateWorkspace = %+v, %v; want ID %s", got, err, w.ID)
	}
	w.Name = "b"
	_, err = s.CreateWorkspace(ctx, w)
	wantClass(t, err, errdefs.Conflict)
}

func TestLastErrorIsBounded(t *testing.T) {
	s := newStore(t)
	w := workspace(newSession(t, s).ID, "a")
	w.LastError = strings.Repeat("é", MaxLastErrorBytes) // twice the bound in bytes
	got, err := s.CreateWorkspace(testCtx(t), w)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.LastError) != MaxLastErrorBytes {
		t.Errorf("LastError is %d bytes, want %d", len(got.LastError), MaxLastErrorBytes)
	}
}

func TestGetWorkspaceNotFound(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	_, err := s.GetWorkspace(ctx, "4f1b9f4e-0000-4000-8000-000000000000")
	wantClass(t, err, errdefs.NotFound)
	if got := errdefs.Public(err); got != "workspace_id: no such workspace" {
		t.Errorf("message = %q", got)
	}
	_, err = s.GetWorkspaceByName(ctx, "someone-elses")
	wantClass(t, err, errdefs.NotFound)
	if strings.Contains(err.Error(), "someone-elses") {
		t.Errorf("error %q echoes the name", err)
	}
}

func TestUpdateWorkspace(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	w := newWorkspace(t, s, newSession(t, s).ID, "a")
	started := time.Now().UTC()
	got, err := s.UpdateWorkspace(ctx, w.ID, func(w *Workspace) error {
		w.State = WorkspaceRunning
		w.PID = 777
		w.IP = "10.99.0.9"
		w.StartedAt = started
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !got.UpdatedAt.After(w.UpdatedAt) && !got.UpdatedAt.Equal(w.UpdatedAt) {
		t.Errorf("UpdatedAt went back: %v -> %v", w.UpdatedAt, got.UpdatedAt)
	}
	stored, err := s.GetWorkspace(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, stored); diff != "" {
		t.Errorf("stored differs from returned (-want +got):\n%s", diff)
	}
	if stored.State != WorkspaceRunning || stored.PID != 777 || stored.IP != "10.99.0.9" || !stored.StartedAt.Equal(started) {
		t.Errorf("update not stored: %+v", stored)
	}
}

func TestUpdateWorkspaceRollsBackOnFuncError(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	w := newWorkspace(t, s, newSession(t, s).ID, "a")
	refuse := errdefs.Conflictf("workspace is stopped")
	_, err := s.UpdateWorkspace(ctx, w.ID, func(w *Workspace) error {
		w.State = WorkspaceDestroying
		w.Name = "renamed"
		return refuse
	})
	if !errors.Is(err, refuse) {
		t.Fatalf("UpdateWorkspace = %v, want the func's error unchanged", err)
	}
	got, err := s.GetWorkspace(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, got); diff != "" {
		t.Errorf("workspace changed despite the refusal (-want +got):\n%s", diff)
	}
}

func TestUpdateWorkspaceInTxRollsBackEarlierWrites(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s).ID
	a, b := newWorkspace(t, s, owner, "a"), newWorkspace(t, s, owner, "b")
	boom := errors.New("boom")
	err := s.Tx(ctx, func(tx *Tx) error {
		if _, err := tx.UpdateWorkspace(ctx, a.ID, func(w *Workspace) error { w.State = WorkspaceStopped; return nil }); err != nil {
			return err
		}
		_, err := tx.UpdateWorkspace(ctx, b.ID, func(w *Workspace) error { return boom })
		return err
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Tx = %v, want boom", err)
	}
	if got, _ := s.GetWorkspace(ctx, a.ID); got.State != WorkspaceCreating {
		t.Errorf("first update survived the rollback: state %q", got.State)
	}
}

func TestUpdateWorkspaceRefuses(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s).ID
	a := newWorkspace(t, s, owner, "a")
	newWorkspace(t, s, owner, "b")
	tests := []struct {
		name  string
		fn    func(*Workspace) error
		class errdefs.Class
	}{
		{"rename to a taken name", func(w *Workspace) error { w.Name = "b"; return nil }, errdefs.Conflict},
		{"invalid name", func(w *Workspace) error { w.Name = "a b"; return nil }, errdefs.Invalid},
		{"invalid state", func(w *Workspace) error { w.State = "zombie"; return nil }, errdefs.Invalid},
		{"change id", func(w *Workspace) error { w.ID = "other"; return nil }, errdefs.Internal},
		{"change creation time", func(w *Workspace) error { w.CreatedAt = time.Unix(1, 0); return nil }, errdefs.Internal},
		{"give to no session", func(w *Workspace) error { w.Owner = "nobody"; return nil }, errdefs.NotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.UpdateWorkspace(ctx, a.ID, tt.fn)
			if err == nil {
				t.Fatal("UpdateWorkspace succeeded")
			}
			wantClass(t, err, tt.class)
			if got, _ := s.GetWorkspace(ctx, a.ID); !cmp.Equal(a, got) {
				t.Errorf("workspace changed: %s", cmp.Diff(a, got))
			}
		})
	}
	_, err := s.UpdateWorkspace(ctx, "4f1b9f4e-0000-4000-8000-000000000000", func(*Workspace) error { return nil })
	wantClass(t, err, errdefs.NotFound)
}

// Concurrent read-modify-writes are serialised: no increment is lost.
func TestUpdateWorkspaceConcurrent(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	w := newWorkspace(t, s, newSession(t, s).ID, "a")
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < each; j++ {
				_, err := s.UpdateWorkspace(ctx, w.ID, func(w *Workspace) error {
					w.BootTimeMs++
					return nil
				})
				if err != nil {
					errs <- err
				}
				// Reads run beside the writes on their own pool.
				if _, err := s.GetWorkspace(ctx, w.ID); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got, err := s.GetWorkspace(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.BootTimeMs != workers*each {
		t.Errorf("BootTimeMs = %d after %d increments", got.BootTimeMs, workers*each)
	}
}

// A quota check and the create it guards are atomic inside one Tx.
func TestQuotaCheckInTxIsAtomic(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	owner := newSession(t, s).ID
	const quota, tries = 3, 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, refused := 0, 0
	for i := 0; i < tries; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.Tx(ctx, func(tx *Tx) error {
				n, err := tx.CountWorkspaces(ctx, owner)
				if err != nil {
					return err
				}
				if n >= quota {
					return errdefs.Quotaf("workspaces: at most %d per session", quota)
				}
				_, err = tx.CreateWorkspace(ctx, workspace(owner, fmt.Sprintf("w%d", i)))
				return err
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errdefs.Is(err, errdefs.Quota):
				refused++
			default:
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	if created != quota || refused != tries-quota {
		t.Errorf("created %d, refused %d; want %d and %d", created, refused, quota, tries-quota)
	}
	if n, _ := s.CountWorkspaces(ctx, owner); n != quota {
		t.Errorf("CountWorkspaces = %d, want %d", n, quota)
	}
}

func TestListAndCountWorkspaces(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	alice, bob := newSession(t, s).ID, newSession(t, s).ID
	a1 := newWorkspace(t, s, alice, "a1")
	a2 := newWorkspace(t, s, alice, "a2")
	b1 := newWorkspace(t, s, bob, "b1")
	a2, err := s.UpdateWorkspace(ctx, a2.ID, func(w *Workspace) error { w.State = WorkspaceRunning; return nil })
	if err != nil {
		t.Fatal(err)
	}
	b1, err = s.UpdateWorkspace(ctx, b1.ID, func(w *Workspace) error { w.State = WorkspaceStopped; return nil })
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ws []Workspace) []string {
		var out []string
		for _, w := range ws {
			out = append(out, w.Name)
		}
		return out
	}
	tests := []struct {
		name   string
		filter WorkspaceFilter
		want   []string
	}{
		{"all", WorkspaceFilter{}, []string{"a1", "a2", "b1"}},
		{"owner", WorkspaceFilter{Owner: alice}, []string{"a1", "a2"}},
		{"state", WorkspaceFilter{States: []WorkspaceState{WorkspaceRunning}}, []string{"a2"}},
		{"states", WorkspaceFilter{States: []WorkspaceState{WorkspaceRunning, WorkspaceStopped}}, []string{"a2", "b1"}},
		{"owner and state", WorkspaceFilter{Owner: bob, States: []WorkspaceState{WorkspaceRunning}}, nil},
		{"unknown owner", WorkspaceFilter{Owner: "nobody"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ListWorkspaces(ctx, tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ids(got)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	all, _ := s.ListWorkspaces(ctx, WorkspaceFilter{})
	if diff := cmp.Diff([]Workspace{a1, a2, b1}, all); diff != "" {
		t.Errorf("listed records differ (-want +got):\n%s", diff)
	}
	for owner, want := range map[string]int{alice: 2, bob: 1, "": 3, "nobody": 0} {
		if n, err := s.CountWorkspaces(ctx, owner); err != nil || n != want {
			t.Errorf("CountWorkspaces(%q) = %d, %v; want %d", owner, n, err, want)
		}
	}
}

func TestDeleteWorkspace(t *testing.T) {
	s := newStore(t)
	ctx := testCtx(t)
	w := newWorkspace(t, s, newSession(t, s).ID, "a")
	if err := s.DeleteWorkspace(ctx, w.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.GetWorkspace(ctx, w.ID)
	wantClass(t, err, errdefs.NotFound)
	wantClass(t, s.DeleteWorkspace(ctx, w.ID), errdefs.NotFound)
	// The name is free again.
	newWorkspace(t, s, w.Owner, "a")
}

func TestDataSurvivesReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	ctx := testCtx(t)
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	sess := newSession(t, s)
	w := newWorkspace(t, s, sess.ID, "keep")
	entry, err := s.AppendAudit(ctx, AuditEntry{SessionID: sess.ID, Actor: "mcp:" + sess.ID, Action: "workspace_create", Target: w.ID, Result: AuditOK})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path)
	gotW, err := s.GetWorkspace(ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(w, gotW); diff != "" {
		t.Errorf("workspace after reopen (-want +got):\n%s", diff)
	}
	gotS, err := s.GetSession(ctx, sess.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(sess, gotS); diff != "" {
		t.Errorf("session after reopen (-want +got):\n%s", diff)
	}
	gotA, err := s.ListAudit(ctx, AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]AuditEntry{entry}, gotA); diff != "" {
		t.Errorf("audit after reopen (-want +got):\n%s", diff)
	}
}
