package team

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/workspace"
)

// fakeWorkspaces stands in for the workspace manager: these tests are about
// the team service's own decisions (budgets, names, inboxes, the task
// queue); the e2e tests run the same paths with real VMs.
type fakeWorkspaces struct {
	mu        sync.Mutex
	created   map[string]string // id -> name
	exec      func(ctx context.Context, req workspace.ExecRequest) (*workspace.ExecResult, error)
	createErr func(name string) error
}

func (f *fakeWorkspaces) Create(ctx context.Context, c workspace.Caller, req workspace.CreateRequest) (*workspace.Info, error) {
	if f.createErr != nil {
		if err := f.createErr(req.Name); err != nil {
			return nil, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	id := uuid.NewString()
	f.created[id] = req.Name
	return &workspace.Info{ID: id, Name: req.Name, State: "running"}, nil
}

func (f *fakeWorkspaces) Destroy(ctx context.Context, c workspace.Caller, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.created[ref]; !ok {
		return errdefs.NotFoundf("workspace_id: no such workspace")
	}
	delete(f.created, ref)
	return nil
}

func (f *fakeWorkspaces) Info(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n, ok := f.created[ref]; ok {
		return &workspace.Info{ID: ref, Name: n, State: "running"}, nil
	}
	return nil, errdefs.NotFoundf("workspace_id: no such workspace")
}

func (f *fakeWorkspaces) Exec(ctx context.Context, c workspace.Caller, ref string, req workspace.ExecRequest) (*workspace.ExecResult, error) {
	return f.exec(ctx, req)
}

func (f *fakeWorkspaces) Fork(ctx context.Context, c workspace.Caller, ref string, req workspace.ForkRequest) (*workspace.ForkResult, error) {
	return nil, errdefs.Unavailablef("forks are tested end to end")
}

func (f *fakeWorkspaces) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.created)
}

type fixture struct {
	s      *Service
	store  *state.Store
	ws     *fakeWorkspaces
	vault  *vault.Vault
	caller workspace.Caller
}

func newFixture(t *testing.T, lim Limits) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	store, err := state.Open(ctx, filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	sess, err := store.CreateSession(ctx, state.Session{Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(vault.Config{Root: filepath.Join(dir, "vault")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	ws := &fakeWorkspaces{created: map[string]string{}, exec: func(ctx context.Context, req workspace.ExecRequest) (*workspace.ExecResult, error) {
		return &workspace.ExecResult{Stdout: "ran: " + req.Command}, nil
	}}
	lim.Exec = workspace.ExecLimits{DefaultTimeout: time.Minute, MaxTimeout: 10 * time.Minute, DefaultMaxOutputBytes: 1 << 16, MaxOutputBytes: 1 << 20}
	s, err := New(Config{Store: store, Workspaces: ws, Vault: v, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &fixture{s: s, store: store, ws: ws, vault: v, caller: workspace.Caller{SessionID: sess.ID, Actor: "mcp"}}
}

func roles(names ...string) []Role {
	out := make([]Role, len(names))
	for i, n := range names {
		out[i] = Role{Name: n, Role: "dev"}
	}
	return out
}

// TestH10_SubTeamBudgetRace creates many sub-teams at once under a parent
// whose budget has room for only some of them: the budget is checked and
// reserved in one transaction across the hierarchy, so the winners never
// exceed it, at any level.
func TestH10_SubTeamBudgetRace(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "root", Roles: roles("lead"), MaxVMs: 6}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "mid", Roles: roles("a"), ParentTeam: "root", MaxVMs: 6}); err != nil {
		t.Fatal(err)
	}
	// 4 VMs of root's 6 are left; 12 parallel creates of 2 VMs each, half
	// under root and half under mid (whose budget is root's too).
	const n = 12
	var wg sync.WaitGroup
	var ok, quota atomic.Int32
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			parent := "root"
			if i%2 == 1 {
				parent = "mid"
			}
			_, err := f.s.Create(ctx, f.caller, CreateRequest{Name: fmt.Sprintf("sub%d", i), Roles: roles("x", "y"), ParentTeam: parent})
			switch {
			case err == nil:
				ok.Add(1)
			case errdefs.Is(err, errdefs.Quota):
				quota.Add(1)
			default:
				t.Errorf("sub%d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 2 || quota.Load() != n-2 {
		t.Fatalf("%d creates succeeded and %d were refused for the budget; want 2 and %d", ok.Load(), quota.Load(), n-2)
	}
	st, err := f.s.Status(ctx, f.caller, "root")
	if err != nil {
		t.Fatal(err)
	}
	if st.UsedVMs != 6 || st.MaxVMs != 6 {
		t.Fatalf("root holds %d of %d VMs; want 6 of 6", st.UsedVMs, st.MaxVMs)
	}
	if got := f.ws.count(); got != 6 {
		t.Fatalf("%d workspaces exist; want 6", got)
	}
	// Destroy cascades: everything under root goes.
	res, err := f.s.Destroy(ctx, f.caller, "root")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DestroyedWorkspaces) != 6 || f.ws.count() != 0 {
		t.Fatalf("destroy removed %v, %d workspaces left", res.DestroyedWorkspaces, f.ws.count())
	}
	if l, _ := f.s.List(ctx, f.caller); len(l) != 0 {
		t.Fatalf("teams left after destroy: %v", l)
	}
}

func TestDepthLimit(t *testing.T) {
	f := newFixture(t, Limits{MaxDepth: 2})
	ctx := context.Background()
	for i, p := range []string{"", "t0"} {
		if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: fmt.Sprintf("t%d", i), Roles: roles("m"), ParentTeam: p}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t2", Roles: roles("m"), ParentTeam: "t1"})
	if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "parent_team:") {
		t.Fatalf("a third level: %v", err)
	}
}

// TestM18_RoleNamesValidated: role and member names are checked before any
// workspace or vault path is made from them, and a refusal leaves nothing.
func TestM18_RoleNamesValidated(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	long := strings.Repeat("a", 126) // "ok-" + 126 > 128
	cases := []struct {
		name  string
		roles []Role
		field string
	}{
		{"ok", []Role{{Name: "../../etc", Role: "dev"}}, "roles[0].name"},
		{"ok", []Role{{Name: "a/b", Role: "dev"}}, "roles[0].name"},
		{"ok", []Role{{Name: ".hidden", Role: "dev"}}, "roles[0].name"},
		{"ok", []Role{{Name: "", Role: "dev"}}, "roles[0].name"},
		{"ok", []Role{{Name: "a b", Role: "dev"}}, "roles[0].name"},
		{"ok", []Role{{Name: "m", Role: "dev"}, {Name: "m", Role: "qa"}}, "roles[1].name"},
		{"ok", []Role{{Name: "m", Role: "x/../y"}}, "roles[0].role"},
		{"ok", []Role{{Name: "m", Role: ""}}, "roles[0].role"},
		{"ok", []Role{{Name: long, Role: "dev"}}, "roles[0].name"},
		{"../x", roles("m"), "name"},
		{"ok", nil, "roles"},
	}
	for _, c := range cases {
		_, err := f.s.Create(ctx, f.caller, CreateRequest{Name: c.name, Roles: c.roles})
		if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), c.field+":") {
			t.Errorf("create %q %+v: %v; want an Invalid error naming %s", c.name, c.roles, err, c.field)
		}
	}
	if f.ws.count() != 0 {
		t.Fatalf("a refused create made %d workspaces", f.ws.count())
	}
	if l, _ := f.s.List(ctx, f.caller); len(l) != 0 {
		t.Fatalf("a refused create left teams: %v", l)
	}
	if l, err := f.vault.List(ctx, "", true); err != nil || len(l.Entries) != 0 {
		t.Fatalf("a refused create wrote to the vault: %v %v", l, err)
	}
}

func TestCreateFailureUndoes(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	f.ws.createErr = func(name string) error {
		if name == "t-b" {
			return errdefs.Quotaf("the session has too many workspaces")
		}
		return nil
	}
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t", Roles: roles("a", "b")}); !errdefs.Is(err, errdefs.Quota) {
		t.Fatalf("create: %v", err)
	}
	if f.ws.count() != 0 {
		t.Fatalf("%d workspaces left by a failed create", f.ws.count())
	}
	if _, err := f.store.GetTeam(ctx, "t"); !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("team record left by a failed create: %v", err)
	}
}

func TestMessagesInboxBroadcastLimits(t *testing.T) {
	f := newFixture(t, Limits{MessagesPerMinute: 5})
	ctx := context.Background()
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t", Roles: roles("a", "b", "c")}); err != nil {
		t.Fatal(err)
	}
	send := func(from, to, content string) error {
		_, err := f.s.Message(ctx, f.caller, MessageRequest{Team: "t", Agent: from, To: to, Content: content})
		return err
	}
	if err := send("a", "b", "hello b"); err != nil {
		t.Fatal(err)
	}
	if err := send("a", "*", "to all"); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", MaxContentBytes+1)
	if err := send("a", "b", big); !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "content:") {
		t.Fatalf("over 256 KiB: %v", err)
	}
	if err := send("a", strings.Repeat("x", MaxContentBytes), "b"); err == nil {
		t.Fatal("an invalid recipient was accepted")
	}
	if err := send("a", "nobody", "x"); !errdefs.Is(err, errdefs.NotFound) || strings.Contains(errdefs.Public(err), "nobody") {
		t.Fatalf("unknown member: %v", err)
	}
	r, err := f.s.Receive(ctx, f.caller, "t", "b", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 2 || r.Messages[0].Content != "hello b" || r.Messages[1].Content != "to all" {
		t.Fatalf("b's inbox: %+v", r)
	}
	r, _ = f.s.Receive(ctx, f.caller, "t", "b", 0)
	if r.Count != 0 {
		t.Fatalf("messages returned twice: %+v", r)
	}
	r, _ = f.s.Receive(ctx, f.caller, "t", "a", 0)
	if r.Count != 0 {
		t.Fatalf("the sender got its own broadcast: %+v", r)
	}
	// 2 sent; the refused ones took no token; 3 more pass, the 6th is limited.
	for i := range 3 {
		if err := send("a", "c", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := send("a", "c", "one too many"); !errdefs.Is(err, errdefs.RateLimited) {
		t.Fatalf("over the rate: %v", err)
	}
	if err := send("b", "c", "another sender"); err != nil {
		t.Fatalf("another sender is limited by a's rate: %v", err)
	}
	// Another session sees no such team, and learns nothing of its name.
	other, err := f.store.CreateSession(ctx, state.Session{Transport: "stdio"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Receive(ctx, workspace.Caller{SessionID: other.ID}, "t", "b", 0)
	if !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("another session's receive: %v", err)
	}
}

func TestTaskAssignmentsAtMostFourPerGuest(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	var running, peak atomic.Int32
	release := make(chan struct{})
	f.ws.exec = func(ctx context.Context, req workspace.ExecRequest) (*workspace.ExecResult, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return &workspace.ExecResult{Stdout: req.Command + " " + req.Env["X"]}, nil
	}
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t", Roles: roles("a")}); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		content := fmt.Sprintf(`{"task_id":"t%d","command":"echo %d","env":{"X":"v"}}`, i, i)
		if _, err := f.s.Message(ctx, f.caller, MessageRequest{Team: "t", Agent: "lead", To: "a", Content: content, MessageType: TypeTaskAssignment}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := f.s.Message(ctx, f.caller, MessageRequest{Team: "t", Agent: "lead", To: "a", MessageType: TypeTaskAssignment,
		Content: `{"task_id":"bad","command":"id","env":{"LD_PRELOAD":"/x.so"}}`})
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "LD_PRELOAD") {
		t.Fatalf("a blocklisted env var: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for running.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if running.Load() != 4 {
		t.Fatalf("%d tasks run at once; want 4", running.Load())
	}
	r, err := f.s.Receive(ctx, f.caller, "t", "a", 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.DaemonPendingTasks != 7 || len(r.DaemonResults) != 0 {
		t.Fatalf("while running: pending %d, results %d", r.DaemonPendingTasks, len(r.DaemonResults))
	}
	close(release)
	var results []TaskResult
	for len(results) < 7 && time.Now().Before(deadline.Add(5*time.Second)) {
		r, err := f.s.Receive(ctx, f.caller, "t", "a", 0)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r.DaemonResults...)
		time.Sleep(10 * time.Millisecond)
	}
	if len(results) != 7 || peak.Load() != 4 {
		t.Fatalf("%d results, peak %d at once", len(results), peak.Load())
	}
	for _, res := range results {
		if res.Status != "done" || !strings.HasSuffix(res.Stdout, " v") {
			t.Fatalf("result %+v", res)
		}
	}
}

func TestTaskBoardIndexAndCycles(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t", Roles: []Role{{Name: "a", Role: "dev", Skills: []string{"go"}}}}); err != nil {
		t.Fatal(err)
	}
	card, err := f.vault.Read(ctx, "teams/t/cards/a.json")
	if err != nil || !strings.Contains(string(card.Content), `"workspace_name": "t-a"`) {
		t.Fatalf("card: %v %s", err, card.Content)
	}
	b := f.s.Board(f.vault)
	write := func(name, fm string) error {
		_, err := b.Write(ctx, "teams/t/tasks/"+name+".md", []byte("---\n"+fm+"\n---\n# "+name+"\n"), vault.Overwrite)
		return err
	}
	if err := write("one", "status: todo\nowner: a"); err != nil {
		t.Fatal(err)
	}
	if err := write("two", "status: in_progress\ndepends_on: [one]"); err != nil {
		t.Fatal(err)
	}
	if err := write("three", "depends_on: [two]"); err != nil {
		t.Fatal(err)
	}
	err = write("one", "status: todo\ndepends_on: [three]")
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "cycle") {
		t.Fatalf("a cycle: %v", err)
	}
	n, _ := f.vault.Read(ctx, "teams/t/tasks/one.md")
	if strings.Contains(string(n.Content), "three") {
		t.Fatal("the refused write changed the note")
	}
	if _, err := b.SetFrontmatter(ctx, "teams/t/tasks/one.md", "depends_on", []any{"one"}); err == nil {
		t.Fatal("a self-dependency was accepted")
	}
	if err := write("bad", "status: whenever"); !errdefs.Is(err, errdefs.Invalid) {
		t.Fatalf("a bad status: %v", err)
	}
	idx, err := f.vault.Read(ctx, "teams/t/tasks/INDEX.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| [[two]] | in_progress |  | one |", "| [[one]] | todo | a |", "[a](cards/a.json): dev"} {
		if !strings.Contains(string(idx.Content), want) {
			t.Fatalf("INDEX.md lacks %q:\n%s", want, idx.Content)
		}
	}
	if err := b.Delete(ctx, "teams/t/tasks/three.md"); err != nil {
		t.Fatal(err)
	}
	idx, _ = f.vault.Read(ctx, "teams/t/tasks/INDEX.md")
	if strings.Contains(string(idx.Content), "[[three]]") {
		t.Fatalf("INDEX.md still lists a deleted task:\n%s", idx.Content)
	}
	if _, err := f.s.Destroy(ctx, f.caller, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.vault.List(ctx, "teams/t", true); !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("the team's vault folder outlived it: %v", err)
	}
}

func TestFindCycle(t *testing.T) {
	tasks := map[string]taskNote{
		"a": {DependsOn: []string{"b"}}, "b": {DependsOn: []string{"c"}}, "c": {DependsOn: []string{"a"}},
		"d": {DependsOn: []string{"b", "missing"}},
	}
	if c := findCycle(tasks, "a"); strings.Join(c, ">") != "a>b>c>a" {
		t.Fatalf("cycle through a: %v", c)
	}
	if c := findCycle(tasks, "d"); strings.Join(c, ">") != "b>c>b" && strings.Join(c, ">") != "b>c>a>b" {
		t.Fatalf("cycle reachable from d: %v", c)
	}
	delete(tasks, "c")
	if c := findCycle(tasks, "d"); c != nil {
		t.Fatalf("no cycle, got %v", c)
	}
}

// fakeNet records peer groups.
type fakeNet struct {
	mu     sync.Mutex
	groups map[string][]string
	fail   bool
}

func (n *fakeNet) SetPeerGroup(_ context.Context, name string, members []string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.fail {
		return errdefs.Unavailablef("network: test refuses")
	}
	if len(members) == 0 {
		delete(n.groups, name)
	} else {
		n.groups[name] = members
	}
	return nil
}

func TestTeamPeerGroup(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	net := &fakeNet{groups: map[string][]string{}}
	f.s.net = net
	info, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t", Roles: roles("a", "b")})
	if err != nil {
		t.Fatal(err)
	}
	got := net.groups["t"]
	if len(got) != 2 || got[0] != info.Members[0].WorkspaceID || got[1] != info.Members[1].WorkspaceID {
		t.Fatalf("peer group %v; want the members' workspaces %+v", got, info.Members)
	}
	if _, err := f.s.Destroy(ctx, f.caller, "t"); err != nil {
		t.Fatal(err)
	}
	if len(net.groups) != 0 {
		t.Fatalf("groups left after destroy: %v", net.groups)
	}
	net.fail = true
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "u", Roles: roles("a")}); !errdefs.Is(err, errdefs.Unavailable) {
		t.Fatalf("create with the network refusing: %v", err)
	}
	if f.ws.count() != 0 {
		t.Fatalf("a create the network refused left %d workspaces", f.ws.count())
	}
}

// TestRecoverTasks: after a daemon restart a task that was running is
// failed (its outcome is unknown and it is not run twice) and a queued one
// runs.
func TestRecoverTasks(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t", Roles: roles("a")}); err != nil {
		t.Fatal(err)
	}
	running, err := f.store.AddTask(ctx, state.TeamTask{Team: "t", Member: "a", TaskID: "was-running", Sender: "lead", Command: "echo 1", Workdir: "/root", TimeoutMs: 60000})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.store.SetTaskRunning(ctx, running.ID); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if _, err := f.store.AddTask(ctx, state.TeamTask{Team: "t", Member: "a", TaskID: "was-queued", Sender: "lead", Command: "echo 2", Workdir: "/root", TimeoutMs: 60000}); err != nil {
		t.Fatal(err)
	}
	var runs atomic.Int32
	f.ws.exec = func(ctx context.Context, req workspace.ExecRequest) (*workspace.ExecResult, error) {
		runs.Add(1)
		return &workspace.ExecResult{Stdout: req.Command}, nil
	}
	if err := f.s.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]TaskResult{}
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 2 && time.Now().Before(deadline) {
		r, err := f.s.Receive(ctx, f.caller, "t", "a", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range r.DaemonResults {
			got[x.TaskID] = x
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := got["was-running"]; r.Status != "failed" || !strings.Contains(r.Error, "restarted") {
		t.Fatalf("the interrupted task: %+v", r)
	}
	if r := got["was-queued"]; r.Status != "done" || r.Stdout != "echo 2" {
		t.Fatalf("the queued task: %+v", r)
	}
	if runs.Load() != 1 {
		t.Fatalf("%d commands ran; want only the queued one", runs.Load())
	}
}

// TestBaseSnapshotRefusedBeforeAnythingChanges: a malformed base_snapshot,
// or one naming a workspace the caller does not have, is refused with an
// error naming the field and not echoing the names (L-16); no team, no
// workspace is left.
func TestBaseSnapshotRefusedBeforeAnythingChanges(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	for _, c := range []struct{ base, want string }{
		{"nope", "base_snapshot: must be {workspace}/{snapshot}"},
		{"ghost/", "base_snapshot: must not be empty"},
		{"gh ost/s1", "base_snapshot: only letters"},
		{"ghost/s1", "base_snapshot: no such workspace in this session"},
	} {
		_, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "t", Roles: roles("a"), BaseSnapshot: c.base})
		if err == nil || !strings.HasPrefix(errdefs.Public(err), c.want) || strings.Contains(errdefs.Public(err), "ghost") {
			t.Errorf("base_snapshot %q: %v; want %q", c.base, err, c.want)
		}
	}
	if _, err := f.store.GetTeam(ctx, "t"); err == nil || f.ws.count() != 0 {
		t.Fatalf("a refused create left a team (%v) or %d workspaces", err, f.ws.count())
	}
}
