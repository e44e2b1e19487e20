package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

type gitStatusOut struct {
	Branch     string   `json:"branch"`
	Commit     string   `json:"commit"`
	Upstream   string   `json:"upstream"`
	Ahead      int      `json:"ahead"`
	Behind     int      `json:"behind"`
	Staged     []string `json:"staged"`
	Modified   []string `json:"modified"`
	Untracked  []string `json:"untracked"`
	Conflicted []string `json:"conflicted"`
	Dirty      bool     `json:"dirty"`
}

var sha1Re = regexp.MustCompile(`^[0-9a-f]{40}$`)

// TestGitTools: clone a repository served from a bare repository inside
// the workspace, edit it, and go through status, diff, commit and push
// with the MCP tools, checking each answer against git itself.
func TestGitTools(t *testing.T) {
	d := startDaemon(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "git-tools", "memory_mb": 512})

	seed := sh(ctx, t, s, ws.ID, `git init -q -b main /tmp/seed; cd /tmp/seed
echo hello > README; git add README; git -c user.name=s -c user.email=s@example.com commit -qm seed
git clone -q --bare /tmp/seed /srv/origin.git; git rev-parse HEAD`)

	type cloneOut struct {
		Success   bool   `json:"success"`
		Path      string `json:"path"`
		CommitSHA string `json:"commit_sha"`
		Branch    string `json:"branch"`
		URL       string `json:"url"`
	}
	// The default path is /workspace, where the other tools look by
	// default too.
	cl := call[cloneOut](ctx, t, s, "git_clone", map[string]any{"workspace_id": "git-tools", "url": "/srv/origin.git"})
	if !cl.Success || cl.Path != "/workspace" || cl.CommitSHA != seed || cl.Branch != "main" {
		t.Fatalf("git_clone = %+v, want /workspace at %s on main", cl, seed)
	}

	const unicodeLine = "wörld ✓ 𝄞\n"
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws.ID, "path": "/workspace/notes/ünï.txt", "content": "new\n"})
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws.ID, "path": "/workspace/README", "content": "hello\n" + unicodeLine})
	sh(ctx, t, s, ws.ID, `cd /workspace; echo staged > staged.txt; git add staged.txt`)

	began := time.Now()
	st := call[gitStatusOut](ctx, t, s, "git_status", map[string]any{"workspace_id": ws.ID})
	t.Logf("git_status: %v", time.Since(began))
	if st.Branch != "main" || st.Upstream != "origin/main" || !st.Dirty || st.Commit != seed ||
		fmt.Sprint(st.Modified) != "[README]" || fmt.Sprint(st.Untracked) != "[notes/ünï.txt]" || fmt.Sprint(st.Staged) != "[staged.txt]" {
		t.Fatalf("git_status = %+v", st)
	}

	type diffOut struct {
		Diff      string `json:"diff"`
		Truncated bool   `json:"truncated"`
		Stat      string `json:"stat"`
	}
	df := call[diffOut](ctx, t, s, "git_diff", map[string]any{"workspace_id": ws.ID})
	if !strings.Contains(df.Diff, "+"+strings.TrimSpace(unicodeLine)) || df.Truncated || !strings.Contains(df.Stat, "README") {
		t.Fatalf("git_diff = %+v", df)
	}
	staged := call[diffOut](ctx, t, s, "git_diff", map[string]any{"workspace_id": ws.ID, "staged": true, "stat": true})
	if !strings.Contains(staged.Diff, "staged.txt") || strings.Contains(staged.Diff, "README") {
		t.Fatalf("git_diff staged stat = %+v", staged)
	}
	// M-16: cut inside the 4-byte character; the answer ends before it.
	cutAt := strings.Index(df.Diff, "𝄞") + 2
	cut := call[diffOut](ctx, t, s, "git_diff", map[string]any{"workspace_id": ws.ID, "max_bytes": cutAt})
	if !cut.Truncated || !utf8.ValidString(cut.Diff) || cut.Diff != df.Diff[:cutAt-2] {
		t.Fatalf("git_diff max_bytes %d = %q (truncated %v), want the diff up to the character", cutAt, cut.Diff, cut.Truncated)
	}

	type commitOut struct {
		Status    string `json:"status"`
		CommitSHA string `json:"commit_sha"`
		Branch    string `json:"branch"`
		Summary   string `json:"summary"`
	}
	began = time.Now()
	cm := call[commitOut](ctx, t, s, "git_commit", map[string]any{"workspace_id": ws.ID,
		"message": "edit README; add notes\n\nbody", "author_name": "Ada", "author_email": "ada@example.com"})
	t.Logf("git_commit (add, commit, log, branch): %v", time.Since(began))
	if cm.Status != "committed" || !sha1Re.MatchString(cm.CommitSHA) || cm.Branch != "main" || cm.Summary != "edit README; add notes" {
		t.Fatalf("git_commit = %+v", cm)
	}
	if got := sh(ctx, t, s, ws.ID, `git -C /workspace log -1 --format='%H %an <%ae>'; git -C /workspace status --porcelain`); got != cm.CommitSHA+" Ada <ada@example.com>" {
		t.Fatalf("after git_commit, git says %q", got)
	}
	again := call[commitOut](ctx, t, s, "git_commit", map[string]any{"workspace_id": ws.ID, "message": "nothing"})
	if again.Status != "nothing_to_commit" || again.CommitSHA != "" {
		t.Fatalf("second git_commit = %+v", again)
	}
	st = call[gitStatusOut](ctx, t, s, "git_status", map[string]any{"workspace_id": ws.ID})
	if st.Dirty || st.Ahead != 1 || st.Behind != 0 || st.Commit != cm.CommitSHA {
		t.Fatalf("git_status after commit = %+v", st)
	}

	type pushOut struct {
		Remote  string `json:"remote"`
		Branch  string `json:"branch"`
		Success bool   `json:"success"`
		Output  string `json:"output"`
	}
	ps := call[pushOut](ctx, t, s, "git_push", map[string]any{"workspace_id": ws.ID})
	if !ps.Success || ps.Remote != "origin" || ps.Branch != "main" || !strings.Contains(ps.Output, "main -> main") {
		t.Fatalf("git_push = %+v", ps)
	}
	if got := sh(ctx, t, s, ws.ID, `git --git-dir /srv/origin.git rev-parse main`); got != cm.CommitSHA {
		t.Fatalf("origin's main is %s after the push, want %s", got, cm.CommitSHA)
	}
	st = call[gitStatusOut](ctx, t, s, "git_status", map[string]any{"workspace_id": ws.ID})
	if st.Ahead != 0 {
		t.Fatalf("git_status after push = %+v", st)
	}
	// A pushed branch of its own, with set_upstream.
	sh(ctx, t, s, ws.ID, `cd /workspace; git checkout -q -b topic; echo t > t; git add t; git -c user.name=a -c user.email=a@e commit -qm topic`)
	ps = call[pushOut](ctx, t, s, "git_push", map[string]any{"workspace_id": ws.ID, "set_upstream": true})
	if ps.Branch != "topic" {
		t.Fatalf("git_push of topic = %+v", ps)
	}
	if st = call[gitStatusOut](ctx, t, s, "git_status", map[string]any{"workspace_id": ws.ID}); st.Upstream != "origin/topic" {
		t.Fatalf("after set_upstream, upstream = %q", st.Upstream)
	}

	// A shallow clone of a branch, by file:// URL, into a chosen path.
	cl = call[cloneOut](ctx, t, s, "git_clone", map[string]any{"workspace_id": ws.ID, "url": "file:///srv/origin.git",
		"path": "/root/shallow", "branch": "main", "depth": 1})
	if cl.CommitSHA != cm.CommitSHA || sh(ctx, t, s, ws.ID, `git -C /root/shallow rev-list --count HEAD`) != "1" {
		t.Fatalf("shallow clone = %+v", cl)
	}

	// Bad input: a tool error naming the field, and nothing made.
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{"git_clone", map[string]any{"workspace_id": ws.ID, "url": "--upload-pack=touch /tmp/pwned"}, "url: must not start with '-'"},
		{"git_clone", map[string]any{"workspace_id": ws.ID, "url": "ext::sh -c touch% /tmp/pwned"}, "url: must not contain spaces"},
		{"git_clone", map[string]any{"workspace_id": ws.ID, "url": "ext::touch%/tmp/pwned"}, "url: remote-helper forms"},
		{"git_clone", map[string]any{"workspace_id": ws.ID, "url": "/srv/origin.git"}, "path: /workspace already exists and is not empty"},
		{"git_clone", map[string]any{"workspace_id": ws.ID, "url": "/srv/origin.git", "branch": "--bare", "path": "/root/x"}, "branch: must not start with '-'"},
		{"git_status", map[string]any{"workspace_id": ws.ID, "path": "/root"}, "path: /root is not a git repository"},
		{"git_status", map[string]any{"workspace_id": ws.ID, "path": "relative"}, "path: must be an absolute path"},
		{"git_commit", map[string]any{"workspace_id": ws.ID, "message": ""}, "message: required"},
		{"git_push", map[string]any{"workspace_id": ws.ID, "remote": "--receive-pack=x"}, "remote: must not start with '-'"},
		{"git_diff", map[string]any{"workspace_id": ws.ID, "max_bytes": 1 << 40}, "max_bytes: at most"},
		{"git_status", map[string]any{"workspace_id": "no-such-workspace"}, "workspace_id: no such workspace in this session"},
	} {
		if msg := callErr(ctx, t, s, tc.tool, tc.args); !strings.Contains(msg, tc.want) {
			t.Errorf("%s(%v) = %q, want %q", tc.tool, tc.args, msg, tc.want)
		}
	}
	if got := sh(ctx, t, s, ws.ID, `ls /tmp; ls /root`); strings.Contains(got, "pwned") || strings.Contains(got, "\nx\n") {
		t.Fatalf("refused calls left files: %q", got)
	}

	// Another session sees none of it, and its errors name nothing (L-16).
	other := d.client(ctx)
	if msg := callErr(ctx, t, other, "git_status", map[string]any{"workspace_id": "git-tools"}); msg != "workspace_id: no such workspace in this session" {
		t.Errorf("foreign git_status = %q", msg)
	}
}

// TestM7_GitCredentialRedaction: a clone URL with user:token, a failing
// push to a remote whose URL holds them, and a push refused by a server
// that echoes credentials back. The token appears in no tool result or
// error, in no line of the daemon's log (at debug level), in no audit
// entry, and not in the workspace's logs.
func TestM7_GitCredentialRedaction(t *testing.T) {
	d := startDaemonWith(t, `log_level = "debug"`, "")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	s := d.client(ctx)
	ws := call[wsInfo](ctx, t, s, "workspace_create", map[string]any{"name": "git-secrets", "memory_mb": 512})

	// secret matches no token pattern: only the URL rule and the literal
	// secrets of the call catch it. gh matches the GitHub token pattern.
	const secret = "Zq9-plain-looking-s3cret"
	const gh = "ghp_Aa0Bb1Cc2Dd3Ee4Ff5Gg6Hh7Ii8Jj9Kk0Ll1"
	credURL := "https://agent:" + secret + "@127.0.0.1:1/r.git"
	hook := "#!/bin/sh\n" +
		"echo \"denied for https://agent:" + secret + "@git.example/r.git\"\n" +
		"echo \"Authorization: Bearer " + gh + "\"\n" +
		"echo \"password=" + secret + "\"\n" +
		"echo \"token " + gh + "\"\n" +
		"exit 1\n"
	sh(ctx, t, s, ws.ID, `git init -q --bare -b main /srv/origin.git
git init -q -b main /workspace/r; cd /workspace/r; echo a > a; git add a; git -c user.name=a -c user.email=a@e commit -qm a
git remote add echo /srv/origin.git`)
	call[map[string]any](ctx, t, s, "file_write", map[string]any{"workspace_id": ws.ID, "path": "/srv/origin.git/hooks/pre-receive", "content": hook, "mode": "0755"})

	var seen []string
	// 1. A clone whose URL holds the credentials (the port is closed).
	seen = append(seen, callErr(ctx, t, s, "git_clone", map[string]any{"workspace_id": ws.ID, "url": credURL, "path": "/workspace/c", "timeout_secs": 60}))
	// 2. A remote with the credentials, and a push that fails.
	sh(ctx, t, s, ws.ID, `git -C /workspace/r remote add origin '`+credURL+`'`)
	seen = append(seen, callErr(ctx, t, s, "git_push", map[string]any{"workspace_id": ws.ID, "path": "/workspace/r", "timeout_secs": 60}))
	// 3. A server that refuses the push and echoes credentials.
	echoed := callErr(ctx, t, s, "git_push", map[string]any{"workspace_id": ws.ID, "path": "/workspace/r", "remote": "echo"})
	if !strings.Contains(echoed, "denied for https://[REDACTED]@git.example") || !strings.Contains(echoed, "pre-receive hook declined") {
		t.Errorf("the refused push should report the server's words, masked: %q", echoed)
	}
	seen = append(seen, echoed)
	// The workspace's state and logs as tools show them.
	st := call[map[string]any](ctx, t, s, "git_status", map[string]any{"workspace_id": ws.ID, "path": "/workspace/r"})
	b, _ := json.Marshal(st)
	seen = append(seen, string(b))
	logs := call[map[string]any](ctx, t, s, "workspace_logs", map[string]any{"workspace_id": ws.ID})
	b, _ = json.Marshal(logs)
	seen = append(seen, string(b))

	for i, txt := range seen {
		if strings.Contains(txt, secret) || strings.Contains(txt, gh) {
			t.Errorf("answer %d holds a credential: %s", i, txt)
		}
	}
	if !strings.Contains(seen[0], "git clone failed") {
		t.Errorf("clone error = %q", seen[0])
	}

	// The daemon's log, at debug level, and the audit log.
	call[map[string]any](ctx, t, s, "workspace_destroy", map[string]any{"workspace_id": ws.ID})
	d.stop()
	log := d.Log()
	if !strings.Contains(log, "git_push") && !strings.Contains(log, "tool refused") {
		t.Errorf("the daemon log does not show the refused git calls at debug level; is the test looking at the right log?\n%s", log)
	}
	if strings.Contains(log, secret) || strings.Contains(log, gh) {
		t.Errorf("the daemon log holds a credential:\n%s", log)
	}
	db, err := sql.Open("sqlite", "file:"+d.StatePath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT session_id, actor, action, target, result, error_class, detail FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var f [7]sql.NullString
		if err := rows.Scan(&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]); err != nil {
			t.Fatal(err)
		}
		n++
		for _, v := range f {
			if strings.Contains(v.String, secret) || strings.Contains(v.String, gh) {
				t.Errorf("audit entry holds a credential: %v", f)
			}
		}
	}
	if n < 5 {
		t.Errorf("%d audit entries, want the calls of this test", n)
	}
	// And the raw database file, WAL included.
	for _, p := range []string{d.StatePath(), d.StatePath() + "-wal"} {
		if raw, err := os.ReadFile(p); err == nil && (strings.Contains(string(raw), secret) || strings.Contains(string(raw), gh)) {
			t.Errorf("%s holds a credential", p)
		}
	}
}
