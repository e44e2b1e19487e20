package swarm

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/cleanup"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/gitops"
	"github.com/agentiso/agentiso/internal/names"
	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Prepare bounds.
const (
	// MaxSetupCommands bounds setup_commands.
	MaxSetupCommands = 50
	// defaultSetupTimeout is each setup command's timeout unless the call
	// gives one: installing dependencies takes a while.
	defaultSetupTimeout = 600 * time.Second
	// setupOutputBytes is how much of a setup command's output is kept:
	// the end of it says what went wrong.
	setupOutputBytes = 16 << 10
	// quotedOutputBytes is how much of a failed setup command's stderr an
	// error quotes.
	quotedOutputBytes = 2 << 10
)

// PrepareRequest is what workspace_prepare asks for.
type PrepareRequest struct {
	// Name names the golden workspace.
	Name      string
	BaseImage string
	// VCPUs, MemoryMB and DiskGB size it (and so every worker forked
	// from it); zero takes the configured defaults.
	VCPUs, MemoryMB, DiskGB int
	// GitURL, when set, is cloned to /workspace first.
	GitURL string
	// SetupCommands run in order after the clone, in /workspace when a
	// repository was cloned and /root otherwise; the first to fail stops
	// the preparation.
	SetupCommands []string
	// SetupTimeoutSecs bounds each setup command (default 600).
	SetupTimeoutSecs int
}

// SetupResult is one setup command's outcome.
type SetupResult struct {
	Command    string `json:"command"`
	ExitCode   int    `json:"exit_code"`
	DurationMs int64  `json:"duration_ms"`
}

// PrepareResult is workspace_prepare's answer.
type PrepareResult struct {
	WorkspaceID  string `json:"workspace_id"`
	Name         string `json:"name"`
	State        string `json:"state"`
	SnapshotName string `json:"snapshot_name"`
	// Repository is the clone, when git_url was given.
	Repository *gitops.CloneResult `json:"repository,omitempty"`
	Setup      []SetupResult       `json:"setup"`
	DurationMs int64               `json:"duration_ms"`
}

// Prepare makes a golden workspace: it creates the workspace, clones
// req.GitURL into /workspace, runs the setup commands and takes a snapshot
// named golden with the VM's memory, so workers forked from it resume in
// milliseconds. Every input is checked before anything is made; a step that
// fails removes the workspace again and its error names the step
// (git_url, setup_commands[i], snapshot).
func (s *Service) Prepare(ctx context.Context, c workspace.Caller, req PrepareRequest) (*PrepareResult, error) {
	if err := names.Validate("name", req.Name); err != nil {
		return nil, errdefs.Invalidf("%v", err)
	}
	k := redact.Scrubber{}
	if req.GitURL != "" {
		if err := gitops.CheckURL("git_url", req.GitURL); err != nil {
			return nil, err
		}
		k = k.With(redact.URLSecrets(req.GitURL)...)
	}
	if len(req.SetupCommands) > MaxSetupCommands {
		return nil, errdefs.Invalidf("setup_commands: at most %d commands", MaxSetupCommands)
	}
	setup := make([]workspace.ExecRequest, len(req.SetupCommands))
	timeoutSecs := req.SetupTimeoutSecs
	if timeoutSecs == 0 {
		timeoutSecs = int(min(defaultSetupTimeout, s.exec.MaxTimeout) / time.Second)
	}
	for i, cmd := range req.SetupCommands {
		r, err := s.exec.Request(cmd, timeoutSecs, "", nil, min(setupOutputBytes, s.exec.MaxOutputBytes))
		if err != nil {
			return nil, renameField(err, "command", fmt.Sprintf("setup_commands[%d]", i))
		}
		setup[i] = r
	}

	start := time.Now()
	info, err := s.ws.Create(ctx, c, workspace.CreateRequest{
		Name: req.Name, BaseImage: req.BaseImage, VCPUs: req.VCPUs, MemoryMB: req.MemoryMB, DiskGB: req.DiskGB,
	})
	if err != nil {
		return nil, err
	}
	cu := cleanup.Make()
	defer cu.Clean()
	cu.Add(func() {
		// The call may have been cancelled: undo regardless.
		bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if err := s.ws.Destroy(bg, c, info.ID); err != nil {
			s.log.Error("removing a half-prepared workspace", "workspace", info.ID, "err", err)
		}
	})

	res := &PrepareResult{WorkspaceID: info.ID, Name: info.Name, SnapshotName: GoldenSnapshot, Setup: []SetupResult{}}
	workdir := ""
	if req.GitURL != "" {
		clone, err := s.git.Clone(ctx, c, info.ID, gitops.CloneRequest{URL: req.GitURL, TimeoutSecs: timeoutSecs})
		if err != nil {
			return nil, stepError("git_url", "cloning the repository failed", err)
		}
		res.Repository = clone
		workdir = clone.Path
	}
	for i, r := range setup {
		r.Workdir = workdir
		out, err := s.ws.Exec(ctx, c, info.ID, r)
		field := fmt.Sprintf("setup_commands[%d]", i)
		if err != nil {
			return nil, stepError(field, "the command did not run to its end", k.Error(err))
		}
		res.Setup = append(res.Setup, SetupResult{Command: k.String(r.Command), ExitCode: out.ExitCode, DurationMs: out.DurationMs})
		if out.ExitCode != 0 {
			return nil, errdefs.Conflictf("%s: exited with status %d; the workspace was removed. stderr: %s",
				field, out.ExitCode, tail(k.String(out.Stderr), quotedOutputBytes))
		}
	}
	if _, err := s.ws.SnapshotCreate(ctx, c, info.ID, workspace.SnapshotRequest{Name: GoldenSnapshot, IncludeMemory: true}); err != nil {
		return nil, stepError("snapshot", "taking the golden snapshot failed", err)
	}
	cu.Release()
	res.State = "running"
	res.DurationMs = time.Since(start).Milliseconds()
	s.log.Info("golden workspace prepared", "workspace", info.ID, "session", c.SessionID,
		"cloned", req.GitURL != "", "setup_commands", len(setup), "took", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// stepError names the preparation step that failed, keeps the class of
// its cause, and says that nothing was left behind.
func stepError(field, what string, err error) error {
	msg := strings.TrimPrefix(errdefs.Public(err), field+": ")
	return errdefs.With(errdefs.ClassOf(err), fmt.Sprintf("%s: %s (the workspace was removed): %s", field, what, msg), err)
}

// renameField makes an error about from name field instead.
func renameField(err error, from, field string) error {
	msg := errdefs.Public(err)
	if rest, ok := strings.CutPrefix(msg, from+":"); ok {
		msg = field + ":" + rest
	}
	return errdefs.With(errdefs.ClassOf(err), msg, err)
}

// tail is the last n bytes of s at most, starting on a character boundary.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	cut := len(s) - n
	for cut < len(s) && s[cut]&0xC0 == 0x80 { // not inside a character
		cut++
	}
	return "..." + s[cut:]
}
