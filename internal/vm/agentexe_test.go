package vm

import (
	"context"
	"strings"
	"testing"
	"time"
)

// agentPIDScript prints the agent's PID: the process whose command line
// is `agentiso-guest agent`.
const agentPIDScript = `for d in /proc/[0-9]*; do
  if [ "$(tr '\0' ' ' < $d/cmdline 2>/dev/null)" = "agentiso-guest agent " ]; then echo ${d#/proc/}; fi
done`

// TestAgentRunsAndRestartsFromPID1Executable: PID 1 starts the agent from
// its own executable (no copy of it in the guest), and when the agent dies
// PID 1 starts it again from the same file, though switch_root emptied the
// initramfs it came from; and the host, told by the new agent's hello,
// connects to it again.
func TestAgentRunsAndRestartsFromPID1Executable(t *testing.T) {
	spec := testSpec(t, "agentexe")
	r := newTestRunner(t, nil)
	v := startTestVM(t, r, spec)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	pid, code, err := testExec(ctx, v.Channel(), "/bin/sh", "-c", agentPIDScript)
	pid = strings.TrimSpace(pid)
	if err != nil || code != 0 || pid == "" || strings.Contains(pid, "\n") {
		t.Fatalf("finding the agent: %q, exit %d, %v", pid, code, err)
	}
	out, code, err := testExec(ctx, v.Channel(), "/bin/sh", "-c",
		"stat -L -c %i /proc/1/exe /proc/"+pid+"/exe; ls /run/agentiso 2>&1 || true")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err != nil || code != 0 || len(lines) < 2 || lines[0] != lines[1] {
		t.Fatalf("PID 1's and the agent's executables (inodes) = %q, exit %d, %v; want the same file", out, code, err)
	}
	if strings.Contains(out, "agentiso-guest") {
		t.Errorf("a copy of the agent is still made in /run/agentiso: %q", out)
	}

	// The exec that kills the agent cannot get its answer back.
	killCtx, cancelKill := context.WithTimeout(ctx, 5*time.Second)
	_, _, _ = testExec(killCtx, v.Channel(), "/bin/sh", "-c", "kill -9 "+pid)
	cancelKill()
	deadline := time.Now().Add(90 * time.Second)
	for {
		tail, err := v.ConsoleTail(2000)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Count(tail, `msg="agent serving the host channel"`) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PID 1 did not start the agent again within 90s; console:\n%s", tail)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The new agent's hello ends the host's session with the dead one, and
	// the host connects again: commands run again, without each waiting
	// for its deadline on a session nobody serves.
	deadline = time.Now().Add(60 * time.Second)
	for {
		actx, cancelTry := context.WithTimeout(ctx, 5*time.Second)
		newPID, code, err := testExec(actx, v.Channel(), "/bin/sh", "-c", agentPIDScript)
		cancelTry()
		newPID = strings.TrimSpace(newPID)
		if err == nil && code == 0 && newPID != "" && newPID != pid {
			t.Logf("agent %s replaced by %s; the host connected again", pid, newPID)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no command ran within 60s of the agent's restart: %q, exit %d, %v", newPID, code, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
