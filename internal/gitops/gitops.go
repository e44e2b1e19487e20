// Package gitops runs git inside workspaces for the git tools and
// workspace_merge. Every git command is an argv run directly by the guest
// agent (never a shell string, so no parameter is ever shell syntax), with
// parameters validated before use and placed after "--" wherever git
// allows it, so none can be read as an option.
//
// Everything that leaves this package (results, errors) has passed a
// redact.Scrubber that knows the credentials of the call (M-7), and every
// truncation ends on a UTF-8 boundary (M-16).
package gitops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/protocol"
	"github.com/agentiso/agentiso/internal/redact"
	"github.com/agentiso/agentiso/internal/workspace"
)

// Workspaces is what gitops needs of the workspace manager. Every call is
// made for the caller, whose ownership the manager checks.
type Workspaces interface {
	Info(ctx context.Context, c workspace.Caller, ref string) (*workspace.Info, error)
	ExecArgv(ctx context.Context, c workspace.Caller, ref string, req workspace.ArgvRequest) (*workspace.ExecResult, error)
	ReadFile(ctx context.Context, c workspace.Caller, ref, path string, offset, limit int64) ([]byte, int64, error)
	WriteFile(ctx context.Context, c workspace.Caller, ref, path string, content []byte, mode uint32) error
}

// Config configures a Service.
type Config struct {
	Workspaces Workspaces
	// MaxTimeout bounds timeout_secs (the exec configuration's maximum).
	MaxTimeout time.Duration
	// MaxOutputBytes bounds max_bytes (the exec configuration's maximum).
	MaxOutputBytes int64
	Logger         *slog.Logger
}

// Service runs the git tools.
type Service struct {
	ws         Workspaces
	maxTimeout time.Duration
	maxOutput  int64
	log        *slog.Logger

	mu sync.Mutex
	// merging serialises merges into one target workspace: two at once
	// would interleave their am and restore steps.
	merging map[string]*targetLock
}

// targetLock is one target's merge lock; refs counts its holders and
// waiters, so it is dropped when nobody needs it.
type targetLock struct {
	sync.Mutex
	refs int
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Workspaces == nil {
		return nil, errors.New("gitops: Workspaces is required")
	}
	if cfg.MaxTimeout <= 0 || cfg.MaxOutputBytes <= 0 {
		return nil, errors.New("gitops: MaxTimeout and MaxOutputBytes must be positive")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{ws: cfg.Workspaces, maxTimeout: cfg.MaxTimeout,
		maxOutput: min(cfg.MaxOutputBytes, protocol.MaxExecOutputBytes-outputSlack), log: cfg.Logger,
		merging: map[string]*targetLock{}}, nil
}

// DefaultPath is the repository the tools use when a call names none.
const DefaultPath = "/workspace"

// Timeouts of the git commands that are not given one by the caller.
const (
	// localTimeout bounds commands that only touch the repository (status,
	// diff, commit, am, merge).
	localTimeout = 120 * time.Second
	// cloneTimeout is git_clone's default.
	cloneTimeout = 300 * time.Second
	// pushTimeout is git_push's default.
	pushTimeout = 120 * time.Second
)

// Output bounds.
const (
	// outputSlack is what is asked of the guest beyond what is returned:
	// a credential the guest cut in two at the end of its output is in
	// that slack, and is dropped with it (see clean).
	outputSlack = 8 << 10
	// messageOutputBytes bounds the git output quoted in results and
	// errors.
	messageOutputBytes = 16 << 10
	// listOutputBytes bounds the output of commands whose output is
	// parsed (status, rev-list, format-patch file lists).
	listOutputBytes = 4 << 20
)

// call is one git command.
type call struct {
	// op names the command in errors ("clone", "push").
	op string
	// repo is the repository (git -C); empty for none.
	repo string
	args []string
	env  map[string]string
	// timeout is the command's deadline; 0 means localTimeout.
	timeout time.Duration
	// timeoutHint tells the caller what to do about a timeout.
	timeoutHint string
	// max bounds each of stdout and stderr as returned; 0 means
	// messageOutputBytes.
	max   int64
	stdin []byte
}

// run is a finished git command, its output redacted and bounded.
type run struct {
	exit           int
	stdout, stderr string
	// truncated is set when output was cut.
	truncated bool
}

// baseArgs come before every git command: no pager, no colour, paths as
// they are (not C-quoted), and no ext:: transport (a remote helper that
// runs a program named in the URL).
var baseArgs = []string{
	"git", "-c", "core.quotepath=off", "-c", "color.ui=never", "-c", "core.pager=cat",
	"-c", "protocol.ext.allow=never", "-c", "advice.detachedHead=false",
}

// baseEnv is every git command's environment: never prompt (a prompt would
// hang until the timeout), never open an editor, messages in English for
// the few that are recognised, and an e-mail address for commits in a
// repository that has none configured (user.email and the call's own
// author override it).
var baseEnv = map[string]string{
	"GIT_TERMINAL_PROMPT": "0",
	"GIT_PAGER":           "cat",
	"GIT_EDITOR":          "true",
	"GIT_MERGE_AUTOEDIT":  "no",
	"LC_ALL":              "C.UTF-8",
	"EMAIL":               "agentiso@localhost",
}

// git runs one git command in workspace ref. A non-zero exit is a result;
// errors are failures to run it at all (and timeouts).
func (s *Service) git(ctx context.Context, c workspace.Caller, ref string, k redact.Scrubber, g call) (*run, error) {
	argv := append([]string(nil), baseArgs...)
	if g.repo != "" {
		argv = append(argv, "-C", g.repo)
	}
	argv = append(argv, g.args...)
	env := make(map[string]string, len(baseEnv)+len(g.env))
	for k, v := range baseEnv {
		env[k] = v
	}
	for k, v := range g.env {
		env[k] = v
	}
	if g.timeout == 0 {
		g.timeout = localTimeout
	}
	if g.max == 0 {
		g.max = messageOutputBytes
	}
	res, err := s.ws.ExecArgv(ctx, c, ref, workspace.ArgvRequest{
		Argv: argv, Workdir: "/", Env: env, Timeout: g.timeout,
		MaxOutputBytes: g.max + outputSlack, Stdin: g.stdin,
	})
	if err != nil {
		if errdefs.Is(err, errdefs.Timeout) {
			return nil, errdefs.With(errdefs.Timeout,
				fmt.Sprintf("git %s timed out after %s and was killed%s", g.op, g.timeout, g.timeoutHint), k.Error(err))
		}
		return nil, k.Error(err)
	}
	r := &run{exit: res.ExitCode}
	var cut1, cut2 bool
	r.stdout, cut1 = clean(k, res.Stdout, res.Truncated, int(g.max))
	r.stderr, cut2 = clean(k, res.Stderr, res.Truncated, int(g.max))
	r.truncated = cut1 || cut2
	return r, nil
}

// clean redacts out and bounds it to max bytes, cut on a UTF-8 boundary
// (M-16). When the guest cut the output (cut), its last outputSlack bytes
// are dropped first: a credential cut in two there might escape the
// patterns. Redaction runs before any cut of ours, for the same reason.
func clean(k redact.Scrubber, out string, cut bool, max int) (string, bool) {
	out = k.String(out)
	truncated := cut
	if cut {
		out = out[:protocol.RuneBoundary(out, len(out)-outputSlack)]
	}
	if len(out) > max {
		out = out[:protocol.RuneBoundary(out, max)]
		truncated = true
	}
	return out, truncated
}

// failure is the error for a git command that exited non-zero: what git
// said (redacted, bounded), classified by the few messages that say whose
// fault it is.
func failure(g call, r *run) error {
	said := strings.TrimSpace(r.stderr)
	if said == "" {
		said = strings.TrimSpace(r.stdout)
	}
	if len(said) > 4<<10 {
		// The end says what went wrong.
		start := len(said) - 4<<10
		for start < len(said) && !isRuneStart(said[start]) {
			start++
		}
		said = "..." + said[start:]
	}
	msg := fmt.Sprintf("git %s failed (exit %d): %s", g.op, r.exit, said)
	switch {
	case strings.Contains(said, "not a git repository"):
		return errdefs.Invalidf("path: %s is not a git repository (clone one with git_clone, or run git init)", g.repo)
	case strings.Contains(said, "cannot change to"):
		return errdefs.Invalidf("path: %s does not exist in the workspace", g.repo)
	case containsAny(said, "Could not resolve host", "Failed to connect", "Connection refused",
		"Could not read from remote repository", "unable to access", "Connection timed out",
		"Network is unreachable", "No route to host"):
		return errdefs.Unavailablef("%s", msg)
	}
	return errdefs.Conflictf("%s", msg)
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// mustSucceed runs g and turns a non-zero exit into its failure.
func (s *Service) mustSucceed(ctx context.Context, c workspace.Caller, ref string, k redact.Scrubber, g call) (*run, error) {
	r, err := s.git(ctx, c, ref, k, g)
	if err != nil {
		return nil, err
	}
	if r.exit != 0 {
		return nil, failure(g, r)
	}
	return r, nil
}

// timeoutOf applies the default and the maximum to timeout_secs.
func (s *Service) timeoutOf(secs int, def time.Duration) (time.Duration, error) {
	if secs < 0 {
		return 0, errdefs.Invalidf("timeout_secs: must not be negative")
	}
	t := def
	if secs > 0 {
		t = time.Duration(secs) * time.Second
	}
	if t > s.maxTimeout {
		return 0, errdefs.Invalidf("timeout_secs: at most %d", int(s.maxTimeout/time.Second))
	}
	return t, nil
}

// head returns the commit and branch checked out in repo: sha is empty in
// a repository without commits, branch on a detached HEAD.
func (s *Service) head(ctx context.Context, c workspace.Caller, ref, repo string, k redact.Scrubber) (sha, branch string, err error) {
	r, err := s.git(ctx, c, ref, k, call{op: "rev-parse", repo: repo, args: []string{"rev-parse", "--verify", "-q", "HEAD"}})
	if err != nil {
		return "", "", err
	}
	switch r.exit {
	case 0:
		sha = strings.TrimSpace(r.stdout)
	case 1: // no commit yet
	default:
		return "", "", failure(call{op: "rev-parse", repo: repo}, r)
	}
	b, err := s.mustSucceed(ctx, c, ref, k, call{op: "branch", repo: repo, args: []string{"branch", "--show-current"}})
	if err != nil {
		return "", "", err
	}
	return sha, strings.TrimSpace(b.stdout), nil
}
