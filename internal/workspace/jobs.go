package workspace

import (
	"context"
	"strings"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/state"
)

// guestOps is what background jobs, the persistent environment and file
// operations ask of a running VM's guest agent, beyond Guest. The channel
// (package channel) provides it.
type guestOps interface {
	SetEnv(ctx context.Context, m protocol.SetEnv) ([]string, error)
	StartJob(ctx context.Context, m protocol.JobStart) (*protocol.JobStatus, error)
	PollJob(ctx context.Context, id uint32) (*channel.JobOutput, error)
	KillJob(ctx context.Context, id uint32, sig string) (*protocol.JobStatus, error)
	EditFile(ctx context.Context, m protocol.FileEdit) (*protocol.FileEdited, error)
	ListDir(ctx context.Context, path string, maxEntries int) (*channel.Listing, error)
}

// ops returns the guest of c's running workspace ref.
func (m *Manager) ops(ctx context.Context, c Caller, ref string) (state.Workspace, guestOps, error) {
	w, err := m.resolve(ctx, c, ref)
	if err != nil {
		return w, nil, err
	}
	_, g, err := m.liveVM(w)
	if err != nil {
		return w, nil, err
	}
	ops, ok := g.(guestOps)
	if !ok {
		return w, nil, errdefs.Unavailablef("workspace_id: the workspace's guest channel does not offer this operation")
	}
	return w, ops, nil
}

// opError is guestError for the operations a guest image built before them
// does not know: that case says how to fix it.
func opError(field string, err error) error {
	if strings.Contains(errdefs.Public(err), protocol.ErrUnknownType.Error()) {
		return errdefs.With(errdefs.Unavailable, "the workspace's guest agent is older than this daemon and lacks this operation: "+
			"rebuild the guest image (agentiso image build) and recreate the workspace", err)
	}
	return guestError(field, err)
}

// EnvResult is what set_env returns: names only, never values (they are
// often secrets).
type EnvResult struct {
	WorkspaceID string   `json:"workspace_id"`
	Set         []string `json:"set"`
	Unset       []string `json:"unset"`
	// Names are all persistent variables now held, sorted.
	Names []string `json:"names"`
}

// SetEnv sets (vars) and removes (unset) persistent environment variables
// of workspace ref: held in the guest agent's memory only, never written to
// its disk or to agentiso's state, applied to every later exec and
// background job, and overridden by a call's own env. A workspace that
// stops loses them. Blocklisted names are refused (M-9, L-9), here for a
// clear error and again in the guest.
func (m *Manager) SetEnv(ctx context.Context, c Caller, ref string, vars map[string]string, unset []string) (*EnvResult, error) {
	if len(vars) == 0 && len(unset) == 0 {
		return nil, errdefs.Invalidf("vars: required (at least one variable to set)")
	}
	if err := protocol.CheckEnv(vars); err != nil {
		return nil, errdefs.Invalidf("vars: %v", strings.TrimPrefix(err.Error(), "env: "))
	}
	req := protocol.SetEnv{Vars: vars, Unset: unset}
	w, ops, err := m.ops(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	names, err := ops.SetEnv(ctx, req)
	if err != nil {
		return nil, opError("vars", err)
	}
	return &EnvResult{
		WorkspaceID: w.ID, Set: protocol.SortedNames(vars), Unset: nonNil(unset), Names: nonNil(names),
	}, nil
}

// JobRequest starts a background job.
type JobRequest struct {
	Command string
	Workdir string
	Env     map[string]string
	// MaxOutputBytes is how much of each output stream the guest keeps
	// (the last bytes), at most protocol.MaxJobOutputBytes.
	MaxOutputBytes int64
}

// Job is a background job as tools show it.
type Job struct {
	JobID   uint32 `json:"job_id"`
	Pid     int    `json:"pid"`
	Running bool   `json:"running"`
	// ExitCode is null while the job runs, -1 when a signal ended it.
	ExitCode    *int   `json:"exit_code"`
	Signal      string `json:"signal,omitempty"`
	DurationMs  int64  `json:"duration_ms"`
	Stdout      string `json:"stdout"`
	Stderr      string `json:"stderr"`
	StdoutBytes int64  `json:"stdout_bytes"`
	StderrBytes int64  `json:"stderr_bytes"`
	// Truncated is set once older output is no longer kept: Stdout and
	// Stderr are then the last bytes of the job's output.
	Truncated bool `json:"truncated"`
}

func jobOf(s *protocol.JobStatus) *Job {
	j := &Job{
		JobID: s.JobID, Pid: s.Pid, Running: s.Running, Signal: s.Signal, DurationMs: s.DurationMs,
		StdoutBytes: s.StdoutBytes, StderrBytes: s.StderrBytes, Truncated: s.Truncated,
	}
	if !s.Running {
		code := s.ExitCode
		j.ExitCode = &code
	}
	return j
}

// StartJob starts req.Command with /bin/sh -c as a background job in
// workspace ref. The job lives in the guest: it survives this call, the
// session and a daemon restart, and ends on its own or by KillJob.
func (m *Manager) StartJob(ctx context.Context, c Caller, ref string, req JobRequest) (*Job, error) {
	msg := protocol.JobStart{
		Argv: []string{"/bin/sh", "-c", req.Command}, Workdir: req.Workdir, Env: req.Env, MaxOutputBytes: req.MaxOutputBytes,
	}
	if msg.Workdir == "" {
		msg.Workdir = defaultWorkdir
	}
	if msg.Workdir[0] != '/' {
		return nil, errdefs.Invalidf("workdir: must be an absolute path")
	}
	if err := protocol.CheckEnv(msg.Env); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	if msg.MaxOutputBytes <= 0 || msg.MaxOutputBytes > protocol.MaxJobOutputBytes {
		return nil, errdefs.Invalidf("max_output_bytes: at most %d for a background job", protocol.MaxJobOutputBytes)
	}
	_, ops, err := m.ops(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	s, err := ops.StartJob(ctx, msg)
	if err != nil {
		return nil, opError("command", err)
	}
	return jobOf(s), nil
}

// PollJob returns job id's state and its output so far: the last bytes of
// each stream, up to the job's MaxOutputBytes.
func (m *Manager) PollJob(ctx context.Context, c Caller, ref string, id uint32) (*Job, error) {
	_, ops, err := m.ops(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	out, err := ops.PollJob(ctx, id)
	if err != nil {
		return nil, opError("job_id", err)
	}
	j := jobOf(&out.Status)
	j.Stdout, j.Stderr = out.Stdout, out.Stderr
	return j, nil
}

// KillResult is what killing a job returns.
type KillResult struct {
	Job
	// SignalSent is the signal sent, empty when the job had ended already.
	SignalSent string `json:"signal_sent,omitempty"`
}

// KillJob sends sig (a name or number protocol.ParseSignal reads) to job
// id's process group, and returns its state once it has ended or the
// guest's short wait has passed.
func (m *Manager) KillJob(ctx context.Context, c Caller, ref string, id uint32, sig string) (*KillResult, error) {
	name, err := protocol.ParseSignal(sig)
	if err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	_, ops, err := m.ops(ctx, c, ref)
	if err != nil {
		return nil, err
	}
	s, err := ops.KillJob(ctx, id, name)
	if err != nil {
		return nil, opError("job_id", err)
	}
	r := &KillResult{Job: *jobOf(s)}
	if s.SignalSent {
		r.SignalSent = name
	}
	return r, nil
}

// nonNil makes a nil list an empty one, so results show [] rather than null.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
