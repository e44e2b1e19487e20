package dashboard

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/state"
)

// SessionStore records logins as sessions in the state database, so the
// audit log and workspace ownership name them like any other session.
type SessionStore interface {
	CreateSession(ctx context.Context, s state.Session) (state.Session, error)
	EndSession(ctx context.Context, id string) error
}

// login is one person logged in through the dashboard.
type login struct {
	// stateID is the session's ID in the state database.
	stateID string
	// csrf is the token every state-changing request must carry in the
	// X-CSRF-Token header (finding M-13).
	csrf    string
	expires time.Time
	// ctx ends with the login: its open streams (terminals, live
	// updates, commands) end with it.
	ctx    context.Context
	cancel context.CancelFunc
}

// logins holds the logged-in sessions in memory, by the SHA-256 of their
// cookie value: the value itself is never stored. A daemon restart logs
// everyone out.
type logins struct {
	ttl   time.Duration
	store SessionStore
	now   func() time.Time

	mu sync.Mutex
	m  map[[sha256.Size]byte]*login
}

func newLogins(store SessionStore, ttl time.Duration) *logins {
	return &logins{ttl: ttl, store: store, now: time.Now, m: map[[sha256.Size]byte]*login{}}
}

// randomToken is 256 random bits, URL-safe.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// create starts a login and returns its cookie value.
func (l *logins) create(ctx context.Context) (string, *login, error) {
	s, err := l.store.CreateSession(ctx, state.Session{Transport: "dashboard"})
	if err != nil {
		return "", nil, err
	}
	cookie := randomToken()
	lg := &login{stateID: s.ID, csrf: randomToken(), expires: l.now().Add(l.ttl)}
	lg.ctx, lg.cancel = context.WithCancel(context.Background())
	l.mu.Lock()
	l.m[sha256.Sum256([]byte(cookie))] = lg
	l.mu.Unlock()
	return cookie, lg, nil
}

// get returns the live login of a cookie value, or nil.
func (l *logins) get(cookie string) *login {
	if cookie == "" {
		return nil
	}
	k := sha256.Sum256([]byte(cookie))
	l.mu.Lock()
	lg := l.m[k]
	expired := lg != nil && !l.now().Before(lg.expires)
	if expired {
		delete(l.m, k)
	}
	l.mu.Unlock()
	if expired {
		l.end(lg)
		return nil
	}
	return lg
}

// remove ends the login of a cookie value.
func (l *logins) remove(cookie string) {
	k := sha256.Sum256([]byte(cookie))
	l.mu.Lock()
	lg := l.m[k]
	delete(l.m, k)
	l.mu.Unlock()
	if lg != nil {
		l.end(lg)
	}
}

// sweep ends every expired login.
func (l *logins) sweep() {
	var ended []*login
	l.mu.Lock()
	for k, lg := range l.m {
		if !l.now().Before(lg.expires) {
			delete(l.m, k)
			ended = append(ended, lg)
		}
	}
	l.mu.Unlock()
	for _, lg := range ended {
		l.end(lg)
	}
}

// endAll ends every login (the daemon is stopping).
func (l *logins) endAll() {
	l.mu.Lock()
	all := l.m
	l.m = map[[sha256.Size]byte]*login{}
	l.mu.Unlock()
	for _, lg := range all {
		l.end(lg)
	}
}

func (l *logins) end(lg *login) {
	lg.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = l.store.EndSession(ctx, lg.stateID)
}
