package network

import (
	"context"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/hostcmd"
)

var update = flag.Bool("update", false, "rewrite golden files")

// nft lists the tables of namespace ns as nft prints them.
func nft(t *testing.T, ns string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := hostcmd.Run(ctx, "ip", append([]string{"netns", "exec", ns, "nft"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func sampleRuleset() Ruleset {
	a, b, c := netip.MustParseAddr("10.231.0.2"), netip.MustParseAddr("10.231.0.3"), netip.MustParseAddr("10.231.0.4")
	return Ruleset{
		Bridge: "br-test", Subnet: testSubnet,
		HostInterfaces: []string{"lan0"},
		VMServices:     []uint16{3100},
		VMs: []VM{
			{TAP: TAPName(c), MAC: MACFor(c), IP: c},
			{TAP: TAPName(a), MAC: MACFor(a), IP: a, Internet: true, AllowedPorts: []uint16{8080, 22}},
			{TAP: TAPName(b), MAC: MACFor(b), IP: b},
		},
		Peers:    []Peer{{A: b, B: a}},
		Forwards: []Forward{{HostPort: 28080, IP: a, GuestPort: 8080}, {HostPort: 20022, IP: b, GuestPort: 22}},
	}
}

// The tables a ruleset makes, as nft prints them, are a golden file: a
// change to the rules shows up in review as a diff of nft syntax.
func TestApplyGolden(t *testing.T) {
	h, ns := testHost(t)
	if err := h.Apply(sampleRuleset()); err != nil {
		t.Fatal(err)
	}
	got := nft(t, ns, "list", "table", "bridge", TableName) + nft(t, ns, "list", "table", "inet", TableName)
	golden := filepath.Join("testdata", "ruleset.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("tables differ from %s (-want +got):\n%s", golden, diff)
	}
}
