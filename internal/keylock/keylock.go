// Package keylock serialises work per key (a workspace ID, a team name):
// one mutex per key, made on first use and dropped when nobody holds or
// waits for it, so the set does not grow with every key ever used.
package keylock

import "sync"

// Locks holds the mutexes of the keys in use. The zero value is ready.
type Locks struct {
	mu sync.Mutex
	m  map[string]*entry
}

type entry struct {
	mu sync.Mutex
	// users counts holders and waiters; guarded by Locks.mu.
	users int
}

// Lock blocks until key is free, takes it and returns its unlock, which
// must be called exactly once.
func (l *Locks) Lock(key string) (unlock func()) {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*entry{}
	}
	e := l.m[key]
	if e == nil {
		e = &entry{}
		l.m[key] = e
	}
	e.users++
	l.mu.Unlock()

	e.mu.Lock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Unlock()
			l.mu.Lock()
			if e.users--; e.users == 0 {
				delete(l.m, key)
			}
			l.mu.Unlock()
		})
	}
}

// Len is the number of keys held or waited for.
func (l *Locks) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
