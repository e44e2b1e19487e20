package team

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Message types with a meaning to the daemon.
const (
	// TypeTaskAssignment is executed by the recipient's guest.
	TypeTaskAssignment = "task_assignment"
	// defaultType is a message's type when the sender gives none.
	defaultType = "text"
	// Broadcast as a recipient sends to every member but the sender.
	Broadcast = "*"
	// defaultReceiveLimit and maxReceiveLimit bound one receive.
	defaultReceiveLimit = 10
	maxReceiveLimit     = 100
	// defaultTaskTimeout is a task's timeout when it gives none (TOOLS.md).
	defaultTaskTimeout = 300
	maxTaskIDBytes     = 128
)

// MessageRequest is what team message asks for.
type MessageRequest struct {
	Team, Agent, To, Content, MessageType string
}

// MessageResult acknowledges a message: it is stored when this returns.
type MessageResult struct {
	MessageIDs []int64  `json:"message_ids"`
	Recipients []string `json:"recipients"`
	// TaskID is set for a task assignment: its result comes back in the
	// recipient's receive as daemon_results.
	TaskID string `json:"task_id,omitempty"`
	Status string `json:"status"`
}

// TaskAssignment is the content of a task_assignment message.
type TaskAssignment struct {
	TaskID      string            `json:"task_id"`
	Command     string            `json:"command"`
	Workdir     string            `json:"workdir"`
	Env         map[string]string `json:"env"`
	TimeoutSecs int               `json:"timeout_secs"`
}

// Message stores a message in the recipients' inboxes (a broadcast in
// every other member's) before it answers, or for a task assignment stores
// the task and hands it to the recipient's guest.
func (s *Service) Message(ctx context.Context, c workspace.Caller, req MessageRequest) (*MessageResult, error) {
	t, err := s.resolve(ctx, c, "name", req.Team)
	if err != nil {
		return nil, err
	}
	if t.State != state.TeamReady {
		return nil, errdefs.Conflictf("name: the team is %s", t.State)
	}
	if err := names.Validate("agent", req.Agent); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if req.To != Broadcast {
		if err := names.Validate("to", req.To); err != nil {
			return nil, errdefs.Invalidf("to: a member name or * for every member (%v)", err)
		}
	}
	if req.MessageType == "" {
		req.MessageType = defaultType
	}
	if err := names.Validate("message_type", req.MessageType); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if req.Content == "" {
		return nil, errdefs.Invalidf("content: required")
	}
	if len(req.Content) > MaxContentBytes {
		return nil, errdefs.Invalidf("content: %d bytes is more than the limit of %d (256 KiB)", len(req.Content), MaxContentBytes)
	}
	ms, err := s.store.TeamMembers(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	var recipients []string
	for _, m := range ms {
		if (req.To == Broadcast && m.Name != req.Agent) || m.Name == req.To {
			recipients = append(recipients, m.Name)
		}
	}
	if len(recipients) == 0 {
		if req.To == Broadcast {
			return nil, errdefs.Invalidf("to: the team has no member besides the sender")
		}
		return nil, errdefs.NotFoundf("to: no such member in this team")
	}
	var task *TaskAssignment
	if req.MessageType == TypeTaskAssignment {
		if req.To == Broadcast {
			return nil, errdefs.Invalidf("to: a task_assignment goes to one member, not *")
		}
		if task, err = s.parseTask(req.Content); err != nil {
			return nil, err
		}
	}
	// Checked last, so a refused message costs no token.
	if err := s.rates.allow(t.Name, req.Agent); err != nil {
		return nil, err
	}
	if task != nil {
		return s.assign(ctx, t.Name, recipients[0], req.Agent, *task)
	}
	ids, err := s.store.AddMessages(ctx, state.TeamMessage{
		Team: t.Name, Sender: req.Agent, Type: req.MessageType, Content: req.Content,
	}, recipients)
	if err != nil {
		return nil, err
	}
	return &MessageResult{MessageIDs: ids, Recipients: recipients, Status: "delivered"}, nil
}

// parseTask decodes and checks a task assignment the way exec checks a
// command: the env blocklist (L-9), an absolute workdir, bounded timeout.
func (s *Service) parseTask(content string) (*TaskAssignment, error) {
	var tk TaskAssignment
	dec := json.NewDecoder(strings.NewReader(content))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tk); err != nil {
		return nil, errdefs.Invalidf("content: a task_assignment is a JSON object {task_id, command, workdir, env, timeout_secs}")
	}
	if tk.TaskID == "" {
		tk.TaskID = "task-" + fmt.Sprint(time.Now().UnixNano())
	}
	if len(tk.TaskID) > maxTaskIDBytes || strings.ContainsAny(tk.TaskID, "\x00\n\r") {
		return nil, errdefs.Invalidf("content.task_id: at most %d bytes on one line", maxTaskIDBytes)
	}
	if tk.TimeoutSecs == 0 {
		tk.TimeoutSecs = defaultTaskTimeout
	}
	if tk.Workdir == "" {
		tk.Workdir = "/root"
	}
	if tk.Workdir[0] != '/' {
		return nil, errdefs.Invalidf("content.workdir: must be an absolute path")
	}
	if err := protocol.CheckEnv(tk.Env); err != nil {
		return nil, errdefs.Invalidf("content.%v", err)
	}
	if _, err := s.lim.Exec.Request(tk.Command, tk.TimeoutSecs, tk.Workdir, tk.Env, 0); err != nil {
		return nil, errdefs.Invalidf("content.%s", errdefs.Public(err))
	}
	return &tk, nil
}

// ReceiveResult is a member's inbox and its task results.
type ReceiveResult struct {
	Messages []ReceivedMessage `json:"messages"`
	Count    int               `json:"count"`
	// DaemonResults are results of task assignments the member's guest
	// finished since the last receive.
	DaemonResults []TaskResult `json:"daemon_results"`
	// DaemonPendingTasks counts its assignments still queued or running.
	DaemonPendingTasks int `json:"daemon_pending_tasks"`
}

// ReceivedMessage is one message as receive returns it.
type ReceivedMessage struct {
	ID          int64     `json:"id"`
	From        string    `json:"from"`
	To          string    `json:"to"`
	MessageType string    `json:"message_type"`
	Content     string    `json:"content"`
	SentAt      time.Time `json:"sent_at"`
}

// TaskResult is a finished task assignment.
type TaskResult struct {
	TaskID     string `json:"task_id"`
	From       string `json:"from"`
	Status     string `json:"status"`
	ExitCode   int    `json:"exit_code"`
	Stdout     string `json:"stdout"`
	Stderr     string `json:"stderr"`
	Truncated  bool   `json:"truncated"`
	Error      string `json:"error,omitempty"`
	DurationMs int64  `json:"duration_ms"`
}

// Receive returns up to limit unread messages of member agent, marking
// them read, with the member's finished task results.
func (s *Service) Receive(ctx context.Context, c workspace.Caller, team, agent string, limit int) (*ReceiveResult, error) {
	t, err := s.resolve(ctx, c, "name", team)
	if err != nil {
		return nil, err
	}
	if err := names.Validate("agent", agent); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if limit == 0 {
		limit = defaultReceiveLimit
	}
	if limit < 0 || limit > maxReceiveLimit {
		return nil, errdefs.Invalidf("limit: must be 1..%d", maxReceiveLimit)
	}
	ms, err := s.store.TeamMembers(ctx, t.Name)
	if err != nil {
		return nil, err
	}
	if !slices.ContainsFunc(ms, func(m state.TeamMember) bool { return m.Name == agent }) {
		return nil, errdefs.NotFoundf("agent: no such member in this team")
	}
	msgs, err := s.store.TakeMessages(ctx, t.Name, agent, limit)
	if err != nil {
		return nil, err
	}
	tasks, err := s.store.TakeTaskResults(ctx, t.Name, agent)
	if err != nil {
		return nil, err
	}
	pending, err := s.store.CountOpenTasks(ctx, t.Name, agent)
	if err != nil {
		return nil, err
	}
	out := &ReceiveResult{Messages: []ReceivedMessage{}, DaemonResults: []TaskResult{}, DaemonPendingTasks: pending}
	for _, m := range msgs {
		out.Messages = append(out.Messages, ReceivedMessage{ID: m.ID, From: m.Sender, To: m.Recipient,
			MessageType: m.Type, Content: m.Content, SentAt: m.CreatedAt})
	}
	out.Count = len(out.Messages)
	for _, tk := range tasks {
		out.DaemonResults = append(out.DaemonResults, TaskResult{TaskID: tk.TaskID, From: tk.Sender, Status: string(tk.State),
			ExitCode: tk.ExitCode, Stdout: tk.Stdout, Stderr: tk.Stderr, Truncated: tk.Truncated, Error: tk.Error,
			DurationMs: tk.DurationMs})
	}
	return out, nil
}

// rates is one token bucket per team and sender.
type rates struct {
	perMinute int
	now       func() time.Time
	mu        sync.Mutex
	buckets   map[string]*rate.Limiter
}

func newRates(perMinute int, now func() time.Time) *rates {
	return &rates{perMinute: perMinute, now: now, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token of sender's bucket in team, or says when to retry.
func (r *rates) allow(team, sender string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := team + "\x00" + sender
	b, ok := r.buckets[k]
	if !ok {
		b = rate.NewLimiter(rate.Limit(float64(r.perMinute)/60), r.perMinute)
		r.buckets[k] = b
	}
	now := r.now()
	res := b.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return errdefs.RateLimitedf("agent: at most %d messages a minute per sender; retry in %.1fs", r.perMinute, d.Seconds())
	}
	return nil
}
