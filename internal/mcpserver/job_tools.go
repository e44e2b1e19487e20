package mcpserver

import (
	"context"
	"math"
	"strconv"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/workspace"
)

// JobsAndFiles is the part of the workspace manager behind background jobs,
// exec_parallel, set_env and the file operations beyond read and write.
type JobsAndFiles interface {
	SetEnv(ctx context.Context, c workspace.Caller, ref string, vars map[string]string, unset []string) (*workspace.EnvResult, error)
	StartJob(ctx context.Context, c workspace.Caller, ref string, req workspace.JobRequest) (*workspace.Job, error)
	PollJob(ctx context.Context, c workspace.Caller, ref string, id uint32) (*workspace.Job, error)
	KillJob(ctx context.Context, c workspace.Caller, ref string, id uint32, sig string) (*workspace.KillResult, error)
	ExecParallel(ctx context.Context, c workspace.Caller, refs []string, reqs []workspace.ExecRequest) ([]workspace.ParallelResult, workspace.ParallelSummary, error)
	EditFile(ctx context.Context, c workspace.Caller, ref, path, old, new string) (*workspace.EditResult, error)
	ListDir(ctx context.Context, c workspace.Caller, ref, path string) (*workspace.Listing, error)
	Transfer(ctx context.Context, c workspace.Caller, ref, direction, hostPath, guestPath string) (*workspace.TransferResult, error)
}

// defaultKillSignal is what kill sends when the call names no signal.
const defaultKillSignal = "SIGKILL"

type execBackgroundIn struct {
	WorkspaceID    string            `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Action         string            `json:"action" jsonschema:"start, poll or kill"`
	Command        string            `json:"command,omitempty" jsonschema:"start: shell command, run with /bin/sh -c"`
	Workdir        string            `json:"workdir,omitempty" jsonschema:"start: absolute working directory (default /root)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"start: extra environment variables for this job"`
	MaxOutputBytes int64             `json:"max_output_bytes,omitempty" jsonschema:"start: bytes of stdout and of stderr kept for polls (the last ones; default 262144, at most 1048576)"`
	JobID          int64             `json:"job_id,omitempty" jsonschema:"poll, kill: the job_id start returned"`
	Signal         any               `json:"signal,omitempty" jsonschema:"kill: signal for the job's process group, by name (SIGTERM, TERM) or number (15); default SIGKILL"`
}

// jobOut is the job tool's answer: the action, the job, and for kill the
// signal sent.
type jobOut struct {
	Action string `json:"action"`
	workspace.Job
	SignalSent string `json:"signal_sent,omitempty"`
}

func jobResult(action string, j *workspace.Job) *jobOut {
	return &jobOut{Action: action, Job: *j}
}

type execParallelIn struct {
	WorkspaceIDs   []string          `json:"workspace_ids" jsonschema:"UUIDs or names of the workspaces"`
	Commands       any               `json:"commands" jsonschema:"one shell command for every workspace, or a list with one per workspace (same order)"`
	TimeoutSecs    int               `json:"timeout_secs,omitempty" jsonschema:"kill each command's process group after this many seconds (default 120)"`
	Workdir        string            `json:"workdir,omitempty" jsonschema:"absolute working directory (default /root)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"extra environment variables for every command"`
	MaxOutputBytes int64             `json:"max_output_bytes,omitempty" jsonschema:"bytes of stdout and of stderr to return per workspace (default 262144)"`
}

type execParallelOut struct {
	Results []workspace.ParallelResult `json:"results"`
	Summary workspace.ParallelSummary  `json:"summary"`
}

type setEnvIn struct {
	WorkspaceID string            `json:"workspace_id" jsonschema:"UUID or name of the workspace"`
	Vars        map[string]string `json:"vars" jsonschema:"variables every later exec and background job gets; a call's own env overrides them"`
	Unset       []string          `json:"unset,omitempty" jsonschema:"names to remove"`
}

func (t *tools) registerJobTools(s *mcp.Server) {
	addTool(t, s, &mcp.Tool{
		Name: "exec_background",
		Description: "Run a long command in the background of a workspace. action=start returns a job_id at once; " +
			"action=poll returns running, exit_code (null while running) and the output so far (the last max_output_bytes " +
			"of each stream; truncated says older output was dropped); action=kill signals the job's whole process group. " +
			"Jobs live in the workspace: they survive the session. A finished job stays pollable for 10 minutes after its " +
			"result was first read (an hour if never read).",
		InputSchema: withProperties[execBackgroundIn](map[string]func(*jsonschema.Schema){
			"action": func(p *jsonschema.Schema) { p.Enum = []any{"start", "poll", "kill"} },
			"signal": func(p *jsonschema.Schema) {
				p.OneOf = []*jsonschema.Schema{{Type: "string"}, {Type: "integer"}}
			},
		}),
	},
		func(in execBackgroundIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in execBackgroundIn) (*jobOut, error) {
			switch in.Action {
			case "start":
				req, err := t.jobRequest(in)
				if err != nil {
					return nil, err
				}
				j, err := t.d.Workspaces.StartJob(ctx, t.caller, in.WorkspaceID, req)
				if err != nil {
					return nil, err
				}
				return jobResult(in.Action, j), nil
			case "poll":
				id, err := jobID(in.JobID, in.Action)
				if err != nil {
					return nil, err
				}
				j, err := t.d.Workspaces.PollJob(ctx, t.caller, in.WorkspaceID, id)
				if err != nil {
					return nil, err
				}
				return jobResult(in.Action, j), nil
			case "kill":
				id, err := jobID(in.JobID, in.Action)
				if err != nil {
					return nil, err
				}
				sig, err := signalOf(in.Signal)
				if err != nil {
					return nil, err
				}
				k, err := t.d.Workspaces.KillJob(ctx, t.caller, in.WorkspaceID, id, sig)
				if err != nil {
					return nil, err
				}
				out := jobResult(in.Action, &k.Job)
				out.SignalSent = k.SignalSent
				return out, nil
			}
			return nil, errdefs.Invalidf("action: must be start, poll or kill")
		})

	addTool(t, s, &mcp.Tool{
		Name: "exec_parallel",
		Description: "Run commands in several workspaces at once: one command for all (a string) or one per workspace " +
			"(a list in the order of workspace_ids). Returns one result per workspace and a summary.",
		InputSchema: withProperties[execParallelIn](map[string]func(*jsonschema.Schema){
			"commands": func(p *jsonschema.Schema) {
				p.OneOf = []*jsonschema.Schema{{Type: "string"}, {Type: "array", Items: &jsonschema.Schema{Type: "string"}}}
			},
		}),
	},
		func(in execParallelIn) string { return strings.Join(in.WorkspaceIDs, ",") },
		func(ctx context.Context, _ *mcp.CallToolRequest, in execParallelIn) (*execParallelOut, error) {
			cmds, err := commandsOf(in.Commands, len(in.WorkspaceIDs))
			if err != nil {
				return nil, err
			}
			reqs := make([]workspace.ExecRequest, len(cmds))
			for i, c := range cmds {
				reqs[i], err = t.execRequest(c, in.TimeoutSecs, in.Workdir, in.Env, in.MaxOutputBytes)
				if err != nil {
					msg := errdefs.Public(err)
					if rest, ok := strings.CutPrefix(msg, "command: "); ok {
						msg = "commands[" + strconv.Itoa(i) + "]: " + rest
					}
					return nil, errdefs.With(errdefs.ClassOf(err), msg, err)
				}
			}
			res, sum, err := t.d.Workspaces.ExecParallel(ctx, t.caller, in.WorkspaceIDs, reqs)
			if err != nil {
				return nil, err
			}
			return &execParallelOut{Results: res, Summary: sum}, nil
		})

	add(t, s, "set_env",
		"Set environment variables for every later exec and background job in a workspace. They are held in the "+
			"workspace's memory only (never written to its disk) and are gone when it stops. A call's own env overrides "+
			"them. Names that change how programs load (LD_PRELOAD, LD_LIBRARY_PATH, BASH_ENV, ...) are refused. "+
			"Values are never echoed back.",
		func(in setEnvIn) string { return in.WorkspaceID },
		func(ctx context.Context, _ *mcp.CallToolRequest, in setEnvIn) (*workspace.EnvResult, error) {
			return t.d.Workspaces.SetEnv(ctx, t.caller, in.WorkspaceID, in.Vars, in.Unset)
		})
}

// jobRequest applies the defaults and caps to a job start.
func (t *tools) jobRequest(in execBackgroundIn) (workspace.JobRequest, error) {
	if in.Command == "" {
		return workspace.JobRequest{}, errdefs.Invalidf("command: required for start")
	}
	if len(in.Command) > 256<<10 {
		return workspace.JobRequest{}, errdefs.Invalidf("command: longer than 256 KiB")
	}
	max := in.MaxOutputBytes
	switch {
	case max < 0:
		return workspace.JobRequest{}, errdefs.Invalidf("max_output_bytes: must not be negative")
	case max == 0:
		max = min(t.d.Exec.DefaultMaxOutputBytes, protocol.MaxJobOutputBytes)
	case max > protocol.MaxJobOutputBytes:
		return workspace.JobRequest{}, errdefs.Invalidf("max_output_bytes: at most %d for a background job", protocol.MaxJobOutputBytes)
	}
	return workspace.JobRequest{Command: in.Command, Workdir: in.Workdir, Env: in.Env, MaxOutputBytes: max}, nil
}

// jobID checks a job_id from the input.
func jobID(id int64, action string) (uint32, error) {
	switch {
	case id == 0:
		return 0, errdefs.Invalidf("job_id: required for %s", action)
	case id < 0 || id > math.MaxUint32:
		return 0, errdefs.Invalidf("job_id: must be a job_id that start returned")
	}
	return uint32(id), nil
}

// signalOf reads kill's signal: a name or a number; none means SIGKILL.
func signalOf(v any) (string, error) {
	switch v := v.(type) {
	case nil:
		return defaultKillSignal, nil
	case string:
		if v == "" {
			return defaultKillSignal, nil
		}
		return v, nil
	case float64:
		if v != math.Trunc(v) {
			return "", errdefs.Invalidf("signal: must be a name such as SIGTERM or a number such as 15")
		}
		return strconv.FormatInt(int64(v), 10), nil
	}
	return "", errdefs.Invalidf("signal: must be a name such as SIGTERM or a number such as 15")
}

// commandsOf reads exec_parallel's commands: one string for n workspaces,
// or a list of exactly n strings.
func commandsOf(v any, n int) ([]string, error) {
	switch v := v.(type) {
	case string:
		out := make([]string, n)
		for i := range out {
			out[i] = v
		}
		return out, nil
	case []any:
		if len(v) != n {
			return nil, errdefs.Invalidf("commands: %d commands for %d workspaces (give one string for all, or one per workspace)", len(v), n)
		}
		out := make([]string, n)
		for i, c := range v {
			s, ok := c.(string)
			if !ok {
				return nil, errdefs.Invalidf("commands[%d]: must be a string", i)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, errdefs.Invalidf("commands: must be a string or a list of strings")
}

// withProperties returns the input schema of In with the properties named
// in refine changed as refine says: what a Go type cannot express, such as
// a value that may be a string or a list.
func withProperties[In any](refine map[string]func(*jsonschema.Schema)) *jsonschema.Schema {
	s, err := jsonschema.For[In](nil)
	if err != nil {
		panic("mcpserver: input schema: " + err.Error()) // a programming error, found by any test
	}
	for name, f := range refine {
		p, ok := s.Properties[name]
		if !ok {
			panic("mcpserver: input schema has no property " + name)
		}
		f(p)
	}
	return s
}
