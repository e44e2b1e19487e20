package testdaemon

import (
	"os"
	"testing"

	"github.com/agentiso/agentiso/internal/config"
)

// The config a Daemon writes is a valid one that keeps everything of the
// daemon's under its own directories, with the caller's keys in place.
func TestConfigKeepsTheDaemonInItsDirectories(t *testing.T) {
	d, err := New("/bin/true", t.TempDir(), "agtd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d.RunDir) })
	text := d.Config(Settings{ImageDir: "/images/x", BootTimeoutSecs: 77, Server: "log_level = \"debug\"", VM: "max_total_vms = 30"})
	c, err := config.Parse([]byte(text + "\n[pool]\ntemplate = false\n"))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for _, x := range []struct{ got, want string }{
		{c.Server.DataDir, d.DataDir()},
		{c.Server.RunDir, d.RunDir},
		{c.Server.SocketPath, d.Socket},
		{c.Server.TransferDir, d.TransferDir()},
		{c.StatePath(), d.StatePath()},
		{c.ImageDir(), "/images/x"},
		{c.Server.LogLevel, "debug"},
	} {
		if x.got != x.want {
			t.Errorf("got %q, want %q", x.got, x.want)
		}
	}
	if c.VM.BootTimeoutSecs != 77 || c.VM.MaxTotalVMs != 30 {
		t.Errorf("[vm] = %+v", c.VM)
	}
}

func TestIsZombie(t *testing.T) {
	for stat, want := range map[string]bool{
		"42 (qemu-system-x86) Z 1 42": true,
		"42 (qemu-system-x86) S 1 42": false,
		"42 (odd) name) Z 1 42":       true,
		"42 (a) R 1":                  false,
		"":                            false,
		"42 (cut)":                    false,
	} {
		if got := IsZombie(stat); got != want {
			t.Errorf("IsZombie(%q) = %v, want %v", stat, got, want)
		}
	}
}
