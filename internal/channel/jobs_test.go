package channel_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest"
	"github.com/agentiso/agentiso/internal/protocol"
)

func job(script string) protocol.JobStart {
	return protocol.JobStart{Argv: []string{"/bin/sh", "-c", script}, MaxOutputBytes: 64 << 10}
}

// pollUntil polls job id until done says so, and returns that answer.
func pollUntil(t *testing.T, c *channel.Client, id uint32, done func(*channel.JobOutput) bool) *channel.JobOutput {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := c.PollJob(testCtx(t), id)
		if err != nil {
			t.Fatalf("poll of job %d: %v", id, err)
		}
		if done(out) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d: gave up waiting; last poll %+v", id, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func finished(o *channel.JobOutput) bool { return !o.Status.Running }

// A poll shows the output so far while the job runs, and the whole result
// once it has ended; the finished job is still there on the next poll.
func TestJobOutputSoFarThenResult(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	st, err := p.c.StartJob(ctx, job(`echo first; echo warn >&2; sleep 0.5; echo second; exit 7`))
	if err != nil {
		t.Fatal(err)
	}
	if st.JobID == 0 || !st.Running || st.Pid <= 0 {
		t.Fatalf("start answered %+v", st)
	}
	early := pollUntil(t, p.c, st.JobID, func(o *channel.JobOutput) bool { return o.Stdout != "" && o.Stderr != "" })
	if !early.Status.Running || early.Stdout != "first\n" || early.Stderr != "warn\n" {
		t.Errorf("while running: %+v, want running with the first lines", early)
	}
	done := pollUntil(t, p.c, st.JobID, finished)
	if done.Status.ExitCode != 7 || done.Stdout != "first\nsecond\n" || done.Stderr != "warn\n" ||
		done.Status.StdoutBytes != 13 || done.Status.StderrBytes != 5 || done.Status.Truncated || done.Status.DurationMs < 400 {
		t.Errorf("finished: %+v", done)
	}
	again, err := p.c.PollJob(ctx, st.JobID)
	if err != nil || again.Stdout != done.Stdout || again.Status.ExitCode != 7 {
		t.Errorf("second poll after the end: %+v, %v; the result must still be there", again, err)
	}
}

// Jobs belong to the agent, not to the host session: a daemon restart (a
// new session) finds them running, and their output, again.
func TestJobSurvivesTheSession(t *testing.T) {
	a := guest.NewAgent(guest.Options{})
	t.Cleanup(a.Close)
	connect := func() (*channel.Client, func()) {
		hostConn, guestConn := socketPair(t)
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan struct{})
		go func() { a.Serve(ctx, guestConn); close(served) }()
		c, err := channel.New(hostConn, channel.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return c, func() { c.Close(); cancel(); <-served }
	}
	c1, end1 := connect()
	st, err := c1.StartJob(testCtx(t), job(`echo started; sleep 1; echo later`))
	if err != nil {
		t.Fatal(err)
	}
	end1()
	c2, end2 := connect()
	defer end2()
	out := pollUntil(t, c2, st.JobID, finished)
	if out.Status.ExitCode != 0 || out.Stdout != "started\nlater\n" {
		t.Errorf("after the first session ended: %+v", out)
	}
}

// Kill signals the whole process group: what the job started in the
// background ends with it.
func TestJobKillSignalsTheProcessGroup(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	st, err := p.c.StartJob(ctx, job(`sleep 300 & echo $!; sh -c 'sleep 300 & echo $!; wait' & wait`))
	if err != nil {
		t.Fatal(err)
	}
	out := pollUntil(t, p.c, st.JobID, func(o *channel.JobOutput) bool { return strings.Count(o.Stdout, "\n") == 2 })
	var pids []int
	for _, f := range strings.Fields(out.Stdout) {
		n, _ := strconv.Atoi(f)
		pids = append(pids, n)
	}
	killed, err := p.c.KillJob(ctx, st.JobID, "SIGTERM")
	if err != nil {
		t.Fatal(err)
	}
	if killed.Running || !killed.SignalSent || killed.ExitCode != -1 || killed.Signal != "SIGTERM" {
		t.Errorf("kill answered %+v, want ended by SIGTERM", killed)
	}
	for _, pid := range append(pids, st.Pid) {
		if !gone(t, pid) {
			t.Errorf("process %d of the job survived the kill", pid)
		}
	}
	again, err := p.c.KillJob(ctx, st.JobID, "SIGKILL")
	if err != nil || again.SignalSent || again.Signal != "SIGTERM" {
		t.Errorf("kill of an ended job: %+v, %v; want no signal sent, the first result kept", again, err)
	}
}

// A job's output is bounded in the guest: the last MaxOutputBytes of each
// stream are kept, the rest counted and dropped (M-10).
func TestM10_JobOutputKeptInABoundedTail(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	req := job(`i=0; while [ $i -lt 200000 ]; do echo "line $i"; i=$((i+1)); done; echo end`)
	req.MaxOutputBytes = 4096
	st, err := p.c.StartJob(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	out := pollUntil(t, p.c, st.JobID, finished)
	var want strings.Builder
	for i := range 200000 {
		want.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	want.WriteString("end\n")
	if int64(want.Len()) != out.Status.StdoutBytes || !out.Status.Truncated {
		t.Errorf("stdout_bytes %d truncated %v, want %d and the flag", out.Status.StdoutBytes, out.Status.Truncated, want.Len())
	}
	if len(out.Stdout) != 4096 || !strings.HasSuffix(want.String(), out.Stdout) {
		t.Errorf("kept %d bytes ending %q, want the last 4096 bytes", len(out.Stdout), out.Stdout[max(0, len(out.Stdout)-20):])
	}
}

// The guest keeps a bounded number of jobs. A finished job whose result was
// read makes room for a new one; unread and running ones never do. Read
// jobs go after the linger, unread ones after the retention.
func TestJobRetention(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	p := newPair(t, guest.Options{MaxJobs: 2, JobRetention: time.Hour, JobReadLinger: time.Minute, Now: clock}, channel.Options{})
	ctx := testCtx(t)
	start := func(script string) (*protocol.JobStatus, error) { return p.c.StartJob(ctx, job(script)) }

	quick, err := start("echo quick")
	if err != nil {
		t.Fatal(err)
	}
	long, err := start("sleep 300")
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the quick one to end without reading it: the kill answer
	// says whether it has ended and reads nothing.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := p.c.KillJob(ctx, quick.JobID, "SIGUSR1")
		if err == nil && !s.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the quick job did not end")
		}
	}
	if _, err := start("true"); !errdefs.Is(err, errdefs.Quota) {
		t.Fatalf("a third job with two kept, none read: %v, want Quota", err)
	}
	if out := pollUntil(t, p.c, quick.JobID, finished); out.Stdout != "quick\n" {
		t.Fatalf("quick job output %q", out.Stdout)
	}
	third, err := start("true")
	if err != nil {
		t.Fatalf("a read job did not make room: %v", err)
	}
	if _, err := p.c.PollJob(ctx, quick.JobID); !errdefs.Is(err, errdefs.NotFound) || !strings.Contains(errdefs.Public(err), "job_id") {
		t.Errorf("poll of the job that made room: %v, want NotFound naming job_id", err)
	}
	// Unread, the third job stays past the read linger, and goes after
	// the retention.
	pollUntil(t, p.c, long.JobID, func(o *channel.JobOutput) bool { return true })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s, err := p.c.KillJob(ctx, third.JobID, "SIGUSR1")
		if err != nil {
			t.Fatal(err)
		}
		if !s.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the third job did not end")
		}
	}
	advance(2 * time.Minute)
	if _, err := p.c.KillJob(ctx, third.JobID, "SIGUSR1"); err != nil {
		t.Errorf("an unread job went after the read linger: %v", err)
	}
	advance(time.Hour)
	if _, err := p.c.KillJob(ctx, third.JobID, "SIGUSR1"); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("an unread job past its retention: %v, want NotFound", err)
	}
	if _, err := p.c.KillJob(ctx, long.JobID, "SIGKILL"); err != nil {
		t.Error(err)
	}
}

// The persistent environment reaches every later command, exec and job;
// a request's own env overrides it; unset removes a name.
func TestSetEnv(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx := testCtx(t)
	names, err := p.c.SetEnv(ctx, protocol.SetEnv{Vars: map[string]string{"API_KEY": "s3cret", "MODE": "persistent"}})
	if err != nil || strings.Join(names, ",") != "API_KEY,MODE" {
		t.Fatalf("SetEnv = %v, %v", names, err)
	}
	res, err := p.c.Exec(ctx, withEnv(sh(`echo "$API_KEY $MODE"`), "MODE", "per-call"), nil)
	if err != nil || res.Stdout != "s3cret per-call\n" {
		t.Errorf("exec sees %+v, %v", res, err)
	}
	st, err := p.c.StartJob(ctx, job(`echo "$API_KEY $MODE"`))
	if err != nil {
		t.Fatal(err)
	}
	if out := pollUntil(t, p.c, st.JobID, finished); out.Stdout != "s3cret persistent\n" {
		t.Errorf("job sees %q", out.Stdout)
	}
	names, err = p.c.SetEnv(ctx, protocol.SetEnv{Unset: []string{"API_KEY"}})
	if err != nil || strings.Join(names, ",") != "MODE" {
		t.Errorf("after unset: %v, %v", names, err)
	}
	if res, _ := p.c.Exec(ctx, sh(`echo "[$API_KEY]"`), nil); res == nil || res.Stdout != "[]\n" {
		t.Errorf("unset variable still set: %+v", res)
	}
	_, err = p.c.SetEnv(ctx, protocol.SetEnv{Vars: map[string]string{"LD_PRELOAD": "/x.so"}})
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(errdefs.Public(err), "LD_PRELOAD") {
		t.Errorf("blocked name: %v", err)
	}
}
