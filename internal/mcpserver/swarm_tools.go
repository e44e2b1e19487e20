package mcpserver

import (
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/swarm"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Swarm is the orchestration service behind workspace_prepare and
// swarm_run (package swarm).
type Swarm interface {
	Prepare(ctx context.Context, c workspace.Caller, req swarm.PrepareRequest) (*swarm.PrepareResult, error)
	Run(ctx context.Context, c workspace.Caller, req swarm.RunRequest, progress func(swarm.Progress)) (*swarm.RunResult, error)
}

// maxArgumentBytes bounds the raw JSON arguments of the tools that take
// large structured input. The guard checks it before the arguments are
// decoded at all (L-15): swarm_run's shared_context (1 MiB) and twenty
// commands, JSON-escaped, fit with room to spare.
var maxArgumentBytes = map[string]int{
	"swarm_run":         8 << 20,
	"workspace_prepare": 8 << 20,
}

// checkArgumentSize refuses arguments over their tool's bound, from their
// length alone.
func checkArgumentSize(tool string, args json.RawMessage) error {
	if max, ok := maxArgumentBytes[tool]; ok && len(args) > max {
		return errdefs.Invalidf("arguments: %d bytes, more than %s accepts (%d MiB); shared_context is at most 1 MiB",
			len(args), tool, max>>20)
	}
	return nil
}

type prepareIn struct {
	Name             string   `json:"name" jsonschema:"name of the golden workspace: 1-128 of [A-Za-z0-9._-]"`
	BaseImage        string   `json:"base_image,omitempty" jsonschema:"base image (default: the host's image)"`
	GitURL           string   `json:"git_url,omitempty" jsonschema:"repository cloned into /workspace before the setup commands; credentials in it are masked in every answer and log"`
	SetupCommands    []string `json:"setup_commands,omitempty" jsonschema:"shell commands run in order (in /workspace after a clone, else /root); the first that fails stops the preparation and the workspace is removed"`
	SetupTimeoutSecs int      `json:"setup_timeout_secs,omitempty" jsonschema:"kill each setup command after this many seconds (default 600)"`
	VCPUs            int      `json:"vcpus,omitempty" jsonschema:"virtual CPUs of the golden workspace and its workers"`
	MemoryMB         int      `json:"memory_mb,omitempty" jsonschema:"memory (MiB) of the golden workspace and its workers"`
	DiskGB           int      `json:"disk_gb,omitempty" jsonschema:"disk size (GiB) of the golden workspace and its workers"`
}

type swarmTaskIn struct {
	Name        string `json:"name" jsonschema:"unique name of the task, used in progress and results"`
	Command     string `json:"command" jsonschema:"shell command run with /bin/sh -c in the task's worker"`
	Workdir     string `json:"workdir,omitempty" jsonschema:"absolute working directory (default /root)"`
	TimeoutSecs int    `json:"timeout_secs,omitempty" jsonschema:"this task's timeout, instead of the run's"`
}

type vaultQueryIn struct {
	Kind  string `json:"kind,omitempty" jsonschema:"search (default: the matching lines of every note) or read (one note whole)"`
	Query string `json:"query" jsonschema:"the text to search for, or the note's path to read"`
}

type swarmRunIn struct {
	GoldenWorkspace string            `json:"golden_workspace" jsonschema:"UUID or name of the workspace the workers are forked from"`
	SnapshotName    string            `json:"snapshot_name" jsonschema:"its snapshot to fork from (workspace_prepare makes one named golden)"`
	Tasks           []swarmTaskIn     `json:"tasks" jsonschema:"1-20 tasks; each runs in a worker of its own"`
	EnvVars         map[string]string `json:"env_vars,omitempty" jsonschema:"environment variables set in every worker before its task (guest memory only; LD_PRELOAD and the like are refused)"`
	MergeStrategy   string            `json:"merge_strategy,omitempty" jsonschema:"merge each succeeded worker's commits into merge_target: sequential, branch-per-source or cherry-pick (default: no merge)"`
	MergeTarget     string            `json:"merge_target,omitempty" jsonschema:"UUID or name of the running workspace to merge into (with merge_strategy)"`
	MergePath       string            `json:"merge_path,omitempty" jsonschema:"repository path in the workers and the target (default /workspace)"`
	MaxParallel     int               `json:"max_parallel,omitempty" jsonschema:"workers alive at once (default 4, max 20)"`
	TimeoutSecs     int               `json:"timeout_secs,omitempty" jsonschema:"kill a task's process group after this many seconds (default 600)"`
	Cleanup         *bool             `json:"cleanup,omitempty" jsonschema:"destroy each worker when its task is done (default true); a cancelled run destroys them regardless"`
	AllowInternet   *bool             `json:"allow_internet,omitempty" jsonschema:"give the workers internet access"`
	VaultContext    []vaultQueryIn    `json:"vault_context,omitempty" jsonschema:"vault notes and searches gathered into /tmp/vault_context.md in every worker (VAULT_CONTEXT points there); at most 10"`
	SharedContext   string            `json:"shared_context,omitempty" jsonschema:"text written to /tmp/shared_context.md in every worker (SHARED_CONTEXT points there); at most 1 MiB"`
}

func (t *tools) registerSwarmTools(s *mcp.Server) {
	sw := t.d.Swarm
	add(t, s, "workspace_prepare",
		"Make a golden workspace to fork workers from: create it, clone git_url into /workspace, run the "+
			"setup commands, then snapshot it (with memory) as golden. Any failing step removes the workspace "+
			"and its error names the step.",
		func(in prepareIn) string { return in.Name },
		func(ctx context.Context, _ *mcp.CallToolRequest, in prepareIn) (*swarm.PrepareResult, error) {
			return sw.Prepare(ctx, t.caller, swarm.PrepareRequest{
				Name: in.Name, BaseImage: in.BaseImage, GitURL: in.GitURL, SetupCommands: in.SetupCommands,
				SetupTimeoutSecs: in.SetupTimeoutSecs, VCPUs: in.VCPUs, MemoryMB: in.MemoryMB, DiskGB: in.DiskGB,
			})
		})
	add(t, s, "swarm_run",
		"Run tasks in parallel, each in its own worker forked from a golden workspace's snapshot: inject "+
			"env_vars and the shared and vault context, run each task with a timeout, optionally merge each "+
			"succeeded worker's commits into merge_target, and destroy the workers. Reports progress as tasks "+
			"finish and returns a per-task table. Cancelling the call destroys its workers.",
		func(in swarmRunIn) string { return in.GoldenWorkspace },
		func(ctx context.Context, req *mcp.CallToolRequest, in swarmRunIn) (*swarm.RunResult, error) {
			r := swarm.RunRequest{
				Golden: in.GoldenWorkspace, SnapshotName: in.SnapshotName, EnvVars: in.EnvVars,
				MergeStrategy: in.MergeStrategy, MergeTarget: in.MergeTarget, MergePath: in.MergePath,
				MaxParallel: in.MaxParallel, TimeoutSecs: in.TimeoutSecs, Cleanup: in.Cleanup,
				AllowInternet: in.AllowInternet, SharedContext: in.SharedContext,
			}
			for _, tk := range in.Tasks {
				r.Tasks = append(r.Tasks, swarm.Task{Name: tk.Name, Command: tk.Command, Workdir: tk.Workdir, TimeoutSecs: tk.TimeoutSecs})
			}
			for _, q := range in.VaultContext {
				r.VaultContext = append(r.VaultContext, swarm.VaultQuery{Kind: q.Kind, Query: q.Query})
			}
			res, err := sw.Run(ctx, t.caller, r, t.progress(ctx, req))
			if err != nil {
				return nil, err
			}
			return res, nil
		})
}

// progress reports a long call's steps to the client as MCP progress
// notifications, when the call asked for them with a progress token.
func (t *tools) progress(ctx context.Context, req *mcp.CallToolRequest) func(swarm.Progress) {
	token := req.Params.GetProgressToken()
	if token == nil || req.Session == nil {
		return nil
	}
	return func(p swarm.Progress) {
		err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token, Progress: float64(p.Done), Total: float64(p.Total), Message: p.Message,
		})
		if err != nil {
			t.d.Logger.Debug("progress notification not sent", "err", err)
		}
	}
}
