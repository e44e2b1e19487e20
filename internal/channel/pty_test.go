package channel_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/channel"
	"github.com/agentiso/agentiso/internal/guest"
	"github.com/agentiso/agentiso/internal/protocol"
)

// readUntil reads terminal output until it contains want.
func readUntil(t *testing.T, p *channel.PTY, want string) string {
	t.Helper()
	var got strings.Builder
	for !strings.Contains(got.String(), want) {
		data, exit, err := p.Read()
		if err != nil {
			t.Fatalf("reading the terminal (so far %q): %v", got.String(), err)
		}
		if exit != nil {
			t.Fatalf("the program exited (%+v) before printing %q; output %q", exit, want, got.String())
		}
		got.Write(data)
	}
	return got.String()
}

// A terminal session carries input, output and resizes, and reports the
// shell's exit: what the dashboard's terminal tab rests on.
func TestPTYCarriesInputOutputAndResize(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	term, err := p.c.StartPTY(ctx, protocol.PTYOpen{Argv: []string{"/bin/sh"}, Rows: 24, Cols: 80, Workdir: "/"})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if _, err := term.Write([]byte("echo \"tty=$TERM sum=$((40+2))\"\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "tty=xterm-256color sum=42")
	if err := term.Resize(50, 132); err != nil {
		t.Fatal(err)
	}
	if _, err := term.Write([]byte("stty size\n")); err != nil {
		t.Fatal(err)
	}
	readUntil(t, term, "50 132")
	if _, err := term.Write([]byte("exit 7\n")); err != nil {
		t.Fatal(err)
	}
	for {
		_, exit, err := term.Read()
		if err != nil {
			t.Fatal(err)
		}
		if exit != nil {
			if exit.ExitCode != 7 {
				t.Errorf("exit = %+v, want code 7", exit)
			}
			return
		}
	}
}

// Closing the terminal (a closed tab) hangs it up: the guest ends the
// program even though it never exits by itself, and the stream's slot is
// free again.
func TestPTYCloseHangsUp(t *testing.T) {
	p := newPair(t, guest.Options{MaxExecs: 1}, channel.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 3; i++ {
		term, err := p.c.StartPTY(ctx, protocol.PTYOpen{Argv: []string{"/bin/sh", "-c", "echo ready; exec sleep 1000"}, Rows: 10, Cols: 40})
		if err != nil {
			t.Fatalf("terminal %d: %v", i, err)
		}
		readUntil(t, term, "ready")
		term.Close()
		// With one command slot, the next terminal opens only once the
		// guest has ended this one's sleep.
		deadline := time.Now().Add(10 * time.Second)
		for {
			res, err := p.c.Exec(ctx, protocol.Exec{Argv: []string{"true"}, MaxOutputBytes: 10}, nil)
			if err == nil && res.Exit.ExitCode == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the hung-up terminal still holds the command slot: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func TestPTYRefusesBadSize(t *testing.T) {
	p := newPair(t, guest.Options{}, channel.Options{})
	_, err := p.c.StartPTY(context.Background(), protocol.PTYOpen{Rows: 0, Cols: 80})
	if err == nil || !strings.Contains(err.Error(), "rows, cols") {
		t.Fatalf("StartPTY with 0 rows = %v, want an error naming rows, cols", err)
	}
}
