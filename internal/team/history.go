package team

import (
	"context"
	"slices"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Operator is the sender name of messages a person sends a team from the
// dashboard or the CLI. A team with a member of that name cannot get them:
// its members could not tell the person from the member.
const Operator = "operator"

// HistoryMessage is one message of a team's conversation: a broadcast
// appears once, with every recipient.
type HistoryMessage struct {
	ID          int64     `json:"id"`
	From        string    `json:"from"`
	To          []string  `json:"to"`
	MessageType string    `json:"message_type"`
	Content     string    `json:"content"`
	SentAt      time.Time `json:"sent_at"`
	// ReadBy are the recipients that have received it.
	ReadBy []string `json:"read_by"`
}

// maxHistory bounds one history read, in stored copies.
const maxHistory = 500

// History returns the newest messages of one of c's teams, newest first,
// without marking any read: watching a team does not take its members'
// mail (receive does).
func (s *Service) History(ctx context.Context, c workspace.Caller, team string, limit int) ([]HistoryMessage, error) {
	t, err := s.resolve(ctx, c, "team", team)
	if err != nil {
		return nil, err
	}
	if limit == 0 {
		limit = 50
	}
	if limit < 0 || limit > maxHistory {
		return nil, errdefs.Invalidf("limit: must be 1..%d", maxHistory)
	}
	rows, err := s.store.RecentMessages(ctx, t.Name, limit)
	if err != nil {
		return nil, err
	}
	return groupCopies(rows), nil
}

// groupCopies folds the per-recipient copies of one send (same sender,
// type, content and time, stored together) into one message.
func groupCopies(rows []state.StoredMessage) []HistoryMessage {
	out := []HistoryMessage{}
	for _, r := range rows {
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.From == r.Sender && last.MessageType == r.Type && last.Content == r.Content && last.SentAt.Equal(r.CreatedAt) {
				last.To = append(last.To, r.Recipient)
				if !r.ReadAt.IsZero() {
					last.ReadBy = append(last.ReadBy, r.Recipient)
				}
				last.ID = min(last.ID, r.ID)
				continue
			}
		}
		m := HistoryMessage{ID: r.ID, From: r.Sender, To: []string{r.Recipient}, MessageType: r.Type,
			Content: r.Content, SentAt: r.CreatedAt, ReadBy: []string{}}
		if !r.ReadAt.IsZero() {
			m.ReadBy = append(m.ReadBy, r.Recipient)
		}
		out = append(out, m)
	}
	for i := range out {
		slices.Sort(out[i].To)
		slices.Sort(out[i].ReadBy)
	}
	return out
}

// OperatorMessage sends a text message from a person (sender Operator) to
// a member of one of c's teams, or to every member with to "*". It is
// stored in the inboxes like any message; members read it with receive.
func (s *Service) OperatorMessage(ctx context.Context, c workspace.Caller, team, to, content string) (*MessageResult, error) {
	t, err := s.resolve(ctx, c, "team", team)
	if err != nil {
		return nil, err
	}
	ms, err := s.store.TeamMembers(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(ms, func(m state.TeamMember) bool { return m.Name == Operator }) {
		return nil, errdefs.Conflictf("team: a member is named %q, so a message from a person would look like theirs", Operator)
	}
	return s.Message(ctx, c, MessageRequest{Team: t.Name, Agent: Operator, To: to, Content: content, MessageType: defaultType})
}
