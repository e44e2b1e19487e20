package gitops

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/testenv"
	"github.com/agentiso/agentiso/internal/workspace"
)

// hostWorkspaces is a fake of the workspace manager for unit tests of this
// package's logic: each "workspace" is a directory on the host, and argv
// runs there with every absolute path argument moved under it. The real
// thing (argv run by the guest agent in a microVM) is proven in test/e2e.
type hostWorkspaces struct {
	t     *testing.T
	roots map[string]string // workspace ID -> root directory
	home  string
	mu    sync.Mutex
	// calls records every argv run, with the workspace's root stripped.
	calls [][]string
	// readLimits records the limit of every ReadFile.
	readLimits []int64
}

func newHostWorkspaces(t *testing.T, ids ...string) *hostWorkspaces {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if testenv.InCI() {
			t.Fatal("git not installed (apt install git)")
		}
		t.Skip("git not installed (apt install git)")
	}
	h := &hostWorkspaces{t: t, roots: map[string]string{}, home: t.TempDir()}
	for _, id := range ids {
		root := t.TempDir()
		for _, d := range []string{"tmp", "workspace"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		h.roots[id] = root
	}
	return h
}

func (h *hostWorkspaces) root(ref string) (string, error) {
	r, ok := h.roots[ref]
	if !ok {
		return "", errdefs.NotFoundf("workspace_id: no such workspace in this session")
	}
	return r, nil
}

func (h *hostWorkspaces) Info(_ context.Context, _ workspace.Caller, ref string) (*workspace.Info, error) {
	if _, err := h.root(ref); err != nil {
		return nil, err
	}
	return &workspace.Info{ID: ref, Name: ref, State: "running"}, nil
}

func (h *hostWorkspaces) ExecArgv(ctx context.Context, _ workspace.Caller, ref string, req workspace.ArgvRequest) (*workspace.ExecResult, error) {
	root, err := h.root(ref)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.calls = append(h.calls, req.Argv)
	h.mu.Unlock()
	argv := make([]string, len(req.Argv))
	for i, a := range req.Argv {
		if strings.HasPrefix(a, "/") {
			a = root + a
		} else if rest, ok := strings.CutPrefix(a, "file://"); ok {
			a = "file://" + root + rest
		}
		argv[i] = a
	}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = root + req.Workdir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.home, "GIT_CONFIG_NOSYSTEM=1"}
	for k, v := range req.Env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = bytes.NewReader(req.Stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil, errdefs.Timeoutf("exec timed out")
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		return nil, err
	}
	out, errOut := strings.ReplaceAll(stdout.String(), root, ""), strings.ReplaceAll(stderr.String(), root, "")
	res := &workspace.ExecResult{ExitCode: code, Stdout: out, Stderr: errOut}
	if int64(len(res.Stdout)) > req.MaxOutputBytes {
		res.Stdout, res.Truncated = res.Stdout[:req.MaxOutputBytes], true
	}
	if int64(len(res.Stderr)) > req.MaxOutputBytes {
		res.Stderr, res.Truncated = res.Stderr[:req.MaxOutputBytes], true
	}
	return res, nil
}

func (h *hostWorkspaces) ReadFile(_ context.Context, _ workspace.Caller, ref, path string, offset, limit int64) ([]byte, int64, error) {
	root, err := h.root(ref)
	if err != nil {
		return nil, 0, err
	}
	h.mu.Lock()
	h.readLimits = append(h.readLimits, limit)
	h.mu.Unlock()
	b, err := os.ReadFile(root + path)
	if err != nil {
		return nil, 0, errdefs.NotFoundf("path: %v", err)
	}
	size := int64(len(b))
	b = b[min(offset, size):]
	if limit > 0 && int64(len(b)) > limit {
		b = b[:limit]
	}
	return b, size, nil
}

func (h *hostWorkspaces) WriteFile(_ context.Context, _ workspace.Caller, ref, path string, content []byte, mode uint32) error {
	root, err := h.root(ref)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(root+path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(root+path, content, os.FileMode(mode))
}

// sh runs a shell script in workspace id's root, for setting up
// repositories; it fails the test on error.
func (h *hostWorkspaces) sh(id, script string) string {
	h.t.Helper()
	root := h.roots[id]
	cmd := exec.Command("sh", "-ec", script)
	cmd.Dir = root
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + h.home, "GIT_CONFIG_NOSYSTEM=1", "R=" + root,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		h.t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return strings.TrimSpace(string(out))
}

func newTestService(t *testing.T, h *hostWorkspaces) *Service {
	t.Helper()
	s, err := New(Config{Workspaces: h, MaxTimeout: time.Hour, MaxOutputBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
