package session

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// clock is a manual clock for limiter tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newLimiter(t *testing.T, sess, global Rates) (*Limiter, *clock) {
	t.Helper()
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	l, err := NewLimiter(LimiterConfig{Session: sess, Global: global, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

var retryIn = regexp.MustCompile(`retry in ([0-9.]+)s$`)

// retryOf checks that err is a rate-limit refusal mentioning want, and
// returns the wait it states.
func retryOf(t *testing.T, err error, want string) time.Duration {
	t.Helper()
	if !errdefs.Is(err, errdefs.RateLimited) {
		t.Fatalf("error = %v, want RateLimited", err)
	}
	msg := errdefs.Public(err)
	if !strings.Contains(msg, want) {
		t.Fatalf("message %q does not mention %q", msg, want)
	}
	m := retryIn.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("message %q does not say when to retry", msg)
	}
	secs, _ := strconv.ParseFloat(m[1], 64)
	return time.Duration(secs * float64(time.Second))
}

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		tool, action string
		want         Class
	}{
		{"workspace_create", "", Create},
		{"workspace_fork", "", Create},
		{"swarm_run", "", Create},
		{"workspace_prepare", "", Create},
		{"team", "create", Create},
		{"team", "status", Default},
		{"exec", "", Exec},
		{"exec_background", "poll", Exec},
		{"exec_parallel", "", Exec},
		{"workspace_list", "", Default},
		{"workspace_adopt", "", Default},
		{"snapshot", "create", Default},
		{"a_tool_added_later", "", Default},
	} {
		if got := ClassOf(tc.tool, tc.action); got != tc.want {
			t.Errorf("ClassOf(%q, %q) = %v, want %v", tc.tool, tc.action, got, tc.want)
		}
	}
}

// A session gets a minute's worth of calls at once, then one per refill
// period; the refusal names the class, the limit and its key, and retrying
// after the time it states succeeds.
func TestM21_SessionBucketPerClass(t *testing.T) {
	l, c := newLimiter(t, Rates{Create: 2, Exec: 3, Default: 4}, Rates{Create: 100, Exec: 100, Default: 100})
	for i := range 2 {
		if err := l.Allow("s1", "workspace_create", ""); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	wait := retryOf(t, l.Allow("s1", "workspace_fork", ""),
		"this session may make at most 2 create-class calls per minute (limits.create_per_min)")
	if wait < 29*time.Second || wait > 30*time.Second {
		t.Errorf("retry in %v, want ~30s (2/min)", wait)
	}
	// Other classes have their own buckets.
	for i := range 3 {
		if err := l.Allow("s1", "exec", ""); err != nil {
			t.Fatalf("exec %d: %v", i, err)
		}
	}
	retryOf(t, l.Allow("s1", "exec_parallel", ""), "3 exec-class calls per minute (limits.exec_per_min)")
	if err := l.Allow("s1", "workspace_list", ""); err != nil {
		t.Fatalf("default class after exec ran out: %v", err)
	}
	// Not a moment before the stated time, but at it.
	c.advance(wait - 200*time.Millisecond)
	retryOf(t, l.Allow("s1", "workspace_create", ""), "create-class")
	c.advance(200 * time.Millisecond)
	if err := l.Allow("s1", "workspace_create", ""); err != nil {
		t.Fatalf("create after the stated wait: %v", err)
	}
}

// Sessions have separate buckets; Forget drops a session's.
func TestSessionsAreSeparate(t *testing.T) {
	l, _ := newLimiter(t, Rates{Create: 1, Exec: 1, Default: 1}, Rates{Create: 10, Exec: 10, Default: 10})
	if err := l.Allow("a", "exec", ""); err != nil {
		t.Fatal(err)
	}
	retryOf(t, l.Allow("a", "exec", ""), "this session")
	if err := l.Allow("b", "exec", ""); err != nil {
		t.Fatalf("session b limited by a's calls: %v", err)
	}
	l.Forget("a")
	if len(l.sessions) != 1 {
		t.Errorf("%d sessions kept after Forget, want 1", len(l.sessions))
	}
}

// The global bucket bounds all sessions together (L-13), and a call refused
// by either bucket takes nothing from the other.
func TestL13_GlobalBucketAcrossSessions(t *testing.T) {
	l, c := newLimiter(t, Rates{Create: 1, Exec: 3, Default: 3}, Rates{Create: 1, Exec: 4, Default: 4})
	for i := range 3 {
		if err := l.Allow("a", "exec", ""); err != nil {
			t.Fatalf("a exec %d: %v", i, err)
		}
	}
	// a is out: its refusal must not spend the global token b needs.
	for range 5 {
		retryOf(t, l.Allow("a", "exec", ""), "this session")
	}
	if err := l.Allow("b", "exec", ""); err != nil {
		t.Fatalf("b's first exec: %v", err)
	}
	wait := retryOf(t, l.Allow("b", "exec", ""),
		"all sessions together may make at most 4 exec-class calls per minute (limits.global_exec_per_min)")
	if wait < 14*time.Second || wait > 15*time.Second {
		t.Errorf("global retry in %v, want ~15s (4/min)", wait)
	}
	// b's refusals by the global bucket did not spend b's own tokens:
	// after one global refill b still has two of its three.
	c.advance(15 * time.Second)
	if err := l.Allow("b", "exec", ""); err != nil {
		t.Fatalf("b after the global refill: %v", err)
	}
	c.advance(15 * time.Second)
	if err := l.Allow("b", "exec", ""); err != nil {
		t.Fatalf("b after the second global refill: %v", err)
	}
	// A session refused by its own bucket is told when both will allow.
	if err := l.Allow("c", "workspace_create", ""); err != nil {
		t.Fatal(err)
	}
	// Now the global create bucket is empty too; a fresh session d sees the
	// global refusal, session c its own with the longer of the two waits.
	retryOf(t, l.Allow("d", "workspace_create", ""), "all sessions together")
	if w := retryOf(t, l.Allow("c", "workspace_create", ""), "this session"); w < 59*time.Second {
		t.Errorf("c's retry %v, want ~60s", w)
	}
}

func TestLimiterConcurrentCallsNeverExceedTheBucket(t *testing.T) {
	l, _ := newLimiter(t, Rates{Create: 50, Exec: 50, Default: 50}, Rates{Create: 60, Exec: 60, Default: 60})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for s := range 4 {
		for range 40 {
			wg.Go(func() {
				if l.Allow(strconv.Itoa(s), "exec", "") == nil {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if allowed != 60 {
		t.Errorf("%d calls allowed by a global bucket of 60 (clock stopped)", allowed)
	}
}

func TestNewLimiterRefusesZeroRates(t *testing.T) {
	if _, err := NewLimiter(LimiterConfig{Session: Rates{1, 1, 0}, Global: Rates{1, 1, 1}}); err == nil {
		t.Error("a zero default rate was accepted")
	}
}
