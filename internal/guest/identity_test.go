package guest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/agentiso/agentiso/internal/protocol"
)

func TestSetHostsName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "127.0.1.1\tnew\n"},
		{"127.0.0.1 localhost\n", "127.0.0.1 localhost\n127.0.1.1\tnew\n"},
		{"127.0.0.1 localhost\n127.0.1.1 old old.local\n::1 ip6-localhost\n", "127.0.0.1 localhost\n::1 ip6-localhost\n127.0.1.1\tnew\n"},
		{"# comment\n127.0.1.1\told", "# comment\n127.0.1.1\tnew\n"},
		{"10.0.0.1 db", "10.0.0.1 db\n127.0.1.1\tnew\n"},
	}
	for _, tt := range tests {
		if got := string(setHostsName([]byte(tt.in), "new")); got != tt.want {
			t.Errorf("setHostsName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestConfigureWritesIdentity(t *testing.T) {
	etc := t.TempDir()
	var set string
	a := NewAgent(Options{EtcDir: etc, SetHostname: func(h string) error { set = h; return nil }})
	os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n127.0.1.1 workspace\n"), 0o640)

	if err := a.configure(&protocol.Configure{Hostname: "ws-7"}); err != nil {
		t.Fatal(err)
	}
	if set != "ws-7" {
		t.Errorf("kernel hostname set to %q", set)
	}
	if b, _ := os.ReadFile(filepath.Join(etc, "hostname")); string(b) != "ws-7\n" {
		t.Errorf("hostname file %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(etc, "hosts")); string(b) != "127.0.0.1 localhost\n127.0.1.1\tws-7\n" {
		t.Errorf("hosts file %q", b)
	}
	if fi, _ := os.Stat(filepath.Join(etc, "hosts")); fi.Mode().Perm() != 0o640 {
		t.Errorf("hosts file mode %v, want the old 0640 kept", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(etc, "hostname")); fi.Mode().Perm() != 0o644 {
		t.Errorf("new hostname file mode %v, want 0644", fi.Mode().Perm())
	}
	if tmp, _ := filepath.Glob(filepath.Join(etc, ".agentiso-*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}
