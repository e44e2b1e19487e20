package e2e

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// listed is workspace_list's answer as the session tests read it.
type listed struct {
	Workspaces []struct {
		ID    string `json:"workspace_id"`
		Name  string `json:"name"`
		State string `json:"state"`
		Owned bool   `json:"owned"`
	} `json:"workspaces"`
	Count int `json:"count"`
}

var retryAfter = regexp.MustCompile(`retry in ([0-9.]+)s`)

// wantRateLimited checks a refusal's text and returns the wait it states.
func wantRateLimited(t *testing.T, msg, want string) time.Duration {
	t.Helper()
	if !strings.HasPrefix(msg, "rate limited: ") || !strings.Contains(msg, want) {
		t.Fatalf("refusal %q, want a rate-limit error mentioning %q", msg, want)
	}
	m := retryAfter.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("refusal %q does not say when to retry", msg)
	}
	secs, _ := strconv.ParseFloat(m[1], 64)
	return time.Duration(secs * float64(time.Second))
}

// TestM21_RateLimitPerSession hits each cost class's per-session limit
// over a real MCP client: a refused create boots nothing, other classes
// have their own budgets, another session is not affected, and a call
// retried after the stated wait succeeds.
func TestM21_RateLimitPerSession(t *testing.T) {
	d := startDaemon(t, "\n[limits]\ncreate_per_min = 1\nexec_per_min = 2\ndefault_per_min = 3\n")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	a := d.client(ctx)

	ws := call[wsInfo](ctx, t, a, "workspace_create", map[string]any{"name": "rl-1"})
	wantRateLimited(t, callErr(ctx, t, a, "workspace_create", map[string]any{"name": "rl-2"}),
		"this session may make at most 1 create-class calls per minute (limits.create_per_min)")
	// A limited fork is refused the same way, before its (absent) arguments are read.
	wantRateLimited(t, callErr(ctx, t, a, "workspace_fork", map[string]any{}), "create-class")

	for i := range 2 {
		if r := call[execResult](ctx, t, a, "exec", map[string]any{"workspace_id": ws.ID, "command": "echo " + strconv.Itoa(i)}); r.ExitCode != 0 {
			t.Fatalf("exec %d: %+v", i, r)
		}
	}
	wantRateLimited(t, callErr(ctx, t, a, "exec", map[string]any{"workspace_id": ws.ID, "command": "true"}),
		"at most 2 exec-class calls per minute (limits.exec_per_min)")

	// The refused create made nothing.
	if l := call[listed](ctx, t, a, "workspace_list", map[string]any{}); l.Count != 1 || l.Workspaces[0].Name != "rl-1" {
		t.Fatalf("after a refused create: %+v, want only rl-1", l)
	}
	// Another session has its own buckets.
	b := d.client(ctx)
	for range 3 {
		call[listed](ctx, t, b, "workspace_list", map[string]any{})
	}
	call[listed](ctx, t, a, "workspace_list", map[string]any{})
	call[listed](ctx, t, a, "workspace_list", map[string]any{})
	wait := wantRateLimited(t, callErr(ctx, t, a, "workspace_info", map[string]any{"workspace_id": ws.ID}),
		"this session may make at most 3 default-class calls per minute (limits.default_per_min)")
	if wait <= 0 || wait > 20*time.Second {
		t.Fatalf("retry in %v, want within the 20s refill of 3/min", wait)
	}
	time.Sleep(wait)
	call[map[string]any](ctx, t, a, "workspace_destroy", map[string]any{"workspace_id": ws.ID})

	db, err := sql.Open("sqlite", "file:"+d.StatePath()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var refused int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log WHERE error_class = 'rate_limited'`).Scan(&refused); err != nil {
		t.Fatal(err)
	}
	if refused != 4 {
		t.Errorf("%d rate-limited calls in the audit log, want 4", refused)
	}
}

// TestL13_GlobalRateLimitAcrossSessions checks the limit of all sessions
// together: sessions within their own budgets are refused once together
// they have used the global one, and a session refused by its own bucket
// does not spend the global budget.
func TestL13_GlobalRateLimitAcrossSessions(t *testing.T) {
	d := startDaemon(t, "\n[limits]\ndefault_per_min = 3\nglobal_default_per_min = 4\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, b, c := d.client(ctx), d.client(ctx), d.client(ctx)
	for range 3 {
		call[listed](ctx, t, a, "workspace_list", map[string]any{})
	}
	for range 3 {
		wantRateLimited(t, callErr(ctx, t, a, "workspace_list", map[string]any{}), "this session may make at most 3")
	}
	call[listed](ctx, t, b, "workspace_list", map[string]any{})
	const global = "all sessions together may make at most 4 default-class calls per minute (limits.global_default_per_min)"
	wantRateLimited(t, callErr(ctx, t, b, "workspace_list", map[string]any{}), global)
	wantRateLimited(t, callErr(ctx, t, c, "workspace_info", map[string]any{"workspace_id": "x"}), global)
}

// TestM22_ConnectionCap checks the daemon's bound on connections: beyond
// limits.max_connections a connection is closed at once, and a freed slot
// serves the next client.
func TestM22_ConnectionCap(t *testing.T) {
	d := startDaemon(t, "\n[limits]\nmax_connections = 2\n")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("unix", d.Socket)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	// The third is accepted by the kernel and closed by the daemon.
	extra, err := net.Dial("unix", d.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	extra.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := extra.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection beyond the cap: read %v, want EOF (closed by the daemon)", err)
	}
	// The two held connections are still served.
	for _, c := range held {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !isTimeout(err) {
			t.Fatalf("a connection within the cap: read %v, want it open and waiting", err)
		}
	}
	held[0].Close()
	// The freed slot serves a real client (the daemon notices the close
	// asynchronously: retry briefly).
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, _, err := d.tryClientCmd(ctx)
		if err == nil {
			call[listed](ctx, t, s, "workspace_list", map[string]any{})
			s.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no client served after a slot was freed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
