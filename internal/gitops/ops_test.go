package gitops

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/redact"
)

func TestParseStatus(t *testing.T) {
	out := strings.Join([]string{
		"# branch.oid 0123456789abcdef0123456789abcdef01234567",
		"# branch.head feature/x",
		"# branch.upstream origin/feature/x",
		"# branch.ab +3 -1",
		"1 A. N... 000000 100644 100644 0000000000000000000000000000000000000000 1111111111111111111111111111111111111111 new file.txt",
		"1 .M N... 100644 100644 100644 1111111111111111111111111111111111111111 1111111111111111111111111111111111111111 src/main.go",
		"1 MM N... 100644 100644 100644 1111111111111111111111111111111111111111 2222222222222222222222222222222222222222 both.go",
		"2 R. N... 100644 100644 100644 1111111111111111111111111111111111111111 1111111111111111111111111111111111111111 R100 renamed ünï.go",
		"old name.go",
		"u UU N... 100644 100644 100644 100644 1111111111111111111111111111111111111111 2222222222222222222222222222222222222222 3333333333333333333333333333333333333333 conflict.go",
		"? untracked dir/file",
		"",
	}, "\x00")
	got := parseStatus(out, false)
	want := &Status{
		Branch: "feature/x", Commit: "0123456789abcdef0123456789abcdef01234567", Upstream: "origin/feature/x",
		Ahead: 3, Behind: 1,
		Staged:     []string{"new file.txt", "both.go", "renamed ünï.go"},
		Modified:   []string{"src/main.go", "both.go"},
		Untracked:  []string{"untracked dir/file"},
		Conflicted: []string{"conflict.go"},
		Dirty:      true,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("parseStatus (-want +got):\n%s", d)
	}

	clean := parseStatus("# branch.oid (initial)\x00# branch.head main\x00", false)
	if clean.Dirty || clean.Commit != "" || clean.Branch != "main" || clean.Staged == nil {
		t.Errorf("clean repo: %+v", clean)
	}
	// A cut listing drops its last, partial record.
	cut := parseStatus("# branch.head main\x00? a\x00? partial-na", true)
	if d := cmp.Diff([]string{"a"}, cut.Untracked); d != "" || !cut.Truncated {
		t.Errorf("truncated listing: %+v", cut)
	}
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{
		"https://github.com/o/r.git", "http://host/r", "ssh://git@host:22/r.git", "git://host/r",
		"file:///srv/r.git", "/srv/origin.git", "git@github.com:o/r.git", "host:r.git",
		"https://user:tok@host/r.git",
	} {
		if err := checkURL(ok); err != nil {
			t.Errorf("checkURL(%q) = %v, want ok", ok, err)
		}
	}
	for _, bad := range []string{
		"", "-uhttps://x", "--upload-pack=touch /tmp/x", "ext::sh -c touch% /tmp/pwned", "fd::3",
		"ftp://host/r", "https://host/r\nx", "https://host/r x", "relative/path", "./r",
		"https://user:SECRET@host/r\x00",
	} {
		err := checkURL(bad)
		if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "url: ") {
			t.Errorf("checkURL(%q) = %v, want an Invalid url error", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "SECRET") {
			t.Errorf("checkURL echoes the URL: %v", err)
		}
	}
}

func TestCheckRefName(t *testing.T) {
	for _, ok := range []string{"main", "feature/x", "v1.2", "origin", "merge/ws-1_a"} {
		if err := checkRefName("branch", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-f", "--force", "a..b", "a b", "a~1", "a^", "a:b", "x.lock", "/x", "x/", "a//b",
		"@", "a@{0}", ".hidden", "a/.b", "a\x00b", "a\tb", "a?", "a*", "a[", "a\\b", strings.Repeat("x", 256)} {
		err := checkRefName("branch", bad)
		if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "branch: ") {
			t.Errorf("checkRefName(%q) = %v, want an Invalid branch error", bad, err)
		}
	}
}

// TestM16_TruncationKeepsUTF8Whole cuts text full of multi-byte characters
// at every length: the result is always valid UTF-8, never longer than
// asked, and at most one character shorter.
func TestM16_TruncationKeepsUTF8Whole(t *testing.T) {
	text := strings.Repeat("aé✓𝄞", 50) // 1-, 2-, 3- and 4-byte characters
	for max := 0; max <= len(text)+1; max++ {
		got, cut := clean(redact.Scrubber{}, text, false, max)
		if !utf8.ValidString(got) {
			t.Fatalf("max %d: invalid UTF-8 %q", max, got[len(got)-4:])
		}
		if len(got) > max || len(got) < max-3 && max <= len(text) {
			t.Fatalf("max %d: got %d bytes", max, len(got))
		}
		if cut != (max < len(text)) {
			t.Fatalf("max %d: truncated = %v", max, cut)
		}
		if !strings.HasPrefix(text, got) {
			t.Fatalf("max %d: not a prefix", max)
		}
		// JSON carries it unchanged (a split character would become U+FFFD).
		b, _ := json.Marshal(got)
		var back string
		_ = json.Unmarshal(b, &back)
		if back != got {
			t.Fatalf("max %d: JSON round trip changed the text", max)
		}
	}
}

// TestCleanDropsACredentialCutByTheGuest: output the guest cut may end in
// half a credential, which no pattern would recognise; the slack that may
// hold it is dropped before anything is returned.
func TestCleanDropsACredentialCutByTheGuest(t *testing.T) {
	tok := "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	body := strings.Repeat("x", 100) + " https://u:" + tok[:14] // cut mid-token
	got, cut := clean(redact.Scrubber{}, body, true, 1000)
	if !cut || strings.Contains(got, tok[:10]) {
		t.Fatalf("clean = %q, %v: a cut credential survived", got, cut)
	}
	// Redaction happens before our own cut, so a whole credential that
	// straddles max is masked, not halved.
	whole := strings.Repeat("y", 20) + " " + tok + strings.Repeat("z", 20)
	got, _ = clean(redact.Scrubber{}, whole, false, 30)
	if strings.Contains(got, tok[:8]) {
		t.Fatalf("clean = %q: a credential straddling the cut leaked its start", got)
	}
}

func TestPatchHeader(t *testing.T) {
	p := "From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001\nFrom: t <t@e>\n" +
		"Date: x\nSubject: [PATCH 2/3] fix the thing\n\nbody\nSubject: not this\n"
	sha, subj := patchHeader([]byte(p))
	if sha != "0123456789abcdef0123456789abcdef01234567" || subj != "fix the thing" {
		t.Errorf("patchHeader = %q, %q", sha, subj)
	}
}

// gitFixture is a workspace with a bare origin and a clone of it.
func gitFixture(t *testing.T) (*hostWorkspaces, *Service) {
	t.Helper()
	h := newHostWorkspaces(t, "ws")
	h.sh("ws", `git init -q --bare -b main "$R/srv/origin.git"`)
	return h, newTestService(t, h)
}

// TestCloneEditStatusCommitDiffPush goes through the git tools' logic
// against real repositories on the host (the guest side is proven in
// test/e2e).
func TestCloneEditStatusCommitDiffPush(t *testing.T) {
	h, s := gitFixture(t)
	ctx := context.Background()

	cl, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "/srv/origin.git"})
	if err != nil {
		t.Fatal(err)
	}
	if cl.Path != "/workspace" || cl.CommitSHA != "" || !cl.Success {
		t.Fatalf("clone of an empty repository = %+v", cl)
	}
	h.sh("ws", `printf 'hello\n' > "$R/workspace/README"; mkdir "$R/workspace/d"; echo x > "$R/workspace/d/ünï"`)
	st, err := s.Status(ctx, caller, "ws", "/workspace")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"README", "d/ünï"}, st.Untracked); d != "" || !st.Dirty || st.Branch != "main" {
		t.Fatalf("status = %+v (%s)", st, d)
	}
	no := false
	if res, err := s.Commit(ctx, caller, "ws", CommitRequest{Path: "/workspace", Message: "nothing staged", AddAll: &no}); err != nil || res.Status != "nothing_to_commit" {
		t.Fatalf("commit without add_all = %+v, %v", res, err)
	}
	cm, err := s.Commit(ctx, caller, "ws", CommitRequest{Path: "/workspace", Message: "--first commit\n\nbody",
		AuthorName: "Ada", AuthorEmail: "ada@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Status != "committed" || len(cm.CommitSHA) != 40 || cm.Summary != "--first commit" || cm.Branch != "main" {
		t.Fatalf("commit = %+v", cm)
	}
	if got := h.sh("ws", `git -C "$R/workspace" log -1 --format='%an <%ae> %H'`); got != "Ada <ada@example.com> "+cm.CommitSHA {
		t.Errorf("author: %q", got)
	}

	h.sh("ws", `printf 'hello\nwörld ✓\n' > "$R/workspace/README"`)
	df, err := s.Diff(ctx, caller, "ws", DiffRequest{Path: "/workspace"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(df.Diff, "+wörld ✓") || !strings.Contains(df.Stat, "README | 1 +") || df.Truncated {
		t.Fatalf("diff = %+v", df)
	}
	// A cut diff ends on a whole character (M-16).
	full := len(df.Diff)
	cutAt := strings.Index(df.Diff, "✓") + 1 // inside the 3-byte character
	small, err := s.Diff(ctx, caller, "ws", DiffRequest{Path: "/workspace", MaxBytes: int64(cutAt)})
	if err != nil {
		t.Fatal(err)
	}
	if !small.Truncated || !utf8.ValidString(small.Diff) || len(small.Diff) != cutAt-1 || len(small.Diff) >= full {
		t.Fatalf("cut diff: %d bytes of %d, truncated %v, valid %v", len(small.Diff), full, small.Truncated, utf8.ValidString(small.Diff))
	}
	staged, err := s.Diff(ctx, caller, "ws", DiffRequest{Path: "/workspace", Staged: true})
	if err != nil || staged.Diff != "" {
		t.Fatalf("staged diff = %+v, %v; want empty", staged, err)
	}
	one, err := s.Diff(ctx, caller, "ws", DiffRequest{Path: "/workspace", FilePath: "d", Stat: true})
	if err != nil || one.Diff != "" {
		t.Fatalf("diff of an unchanged path = %+v, %v", one, err)
	}

	if _, err := s.Commit(ctx, caller, "ws", CommitRequest{Path: "/workspace", Message: "second"}); err != nil {
		t.Fatal(err)
	}
	st, _ = s.Status(ctx, caller, "ws", "/workspace")
	if st.Dirty {
		t.Fatalf("status after commit = %+v", st)
	}
	ps, err := s.Push(ctx, caller, "ws", PushRequest{Path: "/workspace", SetUpstream: true})
	if err != nil {
		t.Fatal(err)
	}
	if ps.Remote != "origin" || ps.Branch != "main" || !ps.Success {
		t.Fatalf("push = %+v", ps)
	}
	if got := h.sh("ws", `git --git-dir "$R/srv/origin.git" log --format=%s main`); got != "second\n--first commit" {
		t.Errorf("origin after push: %q", got)
	}
	st, _ = s.Status(ctx, caller, "ws", "/workspace")
	if st.Upstream != "origin/main" || st.Ahead != 0 || st.Behind != 0 {
		t.Errorf("status after push = %+v", st)
	}

	// A second clone, of a branch, shallow, to a path of our choosing.
	cl2, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "file:///srv/origin.git", Path: "/second/", Branch: "main", Depth: 1})
	if err != nil {
		t.Fatal(err)
	}
	if cl2.CommitSHA != h.sh("ws", `git --git-dir "$R/srv/origin.git" rev-parse main`) || cl2.Branch != "main" {
		t.Errorf("clone = %+v", cl2)
	}
	if cl2.Path != "/second" {
		t.Errorf("clone path %q, want /second", cl2.Path)
	}
	if got := h.sh("ws", `git -C "$R/second" rev-list --count HEAD`); got != "1" {
		t.Errorf("depth 1 clone has %s commits", got)
	}
	// Every command was git itself, run without a shell, and the commit
	// message never reached an argv.
	for _, argv := range h.calls {
		if argv[0] != "git" {
			t.Errorf("ran %q", argv)
		}
		for _, a := range argv {
			if strings.Contains(a, "first commit") {
				t.Errorf("the commit message is in an argv: %q", argv)
			}
		}
	}
}

func TestGitToolsRefuseBadInput(t *testing.T) {
	h, s := gitFixture(t)
	ctx := context.Background()
	h.sh("ws", `git init -q -b main "$R/workspace/r"`)
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"clone no url", func() error { _, err := s.Clone(ctx, caller, "ws", CloneRequest{}); return err }, "url: required"},
		{"clone option url", func() error {
			_, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "--upload-pack=touch /x"})
			return err
		}, "url: must not"},
		{"clone relative path", func() error {
			_, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "/srv/origin.git", Path: "rel"})
			return err
		}, "path: must be an absolute"},
		{"clone option branch", func() error {
			_, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "/srv/origin.git", Branch: "--bare"})
			return err
		}, "branch: must not start with '-'"},
		{"clone depth", func() error {
			_, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "/srv/origin.git", Depth: -1})
			return err
		}, "depth:"},
		{"clone timeout", func() error {
			_, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "/srv/origin.git", TimeoutSecs: -1})
			return err
		}, "timeout_secs:"},
		{"status relative", func() error { _, err := s.Status(ctx, caller, "ws", "x"); return err }, "path: must be an absolute"},
		{"status not a repo", func() error { _, err := s.Status(ctx, caller, "ws", "/tmp"); return err }, "path: /tmp is not a git repository"},
		{"status missing", func() error { _, err := s.Status(ctx, caller, "ws", "/nowhere"); return err }, "path: /nowhere does not exist"},
		{"commit no message", func() error {
			_, err := s.Commit(ctx, caller, "ws", CommitRequest{Path: "/workspace/r", Message: " \n"})
			return err
		}, "message: required"},
		{"commit author", func() error {
			_, err := s.Commit(ctx, caller, "ws", CommitRequest{Path: "/workspace/r", Message: "m", AuthorName: "a <b>"})
			return err
		}, "author_name:"},
		{"push remote", func() error {
			_, err := s.Push(ctx, caller, "ws", PushRequest{Path: "/workspace/r", Remote: "--mirror"})
			return err
		}, "remote: must not start with '-'"},
		{"push no such remote", func() error {
			_, err := s.Push(ctx, caller, "ws", PushRequest{Path: "/workspace/r", Remote: "upstream"})
			return err
		}, "remote: the repository has no remote upstream"},
		{"diff max", func() error {
			_, err := s.Diff(ctx, caller, "ws", DiffRequest{Path: "/workspace/r", MaxBytes: 1 << 40})
			return err
		}, "max_bytes: at most"},
		{"diff file", func() error {
			_, err := s.Diff(ctx, caller, "ws", DiffRequest{Path: "/workspace/r", FilePath: "a\nb"})
			return err
		}, "file_path:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil || errdefs.ClassOf(err) == errdefs.Internal || !strings.Contains(errdefs.Public(err), tt.want) {
				t.Fatalf("err = %v, want a classified error containing %q", err, tt.want)
			}
		})
	}
	if left := h.sh("ws", `ls "$R/workspace"`); left != "r" {
		t.Errorf("refused calls left %q in /workspace", left)
	}
}

// TestM7_GitCredentialsRedacted: a clone URL and a remote with
// user:token, a remote that echoes credentials while refusing a push,
// and git's own failure messages: the token is in no result and no error.
func TestM7_GitCredentialsRedacted(t *testing.T) {
	h, s := gitFixture(t)
	ctx := context.Background()
	const secret = "Zq9-plain-looking-secret" // matches no token pattern: only the literal and URL rules catch it
	const gh = "ghp_0123456789abcdefghijABCDEFGHIJ012345"
	h.sh("ws", `git init -q -b main "$R/workspace/r"; cd "$R/workspace/r"; echo a > a; git add a; git commit -qm a
		git remote add origin "https://agent:`+secret+`@127.0.0.1:1/r.git"
		git remote add echo "$R/srv/origin.git"
		cat > "$R/srv/origin.git/hooks/pre-receive" <<'EOF'
#!/bin/sh
echo "denied for https://agent:`+secret+`@git.example/r.git"
echo "Authorization: Bearer `+gh+`"
echo "password=`+secret+`"
exit 1
EOF
		chmod +x "$R/srv/origin.git/hooks/pre-receive"`)

	var texts []string
	_, err := s.Clone(ctx, caller, "ws", CloneRequest{URL: "https://agent:" + secret + "@127.0.0.1:1/r.git", Path: "/workspace/c"})
	if err == nil {
		t.Fatal("clone from a closed port succeeded")
	}
	texts = append(texts, err.Error(), errdefs.Public(err))
	if !errdefs.Is(err, errdefs.Unavailable) {
		t.Errorf("clone error class %v, want unavailable: %v", errdefs.ClassOf(err), err)
	}
	_, err = s.Push(ctx, caller, "ws", PushRequest{Path: "/workspace/r", TimeoutSecs: 30})
	if err == nil {
		t.Fatal("push to a closed port succeeded")
	}
	texts = append(texts, err.Error(), errdefs.Public(err))
	_, err = s.Push(ctx, caller, "ws", PushRequest{Path: "/workspace/r", Remote: "echo"})
	if err == nil {
		t.Fatal("push refused by the hook succeeded")
	}
	texts = append(texts, err.Error(), errdefs.Public(err))
	if !strings.Contains(err.Error(), "denied for https://"+redact.Mask+"@git.example") {
		t.Errorf("the hook's output should be there, masked: %v", err)
	}
	for _, txt := range texts {
		if strings.Contains(txt, secret) || strings.Contains(txt, gh) {
			t.Errorf("a credential leaked: %s", txt)
		}
	}
}
