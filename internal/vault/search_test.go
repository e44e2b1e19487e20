package vault

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func searchVault(t *testing.T) (*Vault, string) {
	t.Helper()
	v, dir, _ := testVault(t)
	writeFile(t, dir, "a.md", "---\ntags: [alpha]\n---\none\ntwo apple\nthree\nfour\nfive apple pie\nsix\n")
	writeFile(t, dir, "projects/b.md", "Apple upper\napple lower #beta\n")
	writeFile(t, dir, "projects2/c.md", "apple elsewhere\n")
	writeFile(t, dir, "data.json", `{"apple": 1}`)
	return v, dir
}

func TestSearch(t *testing.T) {
	v, _ := searchVault(t)
	ctx := context.Background()
	hits := func(q SearchQuery) []string {
		t.Helper()
		res, err := v.Search(ctx, q)
		if err != nil {
			t.Fatalf("Search(%+v): %v", q, err)
		}
		var out []string
		for _, h := range res.Hits {
			out = append(out, fmt.Sprintf("%s:%d", h.Path, h.LineNumber))
		}
		return out
	}
	tests := []struct {
		name string
		q    SearchQuery
		want []string
	}{
		{"substring, notes only, path order", SearchQuery{Query: "apple"}, []string{"a.md:5", "a.md:8", "projects/b.md:2", "projects2/c.md:1"}},
		{"case sensitive", SearchQuery{Query: "Apple"}, []string{"projects/b.md:1"}},
		{"regex", SearchQuery{Query: `(?i)^apple`, Regex: true}, []string{"projects/b.md:1", "projects/b.md:2", "projects2/c.md:1"}},
		{"folder prefix", SearchQuery{Query: "apple", PathPrefix: "projects/"}, []string{"projects/b.md:2"}},
		{"string prefix", SearchQuery{Query: "apple", PathPrefix: "projects"}, []string{"projects/b.md:2", "projects2/c.md:1"}},
		{"frontmatter tag", SearchQuery{Query: "apple", Tag: "alpha"}, []string{"a.md:5", "a.md:8"}},
		{"inline tag, any case, with #", SearchQuery{Query: "apple", Tag: "#BETA"}, []string{"projects/b.md:2"}},
		{"max results", SearchQuery{Query: "apple", MaxResults: 2}, []string{"a.md:5", "a.md:8"}},
		{"frontmatter lines are text too", SearchQuery{Query: "alpha"}, []string{"a.md:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, hits(tt.q)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	res, _ := v.Search(ctx, SearchQuery{Query: "apple", MaxResults: 2})
	if !res.Truncated {
		t.Errorf("4 hits with max 2: Truncated not set")
	}
	res, _ = v.Search(ctx, SearchQuery{Query: "five"})
	if len(res.Hits) != 1 || res.Hits[0].Context != "three\nfour\nfive apple pie\nsix\n" || res.Hits[0].Line != "five apple pie" {
		t.Errorf("context lines: %+v", res.Hits)
	}
	if res.Truncated || res.TimedOut || res.NotesSearched != 3 {
		t.Errorf("flags: %+v", res)
	}
}

func TestSearchRefusals(t *testing.T) {
	v, _ := searchVault(t)
	ctx := context.Background()
	for _, tc := range []struct {
		q     SearchQuery
		field string
	}{
		{SearchQuery{}, "query:"},
		{SearchQuery{Query: "(", Regex: true}, "query: not a valid regular expression"},
		{SearchQuery{Query: `(a)\1`, Regex: true}, "query: not a valid regular expression"},
		{SearchQuery{Query: "x", MaxResults: -1}, "max_results:"},
		{SearchQuery{Query: "x", MaxResults: MaxMaxResults + 1}, "max_results:"},
		{SearchQuery{Query: "x", PathPrefix: "../"}, "path_prefix:"},
		{SearchQuery{Query: "x", Tag: "12"}, "tag:"},
	} {
		if _, err := v.Search(ctx, tc.q); !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), tc.field) {
			t.Errorf("Search(%+v) = %v, want Invalid starting %q", tc.q, err, tc.field)
		}
	}
}

// TestM17_OverlongPatternRejectedQuickly checks finding M-17: a pattern
// longer than the limit is refused before it is compiled, with a message
// naming the field and the limit, whether it is a regex or a substring,
// in search or in replace.
func TestM17_OverlongPatternRejectedQuickly(t *testing.T) {
	v, dir := searchVault(t)
	ctx := context.Background()
	long := strings.Repeat("(a|b)", DefaultMaxPatternBytes/5+1)
	start := time.Now()
	for _, regex := range []bool{true, false} {
		_, err := v.Search(ctx, SearchQuery{Query: long, Regex: regex})
		if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), fmt.Sprint(DefaultMaxPatternBytes)) || !strings.HasPrefix(errdefs.Public(err), "query:") {
			t.Errorf("Search(regex=%v) of a %d-byte pattern = %v", regex, len(long), err)
		}
	}
	if _, err := v.Replace(ctx, "a.md", long, "x", true); !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "old_string:") {
		t.Errorf("Replace with a %d-byte regex = %v", len(long), err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refusing over-long patterns took %v", d)
	}
	// At the limit it is accepted.
	ok := strings.Repeat("a", DefaultMaxPatternBytes)
	if _, err := v.Search(ctx, SearchQuery{Query: ok, Regex: true}); err != nil {
		t.Errorf("a pattern of exactly the limit: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "a.md"))
	if !strings.Contains(string(b), "apple") {
		t.Errorf("a refused replace changed the note: %q", b)
	}
}

// TestM17_PathologicalRegexRejectedOrLinear checks the other half of M-17:
// patterns whose compiled form explodes are refused quickly, and the
// classic backtracking bombs run in linear time under RE2.
func TestM17_PathologicalRegexRejectedOrLinear(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "long.md", strings.Repeat("a", 200000)+"!\n")
	for _, p := range []string{
		`((a{100}){100}){100}`, // refused by the parser: repeat count
		`(.*){1000}`,           // short, but thousands of instructions
		`(x{2}){1000}`,
		`[\p{L}\p{N}]{1000}(a|b){1000}`,
	} {
		start := time.Now()
		_, err := v.Search(ctx, SearchQuery{Query: p, Regex: true})
		if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "query:") {
			t.Errorf("Search(%q) = %v, want refused", p, err)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("refusing %q took %v", p, d)
		}
	}
	for _, p := range []string{`(a+)+$`, `(a|aa)+$`, `(a*)*b`, `^(([a-z])+.)+[A-Z]([a-z])+$`} {
		start := time.Now()
		res, err := v.Search(ctx, SearchQuery{Query: p, Regex: true})
		if err != nil {
			t.Errorf("Search(%q): %v", p, err)
			continue
		}
		if len(res.Hits) != 0 {
			t.Errorf("Search(%q) matched: %+v", p, res.Hits)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%q over a 200 kB line took %v: not linear", p, d)
		}
	}
}

func TestSearchTimesOut(t *testing.T) {
	dir := t.TempDir()
	v, err := Open(Config{Root: dir, SearchTimeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	writeFile(t, dir, "a.md", "hit\n")
	res, err := v.Search(context.Background(), SearchQuery{Query: "hit"})
	if err != nil || !res.TimedOut {
		t.Errorf("Search with a timeout already passed = %+v, %v; want TimedOut", res, err)
	}
}

func TestReplace(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "r.md", "---\nstatus: open\n---\nfoo bar foo\nbaz-1 baz-22\n")
	n, err := v.Replace(ctx, "r.md", "foo", "qux", false)
	if err != nil || n != 2 {
		t.Fatalf("Replace = %d, %v", n, err)
	}
	n, err = v.Replace(ctx, "r.md", `baz-(\d+)`, "n=${1}", true)
	if err != nil || n != 2 {
		t.Fatalf("Replace regex = %d, %v", n, err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "r.md"))
	if want := "---\nstatus: open\n---\nqux bar qux\nn=1 n=22\n"; string(b) != want {
		t.Errorf("note = %q, want %q", b, want)
	}
	fi, _ := os.Stat(filepath.Join(dir, "r.md"))
	if n, err := v.Replace(ctx, "r.md", "absent", "x", false); err != nil || n != 0 {
		t.Errorf("Replace of an absent string = %d, %v", n, err)
	}
	if fi2, _ := os.Stat(filepath.Join(dir, "r.md")); !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("a replace without matches rewrote the note")
	}
	for _, tc := range []struct{ old, new, field string }{
		{"", "x", "old_string:"},
		{"(", "x", "old_string:"},
		{"qux", "\x00", "new_string:"},
		{"qux", strings.Repeat("y", int(v.MaxNoteBytes())), "new_string:"},
	} {
		if _, err := v.Replace(ctx, "r.md", tc.old, tc.new, tc.old == "("); !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), tc.field) {
			t.Errorf("Replace(%q, %.10q) = %v, want Invalid starting %q", tc.old, tc.new, err, tc.field)
		}
	}
	if _, err := v.Replace(ctx, "none.md", "a", "b", false); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("Replace in a missing note = %v", err)
	}
}

// BenchmarkSearch searches a vault of 1000 notes of about 2 kB, each with
// frontmatter, tags and links: the walk that checks the index, and reading
// every note.
func BenchmarkSearch(b *testing.B) {
	v, dir, _ := testVault(b)
	para := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 30)
	for i := 0; i < 1000; i++ {
		writeFile(b, dir, fmt.Sprintf("d%02d/note%04d.md", i%20, i),
			fmt.Sprintf("---\nstatus: open\ntags: [t%d]\n---\n# Note %d\n%s\nSee [[note%04d]] #x%d\n", i%7, i, para, (i+1)%1000, i%13))
	}
	ctx := context.Background()
	if _, err := v.Stats(ctx, 0); err != nil { // first walk reads everything
		b.Fatal(err)
	}
	for _, q := range []SearchQuery{{Query: "note0999"}, {Query: `See \[\[note09\d\d\]\]`, Regex: true}, {Query: "Note", Tag: "t3"}} {
		b.Run(fmt.Sprintf("regex=%v,tag=%q", q.Regex, q.Tag), func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Search(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("backlinks", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Backlinks(ctx, "d00/note0000.md"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
