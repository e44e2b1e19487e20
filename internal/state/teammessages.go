package state

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// TeamMessage is one message in one member's inbox.
type TeamMessage struct {
	ID        int64
	Team      string
	Sender    string
	Recipient string
	Type      string
	Content   string
	CreatedAt time.Time
}

// AddMessages stores one message per recipient in one transaction: when it
// returns nil every copy is on disk (synchronous=FULL), so the send may be
// acknowledged.
func (s *Store) AddMessages(ctx context.Context, msg TeamMessage, recipients []string) ([]int64, error) {
	return inTx(ctx, s, func(tx *Tx) ([]int64, error) {
		at := nanos(now())
		ids := make([]int64, 0, len(recipients))
		for _, r := range recipients {
			res, err := tx.tx.ExecContext(ctx,
				`INSERT INTO team_messages (team, sender, recipient, type, content, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				msg.Team, msg.Sender, r, msg.Type, msg.Content, at)
			if err != nil {
				return nil, fmt.Errorf("storing message: %w", err)
			}
			id, _ := res.LastInsertId()
			ids = append(ids, id)
		}
		return ids, nil
	})
}

// TakeMessages returns up to limit unread messages of recipient, oldest
// first, and marks them read in the same transaction.
func (s *Store) TakeMessages(ctx context.Context, team, recipient string, limit int) ([]TeamMessage, error) {
	return inTx(ctx, s, func(tx *Tx) ([]TeamMessage, error) {
		rows, err := tx.tx.QueryContext(ctx, `SELECT id, team, sender, recipient, type, content, created_at
			FROM team_messages WHERE team = ? AND recipient = ? AND read_at = 0 ORDER BY id LIMIT ?`, team, recipient, limit)
		if err != nil {
			return nil, fmt.Errorf("reading inbox: %w", err)
		}
		// scanRows closes the rows before the updates below.
		out, err := scanRows(rows, "message", func(r scanner) (TeamMessage, error) {
			var m TeamMessage
			var at int64
			err := r.Scan(&m.ID, &m.Team, &m.Sender, &m.Recipient, &m.Type, &m.Content, &at)
			m.CreatedAt = fromNanos(at)
			return m, err
		})
		if err != nil {
			return nil, err
		}
		read := nanos(now())
		for _, m := range out {
			if _, err := tx.tx.ExecContext(ctx, `UPDATE team_messages SET read_at = ? WHERE id = ?`, read, m.ID); err != nil {
				return nil, fmt.Errorf("marking message read: %w", err)
			}
		}
		return out, nil
	})
}

// CountUnread counts recipient's unread messages.
func (s *Store) CountUnread(ctx context.Context, team, recipient string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM team_messages WHERE team = ? AND recipient = ? AND read_at = 0`,
		team, recipient).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting unread messages: %w", err)
	}
	return n, nil
}

// TaskState is where a task assignment is.
type TaskState string

// The task states.
const (
	TaskPending TaskState = "pending"
	TaskRunning TaskState = "running"
	TaskDone    TaskState = "done"
	TaskFailed  TaskState = "failed"
)

// TeamTask is a task_assignment for one member's guest, and its result.
type TeamTask struct {
	ID         int64
	Team       string
	Member     string
	TaskID     string
	Sender     string
	Command    string
	Workdir    string
	Env        map[string]string
	TimeoutMs  int64
	State      TaskState
	ExitCode   int
	Stdout     string
	Stderr     string
	Truncated  bool
	Error      string
	DurationMs int64
	CreatedAt  time.Time
	FinishedAt time.Time
}

const taskColumns = `id, team, member, task_id, sender, command, workdir, env, timeout_ms, state,
	exit_code, stdout, stderr, truncated, error, duration_ms, created_at, finished_at`

// AddTask stores a pending task; it may be acknowledged once this returns.
func (s *Store) AddTask(ctx context.Context, tk TeamTask) (TeamTask, error) {
	env, err := json.Marshal(tk.Env)
	if err != nil {
		return TeamTask{}, fmt.Errorf("encoding env: %w", err)
	}
	if tk.Env == nil {
		env = []byte("{}")
	}
	tk.State, tk.CreatedAt = TaskPending, now()
	err = s.Tx(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `INSERT INTO team_tasks (team, member, task_id, sender, command, workdir, env,
			timeout_ms, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tk.Team, tk.Member, tk.TaskID, tk.Sender, tk.Command, tk.Workdir, string(env), tk.TimeoutMs,
			string(tk.State), nanos(tk.CreatedAt))
		if err != nil {
			return fmt.Errorf("storing task: %w", err)
		}
		tk.ID, err = res.LastInsertId()
		return err
	})
	return tk, err
}

// SetTaskRunning marks a pending task running; it reports false when the
// task is no longer pending (its team went meanwhile).
func (s *Store) SetTaskRunning(ctx context.Context, id int64) (bool, error) {
	var ok bool
	err := s.Tx(ctx, func(tx *Tx) error {
		res, err := tx.tx.ExecContext(ctx, `UPDATE team_tasks SET state = 'running' WHERE id = ? AND state = 'pending'`, id)
		if err != nil {
			return fmt.Errorf("starting task: %w", err)
		}
		n, _ := res.RowsAffected()
		ok = n == 1
		return nil
	})
	return ok, err
}

// FinishTask records a task's result.
func (s *Store) FinishTask(ctx context.Context, tk TeamTask) error {
	return s.Tx(ctx, func(tx *Tx) error {
		_, err := tx.tx.ExecContext(ctx, `UPDATE team_tasks SET state = ?, exit_code = ?, stdout = ?, stderr = ?,
			truncated = ?, error = ?, duration_ms = ?, finished_at = ? WHERE id = ?`,
			string(tk.State), tk.ExitCode, tk.Stdout, tk.Stderr, tk.Truncated, truncate(tk.Error, MaxLastErrorBytes),
			tk.DurationMs, nanos(now()), tk.ID)
		if err != nil {
			return fmt.Errorf("recording task result: %w", err)
		}
		return nil
	})
}

// FailInterruptedTasks marks every running task failed with reason: a
// daemon that stopped while they ran cannot know their outcome. It returns
// how many there were.
func (s *Store) FailInterruptedTasks(ctx context.Context, reason string) (int, error) {
	return inTx(ctx, s, func(tx *Tx) (int, error) {
		res, err := tx.tx.ExecContext(ctx, `UPDATE team_tasks SET state = 'failed', error = ?, finished_at = ? WHERE state = 'running'`,
			reason, nanos(now()))
		if err != nil {
			return 0, fmt.Errorf("failing interrupted tasks: %w", err)
		}
		n, _ := res.RowsAffected()
		return int(n), nil
	})
}

// PendingTasks returns every pending task, oldest first.
func (s *Store) PendingTasks(ctx context.Context) ([]TeamTask, error) {
	return s.queryTasks(ctx, `WHERE state = 'pending' ORDER BY id`)
}

// TakeTaskResults returns member's finished task results not yet reported,
// oldest first, and marks them reported in the same transaction.
func (s *Store) TakeTaskResults(ctx context.Context, team, member string) ([]TeamTask, error) {
	return inTx(ctx, s, func(tx *Tx) ([]TeamTask, error) {
		out, err := queryTasks(ctx, tx.tx, `WHERE team = ? AND member = ? AND state IN ('done', 'failed') AND reported_at = 0 ORDER BY id`, team, member)
		if err != nil {
			return nil, err
		}
		at := nanos(now())
		for _, tk := range out {
			if _, err := tx.tx.ExecContext(ctx, `UPDATE team_tasks SET reported_at = ? WHERE id = ?`, at, tk.ID); err != nil {
				return nil, fmt.Errorf("marking task result reported: %w", err)
			}
		}
		return out, nil
	})
}

// CountOpenTasks counts member's tasks that are pending or running.
func (s *Store) CountOpenTasks(ctx context.Context, team, member string) (int, error) {
	var n int
	err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM team_tasks WHERE team = ? AND member = ? AND state IN ('pending', 'running')`,
		team, member).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting open tasks: %w", err)
	}
	return n, nil
}

func (s *Store) queryTasks(ctx context.Context, where string, args ...any) ([]TeamTask, error) {
	return queryTasks(ctx, s.r, where, args...)
}

func queryTasks(ctx context.Context, q querier, where string, args ...any) ([]TeamTask, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+taskColumns+` FROM team_tasks `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	return scanRows(rows, "task", func(r scanner) (TeamTask, error) {
		var tk TeamTask
		var env, st string
		var created, finished int64
		if err := r.Scan(&tk.ID, &tk.Team, &tk.Member, &tk.TaskID, &tk.Sender, &tk.Command, &tk.Workdir, &env,
			&tk.TimeoutMs, &st, &tk.ExitCode, &tk.Stdout, &tk.Stderr, &tk.Truncated, &tk.Error, &tk.DurationMs,
			&created, &finished); err != nil {
			return tk, err
		}
		if err := json.Unmarshal([]byte(env), &tk.Env); err != nil {
			return tk, fmt.Errorf("decoding task env: %w", err)
		}
		tk.State, tk.CreatedAt, tk.FinishedAt = TaskState(st), fromNanos(created), fromNanos(finished)
		return tk, nil
	})
}
