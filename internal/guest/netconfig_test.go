package guest

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/protocol"
)

// fakeSysNet makes a /sys/class/net with the given interfaces: name -> type,
// address.
func fakeSysNet(t *testing.T, ifs map[string][2]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, v := range ifs {
		os.MkdirAll(filepath.Join(dir, name), 0o755)
		os.WriteFile(filepath.Join(dir, name, "type"), []byte(v[0]+"\n"), 0o644)
		os.WriteFile(filepath.Join(dir, name, "address"), []byte(v[1]+"\n"), 0o644)
	}
	return dir
}

func netConfig(dns ...string) *protocol.NetConfig {
	n := &protocol.NetConfig{MAC: "02:a9:0a:63:00:02", Address: netip.MustParsePrefix("10.99.0.2/16"),
		Gateway: netip.MustParseAddr("10.99.0.1")}
	for _, d := range dns {
		n.DNS = append(n.DNS, netip.MustParseAddr(d))
	}
	return n
}

func TestConfigureNetwork(t *testing.T) {
	tests := []struct {
		name    string
		ifs     map[string][2]string
		dns     []string
		want    []string // ip invocations
		resolv  string
		wantErr string
	}{{
		name: "the interface with the MAC",
		ifs: map[string][2]string{"lo": {"772", "00:00:00:00:00:00"}, "eth0": {"1", "02:a9:0a:63:00:02"},
			"sit0": {"776", "00:00:00:00"}},
		dns: []string{"1.1.1.1", "9.9.9.9"},
		want: []string{
			"link set dev eth0 up", "-4 addr flush dev eth0", "addr add 10.99.0.2/16 dev eth0",
			"route replace default via 10.99.0.1 dev eth0",
		},
		resolv: "nameserver 1.1.1.1\nnameserver 9.9.9.9\n",
	}, {
		name: "a restored VM's one interface takes the new MAC",
		ifs:  map[string][2]string{"lo": {"772", "00:00:00:00:00:00"}, "eth0": {"1", "02:a9:0a:63:00:07"}},
		want: []string{
			"link set dev eth0 down", "link set dev eth0 address 02:a9:0a:63:00:02",
			"link set dev eth0 up", "-4 addr flush dev eth0", "addr add 10.99.0.2/16 dev eth0",
			"route replace default via 10.99.0.1 dev eth0",
		},
		resolv: "No name servers",
	}, {
		name:    "two candidates and none with the MAC",
		ifs:     map[string][2]string{"eth0": {"1", "02:00:00:00:00:01"}, "eth1": {"1", "02:00:00:00:00:03"}},
		wantErr: "network.mac",
	}, {
		name:    "no Ethernet interface",
		ifs:     map[string][2]string{"lo": {"772", "00:00:00:00:00:00"}},
		wantErr: "network.mac",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			etc := t.TempDir()
			var calls []string
			a := NewAgent(Options{EtcDir: etc, SysClassNet: fakeSysNet(t, tt.ifs),
				RunIP: func(_ context.Context, args ...string) error {
					calls = append(calls, strings.Join(args, " "))
					return nil
				}})
			err := a.configure(&protocol.Configure{Network: netConfig(tt.dns...)})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("configure = %v, want an error naming %s", err, tt.wantErr)
				}
				if len(calls) != 0 {
					t.Errorf("ran ip after an error: %v", calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(calls, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("ip calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(tt.want, "\n"))
			}
			b, _ := os.ReadFile(filepath.Join(etc, "resolv.conf"))
			if !strings.Contains(string(b), tt.resolv) {
				t.Errorf("resolv.conf = %q, want it to contain %q", b, tt.resolv)
			}
			if strings.Contains(string(b), "nameserver") != (len(tt.dns) > 0) {
				t.Errorf("resolv.conf = %q", b)
			}
		})
	}
}
