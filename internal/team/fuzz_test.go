package team

import (
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/names"
)

// FuzzTaskPath: whatever path the vault tool is given, a task path names a
// valid team and task, and INDEX.md is never a task.
func FuzzTaskPath(f *testing.F) {
	for _, s := range []string{"teams/t/tasks/a.md", "teams/t/tasks/INDEX.md", "teams/../tasks/a.md",
		"./teams/t/tasks/a.md", "teams/t/tasks/.md", "teams/a b/tasks/x.md", "/teams/t/tasks/a.md", "teams/t/tasks/sub/a.md"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		team, task, ok := TaskPath(p)
		if !ok {
			return
		}
		if names.Validate("team", team) != nil || names.Validate("task", task) != nil || task+".md" == indexName {
			t.Fatalf("TaskPath(%q) = %q, %q", p, team, task)
		}
		if strings.Contains(team+task, "/") {
			t.Fatalf("TaskPath(%q) = %q, %q", p, team, task)
		}
	})
}

// FuzzParseTaskNote: any note either parses to a known status with valid
// names, or is refused; it never panics.
func FuzzParseTaskNote(f *testing.F) {
	for _, s := range []string{"---\nstatus: todo\n---\n", "---\ndepends_on: [a, b]\nowner: x\n---\nbody", "---\nstatus: [\n---\n", "no frontmatter", "---\ndepends_on: ../x\n---\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tn, err := parseTaskNote([]byte(s))
		if err != nil {
			return
		}
		for _, d := range tn.DependsOn {
			if names.Validate("d", d) != nil {
				t.Fatalf("a dependency %q passed", d)
			}
		}
	})
}
