package gitops

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/agentiso/agentiso/internal/redact"
)

// FuzzCheckURL: whatever is accepted cannot be read by git as an option,
// holds no control character or space, and names no remote helper
// (<transport>::<address>, by git's own rule).
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://h/r.git", "/srv/r.git", "git@h:r", "ext::sh", "-u", "file:///x", "h::x", "a:b/c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, u string) {
		if checkURL(u) != nil {
			return
		}
		if u[0] == '-' || hasControl(u) || strings.ContainsRune(u, ' ') {
			t.Fatalf("accepted %q", u)
		}
		if remoteHelper.MatchString(u) {
			t.Fatalf("accepted a remote-helper form %q", u)
		}
	})
}

// FuzzCheckRefName: an accepted name never starts with '-' and holds no
// byte git refuses in a ref.
func FuzzCheckRefName(f *testing.F) {
	for _, s := range []string{"main", "feature/x", "-x", "a..b", "a@{1}", "x.lock"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkRefName("branch", s) != nil {
			return
		}
		if s[0] == '-' || strings.ContainsAny(s, " ~^:?*[\\\x00\n") || strings.Contains(s, "..") {
			t.Fatalf("accepted %q", s)
		}
	})
}

// FuzzParseStatus: any output parses without panicking, and every path it
// reports is a substring of the output.
func FuzzParseStatus(f *testing.F) {
	f.Add("# branch.head main\x001 .M N... 100644 100644 100644 a b f\x00? u\x00", false)
	f.Add("2 R. N... 1 1 1 a b R100 new\x00old\x00u UU N... 1 1 1 1 a b c f", true)
	f.Add("# branch.ab +x -\x00# branch.ab", false)
	f.Fuzz(func(t *testing.T, out string, truncated bool) {
		st := parseStatus(out, truncated)
		for _, list := range [][]string{st.Staged, st.Modified, st.Untracked, st.Conflicted} {
			for _, p := range list {
				if !strings.Contains(out, p) {
					t.Fatalf("reported %q, not in the output", p)
				}
			}
		}
	})
}

// FuzzClean: the result is a prefix of the redacted text (so valid UTF-8
// in, valid UTF-8 out) and never longer than asked.
func FuzzClean(f *testing.F) {
	f.Add("aé✓𝄞 https://u:p@h/", 7, false)
	f.Add(strings.Repeat("x", 100), 50, true)
	f.Fuzz(func(t *testing.T, s string, max int, cut bool) {
		if max < 0 || max > 1<<20 {
			return
		}
		got, _ := clean(redact.Scrubber{}, s, cut, max)
		if len(got) > max || !strings.HasPrefix(redact.String(s), got) {
			t.Fatalf("clean(%q, %d) = %q", s, max, got)
		}
		if utf8.ValidString(s) && !utf8.ValidString(got) {
			t.Fatalf("clean(%q, %d) = %q: not valid UTF-8", s, max, got)
		}
	})
}
