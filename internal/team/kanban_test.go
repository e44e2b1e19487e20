package team

import (
	"context"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/workspace"
)

// A person's moves and new tasks go through the board's rules: the note
// keeps its other frontmatter and text, INDEX.md follows, a bad status or a
// cycle is refused with nothing written, and another session's team is not
// there at all.
func TestKanbanMoveAndAdd(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "k", Roles: roles("a", "b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AddTask(ctx, f.caller, "k", NewTask{ID: "design", Title: "Design it", Owner: "a", Body: "the plan"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AddTask(ctx, f.caller, "k", NewTask{ID: "build", Title: "Build it", DependsOn: []string{"design"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.AddTask(ctx, f.caller, "k", NewTask{ID: "design", Title: "again"}); !errdefs.Is(err, errdefs.Conflict) {
		t.Fatalf("a second task with the same id: %v", err)
	}
	if _, err := f.s.AddTask(ctx, f.caller, "k", NewTask{ID: "loop", Title: "x", DependsOn: []string{"loop"}}); !errdefs.Is(err, errdefs.Invalid) {
		t.Fatalf("a self-dependent task: %v", err)
	}
	// A hand-written note with a comment and extra keys keeps them.
	if _, err := f.s.Board(f.vault).Write(ctx, "teams/k/tasks/notes.md",
		[]byte("---\n# keep me\nstatus: todo\npriority: high\n---\n# Notes\n\nbody text\n"), vault.Overwrite); err != nil {
		t.Fatal(err)
	}

	tk, err := f.s.MoveTask(ctx, f.caller, "k", "notes", "in_progress")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Status != "in_progress" || tk.Title != "Notes" {
		t.Fatalf("moved task: %+v", tk)
	}
	n, _ := f.vault.Read(ctx, "teams/k/tasks/notes.md")
	for _, want := range []string{"# keep me", "status: in_progress", "priority: high", "body text"} {
		if !strings.Contains(string(n.Content), want) {
			t.Errorf("the moved note lost %q:\n%s", want, n.Content)
		}
	}
	idx, _ := f.vault.Read(ctx, "teams/k/tasks/INDEX.md")
	if !strings.Contains(string(idx.Content), "| [[notes]] | in_progress |") || !strings.Contains(string(idx.Content), "| [[build]] | todo |  | design |") {
		t.Errorf("INDEX.md did not follow:\n%s", idx.Content)
	}

	for _, tc := range []struct {
		team, task, status string
		class              errdefs.Class
		field              string
	}{
		{"k", "notes", "someday", errdefs.Invalid, "status:"},
		{"k", "../x", "done", errdefs.Invalid, "task:"},
		{"k", "missing", "done", errdefs.NotFound, "task:"},
		{"nope", "notes", "done", errdefs.NotFound, "team:"},
	} {
		_, err := f.s.MoveTask(ctx, f.caller, tc.team, tc.task, tc.status)
		if !errdefs.Is(err, tc.class) || !strings.HasPrefix(errdefs.Public(err), tc.field) {
			t.Errorf("move %s/%s to %s: %v, want %s naming %s", tc.team, tc.task, tc.status, err, tc.class, tc.field)
		}
	}
	after, _ := f.vault.Read(ctx, "teams/k/tasks/notes.md")
	if string(after.Content) != string(n.Content) {
		t.Errorf("a refused move changed the note:\n%s", after.Content)
	}

	b, err := f.s.Tasks(ctx, f.caller, "k")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range b.Tasks {
		got = append(got, tk.ID+":"+tk.Status)
	}
	if strings.Join(got, " ") != "build:todo design:todo notes:in_progress" || len(b.Statuses) != 5 {
		t.Errorf("board: %v %v", got, b.Statuses)
	}

	// Another (non-admin) session sees no such team, and learns nothing of
	// its name (L-16).
	other := workspace.Caller{SessionID: "someone-else", Actor: "mcp"}
	for _, err := range []error{
		func() error { _, err := f.s.Tasks(ctx, other, "k"); return err }(),
		func() error { _, err := f.s.MoveTask(ctx, other, "k", "notes", "done"); return err }(),
		func() error { _, err := f.s.History(ctx, other, "k", 10); return err }(),
		func() error { _, err := f.s.OperatorMessage(ctx, other, "k", "a", "hi"); return err }(),
	} {
		if !errdefs.Is(err, errdefs.NotFound) || strings.Contains(errdefs.Public(err), "k") && !strings.Contains(errdefs.Public(err), "no such team") {
			t.Errorf("a foreign session: %v", err)
		}
	}
}

// The operator's messages land in the inboxes; the history shows them (a
// broadcast once) without marking anything read, and what a member has
// received shows as read.
func TestOperatorMessagesAndHistory(t *testing.T) {
	f := newFixture(t, Limits{})
	ctx := context.Background()
	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "h", Roles: roles("a", "b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.OperatorMessage(ctx, f.caller, "h", "*", "everyone: stop"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Message(ctx, f.caller, MessageRequest{Team: "h", Agent: "a", To: "b", Content: "hi b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.OperatorMessage(ctx, f.caller, "h", "c", "x"); !errdefs.Is(err, errdefs.NotFound) {
		t.Fatalf("to a non-member: %v", err)
	}
	if _, err := f.s.OperatorMessage(ctx, f.caller, "h", "a", ""); !errdefs.Is(err, errdefs.Invalid) {
		t.Fatalf("empty content: %v", err)
	}
	h, err := f.s.History(ctx, f.caller, "h", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Content != "hi b" || h[1].From != Operator || strings.Join(h[1].To, ",") != "a,b" || len(h[1].ReadBy) != 0 {
		t.Fatalf("history: %+v", h)
	}
	// Watching took nothing: b still gets both.
	r, err := f.s.Receive(ctx, f.caller, "h", "b", 10)
	if err != nil || r.Count != 2 {
		t.Fatalf("b's inbox after the history was read: %+v %v", r, err)
	}
	h, _ = f.s.History(ctx, f.caller, "h", 0)
	if strings.Join(h[1].ReadBy, ",") != "b" || strings.Join(h[0].ReadBy, ",") != "b" {
		t.Fatalf("read by after b's receive: %+v", h)
	}
	if _, err := f.s.History(ctx, f.caller, "h", 100000); !errdefs.Is(err, errdefs.Invalid) {
		t.Fatalf("a huge limit: %v", err)
	}

	if _, err := f.s.Create(ctx, f.caller, CreateRequest{Name: "o", Roles: roles("operator", "b")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.OperatorMessage(ctx, f.caller, "o", "b", "hi"); !errdefs.Is(err, errdefs.Conflict) {
		t.Fatalf("a team with a member named operator: %v", err)
	}
}
