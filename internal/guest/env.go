package guest

import (
	"maps"
	"sync"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// envStore holds the persistent environment that set_env gives every later
// command. It lives in the agent's memory only: never written to the
// guest's disk (values are often API keys), so it is gone when the VM
// stops, and carried along only by a memory snapshot.
type envStore struct {
	mu   sync.Mutex
	vars map[string]string
}

// set applies m (validated by protocol: names checked against the
// blocklist) and returns the names now held.
func (s *envStore) set(m *protocol.SetEnv) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := maps.Clone(s.vars)
	if next == nil {
		next = map[string]string{}
	}
	maps.Copy(next, m.Vars)
	for _, k := range m.Unset {
		delete(next, k)
	}
	if len(next) > protocol.MaxEnvVars {
		return nil, errdefs.Quotaf("vars: at most %d persistent variables (this would hold %d)", protocol.MaxEnvVars, len(next))
	}
	// The same check as every request's env, on the whole: a guard
	// should a path ever bypass the decoder.
	if err := protocol.CheckEnv(next); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	s.vars = next
	return protocol.SortedNames(next), nil
}

// snapshot returns the variables; callers must not change the map.
func (s *envStore) snapshot() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.vars
}
