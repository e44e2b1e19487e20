package session

import (
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// Rates are calls per minute by cost class.
type Rates struct {
	Create, Exec, Default int
}

func (r Rates) of(c Class) int {
	switch c {
	case Create:
		return r.Create
	case Exec:
		return r.Exec
	}
	return r.Default
}

// LimiterConfig configures a Limiter.
type LimiterConfig struct {
	// Session are the rates of each session; Global those of all sessions
	// together.
	Session, Global Rates
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Limiter is a token bucket per session and cost class, and one per cost
// class shared by all sessions (findings M-21, L-13: per-session limits
// alone let many sessions together overrun the host). A bucket holds one
// minute's worth of calls and refills continuously.
type Limiter struct {
	cfg LimiterConfig

	// mu makes the check of both buckets and the taking of both tokens one
	// step: a call refused by one bucket takes nothing from the other.
	mu       sync.Mutex
	global   [numClasses]*rate.Limiter
	sessions map[string]*[numClasses]*rate.Limiter
}

// NewLimiter returns a Limiter. Every rate must be positive.
func NewLimiter(cfg LimiterConfig) (*Limiter, error) {
	for c := range numClasses {
		if cfg.Session.of(c) < 1 || cfg.Global.of(c) < 1 {
			return nil, fmt.Errorf("rate limiter: the %s rates must be positive", c)
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	l := &Limiter{cfg: cfg, sessions: map[string]*[numClasses]*rate.Limiter{}}
	for c := range numClasses {
		l.global[c] = bucket(cfg.Global.of(c))
	}
	return l, nil
}

func bucket(perMin int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(float64(perMin)/60), perMin)
}

// Allow takes one token from session's bucket and from the global bucket of
// the call's class, or neither. A refusal is a RateLimited error that names
// the class, the limit and its configuration key, and when to retry.
func (l *Limiter) Allow(sessionID, tool, action string) error {
	c := ClassOf(tool, action)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.cfg.Now()
	own := l.sessions[sessionID]
	if own == nil {
		own = new([numClasses]*rate.Limiter)
		for k := range numClasses {
			own[k] = bucket(l.cfg.Session.of(k))
		}
		l.sessions[sessionID] = own
	}
	mine, all := waitFor(own[c], now), waitFor(l.global[c], now)
	if mine > 0 {
		// Say when both buckets will allow the call, not just this one.
		return errdefs.RateLimitedf("rate limited: this session may make at most %d %s-class calls per minute (limits.%s_per_min); retry in %s",
			l.cfg.Session.of(c), c, c, retryText(max(mine, all)))
	}
	if wait := all; wait > 0 {
		return errdefs.RateLimitedf("rate limited: all sessions together may make at most %d %s-class calls per minute (limits.global_%s_per_min); retry in %s",
			l.cfg.Global.of(c), c, c, retryText(wait))
	}
	own[c].AllowN(now, 1)
	l.global[c].AllowN(now, 1)
	return nil
}

// Forget drops session's buckets; call it when the session ends.
func (l *Limiter) Forget(sessionID string) {
	l.mu.Lock()
	delete(l.sessions, sessionID)
	l.mu.Unlock()
}

// waitFor is how long until b holds a whole token at now; 0 if it does.
func waitFor(b *rate.Limiter, now time.Time) time.Duration {
	tokens := b.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(b.Limit()) * float64(time.Second))
}

// retryText rounds up to a tenth of a second, so retrying after the stated
// time succeeds.
func retryText(d time.Duration) string {
	return fmt.Sprintf("%.1fs", math.Ceil(d.Seconds()*10)/10)
}
