package team

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/vault"
)

// teamDir is a team's folder in the vault.
func teamDir(team string) string { return "teams/" + team }

// indexName is the generated table of a team's task board.
const indexName = "INDEX.md"

// Card is a member's agent card, kept at teams/{team}/cards/{member}.json.
type Card struct {
	Name          string   `json:"name"`
	Team          string   `json:"team"`
	Role          string   `json:"role"`
	Skills        []string `json:"skills"`
	Description   string   `json:"description"`
	WorkspaceID   string   `json:"workspace_id"`
	WorkspaceName string   `json:"workspace_name"`
}

// writeCards writes every member's card. Member names passed
// names.Validate before this, so each is one safe path component (M-18).
func (s *Service) writeCards(ctx context.Context, team string) error {
	if s.vault == nil {
		return nil
	}
	ms, err := s.store.TeamMembers(ctx, team)
	if err != nil {
		return err
	}
	for _, m := range ms {
		c := Card{Name: m.Name, Team: team, Role: m.Role, Skills: m.Skills, Description: m.Description,
			WorkspaceID: m.WorkspaceID, WorkspaceName: WorkspaceName(team, m.Name)}
		if c.Skills == nil {
			c.Skills = []string{}
		}
		b, _ := json.MarshalIndent(c, "", "  ")
		if _, err := s.vault.Write(ctx, path.Join(teamDir(team), "cards", m.Name+".json"), append(b, '\n'), vault.Overwrite); err != nil {
			return fmt.Errorf("writing the card of %s: %w", m.Name, err)
		}
	}
	return s.Reindex(ctx, team)
}

// taskNote is the frontmatter of a task on the board.
type taskNote struct {
	Title     string   `yaml:"title"`
	Status    string   `yaml:"status"`
	Owner     string   `yaml:"owner"`
	DependsOn []string `yaml:"depends_on"`
}

// taskStatuses are the statuses a task may have.
var taskStatuses = []string{"todo", "in_progress", "blocked", "review", "done"}

// TaskPath reports whether p is a task note of a team's board, and which
// team and task.
func TaskPath(p string) (team, task string, ok bool) {
	p, err := vault.CleanPath("path", p, false)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(p, "/")
	if len(parts) != 4 || parts[0] != "teams" || parts[2] != "tasks" || !strings.HasSuffix(parts[3], ".md") || parts[3] == indexName {
		return "", "", false
	}
	team, task = parts[1], strings.TrimSuffix(parts[3], ".md")
	if names.Validate("team", team) != nil || names.Validate("task", task) != nil {
		return "", "", false
	}
	return team, task, true
}

// parseTask decodes a task note's frontmatter and checks its fields.
func parseTaskNote(content []byte) (taskNote, error) {
	var tn taskNote
	d := vault.ParseDocument(content)
	if d.HasFrontmatter() {
		if err := d.Decode(&tn); err != nil {
			return tn, errdefs.Invalidf("content: the task's frontmatter is not valid YAML with status, owner, depends_on")
		}
	}
	if tn.Status == "" {
		tn.Status = "todo"
	}
	if !slices.Contains(taskStatuses, tn.Status) {
		return tn, errdefs.Invalidf("content: status must be one of %s", strings.Join(taskStatuses, ", "))
	}
	if tn.Owner != "" {
		if err := names.Validate("owner", tn.Owner); err != nil {
			return tn, errdefs.Invalidf("content: %v", err)
		}
	}
	for _, dep := range tn.DependsOn {
		if err := names.Validate("depends_on", dep); err != nil {
			return tn, errdefs.Invalidf("content: %v", err)
		}
	}
	return tn, nil
}

// board reads every task of team's board except skip.
func (s *Service) board(ctx context.Context, team, skip string) (map[string]taskNote, error) {
	out := map[string]taskNote{}
	l, err := s.vault.List(ctx, path.Join(teamDir(team), "tasks"), false)
	if errdefs.Is(err, errdefs.NotFound) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range l.Entries {
		_, name, ok := TaskPath(e.Path)
		if !ok || e.IsDir || name == skip {
			continue
		}
		n, err := s.vault.Read(ctx, e.Path)
		if err != nil {
			continue
		}
		tn, err := parseTaskNote(n.Content)
		if err != nil {
			continue // a note written around this check does not block others
		}
		out[name] = tn
	}
	return out, nil
}

// checkTask refuses a task whose dependencies would form a cycle with the
// rest of the board.
func (s *Service) checkTask(ctx context.Context, team, task string, content []byte) error {
	tn, err := parseTaskNote(content)
	if err != nil {
		return err
	}
	all, err := s.board(ctx, team, task)
	if err != nil {
		return err
	}
	all[task] = tn
	if cyc := findCycle(all, task); cyc != nil {
		return errdefs.Invalidf("content: depends_on makes a cycle: %s", strings.Join(cyc, " -> "))
	}
	return nil
}

// findCycle returns a dependency cycle through start, or nil.
func findCycle(tasks map[string]taskNote, start string) []string {
	var pathTo []string
	onPath := map[string]bool{}
	done := map[string]bool{}
	var visit func(n string) []string
	visit = func(n string) []string {
		if onPath[n] {
			i := slices.Index(pathTo, n)
			return append(slices.Clone(pathTo[i:]), n)
		}
		if done[n] {
			return nil
		}
		onPath[n] = true
		pathTo = append(pathTo, n)
		for _, d := range tasks[n].DependsOn {
			if c := visit(d); c != nil {
				return c
			}
		}
		pathTo = pathTo[:len(pathTo)-1]
		onPath[n] = false
		done[n] = true
		return nil
	}
	return visit(start)
}

// Reindex regenerates team's INDEX.md: the members and the board's tasks
// by status.
func (s *Service) Reindex(ctx context.Context, team string) error {
	if s.vault == nil {
		return nil
	}
	tasks, err := s.board(ctx, team, "")
	if err != nil {
		return err
	}
	ms, err := s.store.TeamMembers(ctx, team)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Team %s\n\nGenerated by agentiso; edits are overwritten.\n\n## Members\n\n", team)
	for _, m := range ms {
		fmt.Fprintf(&b, "- [%s](cards/%s.json): %s\n", m.Name, m.Name, m.Role)
	}
	b.WriteString("\n## Tasks\n\n| task | status | owner | depends on |\n| --- | --- | --- | --- |\n")
	keys := make([]string, 0, len(tasks))
	for k := range tasks {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t := tasks[k]
		fmt.Fprintf(&b, "| [[%s]] | %s | %s | %s |\n", k, t.Status, t.Owner, strings.Join(t.DependsOn, ", "))
	}
	_, err = s.vault.Write(ctx, path.Join(teamDir(team), "tasks", indexName), []byte(b.String()), vault.Overwrite)
	return err
}
