package state

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// maxTransportBytes bounds Session.Transport.
const maxTransportBytes = 64

// Session is one client connection to the daemon. Its ID is assigned by the
// daemon, never supplied by the client (finding M-8), and its UID is the
// peer's, read from the socket.
type Session struct {
	ID  string
	UID int
	PID int
	// Transport is how the client came: "stdio", "http", "cli", "dashboard".
	Transport string
	CreatedAt time.Time
	LastSeen  time.Time
	// EndedAt is zero while the session is active.
	EndedAt time.Time
}

// Active reports whether the session has not ended.
func (s Session) Active() bool { return s.EndedAt.IsZero() }

// SessionFilter selects sessions for ListSessions.
type SessionFilter struct {
	// ActiveOnly leaves out ended sessions.
	ActiveOnly bool
}

const sessionColumns = `id, uid, pid, transport, created_at, last_seen, ended_at`

// CreateSession records a new session. The store assigns a random ID unless
// s.ID is set (it must then be a UUID), and sets CreatedAt and LastSeen.
func (t *Tx) CreateSession(ctx context.Context, s Session) (Session, error) {
	if s.ID == "" {
		s.ID = uuid.NewString()
	} else if _, err := uuid.Parse(s.ID); err != nil {
		return Session{}, errdefs.Invalidf("session_id: not a UUID")
	}
	if s.Transport == "" || len(s.Transport) > maxTransportBytes {
		return Session{}, errdefs.Invalidf("transport: must be 1-%d bytes", maxTransportBytes)
	}
	if s.UID < 0 || s.PID < 0 {
		return Session{}, errdefs.Invalidf("uid, pid: must not be negative")
	}
	s.CreatedAt = now()
	s.LastSeen = s.CreatedAt
	s.EndedAt = time.Time{}
	_, err := t.tx.ExecContext(ctx,
		`INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.UID, s.PID, s.Transport, nanos(s.CreatedAt), nanos(s.LastSeen), 0)
	if err != nil {
		if isUnique(err, "sessions.id") {
			return Session{}, errdefs.Conflictf("session_id: already exists")
		}
		return Session{}, fmt.Errorf("inserting session: %w", err)
	}
	return s, nil
}

// GetSession returns a session, ended or not.
func (t *Tx) GetSession(ctx context.Context, id string) (Session, error) {
	return getSession(ctx, t.tx, id)
}

// TouchSession records that the session was just seen. An ended session
// cannot be touched (Conflict).
func (t *Tx) TouchSession(ctx context.Context, id string) error {
	res, err := t.tx.ExecContext(ctx,
		`UPDATE sessions SET last_seen = ? WHERE id = ? AND ended_at = 0`, nanos(now()), id)
	if err != nil {
		return fmt.Errorf("touching session: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("touching session: %w", err)
	}
	if n == 1 {
		return nil
	}
	if _, err := getSession(ctx, t.tx, id); err != nil {
		return err
	}
	// It exists and the update matched no active row: it has ended.
	return errdefs.Conflictf("session_id: session has ended")
}

// EndSession marks the session ended. Ending an ended session does nothing.
// Its workspaces keep it as their owner until another session adopts them.
func (t *Tx) EndSession(ctx context.Context, id string) error {
	res, err := t.tx.ExecContext(ctx,
		`UPDATE sessions SET ended_at = ? WHERE id = ? AND ended_at = 0`, nanos(now()), id)
	if err != nil {
		return fmt.Errorf("ending session: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("ending session: %w", err)
	}
	if n == 1 {
		return nil
	}
	_, err = getSession(ctx, t.tx, id)
	return err
}

// ListSessions returns sessions, oldest first.
func (t *Tx) ListSessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	return listSessions(ctx, t.tx, f)
}

func getSession(ctx context.Context, q querier, id string) (Session, error) {
	row := q.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id)
	return scanRow(row, "session", errdefs.NotFoundf("session_id: no such session"), scanSession)
}

func listSessions(ctx context.Context, q querier, f SessionFilter) ([]Session, error) {
	query := `SELECT ` + sessionColumns + ` FROM sessions`
	if f.ActiveOnly {
		query += ` WHERE ended_at = 0`
	}
	query += ` ORDER BY created_at, id`
	rows, err := q.QueryContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	return scanRows(rows, "session", scanSession)
}

func scanSession(sc scanner) (Session, error) {
	var s Session
	var created, seen, ended int64
	if err := sc.Scan(&s.ID, &s.UID, &s.PID, &s.Transport, &created, &seen, &ended); err != nil {
		return Session{}, err
	}
	s.CreatedAt, s.LastSeen, s.EndedAt = fromNanos(created), fromNanos(seen), fromNanos(ended)
	return s, nil
}

// CreateSession records a new session; see Tx.CreateSession.
func (s *Store) CreateSession(ctx context.Context, sess Session) (Session, error) {
	return inTx(ctx, s, func(tx *Tx) (Session, error) { return tx.CreateSession(ctx, sess) })
}

// GetSession returns a session, ended or not.
func (s *Store) GetSession(ctx context.Context, id string) (Session, error) {
	return getSession(ctx, s.r, id)
}

// TouchSession records that the session was just seen; see Tx.TouchSession.
func (s *Store) TouchSession(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.TouchSession(ctx, id) })
}

// EndSession marks the session ended; see Tx.EndSession.
func (s *Store) EndSession(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Tx) error { return tx.EndSession(ctx, id) })
}

// ListSessions returns sessions, oldest first.
func (s *Store) ListSessions(ctx context.Context, f SessionFilter) ([]Session, error) {
	return listSessions(ctx, s.r, f)
}
