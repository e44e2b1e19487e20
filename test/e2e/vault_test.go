package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// vaultNote is the part of a vault read result the tests look at.
type vaultNote struct {
	Path        string         `json:"path"`
	Content     string         `json:"content"`
	Size        int64          `json:"size"`
	Frontmatter map[string]any `json:"frontmatter"`
	Body        string         `json:"body"`
	Tags        []string       `json:"tags"`
	Links       []struct {
		Target string `json:"target"`
		Path   string `json:"path"`
	} `json:"links"`
	Backlinks []struct {
		Path string `json:"path"`
		Line int    `json:"line"`
	} `json:"backlinks"`
}

// TestVaultEveryAction drives each of the vault tool's eleven actions once
// through a real MCP client and a real daemon, and checks the files on the
// host: the vault is a directory of plain notes, shared by every session.
func TestVaultEveryAction(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := d.client(ctx)
	dir := filepath.Join(d.Dir, "data", "vault")
	file := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatalf("reading %s on the host: %v", p, err)
		}
		return string(b)
	}
	vault := func(args map[string]any) map[string]any {
		t.Helper()
		return call[map[string]any](ctx, t, s, "vault", args)
	}

	// write: create, append, prepend (after the frontmatter).
	const plan = "---\n# planning\nstatus: open   # keep this comment\ntags: [work]\n---\nSee [[ideas]].\n"
	w := vault(map[string]any{"action": "write", "path": "projects/plan.md", "content": plan})
	if w["created"] != true || w["size"] != float64(len(plan)) {
		t.Errorf("write result %v", w)
	}
	vault(map[string]any{"action": "write", "path": "projects/plan.md", "content": "Last line #urgent\n", "mode": "append"})
	vault(map[string]any{"action": "write", "path": "projects/plan.md", "content": "First line.\n", "mode": "prepend"})
	vault(map[string]any{"action": "write", "path": "ideas.md", "content": "# Ideas\nBack to [[plan]]. #idea\n"})
	wantPlan := "---\n# planning\nstatus: open   # keep this comment\ntags: [work]\n---\nFirst line.\nSee [[ideas]].\nLast line #urgent\n"
	if got := file("projects/plan.md"); got != wantPlan {
		t.Fatalf("after write/append/prepend the note is\n%q\nwant\n%q", got, wantPlan)
	}

	// read: markdown, then json with frontmatter, tags, links, backlinks.
	md := call[vaultNote](ctx, t, s, "vault", map[string]any{"action": "read", "path": "projects/plan.md"})
	if md.Content != wantPlan || md.Size != int64(len(wantPlan)) {
		t.Errorf("read = %+v", md)
	}
	js := call[vaultNote](ctx, t, s, "vault", map[string]any{"action": "read", "path": "projects/plan.md", "format": "json"})
	if js.Frontmatter["status"] != "open" || strings.Join(js.Tags, ",") != "work,urgent" ||
		len(js.Links) != 1 || js.Links[0].Path != "ideas.md" || len(js.Backlinks) != 1 || js.Backlinks[0].Path != "ideas.md" {
		t.Errorf("read json = %+v", js)
	}

	// Reading a note and writing it back leaves the same bytes.
	vault(map[string]any{"action": "write", "path": "projects/plan.md", "content": md.Content})
	if got := file("projects/plan.md"); got != wantPlan {
		t.Errorf("read+write changed the note to %q", got)
	}

	// frontmatter: set changes only that key's line; a new key set and
	// deleted again leaves the note byte-identical; get reads it.
	vault(map[string]any{"action": "frontmatter", "frontmatter_action": "set", "path": "projects/plan.md", "key": "status", "value": "done"})
	wantPlan = strings.Replace(wantPlan, "status: open ", "status: done ", 1)
	if got := file("projects/plan.md"); got != wantPlan {
		t.Errorf("after frontmatter set:\n%q\nwant\n%q", got, wantPlan)
	}
	vault(map[string]any{"action": "frontmatter", "frontmatter_action": "set", "path": "projects/plan.md", "key": "owner", "value": map[string]any{"name": "ann", "since": 2024}})
	fm := vault(map[string]any{"action": "frontmatter", "frontmatter_action": "get", "path": "projects/plan.md"})
	if owner, _ := fm["frontmatter"].(map[string]any)["owner"].(map[string]any); owner["name"] != "ann" || owner["since"] != float64(2024) {
		t.Errorf("frontmatter get = %v", fm)
	}
	del := vault(map[string]any{"action": "frontmatter", "frontmatter_action": "delete", "path": "projects/plan.md", "key": "owner"})
	if del["deleted"] != true {
		t.Errorf("frontmatter delete = %v", del)
	}
	if got := file("projects/plan.md"); got != wantPlan {
		t.Errorf("frontmatter set+delete of a new key is not byte-stable:\n%q\nwant\n%q", got, wantPlan)
	}

	// tags: list, add (the flow list stays a flow list), remove.
	tags := vault(map[string]any{"action": "tags", "tags_action": "list", "path": "projects/plan.md"})
	if tagList(tags["tags"]) != "work,urgent" || tagList(tags["inline_tags"]) != "urgent" {
		t.Errorf("tags list = %v", tags)
	}
	if r := vault(map[string]any{"action": "tags", "tags_action": "add", "path": "projects/plan.md", "tag": "review"}); r["added"] != true {
		t.Errorf("tags add = %v", r)
	}
	if !strings.Contains(file("projects/plan.md"), "tags: [work, review]\n") {
		t.Errorf("tags add did not keep the flow list: %q", file("projects/plan.md"))
	}
	if r := vault(map[string]any{"action": "tags", "tags_action": "remove", "path": "projects/plan.md", "tag": "review"}); r["removed"] != true {
		t.Errorf("tags remove = %v", r)
	}
	if got := file("projects/plan.md"); got != wantPlan {
		t.Errorf("tag add+remove changed the note:\n%q\nwant\n%q", got, wantPlan)
	}

	// search: substring, regex, path_prefix and tag filters, context lines.
	type searchOut struct {
		ResultCount int `json:"result_count"`
		Results     []struct {
			Path       string `json:"path"`
			LineNumber int    `json:"line_number"`
			Context    string `json:"context"`
		} `json:"results"`
	}
	sr := call[searchOut](ctx, t, s, "vault", map[string]any{"action": "search", "query": "See [["})
	if sr.ResultCount != 1 || sr.Results[0].Path != "projects/plan.md" || sr.Results[0].LineNumber != 7 ||
		sr.Results[0].Context != "---\nFirst line.\nSee [[ideas]].\nLast line #urgent\n" {
		t.Errorf("search = %+v", sr)
	}
	sr = call[searchOut](ctx, t, s, "vault", map[string]any{"action": "search", "query": `^(Back|Last) `, "regex": true})
	if sr.ResultCount != 2 {
		t.Errorf("regex search = %+v", sr)
	}
	sr = call[searchOut](ctx, t, s, "vault", map[string]any{"action": "search", "query": "[[", "path_prefix": "projects/"})
	if sr.ResultCount != 1 || sr.Results[0].Path != "projects/plan.md" {
		t.Errorf("path_prefix search = %+v", sr)
	}
	sr = call[searchOut](ctx, t, s, "vault", map[string]any{"action": "search", "query": "[[", "tag": "idea"})
	if sr.ResultCount != 1 || sr.Results[0].Path != "ideas.md" {
		t.Errorf("tag search = %+v", sr)
	}

	// replace, then move (the result names the notes that link to the old
	// path), then batch_read, list and stats.
	if r := vault(map[string]any{"action": "replace", "path": "ideas.md", "old_string": `\[\[(\w+)\]\]`, "new_string": "[[projects/$1]]", "regex": true}); r["replacements"] != float64(1) {
		t.Errorf("replace = %v", r)
	}
	mv := vault(map[string]any{"action": "move", "path": "ideas.md", "new_path": "archive/ideas.md"})
	if mv["moved"] != true || mv["to"] != "archive/ideas.md" {
		t.Errorf("move = %v", mv)
	}
	if bl, _ := mv["backlinks"].([]any); len(bl) != 1 {
		t.Errorf("move backlinks = %v, want the plan's link", mv["backlinks"])
	}
	if _, err := os.Stat(filepath.Join(dir, "ideas.md")); !os.IsNotExist(err) {
		t.Errorf("ideas.md still exists after the move: %v", err)
	}
	type batchOut struct {
		Count int `json:"count"`
		Notes []struct {
			Path        string         `json:"path"`
			Content     *string        `json:"content"`
			Frontmatter map[string]any `json:"frontmatter"`
			Error       string         `json:"error"`
		} `json:"notes"`
	}
	br := call[batchOut](ctx, t, s, "vault", map[string]any{"action": "batch_read", "paths": []string{"projects/plan.md", "archive/ideas.md", "nope.md"}, "include_content": false})
	if br.Count != 3 || br.Notes[0].Content != nil || br.Notes[0].Frontmatter["status"] != "done" ||
		br.Notes[1].Error != "" || !strings.Contains(br.Notes[2].Error, "does not exist") {
		t.Errorf("batch_read = %+v", br)
	}
	type listOut struct {
		Count   int `json:"count"`
		Entries []struct {
			Path  string `json:"path"`
			IsDir bool   `json:"is_dir"`
		} `json:"entries"`
	}
	ls := call[listOut](ctx, t, s, "vault", map[string]any{"action": "list", "recursive": true})
	var paths []string
	for _, e := range ls.Entries {
		paths = append(paths, e.Path)
	}
	if got := strings.Join(paths, " "); got != "archive archive/ideas.md projects projects/plan.md" {
		t.Errorf("list = %s", got)
	}
	st := vault(map[string]any{"action": "stats", "recent_count": 1})
	if st["total_notes"] != float64(2) || st["total_folders"] != float64(2) || st["total_links"] != float64(2) {
		t.Errorf("stats = %v", st)
	}
	if recent, _ := st["recent_files"].([]any); len(recent) != 1 {
		t.Errorf("stats recent_files = %v", st["recent_files"])
	}

	// delete needs confirm.
	if msg := callErr(ctx, t, s, "vault", map[string]any{"action": "delete", "path": "archive/ideas.md"}); !strings.Contains(msg, "confirm") {
		t.Errorf("delete without confirm: %q", msg)
	}
	vault(map[string]any{"action": "delete", "path": "archive/ideas.md", "confirm": true})
	if _, err := os.Stat(filepath.Join(dir, "archive/ideas.md")); !os.IsNotExist(err) {
		t.Errorf("deleted note still there: %v", err)
	}

	// Another session sees the same vault.
	other := d.client(ctx)
	if n := call[vaultNote](ctx, t, other, "vault", map[string]any{"action": "read", "path": "projects/plan.md"}); n.Content != wantPlan {
		t.Errorf("another session reads %q", n.Content)
	}
}

// TestVaultRefusals checks the refusals an agent meets through MCP: paths
// that leave the vault (.., absolute, a symbolic link to a host folder),
// hidden paths, an over-long or pathological pattern (M-17), and bad
// parameters, each a tool error naming the field, each leaving the host as
// it was.
func TestVaultRefusals(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s := d.client(ctx)
	dir := filepath.Join(d.Dir, "data", "vault")
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.md")
	if err := os.WriteFile(secret, []byte("SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	call[map[string]any](ctx, t, s, "vault", map[string]any{"action": "write", "path": "note.md", "content": "hello\n"})
	if err := os.Symlink(outside, filepath.Join(dir, "out")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "link.md")); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"action": "read", "path": "../../../etc/passwd"}, "path: must not contain '..'"},
		{map[string]any{"action": "read", "path": "/etc/passwd"}, "path: must be relative to the vault root"},
		{map[string]any{"action": "read", "path": "out/secret.md"}, "path: out/secret.md leads outside the vault"},
		{map[string]any{"action": "read", "path": "link.md"}, "path: link.md leads outside the vault"},
		{map[string]any{"action": "write", "path": "out/new.md", "content": "x"}, "path: out/new.md leads outside the vault"},
		{map[string]any{"action": "write", "path": "link.md", "content": "x"}, "path: link.md is a symbolic link"},
		{map[string]any{"action": "write", "path": ".obsidian/plugins/evil/main.js", "content": "x"}, "path: hidden names"},
		{map[string]any{"action": "move", "path": "note.md", "new_path": "../escaped.md"}, "new_path: must not contain '..'"},
		{map[string]any{"action": "list", "path": "out"}, "path: out leads outside the vault"},
		{map[string]any{"action": "search", "query": strings.Repeat("(a|b)", 300), "regex": true}, "query: the regular expression is 1500 bytes, longer than the limit of 1024"},
		{map[string]any{"action": "search", "query": `(.*){1000}`, "regex": true}, "query: the regular expression is too complex"},
		{map[string]any{"action": "search", "query": `(a`, "regex": true}, "query: not a valid regular expression"},
		{map[string]any{"action": "write", "path": "note.md"}, "content: required"},
		{map[string]any{"action": "write", "path": "note.md", "content": "x", "mode": "insert"}, "mode:"},
		{map[string]any{"action": "frontmatter", "frontmatter_action": "set", "path": "note.md", "key": "k"}, "value: required"},
		{map[string]any{"action": "frontmatter", "path": "note.md"}, "frontmatter_action:"},
		{map[string]any{"action": "tags", "tags_action": "add", "path": "note.md", "tag": "bad tag!"}, "tag:"},
		{map[string]any{"action": "batch_read", "paths": []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"}}, "paths: at most 10"},
		{map[string]any{"action": "read", "path": "note.md", "format": "html"}, "format:"},
		{map[string]any{"action": "publish"}, "action:"},
		{map[string]any{"action": "read", "path": "missing.md"}, "path: missing.md does not exist"},
	} {
		start := time.Now()
		msg := callErr(ctx, t, s, "vault", tc.args)
		if !strings.Contains(msg, tc.want) {
			t.Errorf("vault(%v): error %q, want it to contain %q", tc.args, msg, tc.want)
		}
		if strings.Contains(msg, outside) || strings.Contains(msg, "SECRET") {
			t.Errorf("vault(%v): error %q shows the host path or the secret", tc.args, msg)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("vault(%v) took %v to refuse", tc.args, d)
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "SECRET\n" {
		t.Errorf("the host file outside the vault changed: %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("files appeared outside the vault: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(dir, ".obsidian")); !os.IsNotExist(err) {
		t.Errorf("a hidden folder was created: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "note.md")); string(got) != "hello\n" {
		t.Errorf("refused calls changed note.md to %q", got)
	}
}

// TestVaultDisabled checks that with [vault] enabled = false the tool says
// so, and no vault directory is made.
func TestVaultDisabled(t *testing.T) {
	d := startDaemon(t, "\n[vault]\nenabled = false\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := d.client(ctx)
	if msg := callErr(ctx, t, s, "vault", map[string]any{"action": "stats"}); !strings.Contains(msg, "vault: disabled") {
		t.Errorf("vault with the vault disabled: %q", msg)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, "data", "vault")); !os.IsNotExist(err) {
		t.Errorf("a vault directory exists although the vault is disabled: %v", err)
	}
}

func tagList(v any) string {
	list, _ := v.([]any)
	var out []string
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return strings.Join(out, ",")
}
