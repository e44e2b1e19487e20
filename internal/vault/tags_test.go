package vault

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInlineTags(t *testing.T) {
	tests := []struct {
		body string
		want []string
	}{
		{"#start of line and #middle", []string{"start", "middle"}},
		{"# Heading\n## Heading two", []string{}},
		{"#123 is a number, #2024-review is a tag", []string{"2024-review"}},
		{"nested #project/alpha and (#paren) [#bracket]", []string{"project/alpha", "paren", "bracket"}},
		{"http://example.com/#anchor and a#b are not tags", []string{}},
		{"`#code` span, ``#double `tick``, then #real", []string{"real"}},
		{"```\n#fenced\n```\n~~~~\n#tilde\n~~~~\n#after", []string{"after"}},
		{"```\n#unterminated fence hides the rest\n#x", []string{}},
		{"#Same #same #SAME", []string{"Same"}},
		{"unicode #été #日本", []string{"été", "日本"}},
		{"#tag. #other, #last!", []string{"tag", "other", "last"}},
	}
	for _, tt := range tests {
		got := NewDocument([]byte(tt.body)).InlineTags()
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("InlineTags(%q) (-want +got):\n%s", tt.body, diff)
		}
	}
}

func TestFrontmatterTagForms(t *testing.T) {
	tests := []struct {
		note string
		want []string
	}{
		{"---\ntags: [a, '#b']\n---\n", []string{"a", "b"}},
		{"---\ntags:\n  - a\n  - ~\n  - 3x\n---\n", []string{"a", "3x"}},
		{"---\ntags: a, b c\n---\n", []string{"a", "b", "c"}},
		{"---\ntags:\n---\n", []string{}},
		{"---\ntitle: none\n---\n", []string{}},
	}
	for _, tt := range tests {
		tags, err := ParseDocument([]byte(tt.note)).Tags()
		if err != nil {
			t.Errorf("Tags(%q): %v", tt.note, err)
			continue
		}
		if diff := cmp.Diff(tt.want, tags.Frontmatter); diff != "" {
			t.Errorf("Tags(%q) (-want +got):\n%s", tt.note, diff)
		}
	}
}

func TestAddTagForms(t *testing.T) {
	tests := []struct{ in, tag, want string }{
		{"body\n", "new", "---\ntags:\n  - new\n---\nbody\n"},
		{"---\ntitle: x\n---\n", "new", "---\ntitle: x\ntags:\n  - new\n---\n"},
		{"---\ntags: [a]\n---\n", "b", "---\ntags: [a, b]\n---\n"},
		{"---\ntags:\n- a\n---\n", "b", "---\ntags:\n  - a\n  - b\n---\n"},
		{"---\ntags: a, b\n---\n", "c", "---\ntags:\n  - a\n  - b\n  - c\n---\n"},
	}
	for _, tt := range tests {
		d := ParseDocument([]byte(tt.in))
		if added, err := d.AddTag(tt.tag); err != nil || !added {
			t.Errorf("AddTag(%q) on %q = %v, %v", tt.tag, tt.in, added, err)
			continue
		}
		if got := string(d.Bytes()); got != tt.want {
			t.Errorf("AddTag(%q) on %q:\n got %q\nwant %q", tt.tag, tt.in, got, tt.want)
		}
	}
	// Removing the tag just added gives back a note without frontmatter.
	d := ParseDocument([]byte("body\n"))
	d.AddTag("x")
	if removed, err := d.RemoveTag("#X"); err != nil || !removed || string(d.Bytes()) != "body\n" {
		t.Errorf("RemoveTag = %v, %v, note %q", removed, err, d.Bytes())
	}
}

func TestWikilinks(t *testing.T) {
	d := ParseDocument([]byte("---\na: 1\n---\n[[One]] [[Two|alias]] [[Three#Heading]] ![[Four]] [[ ]] [[#self]]\n`[[code]]`\n[[Five#h|alias]]\n"))
	want := []Link{
		{Target: "One", Line: 4}, {Target: "Two", Line: 4}, {Target: "Three", Line: 4}, {Target: "Four", Line: 4},
		{Target: "Five", Line: 6},
	}
	if diff := cmp.Diff(want, d.Links()); diff != "" {
		t.Errorf("Links (-want +got):\n%s", diff)
	}
}

func TestResolver(t *testing.T) {
	r := newResolver([]string{"a/Note.md", "b/note.md", "deep/er/note.md", "top.md", "x/file.json"}, "md", func(p string) bool {
		return len(p) > 3 && p[len(p)-3:] == ".md"
	})
	tests := []struct{ target, from, want string }{
		{"Note", "b/other.md", "b/note.md"},           // same folder first (any case)
		{"Note", "c/other.md", "a/Note.md"},           // exact case among the shortest
		{"note", "c/other.md", "b/note.md"},           // exact case wins
		{"deep/er/note", "top.md", "deep/er/note.md"}, // a path from the root
		{"DEEP/ER/NOTE", "top.md", "deep/er/note.md"}, // ignoring case when nothing matches exactly
		{"top.md", "a/Note.md", "top.md"},
		{"missing", "top.md", ""},
		{"../top", "a/Note.md", ""},
		{"x/file.json", "top.md", ""}, // not a note: the .md is added
	}
	for _, tt := range tests {
		if got := r.resolve(tt.target, tt.from); got != tt.want {
			t.Errorf("resolve(%q from %q) = %q, want %q", tt.target, tt.from, got, tt.want)
		}
	}
}
