package guest

import (
	"net"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
)

// Defaults of the job options.
const (
	// DefaultMaxJobs bounds the jobs the agent keeps, running and finished.
	DefaultMaxJobs = 64
	// DefaultJobOutputBudget bounds the output buffers of all kept jobs
	// together: each job reserves two buffers (stdout, stderr) of its
	// MaxOutputBytes when it starts.
	DefaultJobOutputBudget = 32 << 20
	// DefaultJobRetention is how long a finished job whose result nobody
	// read is kept.
	DefaultJobRetention = time.Hour
	// DefaultJobReadLinger is how long a finished job is kept after a poll
	// first reported its result, so that a poll whose answer was lost can
	// be repeated.
	DefaultJobReadLinger = 10 * time.Minute
)

// killWait is how long a kill waits for the job to end before answering.
const killWait = 2 * time.Second

// jobTable holds the agent's background jobs. Jobs belong to the agent, not
// to a host session: they outlive the request that started them and the
// host connection (a daemon restart), and end only on their own, by a kill,
// or when the agent closes.
type jobTable struct {
	opts jobOptions

	mu       sync.Mutex
	jobs     map[uint32]*job
	next     uint32
	reserved int64 // output buffer bytes of the kept jobs
	closed   bool
	wg       sync.WaitGroup // one per job still waiting for its command; Add under mu
}

type jobOptions struct {
	max        int
	budget     int64
	retention  time.Duration
	readLinger time.Duration
	grace      time.Duration
	now        func() time.Time
}

// job is one background command.
type job struct {
	id             uint32
	pid            int
	g              *group
	start          time.Time
	reserve        int64
	stdout, stderr *tailBuffer
	done           chan struct{} // closed once the fields below are set

	exitCode int
	signal   string
	duration time.Duration
	finished time.Time

	readAt time.Time // when a poll first reported the result; table's mu
}

func newJobTable(o jobOptions) *jobTable {
	return &jobTable{opts: o, jobs: map[uint32]*job{}}
}

// startJob starts req as a background job and answers with its status.
func (a *Agent) startJob(req *protocol.JobStart) (*protocol.JobStatus, error) {
	t := a.jobs
	reserve := 2 * req.MaxOutputBytes
	j, err := t.admit(reserve)
	if err != nil {
		return nil, err
	}
	started := false
	defer func() {
		if !started {
			t.remove(j.id)
		}
	}()
	cmd, err := a.command(req.Argv, req.Workdir, req.Env)
	if err != nil {
		return nil, err
	}
	j.stdout, j.stderr = newTailBuffer(int(req.MaxOutputBytes)), newTailBuffer(int(req.MaxOutputBytes))
	stdout, err := newOutputPipe(j.stdout, t.opts.grace)
	if err != nil {
		return nil, err
	}
	stderr, err := newOutputPipe(j.stderr, t.opts.grace)
	if err != nil {
		stdout.close()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdout.child, stderr.child
	if err := cmd.Start(); err != nil {
		stdout.close()
		stderr.close()
		return nil, errdefs.With(classOf(err), "starting "+req.Argv[0]+": "+errText(err), err)
	}
	stdout.child.Close()
	stderr.child.Close()
	go stdout.forward()
	go stderr.forward()
	g := &group{pgid: cmd.Process.Pid}
	t.mu.Lock()
	if t.closed {
		// The agent closed while this job started: it ends with it.
		t.mu.Unlock()
		g.kill(unix.SIGKILL)
		cmd.Wait()
		stdout.drain()
		stderr.drain()
		stdout.close()
		stderr.close()
		return nil, errdefs.Unavailablef("the agent is stopping")
	}
	started = true
	j.pid, j.g, j.start = cmd.Process.Pid, g, t.opts.now()
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer stdout.close()
		defer stderr.close()
		err := cmd.Wait()
		stdout.drain()
		stderr.drain()
		j.g.exited()
		j.exitCode, j.signal = -1, ""
		if ps := cmd.ProcessState; ps != nil {
			j.exitCode = ps.ExitCode()
			if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				j.exitCode, j.signal = -1, unix.SignalName(ws.Signal())
			}
		} else {
			a.log.Warn("waiting for a background job", "job", j.id, "err", err)
		}
		j.finished = t.opts.now()
		j.duration = j.finished.Sub(j.start)
		close(j.done)
		a.log.Debug("background job ended", "job", j.id, "exit_code", j.exitCode, "signal", j.signal)
	}()
	a.log.Debug("background job started", "job", j.id, "pid", j.pid)
	return j.status(t.opts.now()), nil
}

// admit makes room for a job that reserves reserve bytes of output buffers
// and enters it in the table (not started yet). Jobs whose results have
// been read make room first; jobs still running or unread are never
// dropped for a new one.
func (t *jobTable) admit(reserve int64) (*job, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errdefs.Unavailablef("the agent is stopping")
	}
	t.sweep()
	if reserve > t.opts.budget {
		return nil, errdefs.Invalidf("max_output_bytes: the guest keeps at most %d bytes of job output in all", t.opts.budget/2)
	}
	for len(t.jobs) >= t.opts.max || t.reserved+reserve > t.opts.budget {
		victim := t.oldestRead()
		if victim == nil {
			return nil, errdefs.Quotaf("too many background jobs kept (%d, holding %d bytes of output; at most %d and %d): "+
				"poll finished jobs to release them, or kill running ones", len(t.jobs), t.reserved, t.opts.max, t.opts.budget)
		}
		t.drop(victim)
	}
	t.next++
	for t.next == 0 || t.jobs[t.next] != nil {
		t.next++
	}
	j := &job{id: t.next, reserve: reserve, done: make(chan struct{})}
	t.jobs[j.id] = j
	t.reserved += reserve
	return j, nil
}

// sweep drops finished jobs past their retention. Called with mu held.
func (t *jobTable) sweep() {
	now := t.opts.now()
	for _, j := range t.jobs {
		if !j.ended() {
			continue
		}
		if !j.readAt.IsZero() && now.Sub(j.readAt) >= t.opts.readLinger ||
			now.Sub(j.finished) >= t.opts.retention {
			t.drop(j)
		}
	}
}

// oldestRead is the finished job whose result was read longest ago.
func (t *jobTable) oldestRead() *job {
	var old *job
	for _, j := range t.jobs {
		if j.ended() && !j.readAt.IsZero() && (old == nil || j.readAt.Before(old.readAt)) {
			old = j
		}
	}
	return old
}

func (t *jobTable) drop(j *job) {
	delete(t.jobs, j.id)
	t.reserved -= j.reserve
}

func (t *jobTable) remove(id uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if j := t.jobs[id]; j != nil {
		t.drop(j)
	}
}

// get finds a kept job; when its result is now reported for the first
// time (read is set and it has ended), that is recorded.
func (t *jobTable) get(id uint32, read bool) (*job, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep()
	j := t.jobs[id]
	if j == nil || j.g == nil {
		return nil, errdefs.NotFoundf("job_id: no job %d in this workspace (a finished job is kept for %s after its result was read, %s unread)",
			id, t.opts.readLinger, t.opts.retention)
	}
	if read && j.ended() && j.readAt.IsZero() {
		j.readAt = t.opts.now()
	}
	return j, nil
}

// ended reports whether the job's command has ended and been waited for.
func (j *job) ended() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

// status describes the job as of now.
func (j *job) status(now time.Time) *protocol.JobStatus {
	s := &protocol.JobStatus{JobID: j.id, Pid: j.pid, Running: true}
	if j.ended() {
		s.Running = false
		s.ExitCode, s.Signal = j.exitCode, j.signal
		s.DurationMs = j.duration.Milliseconds()
	} else {
		s.DurationMs = max(0, now.Sub(j.start).Milliseconds())
	}
	var kept int64
	s.StdoutBytes, kept = j.stdout.counts()
	s.Truncated = kept < s.StdoutBytes
	s.StderrBytes, kept = j.stderr.counts()
	s.Truncated = s.Truncated || kept < s.StderrBytes
	return s
}

// pollJob sends a job's kept output (stdout, then stderr, as Output
// messages) and then its status. The status is taken first: a job that
// has ended has all its output in the buffers by then.
func (a *Agent) pollJob(st net.Conn, req *protocol.JobPoll) error {
	j, err := a.jobs.get(req.JobID, true)
	if err != nil {
		return err
	}
	s := j.status(a.jobs.opts.now())
	for _, out := range []struct {
		stream protocol.Stream
		buf    *tailBuffer
	}{{protocol.Stdout, j.stdout}, {protocol.Stderr, j.stderr}} {
		data, _ := out.buf.snapshot()
		for len(data) > 0 {
			n := len(data)
			if n > protocol.ChunkSize {
				n = protocol.RuneBoundary(data, protocol.ChunkSize)
				if n == 0 {
					n = protocol.ChunkSize
				}
			}
			if err := send(st, &protocol.Output{Stream: out.stream, Data: string(data[:n])}); err != nil {
				return nil // the host is gone
			}
			data = data[n:]
		}
	}
	a.reply(st, s)
	return nil
}

// killJob signals a job's process group and waits a moment for it to end.
func (a *Agent) killJob(req *protocol.JobKill) (*protocol.JobStatus, error) {
	j, err := a.jobs.get(req.JobID, false)
	if err != nil {
		return nil, err
	}
	sent := false
	if !j.ended() {
		// protocol validated the name, so the lookup cannot fail.
		j.g.kill(unix.SignalNum(req.Signal))
		sent = true
		select {
		case <-j.done:
		case <-time.After(killWait):
		}
	}
	s := j.status(a.jobs.opts.now())
	s.SignalSent = sent
	return s, nil
}

// close kills every running job and waits until each has been reaped. Jobs
// started after close are refused.
func (t *jobTable) close() {
	t.mu.Lock()
	t.closed = true
	jobs := make([]*job, 0, len(t.jobs))
	for _, j := range t.jobs {
		jobs = append(jobs, j)
	}
	t.mu.Unlock()
	for _, j := range jobs {
		if j.g != nil {
			j.g.kill(unix.SIGKILL)
		}
	}
	t.wg.Wait()
}
