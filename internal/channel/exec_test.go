package channel_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest"
	"github.com/agentiso/agentiso/internal/protocol"
)

func sh(script string) protocol.Exec {
	return protocol.Exec{Argv: []string{"/bin/sh", "-c", script}, MaxOutputBytes: 1 << 20}
}

func TestExec(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	workdir := t.TempDir()
	t.Setenv("AGENTISO_AGENT_ONLY", "must not leak")
	tests := []struct {
		name       string
		req        protocol.Exec
		wantCode   int
		wantOut    string // stdout contains
		wantErrOut string // stderr contains
	}{
		{"uname", protocol.Exec{Argv: []string{"uname", "-a"}, MaxOutputBytes: 4096}, 0, "Linux", ""},
		{"exit code", sh("exit 3"), 3, "", ""},
		{"stderr apart", sh("echo out; echo err >&2; exit 1"), 1, "out\n", "err\n"},
		{"env from the request", withEnv(sh(`echo "$GREETING"`), "GREETING", "hello world"), 0, "hello world\n", ""},
		{"base env", sh(`echo "$HOME $LANG $PATH"`), 0, "/root C.UTF-8 /usr/local/sbin:", ""},
		{"agent env does not leak", sh(`echo "[$AGENTISO_AGENT_ONLY]"`), 0, "[]\n", ""},
		{"default workdir", sh("pwd"), 0, "/\n", ""},
		{"workdir", withWorkdir(sh("pwd"), workdir), 0, workdir + "\n", ""},
		{"stdin", withStdin(protocol.Exec{Argv: []string{"cat"}, MaxOutputBytes: 100}, "piped in"), 0, "piped in", ""},
		{"no stdin reads empty", protocol.Exec{Argv: []string{"cat"}, MaxOutputBytes: 100}, 0, "", ""},
		{"own process group", sh(`read -r _ _ _ _ pgid _ < /proc/$$/stat; [ "$pgid" = $$ ] && echo leader`), 0, "leader\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := p.c.Exec(testCtx(t), tt.req, nil)
			if err != nil {
				t.Fatal(err)
			}
			if res.Exit.ExitCode != tt.wantCode || !strings.Contains(res.Stdout, tt.wantOut) || !strings.Contains(res.Stderr, tt.wantErrOut) {
				t.Errorf("exit %d, stdout %q, stderr %q; want %d, %q, %q", res.Exit.ExitCode, res.Stdout, res.Stderr, tt.wantCode, tt.wantOut, tt.wantErrOut)
			}
			if res.Truncated || res.Exit.TimedOut || res.Exit.Signal != "" {
				t.Errorf("exit %+v", res.Exit)
			}
		})
	}
}

func withEnv(r protocol.Exec, k, v string) protocol.Exec {
	r.Env = map[string]string{k: v}
	return r
}

func withWorkdir(r protocol.Exec, d string) protocol.Exec { r.Workdir = d; return r }

func withStdin(r protocol.Exec, s string) protocol.Exec { r.Stdin = []byte(s); return r }

func TestExecRefusals(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	tests := []struct {
		name  string
		req   protocol.Exec
		class errdefs.Class
		text  string
	}{
		{"blocked env", withEnv(sh("true"), "LD_PRELOAD", "/tmp/evil.so"), errdefs.Invalid, "LD_PRELOAD"},
		{"missing program", protocol.Exec{Argv: []string{"no-such-program-agentiso"}, MaxOutputBytes: 1}, errdefs.NotFound, "no-such-program-agentiso"},
		{"missing workdir", withWorkdir(sh("true"), "/no/such/dir"), errdefs.NotFound, "/no/such/dir"},
		{"workdir is a file", withWorkdir(sh("true"), "/etc/hostname"), errdefs.Invalid, "not a directory"},
		{"no output bound", protocol.Exec{Argv: []string{"true"}}, errdefs.Invalid, "max_output_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := p.c.Exec(testCtx(t), tt.req, nil)
			if err == nil {
				t.Fatalf("ran: %+v", res)
			}
			if !errdefs.Is(err, tt.class) || !strings.Contains(errdefs.Public(err), tt.text) {
				t.Errorf("error %v (class %v, public %q), want %v naming %q", err, errdefs.ClassOf(err), errdefs.Public(err), tt.class, tt.text)
			}
		})
	}
}

// Output is read while the command runs, never all at the end, so output
// beyond a pipe's 64 KiB never stalls the command; past MaxOutputBytes it
// is drained and dropped, with the flag set.
func TestM10_ExecOutputStreamedAndBounded(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)

	// 3 MiB of output, 1 MiB kept.
	req := sh(`head -c 3145728 /dev/zero | tr '\0' a; echo done >&2`)
	req.MaxOutputBytes = 1 << 20
	req.TimeoutMs = 20000
	chunks := 0
	res, err := p.c.Exec(ctx, req, func(s protocol.Stream, data string) {
		if s == protocol.Stdout {
			chunks++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit.ExitCode != 0 || res.Exit.TimedOut {
		t.Fatalf("exit %+v: the command stalled", res.Exit)
	}
	if len(res.Stdout) != 1<<20 || strings.Trim(res.Stdout, "a") != "" {
		t.Errorf("stdout of %d bytes, want exactly %d of 'a'", len(res.Stdout), 1<<20)
	}
	if !res.Truncated || !res.Exit.Truncated {
		t.Errorf("truncated = %v / exit %v, want both set", res.Truncated, res.Exit.Truncated)
	}
	if res.Stderr != "done\n" {
		t.Errorf("stderr %q: the other stream must be unaffected", res.Stderr)
	}
	if chunks < 8 {
		t.Errorf("1 MiB came in %d chunks, want it cut at %d bytes", chunks, protocol.ChunkSize)
	}

	// Under the bound nothing is lost.
	req = sh(`seq 1 300000`)
	req.MaxOutputBytes = 4 << 20
	res, err = p.c.Exec(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(res.Stdout, "\n"), "\n")
	if res.Truncated || len(lines) != 300000 || lines[299999] != "300000" {
		t.Errorf("seq output: %d lines, truncated %v", len(lines), res.Truncated)
	}
}

// Output still queued when the command exits is all delivered, however
// slowly the host reads it: only a pipe held open and idle by a process in
// the background is given up on. Here the host stops reading at the first
// chunk, so the command's last bytes are still in its pipe when it exits.
func TestExecOutputCompleteWithASlowHost(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	const size = channel.DefaultStreamWindow + 50000 // fits the window, a chunk and the pipe
	req := sh(fmt.Sprintf(`head -c %d /dev/zero | tr '\0' a`, size))
	req.MaxOutputBytes = 4 << 20
	var once sync.Once
	res, err := p.c.Exec(testCtx(t), req, func(protocol.Stream, string) {
		once.Do(func() { time.Sleep(time.Second) })
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Stdout) != size || res.Truncated {
		t.Errorf("got %d of %d bytes (truncated %v)", len(res.Stdout), size, res.Truncated)
	}
}

func TestExecOutputArrivesWhileRunning(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	start := time.Now()
	var first time.Duration
	res, err := p.c.Exec(testCtx(t), sh("echo early; sleep 1; echo late"), func(_ protocol.Stream, data string) {
		if first == 0 {
			first = time.Since(start)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "early\nlate\n" {
		t.Errorf("stdout %q", res.Stdout)
	}
	if first > 700*time.Millisecond {
		t.Errorf("first output after %v: it waited for the command to end", first)
	}
}

func TestExecOutputKeepsUTF8(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	// 400 KB of 2-, 3- and 4-byte characters, written in odd-sized pieces.
	unit := "é€😀x"
	want := strings.Repeat(unit, 40000)
	req := protocol.Exec{Argv: []string{"/bin/sh", "-c", `i=0; while [ $i -lt 40000 ]; do printf '` + unit + `'; i=$((i+1)); done`}, MaxOutputBytes: 1 << 20}
	res, err := p.c.Exec(testCtx(t), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != want {
		t.Errorf("output changed (%d bytes, want %d; U+FFFD count %d)", len(res.Stdout), len(want), strings.Count(res.Stdout, "\uFFFD"))
	}

	// A bound inside a character keeps the whole characters before it.
	req = sh(`printf '€€'`)
	req.MaxOutputBytes = 5
	res, err = p.c.Exec(testCtx(t), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "€" || !res.Truncated {
		t.Errorf("stdout %q truncated %v, want one whole € and the flag", res.Stdout, res.Truncated)
	}
}

// ended reports whether pid has ended: gone, or a zombie awaiting its reaper.
func ended(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the ")" that ends the command name.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// gone waits a little for pid to end.
func gone(t *testing.T, pid int) bool {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ended(pid) {
			return true
		}
	}
	return false
}

// pids reads the process ids a command printed, one a line, as they come.
type pids struct {
	mu   sync.Mutex
	buf  string
	seen chan int
}

func newPids() *pids { return &pids{seen: make(chan int, 10)} }

func (p *pids) output(s protocol.Stream, data string) {
	if s != protocol.Stdout {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf += data
	for {
		line, rest, ok := strings.Cut(p.buf, "\n")
		if !ok {
			return
		}
		p.buf = rest
		if n, err := strconv.Atoi(line); err == nil {
			p.seen <- n
		}
	}
}

func (p *pids) next(t *testing.T) int {
	t.Helper()
	select {
	case n := <-p.seen:
		return n
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not print its pid")
		return 0
	}
}

func TestExecTimeoutKillsTheProcessGroup(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	req := sh(`sleep 300 & echo $!; sh -c 'sleep 300 & echo $!; wait' & wait`)
	req.TimeoutMs = 500
	ids := newPids()
	start := time.Now()
	res, err := p.c.Exec(testCtx(t), req, ids.output)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if !res.Exit.TimedOut || res.Exit.ExitCode != -1 || res.Exit.Signal != "SIGKILL" {
		t.Errorf("exit %+v, want timed out, -1, SIGKILL", res.Exit)
	}
	if took > 5*time.Second {
		t.Errorf("a 500ms timeout took %v", took)
	}
	for range 2 {
		if pid := ids.next(t); !gone(t, pid) {
			t.Errorf("background process %d survived the timeout", pid)
		}
	}
}

func TestExecSignal(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	h, err := p.c.StartExec(ctx, sh(`trap 'echo got TERM; exit 7' TERM; echo $$; while :; do sleep 0.05; done`))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ids := newPids()
	done := make(chan struct{})
	var res *channel.ExecResult
	go func() {
		defer close(done)
		res, err = h.Wait(ids.output)
	}()
	ids.next(t)
	if err := h.Signal("SIGTERM"); err != nil {
		t.Fatal(err)
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit.ExitCode != 7 || !strings.Contains(res.Stdout, "got TERM") {
		t.Errorf("exit %+v, stdout %q: the trap did not run", res.Exit, res.Stdout)
	}

	// A signal the command does not handle ends it, and Exit says which.
	res, err = runUntilSignalled(t, p.c, "SIGUSR1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Exit.ExitCode != -1 || res.Exit.Signal != "SIGUSR1" {
		t.Errorf("exit %+v, want -1 and SIGUSR1", res.Exit)
	}

	if err := h.Signal("SIGSTOP"); !errdefs.Is(err, errdefs.Invalid) {
		t.Errorf("SIGSTOP: %v, want Invalid (not an allowed signal)", err)
	}
}

func runUntilSignalled(t *testing.T, c *channel.Client, sig string) (*channel.ExecResult, error) {
	h, err := c.StartExec(testCtx(t), sh(`echo $$; exec sleep 300`))
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ids := newPids()
	type result struct {
		res *channel.ExecResult
		err error
	}
	got := make(chan result, 1)
	go func() {
		r, err := h.Wait(ids.output)
		got <- result{r, err}
	}()
	ids.next(t)
	if err := h.Signal(sig); err != nil {
		return nil, err
	}
	r := <-got
	return r.res, r.err
}

func TestExecCancelKillsTheProcessGroup(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx, cancel := context.WithCancel(testCtx(t))
	ids := newPids()
	errc := make(chan error, 1)
	go func() {
		_, err := p.c.Exec(ctx, sh(`echo $$; sleep 300 & echo $!; wait`), ids.output)
		errc <- err
	}()
	leader, child := ids.next(t), ids.next(t)
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Exec: %v, want context.Canceled", err)
	}
	for _, pid := range []int{leader, child} {
		if !gone(t, pid) {
			t.Errorf("process %d survived the cancelled exec", pid)
		}
	}
	// The session is fine afterwards.
	if _, err := p.c.Ping(testCtx(t)); err != nil {
		t.Errorf("Ping after a cancelled exec: %v", err)
	}
}

func TestClosingTheSessionKillsCommands(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ids := newPids()
	go p.c.Exec(testCtx(t), sh(`echo $$; exec sleep 300`), ids.output)
	pid := ids.next(t)
	p.c.Close()
	if !gone(t, pid) {
		t.Errorf("command %d survived the end of its session", pid)
	}
}

// A command that leaves a process in the background holding its output
// returns when the command itself exits, not when that process does.
func TestExecDoesNotWaitForBackgroundOutput(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ids := newPids()
	start := time.Now()
	res, err := p.c.Exec(testCtx(t), sh(`sleep 300 & echo $!; echo bye`), ids.output)
	if err != nil {
		t.Fatal(err)
	}
	bg := ids.next(t)
	t.Cleanup(func() { syscall.Kill(bg, syscall.SIGKILL) })
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("exec took %v: it waited for the background process", d)
	}
	if res.Exit.ExitCode != 0 || !strings.HasSuffix(res.Stdout, "bye\n") {
		t.Errorf("exit %+v stdout %q", res.Exit, res.Stdout)
	}
	if ended(bg) {
		t.Error("the background process was killed: a command's children may outlive it")
	}
}
