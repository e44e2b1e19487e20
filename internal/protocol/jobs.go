package protocol

import (
	"errors"
	"fmt"
	"sort"
)

// Background jobs and the guest's persistent environment.
//
// A job is a command the guest runs detached from any stream: it outlives
// the request that started it and the host session (a daemon restart), and
// is found again by its JobID, a small integer the guest hands out. The
// guest keeps the last bytes of each output stream in a bounded buffer, so
// a poll shows output so far, and keeps a finished job until its result
// has been read and a while after, or until it expires unread.
//
// SetEnv sets variables held in the agent's memory only (never written to
// the guest's disk) that every later command gets; a request's own Env
// overrides them. The blocklist (CheckEnv) applies to both.

// The message types of jobs and the persistent environment.
const (
	TypeSetEnv    Type = "set_env"    // -> EnvSet
	TypeEnvSet    Type = "env_set"    //
	TypeJobStart  Type = "job_start"  // -> JobStatus
	TypeJobPoll   Type = "job_poll"   // -> Output*, JobStatus
	TypeJobKill   Type = "job_kill"   // -> JobStatus
	TypeJobStatus Type = "job_status" //
)

// MaxJobOutputBytes bounds JobStart.MaxOutputBytes: what the guest keeps of
// each output stream of one job.
const MaxJobOutputBytes = 1 << 20

// SetEnv changes the persistent environment: Vars are set (replacing
// earlier values), then the names in Unset are removed. The guest answers
// with the names it now holds.
type SetEnv struct {
	Vars  map[string]string `json:"vars,omitempty"`
	Unset []string          `json:"unset,omitempty"`
}

func (m *SetEnv) validate() error {
	if len(m.Vars) == 0 && len(m.Unset) == 0 {
		return errors.New("vars: at least one variable to set or unset")
	}
	if err := CheckEnv(m.Vars); err != nil {
		return err
	}
	if len(m.Unset) > MaxEnvVars {
		return fmt.Errorf("unset: at most %d names", MaxEnvVars)
	}
	for _, k := range m.Unset {
		if !validEnvName(k) {
			return fmt.Errorf("unset: %q is not a valid variable name", k)
		}
	}
	return nil
}

// EnvSet answers SetEnv: the names of the persistent variables, sorted.
// Values never travel back.
type EnvSet struct {
	Names []string `json:"names"`
}

// JobStart starts a background job. The guest answers with its JobStatus
// (running, with its JobID and PID) once it has started, or an Error.
type JobStart struct {
	Argv    []string          `json:"argv"`
	Workdir string            `json:"workdir,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	// MaxOutputBytes is how much of each output stream the guest keeps:
	// the last MaxOutputBytes bytes; older output is dropped and counted.
	MaxOutputBytes int64 `json:"max_output_bytes"`
}

func (m *JobStart) validate() error {
	if err := checkCommand(m.Argv, m.Workdir); err != nil {
		return err
	}
	if m.MaxOutputBytes <= 0 || m.MaxOutputBytes > MaxJobOutputBytes {
		return fmt.Errorf("max_output_bytes: must be 1..%d", MaxJobOutputBytes)
	}
	return CheckEnv(m.Env)
}

// JobPoll asks for a job's output so far (Output messages: what is kept of
// stdout, then of stderr) and its JobStatus.
type JobPoll struct {
	JobID uint32 `json:"job_id"`
}

func (m *JobPoll) validate() error { return checkJobID(m.JobID) }

// JobKill sends Signal to a job's process group and answers with its
// JobStatus once the job has ended or a short wait has passed.
type JobKill struct {
	JobID  uint32 `json:"job_id"`
	Signal string `json:"signal"`
}

func (m *JobKill) validate() error {
	if err := checkJobID(m.JobID); err != nil {
		return err
	}
	return checkSignal(m.Signal)
}

func checkJobID(id uint32) error {
	if id == 0 {
		return errors.New("job_id: must be a job's id (1 or more)")
	}
	return nil
}

// JobStatus describes a job.
type JobStatus struct {
	JobID   uint32 `json:"job_id"`
	Pid     int    `json:"pid"`
	Running bool   `json:"running"`
	// ExitCode is the job's exit status once it has ended, -1 when a
	// signal ended it (named in Signal).
	ExitCode int    `json:"exit_code"`
	Signal   string `json:"signal,omitempty"`
	// DurationMs is the job's run time so far, or in all once ended.
	DurationMs int64 `json:"duration_ms"`
	// StdoutBytes and StderrBytes count all output the job wrote;
	// Truncated is set once some of it is no longer kept.
	StdoutBytes int64 `json:"stdout_bytes"`
	StderrBytes int64 `json:"stderr_bytes"`
	Truncated   bool  `json:"truncated"`
	// SignalSent answers JobKill: false when the job had ended already.
	SignalSent bool `json:"signal_sent,omitempty"`
}

func (m *JobStatus) validate() error {
	if m.StdoutBytes < 0 || m.StderrBytes < 0 || m.DurationMs < 0 {
		return errors.New("stdout_bytes, stderr_bytes, duration_ms: must not be negative")
	}
	return checkJobID(m.JobID)
}

func (*SetEnv) Type() Type    { return TypeSetEnv }
func (*EnvSet) Type() Type    { return TypeEnvSet }
func (*JobStart) Type() Type  { return TypeJobStart }
func (*JobPoll) Type() Type   { return TypeJobPoll }
func (*JobKill) Type() Type   { return TypeJobKill }
func (*JobStatus) Type() Type { return TypeJobStatus }

// SortedNames returns the names of env, sorted.
func SortedNames(env map[string]string) []string {
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
