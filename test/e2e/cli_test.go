package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cliRun runs the agentiso binary's human command line against d's API
// socket and returns stdout, stderr and the exit code.
func (d *daemon) cliRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, agentisoBinary(t), append([]string{"--config", d.ConfigPath}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("agentiso %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// cliOK runs a command that must succeed.
func (d *daemon) cliOK(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := d.cliRun(t, args...)
	if code != 0 {
		t.Fatalf("agentiso %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// cliJSON runs a command with --json and decodes its output.
func cliJSON[T any](t *testing.T, d *daemon, args ...string) T {
	t.Helper()
	var v T
	// After the verb: exec takes everything after its workspace as the
	// command.
	withJSON := append([]string{args[0], "--json"}, args[1:]...)
	if args[0] == "snapshot" {
		withJSON = append(args[:len(args):len(args)], "--json")
	}
	out := d.cliOK(t, withJSON...)
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("agentiso %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	return v
}

// The human CLI, the real binary against a real daemon over api.sock:
// every verb, tables and --json, exec streaming as output comes with the
// command's exit code, snapshots that restore and fork, and each
// documented exit code (docs/cli.md) on the failure that should give it.
func TestCLI(t *testing.T) {
	// Two creates a minute in all: the third is refused (exit 7).
	d := startDaemon(t, "\n[limits]\ncreate_per_min = 2\nglobal_create_per_min = 2\n")

	st := d.cliOK(t, "status")
	if !strings.Contains(st, "daemon:") || !strings.Contains(st, "workspaces:") {
		t.Errorf("status:\n%s", st)
	}
	if ls := d.cliOK(t, "ls"); !strings.Contains(ls, "no workspaces") {
		t.Errorf("ls with none: %q", ls)
	}

	start := time.Now()
	a := cliJSON[dashWorkspace](t, d, "create", "cli-a", "--memory", "256")
	t.Logf("create: %v", time.Since(start))
	if a.State != "running" || a.Name != "cli-a" {
		t.Fatalf("create: %+v", a)
	}
	ls := d.cliOK(t, "ls")
	if lines := strings.Split(strings.TrimSpace(ls), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "cli-a") || !strings.Contains(lines[1], "running") || !strings.Contains(lines[1], "256 MiB") {
		t.Errorf("ls table:\n%s", ls)
	}
	if detail := d.cliOK(t, "status", "cli-a"); !strings.Contains(detail, "state:") || !strings.Contains(detail, a.ID) {
		t.Errorf("status cli-a:\n%s", detail)
	}

	t.Run("exec streams and exits with the command's code", func(t *testing.T) {
		cmd := exec.Command(agentisoBinary(t), "--config", d.ConfigPath, "exec", "cli-a", "--",
			"echo first; sleep 3; echo second >&2; exit 7")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		begin := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() || sc.Text() != "first" {
			t.Fatalf("first line: %q", sc.Text())
		}
		firstAt := time.Since(begin)
		for sc.Scan() {
		}
		err = cmd.Wait()
		endAt := time.Since(begin)
		t.Logf("first output after %v, end after %v", firstAt, endAt)
		if endAt-firstAt < 2*time.Second {
			t.Errorf("the first line came %v before the end: not streamed", endAt-firstAt)
		}
		if code := cmd.ProcessState.ExitCode(); code != 7 {
			t.Errorf("exit code %d (%v), want the command's 7", code, err)
		}
		if stderr.String() != "second\n" {
			t.Errorf("stderr %q, want the command's", stderr.String())
		}
		res := cliJSON[struct {
			ExitCode int    `json:"exit_code"`
			Stdout   string `json:"stdout"`
		}](t, d, "exec", "cli-a", "--", "echo hi; exit 3")
		if res.ExitCode != 3 || res.Stdout != "hi\n" {
			t.Errorf("exec --json: %+v", res)
		}
	})

	t.Run("an interrupted exec kills its command", func(t *testing.T) {
		cmd := exec.Command(agentisoBinary(t), "--config", d.ConfigPath, "exec", "cli-a", "--",
			"echo started; sleep 6; touch /tmp/survived")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		if !sc.Scan() || sc.Text() != "started" {
			t.Fatalf("first line: %q", sc.Text())
		}
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 130 {
			t.Errorf("interrupted exec: exit %d, want 130", code)
		}
		time.Sleep(8 * time.Second)
		if got := d.cliOK(t, "exec", "cli-a", "--", "test -e /tmp/survived && echo survived || echo killed"); got != "killed\n" {
			t.Errorf("the interrupted command %s", got)
		}
	})

	if logs := d.cliOK(t, "logs", "cli-a", "--type", "console", "-n", "50"); strings.TrimSpace(logs) == "" {
		t.Error("logs: empty console log")
	}

	// Snapshots: create, list, restore rolls the disk back, fork sees it.
	d.cliOK(t, "exec", "cli-a", "--", "echo kept > /root/f; sync")
	d.cliOK(t, "snapshot", "create", "cli-a", "s1")
	d.cliOK(t, "exec", "cli-a", "--", "echo changed > /root/f; sync")
	d.cliOK(t, "snapshot", "create", "cli-a", "s2")
	list := cliJSON[struct {
		Snapshots []struct {
			Name   string  `json:"name"`
			Parent *string `json:"parent"`
		} `json:"snapshots"`
		Count int `json:"count"`
	}](t, d, "snapshot", "list", "cli-a")
	if list.Count != 2 || list.Snapshots[0].Name != "s1" || list.Snapshots[1].Parent == nil {
		t.Errorf("snapshot list: %+v", list)
	}
	if tbl := d.cliOK(t, "snapshot", "list", "cli-a"); !strings.Contains(tbl, "PARENT") || !strings.Contains(tbl, "s2") {
		t.Errorf("snapshot table:\n%s", tbl)
	}
	start = time.Now()
	if out := d.cliOK(t, "snapshot", "restore", "cli-a", "s1"); !strings.Contains(out, "s2") {
		t.Errorf("restore does not say it dropped s2: %q", out)
	}
	t.Logf("restore: %v", time.Since(start))
	if got := d.cliOK(t, "exec", "cli-a", "--", "cat /root/f"); got != "kept\n" {
		t.Errorf("after restore /root/f = %q, want kept", got)
	}
	start = time.Now()
	fork := cliJSON[struct {
		Forks []dashWorkspace `json:"forks"`
	}](t, d, "fork", "cli-a", "s1", "--name", "cli-b")
	t.Logf("fork: %v", time.Since(start))
	if len(fork.Forks) != 1 || fork.Forks[0].Name != "cli-b" || fork.Forks[0].State != "running" {
		t.Fatalf("fork: %+v", fork)
	}
	if got := d.cliOK(t, "exec", "cli-b", "--", "cat /root/f"); got != "kept\n" {
		t.Errorf("the fork's /root/f = %q, want kept", got)
	}

	if stopped := cliJSON[dashWorkspace](t, d, "stop", "cli-b"); stopped.State != "stopped" {
		t.Errorf("stop: %+v", stopped)
	}

	// Exit codes scripts can trust.
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"exec", "cli-a"}, 2, "command"},
		{[]string{"snapshot", "create", "cli-a", "bad name!"}, 2, "name"},
		{[]string{"create", "one", "two"}, 2, "argument"},
		{[]string{"ls", "--state", "sideways"}, 2, "state"},
		{[]string{"status", "no-such-ws"}, 3, "workspace"},
		{[]string{"snapshot", "restore", "cli-a", "no-such-snap"}, 3, "snapshot"},
		{[]string{"snapshot", "delete", "cli-a", "s1"}, 4, "fork"},
		{[]string{"exec", "cli-b", "--", "true"}, 4, "not running"},
		{[]string{"create", "cli-c", "--memory", "256"}, 7, "rate"},
		{[]string{"ls", "--socket", filepath.Join(d.RunDir, "nothing.sock")}, 8, "daemon"},
	} {
		out, errOut, code := d.cliRun(t, tc.args...)
		if code != tc.code || !strings.Contains(strings.ToLower(errOut), tc.want) {
			t.Errorf("agentiso %s: exit %d, stderr %q; want exit %d mentioning %q (stdout %q)",
				strings.Join(tc.args, " "), code, errOut, tc.code, tc.want, out)
		}
	}

	d.cliOK(t, "destroy", "cli-b", "cli-a")
	if left := cliJSON[struct {
		Count int `json:"count"`
	}](t, d, "ls"); left.Count != 0 {
		t.Errorf("after destroy ls counts %d", left.Count)
	}
	if _, _, code := d.cliRun(t, "destroy", "cli-a"); code != 3 {
		t.Errorf("destroying a destroyed workspace: exit %d, want 3", code)
	}
}
