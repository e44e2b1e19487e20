package vault

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// roundTripNotes are notes whose frontmatter is written in ways a careless
// rewrite would change: comments, quoting, flow lists, odd indentation, CRLF,
// a byte order mark, no final newline, "..." as the closing line.
var roundTripNotes = map[string]string{
	"plain":          "---\ntitle: Hello\ntags:\n  - a\n  - b\n---\n# Hello\n\nbody #inline\n",
	"comments":       "---\n# heading comment\ntitle: \"Quoted\" # trailing\n\n# before status\nstatus: open   # spaces kept\nlist: [x,   y]\n---\nbody\n",
	"compact list":   "---\ntags:\n- one\n- two\nowner: 'sam'\n---\n",
	"block scalar":   "---\ndescription: |\n  line one\n\n  line three\nafter: 1\n---\ntext",
	"crlf":           "---\r\ntitle: Windows\r\ntags: [a, b]\r\n---\r\nbody\r\n",
	"bom":            "\uFEFF---\ntitle: marked\n---\nbody\n",
	"dots close":     "---\ntitle: dots\n...\nbody\n",
	"empty block":    "---\n---\nbody\n",
	"only comments":  "---\n# nothing yet\n---\nbody\n",
	"no newline eof": "---\na: 1\n---",
	"no frontmatter": "# Just a note\n\n---\nnot: frontmatter\n---\n",
	"unclosed":       "---\na: 1\nno closing line\n",
	"flow mapping":   "---\n{a: 1, b: [x, y]}\n---\nbody\n",
	"anchors":        "---\nbase: &b\n  x: 1\nuse: *b\n---\n",
	"nested":         "---\nmeta:\n  owner: ann\n  deps:\n    - t1\n    - t2\nstatus: done\n---\n",
	"dates":          "---\ncreated: 2024-01-02\nupdated: 2024-01-02T03:04:05Z\n---\n",
	"invalid yaml":   "---\na: [1, 2\nb: :\n---\nbody\n",
	"not a mapping":  "---\n- a\n- b\n---\nbody\n",
	"empty":          "",
	"just dashes":    "---\n",
	"utf8":           "---\ntitre: « été » ✓\n---\ncorps ✓\n",
}

// TestFrontmatterRoundTripByteStable checks the proof: a note
// parsed and written back is the same bytes, and setting a new key and
// deleting it again gives back the same bytes.
func TestFrontmatterRoundTripByteStable(t *testing.T) {
	for name, note := range roundTripNotes {
		t.Run(name, func(t *testing.T) {
			d := ParseDocument([]byte(note))
			if got := string(d.Bytes()); got != note {
				t.Fatalf("Parse+Bytes changed the note:\n got %q\nwant %q", got, note)
			}
			before, err := d.Frontmatter()
			if err != nil {
				// Invalid frontmatter cannot be edited, and stays as it is.
				if err := d.Set("k", "v"); err == nil || !errdefs.Is(err, errdefs.Invalid) {
					t.Fatalf("Set on invalid frontmatter = %v, want an Invalid error", err)
				}
				if got := string(d.Bytes()); got != note {
					t.Fatalf("failed Set changed the note to %q", got)
				}
				return
			}
			if err := d.Set("zz_added", "value"); err != nil {
				t.Fatalf("Set: %v", err)
			}
			fm, err := d.Frontmatter()
			if err != nil {
				t.Fatalf("after Set, frontmatter: %v\n%s", err, d.Bytes())
			}
			if fm["zz_added"] != "value" {
				t.Fatalf("after Set, zz_added = %#v\n%s", fm["zz_added"], d.Bytes())
			}
			for k, v := range before {
				if !cmp.Equal(fm[k], v) {
					t.Errorf("after Set, %s = %#v, was %#v", k, fm[k], v)
				}
			}
			if !strings.HasSuffix(string(d.Bytes()), ParseDocument([]byte(note)).body) {
				t.Errorf("Set changed the body:\n%q", d.Bytes())
			}
			found, err := d.Delete("zz_added")
			if err != nil || !found {
				t.Fatalf("Delete = %v, %v", found, err)
			}
			if got := string(d.Bytes()); got != note {
				t.Fatalf("Set then Delete of a new key is not byte-stable:\n got %q\nwant %q", got, note)
			}
		})
	}
}

// TestSetChangesOnlyThatKey checks the exact text after an edit: only the
// edited key's lines differ.
func TestSetChangesOnlyThatKey(t *testing.T) {
	tests := []struct {
		name, in, key string
		value         any
		want          string
	}{
		{"scalar keeps comments around it",
			"---\n# about\ntitle: Old # why\n# next\nstatus: open\n---\nbody\n", "title", "New",
			"---\n# about\ntitle: New # why\n# next\nstatus: open\n---\nbody\n"},
		{"spacing before a comment kept",
			"---\nstatus: open    # why\n---\n", "status", "done",
			"---\nstatus: done    # why\n---\n"},
		{"double-quoted value with # inside",
			"---\na: \"x # y\"  # c\nb: 1\n---\n", "a", "new",
			"---\na: new  # c\nb: 1\n---\n"},
		{"single-quoted value",
			"---\nb: 'it''s'  # d\n---\n", "b", "z",
			"---\nb: z  # d\n---\n"},
		{"non-ASCII key and value",
			"---\nclé: été   # saison\n---\n", "clé", "hiver",
			"---\nclé: hiver   # saison\n---\n"},
		{"list value replaced, neighbours untouched",
			"---\na: 1\ndeps:\n  - x\n  - y\n\nz:   'q'\n---\n", "deps", []any{"x"},
			"---\na: 1\ndeps:\n  - x\n\nz:   'q'\n---\n"},
		{"compact list replaced",
			"---\ntags:\n- a\n- b\nowner: me\n---\n", "tags", []any{"c"},
			"---\ntags:\n  - c\nowner: me\n---\n"},
		{"flow list stays flow",
			"---\ntags: [a, b]\nx: 1\n---\n", "tags", []any{"a", "b", "c"},
			"---\ntags: [a, b, c]\nx: 1\n---\n"},
		{"new key appended",
			"---\na: 1\n---\nbody", "b", 2.0,
			"---\na: 1\nb: 2\n---\nbody"},
		{"number kept whole",
			"---\n---\n", "n", 1e6,
			"---\nn: 1000000\n---\n"},
		{"string that looks like a bool is quoted",
			"---\na: 1\n---\n", "s", "true",
			"---\na: 1\ns: \"true\"\n---\n"},
		{"block created",
			"# Title\n", "status", "open",
			"---\nstatus: open\n---\n# Title\n"},
		{"block created in CRLF",
			"line\r\n", "status", "open",
			"---\r\nstatus: open\r\n---\r\nline\r\n"},
		{"CRLF kept",
			"---\r\na: 1\r\nb: 2\r\n---\r\n", "a", "x",
			"---\r\na: x\r\nb: 2\r\n---\r\n"},
		{"block scalar replaced",
			"---\nd: |\n  one\n\n  two\nn: 1\n---\n", "d", "short",
			"---\nd: short\nn: 1\n---\n"},
		{"null value",
			"---\na: 1\n---\n", "a", nil,
			"---\na: null\n---\n"},
		{"nested map value",
			"---\na: 1\n---\n", "m", map[string]any{"k": "v"},
			"---\na: 1\nm:\n  k: v\n---\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ParseDocument([]byte(tt.in))
			if err := d.Set(tt.key, tt.value); err != nil {
				t.Fatalf("Set: %v", err)
			}
			if got := string(d.Bytes()); got != tt.want {
				t.Errorf("Set(%q, %#v):\n got %q\nwant %q", tt.key, tt.value, got, tt.want)
			}
		})
	}
}

func TestSetRefusesAnAnchorOthersReferTo(t *testing.T) {
	const note = "---\na: &x 1  # c\nb: *x\n---\n"
	d := ParseDocument([]byte(note))
	if err := d.Set("a", 2); !errdefs.Is(err, errdefs.Conflict) || !strings.HasPrefix(errdefs.Public(err), "key: a ") {
		t.Errorf("Set of an aliased anchor = %v, want a Conflict naming the key", err)
	}
	if string(d.Bytes()) != note {
		t.Errorf("refused Set changed the note: %q", d.Bytes())
	}
	// An anchor nobody refers to is just a value.
	d = ParseDocument([]byte("---\na: &x 1  # c\n---\n"))
	if err := d.Set("a", 2); err != nil {
		t.Fatal(err)
	}
	if got := string(d.Bytes()); got != "---\na: 2 # c\n---\n" {
		t.Errorf("got %q", got)
	}
}

func TestSetFallsBackToReencodingOddForms(t *testing.T) {
	// A flow mapping cannot be edited line by line: it is re-encoded, and
	// still holds every key.
	d := ParseDocument([]byte("---\n{a: 1, b: [x, y]}\n---\nbody\n"))
	if err := d.Set("c", "z"); err != nil {
		t.Fatal(err)
	}
	fm, err := d.Frontmatter()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"a": 1, "b": []any{"x", "y"}, "c": "z"}
	if diff := cmp.Diff(want, fm); diff != "" {
		t.Errorf("(-want +got):\n%s\n%s", diff, d.Bytes())
	}
	if !strings.HasSuffix(string(d.Bytes()), "---\nbody\n") {
		t.Errorf("body changed: %q", d.Bytes())
	}
}

func TestDeleteKey(t *testing.T) {
	d := ParseDocument([]byte("---\na: 1\nb:\n  - x\n# c's comment\nc: 3\n---\nbody\n"))
	found, err := d.Delete("b")
	if err != nil || !found {
		t.Fatalf("Delete(b) = %v, %v", found, err)
	}
	if got, want := string(d.Bytes()), "---\na: 1\n# c's comment\nc: 3\n---\nbody\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if found, err := d.Delete("nope"); err != nil || found {
		t.Errorf("Delete(nope) = %v, %v", found, err)
	}
	d.Delete("a")
	d.Delete("c")
	// Only the comment is left: the block stays, since it holds text.
	if got, want := string(d.Bytes()), "---\n# c's comment\n---\nbody\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestFrontmatterValues(t *testing.T) {
	d := ParseDocument([]byte(`---
s: text
i: 42
f: 1.5
b: true
n: ~
date: 2024-01-02
big: 123456789012345678901234567890
inf: .inf
list: [1, two]
base: &b {x: 1, y: 2}
merged:
  <<: *b
  y: 3
---
`))
	fm, err := d.Frontmatter()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"s": "text", "i": 42, "f": 1.5, "b": true, "n": nil,
		"date": "2024-01-02", "big": 1.2345678901234568e+29, "inf": ".inf",
		"list": []any{1, "two"},
		"base": map[string]any{"x": 1, "y": 2}, "merged": map[string]any{"x": 1, "y": 3},
	}
	if diff := cmp.Diff(want, fm); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	v, ok, err := d.Get("date")
	if err != nil || !ok || v != "2024-01-02" {
		t.Errorf("Get(date) = %#v, %v, %v", v, ok, err)
	}
	var s struct {
		S string `yaml:"s"`
		I int    `yaml:"i"`
	}
	if err := d.Decode(&s); err != nil || s.S != "text" || s.I != 42 {
		t.Errorf("Decode = %+v, %v", s, err)
	}
}

// TestFrontmatterAliasBombRefusedQuickly checks that a few hundred bytes of
// nested aliases (the "billion laughs") are refused, not expanded.
func TestFrontmatterAliasBombRefusedQuickly(t *testing.T) {
	var b strings.Builder
	b.WriteString("---\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		b.WriteString("a" + string(rune('0'+i)) + ": &a" + string(rune('0'+i)) + " [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*a" + string(rune('0'+i-1)))
		}
		b.WriteString("]\n")
	}
	b.WriteString("---\n")
	start := time.Now()
	_, err := ParseDocument([]byte(b.String())).Frontmatter()
	if err == nil || !errdefs.Is(err, errdefs.Invalid) {
		t.Fatalf("Frontmatter of an alias bomb = %v, want an Invalid error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing the alias bomb took %v", d)
	}
}

func TestSetRefusesBadKeys(t *testing.T) {
	d := ParseDocument([]byte("---\na: 1\n---\n"))
	for _, k := range []string{"", strings.Repeat("k", MaxKeyBytes+1), "a\nb", "bad\x00"} {
		if err := d.Set(k, 1); !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "key:") {
			t.Errorf("Set(%q) = %v, want an Invalid error naming key", k, err)
		}
	}
	if got := string(d.Bytes()); got != "---\na: 1\n---\n" {
		t.Errorf("refused Sets changed the note: %q", got)
	}
}

// FuzzDocument checks for any note: parsing and writing back is
// byte-identical; when its frontmatter is a valid mapping, setting a new key
// keeps every other key, and deleting it again restores the bytes.
func FuzzDocument(f *testing.F) {
	for _, n := range roundTripNotes {
		f.Add(n)
	}
	f.Fuzz(func(t *testing.T, note string) {
		d := ParseDocument([]byte(note))
		if got := string(d.Bytes()); got != note {
			t.Fatalf("Parse+Bytes changed %q to %q", note, got)
		}
		before, err := d.Frontmatter()
		if err != nil {
			return
		}
		if _, ok := before["zz_fuzz"]; ok {
			return
		}
		if err := d.Set("zz_fuzz", []any{"v", 1}); err != nil {
			// Values the YAML library cannot write back (odd tags) may
			// refuse an edit; that must leave the note alone.
			if got := string(d.Bytes()); got != note {
				t.Fatalf("failed Set changed %q to %q", note, got)
			}
			return
		}
		after, err := d.Frontmatter()
		if err != nil {
			t.Fatalf("after Set: %v\nnote %q\nnow %q", err, note, d.Bytes())
		}
		if !cmp.Equal(after["zz_fuzz"], []any{"v", 1}) {
			t.Fatalf("after Set zz_fuzz = %#v", after["zz_fuzz"])
		}
		delete(after, "zz_fuzz")
		if !cmp.Equal(before, after) && !(before == nil && len(after) == 0) {
			t.Fatalf("Set changed other keys: before %#v after %#v\nnote %q\nnow %q", before, after, note, d.Bytes())
		}
		if _, err := d.Delete("zz_fuzz"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		final, err := d.Frontmatter()
		if err != nil || !(cmp.Equal(before, final) || (len(before) == 0 && len(final) == 0)) {
			t.Fatalf("Set+Delete changed the frontmatter: %#v -> %#v (%v)", before, final, err)
		}
		// Byte stability of edits is promised for the forms an author
		// writes: a block mapping or a block holding nothing (or comments),
		// with lines that end in LF or CRLF. (YAML also breaks lines at a
		// lone CR, NEL, LS and PS; a null may be spelled "!"; such blocks
		// are re-encoded instead of edited line by line.)
		orig := ParseDocument([]byte(note))
		_, m, _ := orig.parse()
		plain := !orig.fm || (m == nil && onlyComments(orig.yaml)) || (m != nil && isPlainBlock(m, orig.yaml))
		if got := string(d.Bytes()); got != note && plain {
			t.Fatalf("Set+Delete is not byte-stable:\n got %q\nwant %q", got, note)
		}
	})
}
