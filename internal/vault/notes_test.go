package vault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/testenv"
)

func TestWriteModes(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	tests := []struct {
		name, before string // before "" means no note
		mode         WriteMode
		content      string
		want         string
		created      bool
	}{
		{"create", "", Overwrite, "new\n", "new\n", true},
		{"append creates", "", Append, "a\n", "a\n", true},
		{"overwrite", "old\n", Overwrite, "new\n", "new\n", false},
		{"append", "one\n", Append, "two\n", "one\ntwo\n", false},
		{"prepend", "body\n", Prepend, "first\n", "first\nbody\n", false},
		{"prepend keeps frontmatter first", "---\na: 1\n---\nbody\n", Prepend, "first\n", "---\na: 1\n---\nfirst\nbody\n", false},
		{"empty note", "x", Overwrite, "", "", false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := fmt.Sprintf("modes/n%d.md", i)
			if tt.before != "" {
				writeFile(t, dir, p, tt.before)
			}
			res, err := v.Write(ctx, p, []byte(tt.content), tt.mode)
			if err != nil {
				t.Fatal(err)
			}
			if res.Created != tt.created || res.Size != int64(len(tt.want)) || res.Path != p {
				t.Errorf("result %+v", res)
			}
			b, _ := os.ReadFile(filepath.Join(dir, p))
			if string(b) != tt.want {
				t.Errorf("note = %q, want %q", b, tt.want)
			}
		})
	}
}

func TestWriteRefusals(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "folder/x.md", "x")
	big := make([]byte, v.MaxNoteBytes()+1)
	tests := []struct {
		name    string
		path    string
		content []byte
		mode    WriteMode
		want    string
	}{
		{"binary", "a.md", []byte("a\x00b"), Overwrite, "content:"},
		{"invalid utf8", "a.md", []byte("\xff\xfe"), Overwrite, "content:"},
		{"too big", "a.md", big, Overwrite, "content:"},
		{"bad mode", "a.md", []byte("x"), "insert", "mode:"},
		{"folder", "folder", []byte("x"), Overwrite, "path: folder is a folder"},
		{"parent is a file", "folder/x.md/y.md", []byte("x"), Overwrite, "path:"},
	}
	for _, tt := range tests {
		if _, err := v.Write(ctx, tt.path, tt.content, tt.mode); !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), tt.want) {
			t.Errorf("%s: err = %v, want Invalid starting %q", tt.name, err, tt.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.md")); !os.IsNotExist(err) {
		t.Errorf("a refused write left a.md behind: %v", err)
	}
	// An append that would pass the limit is refused too, and changes nothing.
	half := strings.Repeat("x", int(v.MaxNoteBytes()/2)+1)
	if _, err := v.Write(ctx, "half.md", []byte(half), Overwrite); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Write(ctx, "half.md", []byte(half), Append); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("append past the limit = %v", err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "half.md")); fi.Size() != int64(len(half)) {
		t.Errorf("refused append changed the note to %d bytes", fi.Size())
	}
}

// TestWritesAreAtomic checks the write path: no temporary file is left,
// the file's permissions are kept, concurrent read-modify-writes through the
// vault are not lost, and readers never see a partial note.
func TestWritesAreAtomic(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "log.md", "")
	must(t, os.Chmod(filepath.Join(dir, "log.md"), 0o640))

	const writers, each = 8, 25
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var torn error
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(filepath.Join(dir, "log.md"))
			if err != nil {
				torn = err
				return
			}
			if len(b)%len("wNN-NN\n") != 0 {
				torn = fmt.Errorf("reader saw %d bytes, not a whole number of lines", len(b))
				return
			}
		}
	}()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := v.Write(ctx, "log.md", []byte(fmt.Sprintf("w%02d-%02d\n", w, i)), Append); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if torn != nil {
		t.Error(torn)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "log.md"))
	if got := strings.Count(string(b), "\n"); got != writers*each {
		t.Errorf("log has %d lines, want %d: appends were lost", got, writers*each)
	}
	fi, _ := os.Stat(filepath.Join(dir, "log.md"))
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode after writes = %v, want 0640 kept", fi.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestOpenRemovesStaleTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "sub/"+tmpPrefix+"old", "half a note")
	writeFile(t, dir, "sub/"+tmpPrefix+"fresh", "being written")
	old := time.Now().Add(-time.Hour)
	must(t, os.Chtimes(filepath.Join(dir, "sub", tmpPrefix+"old"), old, old))
	v, err := Open(Config{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := os.Stat(filepath.Join(dir, "sub", tmpPrefix+"old")); !os.IsNotExist(err) {
		t.Errorf("stale temporary file not removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "sub", tmpPrefix+"fresh")); err != nil {
		t.Errorf("a fresh temporary file (another writer's) was removed: %v", err)
	}
}

func TestReadRefusals(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "bin.md", "a\x00b")
	writeFile(t, dir, "big.md", strings.Repeat("x", int(v.MaxNoteBytes())+1))
	writeFile(t, dir, "sub/x.md", "x")
	for p, want := range map[string]errdefs.Class{
		"bin.md": errdefs.Invalid, "big.md": errdefs.Invalid, "sub": errdefs.Invalid, "none.md": errdefs.NotFound,
	} {
		if _, err := v.Read(ctx, p); !errdefs.Is(err, want) || !strings.HasPrefix(errdefs.Public(err), "path: ") {
			t.Errorf("Read(%s) = %v, want %v naming path", p, err, want)
		}
	}
}

func TestDeleteAndMove(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "a.md", "A links [[b]]\n")
	writeFile(t, dir, "b.md", "B\n")
	writeFile(t, dir, "c.md", "C\n")
	writeFile(t, dir, "full/x.md", "x")

	res, err := v.Move(ctx, "b.md", "archive/b2.md", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != "b.md" || res.To != "archive/b2.md" || len(res.Backlinks) != 1 || res.Backlinks[0].Path != "a.md" {
		t.Errorf("Move result %+v", res)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "archive/b2.md")); string(b) != "B\n" {
		t.Errorf("moved note = %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.md")); !os.IsNotExist(err) {
		t.Errorf("old name still there: %v", err)
	}
	// Without overwrite an existing note is never replaced.
	if _, err := v.Move(ctx, "c.md", "a.md", false); !errdefs.Is(err, errdefs.Conflict) || !strings.Contains(errdefs.Public(err), "overwrite") {
		t.Errorf("Move onto an existing note = %v, want Conflict mentioning overwrite", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.md")); string(b) != "A links [[b]]\n" {
		t.Errorf("refused move changed a.md: %q", b)
	}
	if _, err := v.Move(ctx, "c.md", "a.md", true); err != nil {
		t.Errorf("Move with overwrite = %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a.md")); string(b) != "C\n" {
		t.Errorf("after overwrite a.md = %q", b)
	}
	for _, tc := range []struct {
		from, to string
		class    errdefs.Class
	}{
		{"none.md", "y.md", errdefs.NotFound},
		{"a.md", "a.md", errdefs.Invalid},
		{"full", "y", errdefs.Invalid},
		{"a.md", "full", errdefs.Invalid},
	} {
		if _, err := v.Move(ctx, tc.from, tc.to, true); !errdefs.Is(err, tc.class) {
			t.Errorf("Move(%s, %s) = %v, want %v", tc.from, tc.to, err, tc.class)
		}
	}

	if err := v.Delete(ctx, "a.md"); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(ctx, "a.md"); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("second Delete = %v, want NotFound", err)
	}
	if err := v.Delete(ctx, "full"); !errdefs.Is(err, errdefs.Conflict) {
		t.Errorf("Delete of a folder with notes = %v, want Conflict", err)
	}
	must(t, v.Delete(ctx, "full/x.md"))
	if err := v.Delete(ctx, "full"); err != nil {
		t.Errorf("Delete of an empty folder = %v", err)
	}
}

func TestList(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "top.md", "12345")
	writeFile(t, dir, "teams/alpha/cards/ann.json", "{}")
	writeFile(t, dir, "teams/alpha/tasks/t1.md", "t")
	writeFile(t, dir, ".obsidian/workspace.json", "{}")
	writeFile(t, dir, "teams/.hidden.md", "h")
	paths := func(l *Listing) []string {
		var out []string
		for _, e := range l.Entries {
			out = append(out, fmt.Sprintf("%s dir=%v size=%d", e.Path, e.IsDir, e.Size))
		}
		return out
	}
	l, err := v.List(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"teams dir=true size=0", "top.md dir=false size=5"}, paths(l)); diff != "" {
		t.Errorf("List root (-want +got):\n%s", diff)
	}
	l, err = v.List(ctx, "teams", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"teams/alpha dir=true size=0", "teams/alpha/cards dir=true size=0", "teams/alpha/cards/ann.json dir=false size=2",
		"teams/alpha/tasks dir=true size=0", "teams/alpha/tasks/t1.md dir=false size=1",
	}
	if diff := cmp.Diff(want, paths(l)); diff != "" {
		t.Errorf("List teams recursive (-want +got):\n%s", diff)
	}
	if _, err := v.List(ctx, "top.md", false); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("List of a file = %v", err)
	}
	if _, err := v.List(ctx, "nope", false); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("List of a missing folder = %v", err)
	}
}

func TestFrontmatterAndTagsThroughTheVault(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	const note = "---\n# task\nstatus: open\ntags: [work]\n---\nDo it #urgent, not `#code`.\n\n```\n#fenced\n```\n"
	writeFile(t, dir, "t.md", note)

	fm, err := v.Frontmatter(ctx, "t.md")
	if err != nil || fm["status"] != "open" {
		t.Fatalf("Frontmatter = %v, %v", fm, err)
	}
	if _, err := v.SetFrontmatter(ctx, "t.md", "status", "done"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "t.md"))
	if want := strings.Replace(note, "status: open", "status: done", 1); string(b) != want {
		t.Errorf("after set:\n got %q\nwant %q", b, want)
	}
	tags, err := v.Tags(ctx, "t.md")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"work", "urgent"}, tags.All()); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if added, err := v.AddTag(ctx, "t.md", "#Review"); err != nil || !added {
		t.Errorf("AddTag = %v, %v", added, err)
	}
	if added, err := v.AddTag(ctx, "t.md", "review"); err != nil || added {
		t.Errorf("AddTag of a listed tag (other case) = %v, %v", added, err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "t.md"))
	if !strings.Contains(string(b), "tags: [work, Review]\n") {
		t.Errorf("flow list not kept: %q", b)
	}
	if removed, err := v.RemoveTag(ctx, "t.md", "work"); err != nil || !removed {
		t.Errorf("RemoveTag = %v, %v", removed, err)
	}
	if removed, err := v.RemoveTag(ctx, "t.md", "urgent"); err != nil || removed {
		t.Errorf("RemoveTag of an inline tag = %v, %v (inline tags are text)", removed, err)
	}
	if removed, err := v.RemoveTag(ctx, "t.md", "Review"); err != nil || !removed {
		t.Errorf("RemoveTag = %v, %v", removed, err)
	}
	if found, err := v.DeleteFrontmatter(ctx, "t.md", "status"); err != nil || !found {
		t.Errorf("DeleteFrontmatter = %v, %v", found, err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, "t.md"))
	if want := "---\n# task\n---\nDo it #urgent, not `#code`.\n\n```\n#fenced\n```\n"; string(b) != want {
		t.Errorf("after removals:\n got %q\nwant %q", b, want)
	}
	if _, err := v.SetFrontmatter(ctx, "none.md", "k", "v"); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("SetFrontmatter on a missing note = %v", err)
	}
	if _, err := v.AddTag(ctx, "t.md", "123"); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("AddTag(123) = %v, want Invalid (digits only)", err)
	}
	writeFile(t, dir, "bad.md", "---\na: [\n---\n")
	if _, err := v.SetFrontmatter(ctx, "bad.md", "k", "v"); !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "not valid YAML") {
		t.Errorf("SetFrontmatter on invalid YAML = %v", err)
	}
}

func TestUpdate(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	res, err := v.Update(ctx, "teams/alpha/cards/ann.json", func(old []byte, exists bool) ([]byte, error) {
		if exists {
			t.Errorf("new card exists: %q", old)
		}
		return []byte(`{"role":"dev"}`), nil
	})
	if err != nil || !res.Created || !res.Changed {
		t.Fatalf("Update = %+v, %v", res, err)
	}
	res, err = v.Update(ctx, "teams/alpha/cards/ann.json", func(old []byte, exists bool) ([]byte, error) {
		return old, nil
	})
	if err != nil || res.Changed {
		t.Errorf("unchanged Update = %+v, %v", res, err)
	}
	boom := errdefs.Conflictf("dependency cycle")
	if _, err := v.Update(ctx, "teams/alpha/cards/ann.json", func([]byte, bool) ([]byte, error) { return nil, boom }); err != boom {
		t.Errorf("Update returned %v, want fn's error", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "teams/alpha/cards/ann.json")); string(b) != `{"role":"dev"}` {
		t.Errorf("card = %q", b)
	}
}

func TestLinksBacklinksAndStats(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "index.md", "See [[Plan]], [[projects/plan|the plan]] and [[missing]].\n`[[not a link]]`\n")
	writeFile(t, dir, "projects/Plan.md", "---\ntags: [p]\n---\nBack to [[index#top]] #idea\n")
	writeFile(t, dir, "projects/notes.md", "![[Plan]] embedded\n")
	writeFile(t, dir, "other/plan.md", "a different plan, linked by nobody\n")

	links, err := v.Links(ctx, "index.md")
	if err != nil {
		t.Fatal(err)
	}
	want := []Link{
		{Target: "Plan", Line: 1, Path: "projects/Plan.md"},
		{Target: "projects/plan", Line: 1, Path: "projects/Plan.md"},
		{Target: "missing", Line: 1},
	}
	if diff := cmp.Diff(want, links); diff != "" {
		t.Errorf("Links (-want +got):\n%s", diff)
	}
	bl, err := v.Backlinks(ctx, "projects/Plan.md")
	if err != nil {
		t.Fatal(err)
	}
	wantBL := []Backlink{
		{Path: "index.md", Line: 1, Target: "Plan"},
		{Path: "index.md", Line: 1, Target: "projects/plan"},
		{Path: "projects/notes.md", Line: 1, Target: "Plan"},
	}
	if diff := cmp.Diff(wantBL, bl); diff != "" {
		t.Errorf("Backlinks (-want +got):\n%s", diff)
	}
	// A note changed behind the vault's back (say in Obsidian) is read
	// again: its links are current.
	time.Sleep(10 * time.Millisecond)
	writeFile(t, dir, "projects/notes.md", "no links any more\n")
	if bl, _ := v.Backlinks(ctx, "projects/Plan.md"); len(bl) != 2 {
		t.Errorf("after an outside edit, backlinks = %+v", bl)
	}
	if bl, _ := v.Backlinks(ctx, "index.md"); len(bl) != 1 || bl[0].Path != "projects/Plan.md" || bl[0].Line != 4 {
		t.Errorf("backlinks of index.md = %+v (the link is on line 4, after the frontmatter)", bl)
	}

	st, err := v.Stats(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if st.Notes != 4 || st.Folders != 2 || st.Tags != 2 || st.Links != 4 || st.Broken != 1 || len(st.Recent) != 2 {
		t.Errorf("Stats = %+v", st)
	}
	if st.Recent[0].Path != "projects/notes.md" {
		t.Errorf("most recent = %s, want the note just edited", st.Recent[0].Path)
	}
}

func TestRemoveAll(t *testing.T) {
	v, dir, outside := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "teams/alpha/cards/ann.json", "{}")
	writeFile(t, dir, "teams/alpha/tasks/t1.md", "#x")
	writeFile(t, dir, "teams/beta/tasks/t1.md", "#y")
	must(t, os.Symlink(outside, filepath.Join(dir, "teams/alpha/out")))
	if _, err := v.Stats(ctx, 0); err != nil {
		t.Fatal(err)
	}
	must(t, v.RemoveAll(ctx, "teams/alpha"))
	if _, err := os.Stat(filepath.Join(dir, "teams/alpha")); !os.IsNotExist(err) {
		t.Errorf("teams/alpha still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "secret.md")); err != nil {
		t.Errorf("RemoveAll followed the link out: %v", err)
	}
	st, _ := v.Stats(ctx, 0)
	if st.Notes != 1 || st.Tags != 1 {
		t.Errorf("after RemoveAll stats = %+v", st)
	}
	must(t, v.RemoveAll(ctx, "teams/none"))
	if err := v.RemoveAll(ctx, ""); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("RemoveAll of the root = %v, want Invalid", err)
	}
}

// TestWritesKeepTheVaultOwners checks that the daemon, running as root,
// leaves a person's vault theirs: a note written over keeps its owner, new
// notes and folders get the owner of the folder they are made in.
func TestWritesKeepTheVaultOwners(t *testing.T) {
	testenv.Require(t, "root")
	v, dir, _ := testVault(t)
	ctx := context.Background()
	must(t, os.Chown(dir, 1234, 1234))
	writeFile(t, dir, "theirs.md", "old\n")
	must(t, os.Chown(filepath.Join(dir, "theirs.md"), 4321, 4321))
	for _, w := range []struct {
		p    string
		mode WriteMode
	}{{"theirs.md", Overwrite}, {"theirs.md", Append}, {"new.md", Overwrite}, {"a/b/new.md", Overwrite}} {
		if _, err := v.Write(ctx, w.p, []byte("x\n"), w.mode); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := v.SetFrontmatter(ctx, "theirs.md", "k", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Move(ctx, "new.md", "c/moved.md", false); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]int{"theirs.md": 4321, "a": 1234, "a/b": 1234, "a/b/new.md": 1234, "c": 1234, "c/moved.md": 1234} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if o := ownerOf(fi); o == nil || o.uid != want || o.gid != want {
			t.Errorf("%s is owned by %+v, want %d:%d", p, o, want, want)
		}
	}
}
