package state

import (
	"context"
	"fmt"
	"time"
)

// StoredMessage is a message with whether its recipient has received it.
type StoredMessage struct {
	TeamMessage
	// ReadAt is when a receive returned it; zero while unread.
	ReadAt time.Time
}

// RecentMessages returns the newest limit message copies of team (one per
// recipient), newest first, read or not, without marking any read: the
// dashboard shows a team's conversation without taking its members' mail.
func (s *Store) RecentMessages(ctx context.Context, team string, limit int) ([]StoredMessage, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, team, sender, recipient, type, content, created_at, read_at
		FROM team_messages WHERE team = ? ORDER BY id DESC LIMIT ?`, team, limit)
	if err != nil {
		return nil, fmt.Errorf("reading messages: %w", err)
	}
	return scanRows(rows, "message", func(r scanner) (StoredMessage, error) {
		var m StoredMessage
		var at, read int64
		err := r.Scan(&m.ID, &m.Team, &m.Sender, &m.Recipient, &m.Type, &m.Content, &at, &read)
		m.CreatedAt = fromNanos(at)
		if read != 0 {
			m.ReadAt = fromNanos(read)
		}
		return m, err
	})
}
