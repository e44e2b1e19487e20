package team

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/vault"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Statuses are a task's statuses in board order: the kanban's columns.
func Statuses() []string { return slices.Clone(taskStatuses) }

// Task is one card of a team's task board: a note at
// teams/{team}/tasks/{id}.md and what its frontmatter says.
type Task struct {
	ID        string    `json:"id"`
	Path      string    `json:"path"`
	Title     string    `json:"title"`
	Status    string    `json:"status"`
	Owner     string    `json:"owner"`
	DependsOn []string  `json:"depends_on"`
	Modified  time.Time `json:"modified"`
	// Invalid says why the note is not a valid task (it then has no
	// column); agents fix it with the vault tool.
	Invalid string `json:"invalid,omitempty"`
}

// Board is a team's task board.
type Board struct {
	Team     string   `json:"team"`
	Statuses []string `json:"statuses"`
	Tasks    []Task   `json:"tasks"`
}

// maxBoardTasks bounds one board read.
const maxBoardTasks = 1000

func (s *Service) boardVault() error {
	if s.vault == nil {
		return errdefs.Unavailablef("the task board lives in the vault, which is not enabled on this daemon")
	}
	return nil
}

// Tasks returns the task board of one of c's teams, tasks by id.
func (s *Service) Tasks(ctx context.Context, c workspace.Caller, team string) (*Board, error) {
	t, err := s.resolve(ctx, c, "team", team)
	if err != nil {
		return nil, err
	}
	if err := s.boardVault(); err != nil {
		return nil, err
	}
	return s.readBoard(ctx, t.Name)
}

func (s *Service) readBoard(ctx context.Context, team string) (*Board, error) {
	b := &Board{Team: team, Statuses: Statuses(), Tasks: []Task{}}
	l, err := s.vault.List(ctx, path.Join(teamDir(team), "tasks"), false)
	if errdefs.Is(err, errdefs.NotFound) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range l.Entries {
		_, id, ok := TaskPath(e.Path)
		if !ok || e.IsDir {
			continue
		}
		if len(b.Tasks) == maxBoardTasks {
			break
		}
		n, err := s.vault.Read(ctx, e.Path)
		if err != nil {
			continue // removed meanwhile
		}
		b.Tasks = append(b.Tasks, taskOf(id, e.Path, n.Content, n.ModTime))
	}
	sort.Slice(b.Tasks, func(i, j int) bool { return b.Tasks[i].ID < b.Tasks[j].ID })
	return b, nil
}

// taskOf reads a task note the way the board's rules do (parseTaskNote).
func taskOf(id, p string, content []byte, mod time.Time) Task {
	t := Task{ID: id, Path: p, Modified: mod.UTC(), DependsOn: []string{}}
	tn, err := parseTaskNote(content)
	if err != nil {
		t.Invalid = errdefs.Public(err)
		t.Title = id
		return t
	}
	t.Title, t.Status, t.Owner = tn.Title, tn.Status, tn.Owner
	if tn.DependsOn != nil {
		t.DependsOn = tn.DependsOn
	}
	if t.Title == "" {
		t.Title = heading(content)
	}
	if t.Title == "" {
		t.Title = id
	}
	return t
}

// heading is the first "# " line of a note's body.
func heading(content []byte) string {
	for line := range bytes.Lines(vault.ParseDocument(content).Body()) {
		if h, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("# ")); ok {
			return string(bytes.TrimSpace(h))
		}
	}
	return ""
}

// MoveTask sets the status of a task on one of c's boards, through the same
// checked update as a vault tool edit of the note (BoardVault): the rest of
// the note stays as it is and INDEX.md is regenerated.
func (s *Service) MoveTask(ctx context.Context, c workspace.Caller, team, task, status string) (*Task, error) {
	t, err := s.resolve(ctx, c, "team", team)
	if err != nil {
		return nil, err
	}
	if err := names.Validate("task", task); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if !slices.Contains(taskStatuses, status) {
		return nil, errdefs.Invalidf("status: must be one of %s", strings.Join(taskStatuses, ", "))
	}
	if err := s.boardVault(); err != nil {
		return nil, err
	}
	p := path.Join(teamDir(t.Name), "tasks", task+".md")
	if _, err := s.updateTask(ctx, s.vault, p, setFrontmatter("status", status)); err != nil {
		if errdefs.Is(err, errdefs.NotFound) {
			return nil, errdefs.NotFoundf("task: no such task on this board")
		}
		return nil, err
	}
	return s.readTask(ctx, task, p)
}

func (s *Service) readTask(ctx context.Context, id, p string) (*Task, error) {
	n, err := s.vault.Read(ctx, p)
	if err != nil {
		return nil, err
	}
	tk := taskOf(id, p, n.Content, n.ModTime)
	return &tk, nil
}

// NewTask is a task a person adds to a board.
type NewTask struct {
	ID        string   `json:"id"`
	Title     string   `json:"title"`
	Status    string   `json:"status,omitempty"`
	Owner     string   `json:"owner,omitempty"`
	DependsOn []string `json:"depends_on,omitempty"`
	Body      string   `json:"body,omitempty"`
}

// maxTaskBodyBytes bounds a new task's text.
const maxTaskBodyBytes = 64 << 10

// AddTask writes a new task note on one of c's boards; a task with that id
// already there is a conflict. The note passes the board's checks (a
// dependency cycle is refused) like any vault write.
func (s *Service) AddTask(ctx context.Context, c workspace.Caller, team string, req NewTask) (*Task, error) {
	t, err := s.resolve(ctx, c, "team", team)
	if err != nil {
		return nil, err
	}
	if err := names.Validate("id", req.ID); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	req.Title = strings.TrimSpace(req.Title)
	if req.Title == "" || len(req.Title) > 256 || strings.ContainsAny(req.Title, "\n\r") {
		return nil, errdefs.Invalidf("title: 1-256 bytes on one line")
	}
	if len(req.Body) > maxTaskBodyBytes {
		return nil, errdefs.Invalidf("body: longer than %d bytes", maxTaskBodyBytes)
	}
	if req.Status == "" {
		req.Status = "todo"
	}
	if req.DependsOn == nil {
		req.DependsOn = []string{}
	}
	if err := s.boardVault(); err != nil {
		return nil, err
	}
	fm, err := yaml.Marshal(taskNote{Title: req.Title, Status: req.Status, Owner: req.Owner, DependsOn: req.DependsOn})
	if err != nil {
		return nil, errdefs.Invalidf("title: not representable in YAML")
	}
	content := fmt.Appendf(nil, "---\n%s---\n# %s\n\n%s", fm, req.Title, req.Body)
	if len(req.Body) > 0 && !strings.HasSuffix(req.Body, "\n") {
		content = append(content, '\n')
	}
	p := path.Join(teamDir(t.Name), "tasks", req.ID+".md")
	_, err = s.updateTask(ctx, s.vault, p, func(_ []byte, exists bool) ([]byte, error) {
		if exists {
			return nil, errdefs.Conflictf("id: the board already has this task")
		}
		return content, nil
	})
	if err != nil {
		return nil, err
	}
	return s.readTask(ctx, req.ID, p)
}
