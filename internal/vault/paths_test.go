package vault

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// testVault opens a vault in a fresh directory, beside a sibling directory
// "outside" that holds a secret no vault operation may read or change.
func testVault(t testing.TB) (v *Vault, dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "vault")
	outside = filepath.Join(base, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret.md"), []byte("SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := Open(Config{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir, outside
}

func writeFile(t testing.TB, dir, rel, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct {
		in, want  string
		allowRoot bool
		wantErr   string // substring of the public message
	}{
		{in: "note.md", want: "note.md"},
		{in: "a/b/c.md", want: "a/b/c.md"},
		{in: "./a//b/./c.md", want: "a/b/c.md"},
		{in: "a/b/", want: "a/b"},
		{in: "", allowRoot: true, want: "."},
		{in: ".", allowRoot: true, want: "."},
		{in: "", wantErr: "path: must name a note"},
		{in: "/etc/passwd", wantErr: "not an absolute path"},
		{in: "//etc/passwd", wantErr: "not an absolute path"},
		{in: "../x.md", wantErr: "must not contain '..'"},
		{in: "a/../../x.md", wantErr: "must not contain '..'"},
		{in: "a/..", wantErr: "must not contain '..'"},
		{in: ".obsidian/plugins/x/main.js", wantErr: "hidden names"},
		{in: "a/.git/config", wantErr: "hidden names"},
		{in: ".agentiso-tmp-1234", wantErr: "hidden names"},
		{in: "a\x00b", wantErr: "control characters"},
		{in: "a\nb", wantErr: "control characters"},
		{in: "bad\xff", wantErr: "not valid UTF-8"},
		{in: strings.Repeat("a/", MaxPathBytes), wantErr: "longer than"},
		{in: strings.Repeat("n", 256) + ".md", wantErr: "longer than 255"},
		{in: "é/ünïcode ok.md", want: "é/ünïcode ok.md"},
	}
	for _, tt := range tests {
		got, err := CleanPath("path", tt.in, tt.allowRoot)
		if tt.wantErr != "" {
			if err == nil || !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), tt.wantErr) {
				t.Errorf("CleanPath(%q) = %q, %v; want an Invalid error with %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("CleanPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestTraversalAndAbsolutePathsRefused checks the proof for every
// operation that takes a path: ".." and absolute paths are refused, with an
// error naming the field, and nothing outside the vault is read or written.
func TestTraversalAndAbsolutePathsRefused(t *testing.T) {
	v, _, outside := testVault(t)
	ctx := context.Background()
	secret := filepath.Join(outside, "secret.md")
	for _, p := range []string{"../outside/secret.md", "a/../../outside/secret.md", secret, "/etc/passwd"} {
		checks := map[string]error{}
		_, checks["read"] = v.Read(ctx, p)
		_, checks["write"] = v.Write(ctx, p, []byte("pwned"), Overwrite)
		_, checks["append"] = v.Write(ctx, p, []byte("pwned"), Append)
		checks["delete"] = v.Delete(ctx, p)
		_, checks["move from"] = v.Move(ctx, p, "x.md", true)
		_, checks["move to"] = v.Move(ctx, "x.md", p, true)
		_, checks["list"] = v.List(ctx, p, true)
		_, checks["set"] = v.SetFrontmatter(ctx, p, "k", "v")
		_, checks["tag"] = v.AddTag(ctx, p, "t")
		_, checks["replace"] = v.Replace(ctx, p, "SECRET", "pwned", false)
		_, checks["backlinks"] = v.Backlinks(ctx, p)
		_, checks["search"] = v.Search(ctx, SearchQuery{Query: "SECRET", PathPrefix: p})
		for op, err := range checks {
			if err == nil || !errdefs.Is(err, errdefs.Invalid) {
				t.Errorf("%s %q: err = %v, want Invalid", op, p, err)
				continue
			}
			if msg := errdefs.Public(err); !strings.Contains(msg, "path") {
				t.Errorf("%s %q: message %q does not name the field", op, p, msg)
			}
		}
	}
	if b, _ := os.ReadFile(secret); string(b) != "SECRET\n" {
		t.Errorf("the file outside the vault changed: %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("files appeared outside the vault: %v", ents)
	}
}

// TestSymlinkOutsideRefused checks that symbolic links inside the vault
// that lead outside it (to a file, to a folder, absolute or relative) can be
// neither read nor written through, and that the refusal says so.
func TestSymlinkOutsideRefused(t *testing.T) {
	v, dir, outside := testVault(t)
	ctx := context.Background()
	secret := filepath.Join(outside, "secret.md")
	writeFile(t, dir, "ok.md", "fine\n")
	must(t, os.Symlink(secret, filepath.Join(dir, "abs.md")))
	must(t, os.Symlink("../outside/secret.md", filepath.Join(dir, "rel.md")))
	must(t, os.Symlink(outside, filepath.Join(dir, "out")))
	must(t, os.Symlink("loop.md", filepath.Join(dir, "loop.md")))

	for _, p := range []string{"abs.md", "rel.md", "out/secret.md"} {
		_, err := v.Read(ctx, p)
		if !errdefs.Is(err, errdefs.PermissionDenied) || !strings.Contains(errdefs.Public(err), "leads outside the vault") {
			t.Errorf("Read(%s) = %v, want a refusal saying it leads outside", p, err)
		}
		if strings.Contains(errdefs.Public(err), outside) {
			t.Errorf("Read(%s) error shows the host path: %q", p, errdefs.Public(err))
		}
	}
	// Writing through the link to a file is refused (the link is not
	// replaced either); writing into the linked folder is refused.
	for _, p := range []string{"abs.md", "rel.md"} {
		if _, err := v.Write(ctx, p, []byte("pwned"), Overwrite); !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "symbolic link") {
			t.Errorf("Write(%s) = %v, want a refusal naming the link", p, err)
		}
		if fi, err := os.Lstat(filepath.Join(dir, p)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is no longer the link: %v %v", p, fi, err)
		}
	}
	for _, p := range []string{"out/secret.md", "out/new.md", "out/sub/new.md"} {
		if _, err := v.Write(ctx, p, []byte("pwned"), Overwrite); !errdefs.Is(err, errdefs.PermissionDenied) {
			t.Errorf("Write(%s) = %v, want PermissionDenied", p, err)
		}
	}
	if _, err := v.Replace(ctx, "out/secret.md", "SECRET", "pwned", false); !errdefs.Is(err, errdefs.PermissionDenied) {
		t.Errorf("Replace through the linked folder = %v", err)
	}
	if _, err := v.Move(ctx, "ok.md", "out/moved.md", false); !errdefs.Is(err, errdefs.PermissionDenied) {
		t.Errorf("Move into the linked folder = %v", err)
	}
	if _, err := v.Move(ctx, "out/secret.md", "stolen.md", false); !errdefs.Is(err, errdefs.PermissionDenied) {
		t.Errorf("Move out of the linked folder = %v", err)
	}
	if _, err := v.List(ctx, "out", false); !errdefs.Is(err, errdefs.PermissionDenied) {
		t.Errorf("List of the linked folder = %v", err)
	}
	if _, err := v.Read(ctx, "loop.md"); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("Read of a link loop = %v, want Invalid", err)
	}
	// Deleting the link removes the link, never its target.
	if err := v.Delete(ctx, "abs.md"); err != nil {
		t.Errorf("Delete(abs.md) = %v", err)
	}
	// Listings and searches do not follow the links out.
	l, err := v.List(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range l.Entries {
		if strings.HasPrefix(e.Path, "out/") {
			t.Errorf("recursive listing went through the link: %s", e.Path)
		}
	}
	res, err := v.Search(ctx, SearchQuery{Query: "SECRET"})
	if err != nil || len(res.Hits) != 0 {
		t.Errorf("search found the secret: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(secret); string(b) != "SECRET\n" {
		t.Errorf("the file outside the vault changed: %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("files appeared outside the vault: %v", ents)
	}
}

// TestSymlinkInsideIsFollowedForReading checks the other side: a link that
// stays in the vault can be read (it is the same note), but is never
// written through.
func TestSymlinkInsideIsFollowedForReading(t *testing.T) {
	v, dir, _ := testVault(t)
	ctx := context.Background()
	writeFile(t, dir, "real/note.md", "real\n")
	must(t, os.Symlink("real/note.md", filepath.Join(dir, "alias.md")))
	n, err := v.Read(ctx, "alias.md")
	if err != nil || string(n.Content) != "real\n" {
		t.Fatalf("Read(alias.md) = %v, %v", n, err)
	}
	if _, err := v.Write(ctx, "alias.md", []byte("x"), Append); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("Write through an inside link = %v, want Invalid", err)
	}
}

// FuzzPathConfinement feeds arbitrary paths to every operation of a vault
// that has links pointing outside it, and checks that nothing outside is
// ever read (the secret never appears in a result) or changed.
func FuzzPathConfinement(f *testing.F) {
	for _, s := range []string{
		"note.md", "../outside/secret.md", "/etc/passwd", "out/secret.md", "out/../out/secret.md",
		"link.md", "a/../../outside/secret.md", "./out/./secret.md", "out//secret.md", "..", ".",
		"dir/", "out/x/../secret.md", "%2e%2e/outside/secret.md", "..\\outside\\secret.md",
	} {
		f.Add(s)
	}
	v, dir, outside := testVault(f)
	writeFile(f, dir, "note.md", "note\n")
	writeFile(f, dir, "dir/inner.md", "inner\n")
	must(f, os.Symlink(outside, filepath.Join(dir, "out")))
	must(f, os.Symlink(filepath.Join(outside, "secret.md"), filepath.Join(dir, "link.md")))
	secret := filepath.Join(outside, "secret.md")
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, p string) {
		if n, err := v.Read(ctx, p); err == nil && strings.Contains(string(n.Content), "SECRET") {
			t.Fatalf("Read(%q) returned the secret", p)
		}
		if fm, err := v.Frontmatter(ctx, p); err == nil && fm != nil {
			t.Fatalf("Frontmatter(%q) = %v", p, fm)
		}
		v.Write(ctx, p, []byte("fuzzed\n"), Append)
		v.Replace(ctx, p, "SECRET", "pwned", false)
		v.SetFrontmatter(ctx, p, "k", "v")
		v.Move(ctx, p, "moved.md", true)
		v.Move(ctx, "note.md", p, false)
		if l, err := v.List(ctx, p, true); err == nil {
			for _, e := range l.Entries {
				if strings.HasPrefix(e.Path, "out/") {
					t.Fatalf("List(%q) went through the link: %s", p, e.Path)
				}
			}
		}
		if res, err := v.Search(ctx, SearchQuery{Query: "SECRET", PathPrefix: p}); err == nil {
			for _, h := range res.Hits {
				if strings.Contains(h.Line, "SECRET\n") || h.Line == "SECRET" {
					t.Fatalf("Search with prefix %q found the secret in %s", p, h.Path)
				}
			}
		}
		if b, _ := os.ReadFile(secret); string(b) != "SECRET\n" {
			t.Fatalf("after %q the secret is %q", p, b)
		}
		if ents, _ := os.ReadDir(outside); len(ents) != 1 {
			t.Fatalf("after %q, outside holds %v", p, ents)
		}
		// Put back what the moves may have taken away.
		if _, err := os.Stat(filepath.Join(dir, "note.md")); err != nil {
			writeFile(t, dir, "note.md", "note\n")
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
