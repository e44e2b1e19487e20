package team

import (
	"context"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/state"
	"github.com/agentiso/agentiso/internal/workspace"
)

// taskCaller is who runs task assignments: the daemon itself. The sender's
// right to the team was checked when the task was stored.
var taskCaller = workspace.Caller{Actor: "team", Admin: true}

// assign stores a task (so the acknowledgement survives a crash) and hands
// it to the member's guest.
func (s *Service) assign(ctx context.Context, team, member, sender string, a TaskAssignment) (*MessageResult, error) {
	tk, err := s.store.AddTask(ctx, state.TeamTask{
		Team: team, Member: member, TaskID: a.TaskID, Sender: sender, Command: a.Command,
		Workdir: a.Workdir, Env: a.Env, TimeoutMs: int64(a.TimeoutSecs) * 1000,
	})
	if err != nil {
		return nil, err
	}
	s.runner.enqueue(tk)
	return &MessageResult{MessageIDs: []int64{}, Recipients: []string{member}, TaskID: a.TaskID, Status: "queued"}, nil
}

// Recover resumes the task assignments a previous daemon left: those that
// were running are failed (their outcome is unknown; a command is not run
// twice), those still queued are run.
func (s *Service) Recover(ctx context.Context) error {
	n, err := s.store.FailInterruptedTasks(ctx, "the daemon restarted while the task ran; its outcome is unknown")
	if err != nil {
		return err
	}
	if n > 0 {
		s.log.Warn("task assignments interrupted by a daemon restart", "count", n)
	}
	pending, err := s.store.PendingTasks(ctx)
	if err != nil {
		return err
	}
	for _, tk := range pending {
		s.runner.enqueue(tk)
	}
	return nil
}

// Close stops running task assignments; they are failed on the next start.
func (s *Service) Close() { s.runner.close() }

// runner executes task assignments, at most Limits.TasksPerGuest at once
// per member guest; the rest wait their turn.
type runner struct {
	s      *Service
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	slots map[string]chan struct{} // by team/member
	teams map[string]map[int64]context.CancelFunc
	wg    sync.WaitGroup
}

func newRunner(s *Service) *runner {
	ctx, cancel := context.WithCancel(context.Background())
	return &runner{s: s, ctx: ctx, cancel: cancel, slots: map[string]chan struct{}{}, teams: map[string]map[int64]context.CancelFunc{}}
}

func (r *runner) enqueue(tk state.TeamTask) {
	r.mu.Lock()
	key := tk.Team + "/" + tk.Member
	slot, ok := r.slots[key]
	if !ok {
		slot = make(chan struct{}, r.s.lim.TasksPerGuest)
		r.slots[key] = slot
	}
	ctx, cancel := context.WithCancel(r.ctx)
	if r.teams[tk.Team] == nil {
		r.teams[tk.Team] = map[int64]context.CancelFunc{}
	}
	r.teams[tk.Team][tk.ID] = cancel
	r.wg.Add(1)
	r.mu.Unlock()
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.teams[tk.Team], tk.ID)
			r.mu.Unlock()
			cancel()
		}()
		select {
		case slot <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-slot }()
		r.run(ctx, tk)
	}()
}

// run executes one task in its member's guest and records the result.
func (r *runner) run(ctx context.Context, tk state.TeamTask) {
	s := r.s
	if ok, err := s.store.SetTaskRunning(ctx, tk.ID); err != nil || !ok {
		return
	}
	tk.State = state.TaskFailed
	res, err := s.execTask(ctx, tk)
	if ctx.Err() != nil && r.ctx.Err() != nil {
		return // the daemon stops: the next start fails it as interrupted
	}
	if err != nil {
		tk.Error = errdefs.Public(err)
	} else {
		tk.State = state.TaskDone
		tk.ExitCode, tk.Stdout, tk.Stderr, tk.Truncated, tk.DurationMs = res.ExitCode, res.Stdout, res.Stderr, res.Truncated, res.DurationMs
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.store.FinishTask(wctx, tk); err != nil && !errdefs.Is(err, errdefs.NotFound) {
		s.log.Error("recording a task result", "team", tk.Team, "member", tk.Member, "err", err)
	}
}

func (s *Service) execTask(ctx context.Context, tk state.TeamTask) (*workspace.ExecResult, error) {
	ms, err := s.store.TeamMembers(ctx, tk.Team)
	if err != nil {
		return nil, err
	}
	var wsID string
	for _, m := range ms {
		if m.Name == tk.Member {
			wsID = m.WorkspaceID
		}
	}
	if wsID == "" {
		return nil, errdefs.NotFoundf("to: the member has no workspace")
	}
	req, err := s.lim.Exec.Request(tk.Command, int(tk.TimeoutMs/1000), tk.Workdir, tk.Env, s.lim.MaxTaskOutputBytes)
	if err != nil {
		return nil, err
	}
	return s.ws.Exec(ctx, taskCaller, wsID, req)
}

// cancelTeam stops team's queued and running tasks (the team goes).
func (r *runner) cancelTeam(team string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, cancel := range r.teams[team] {
		cancel()
	}
	delete(r.teams, team)
	for k := range r.slots {
		if len(k) > len(team) && k[:len(team)+1] == team+"/" {
			delete(r.slots, k)
		}
	}
}

func (r *runner) close() {
	r.cancel()
	r.wg.Wait()
}
