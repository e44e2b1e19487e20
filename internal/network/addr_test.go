package network

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestNextFree(t *testing.T) {
	sub := netip.MustParsePrefix("10.9.0.0/29") // .1 gateway, .2-.6 VMs, .7 broadcast
	taken := map[netip.Addr]bool{}
	var got []string
	for {
		a, err := NextFree(sub, func(a netip.Addr) bool { return taken[a] })
		if errors.Is(err, ErrSubnetFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		taken[a] = true
		got = append(got, a.String())
	}
	if want := "10.9.0.2 10.9.0.3 10.9.0.4 10.9.0.5 10.9.0.6"; strings.Join(got, " ") != want {
		t.Errorf("allocated %v, want %s", got, want)
	}
	delete(taken, netip.MustParseAddr("10.9.0.4"))
	if a, _ := NextFree(sub, func(a netip.Addr) bool { return taken[a] }); a.String() != "10.9.0.4" {
		t.Errorf("a freed address is not reused: got %v", a)
	}
	if _, err := NextFree(netip.MustParsePrefix("fd00::/64"), func(netip.Addr) bool { return false }); err == nil {
		t.Error("an IPv6 subnet was accepted")
	}
}

func TestNamesAndMACs(t *testing.T) {
	a := netip.MustParseAddr("10.99.3.7")
	if got := TAPName(a); got != "agt0a630307" || ValidateIfName("tap", got) != nil {
		t.Errorf("TAPName = %q", got)
	}
	if got := MACFor(a).String(); got != "02:a9:0a:63:03:07" {
		t.Errorf("MACFor = %s", got)
	}
	for _, bad := range []string{"", "-x", ".x", "a b", "a/b", "a:b", `a"b`, "0123456789abcdef", "é"} {
		if ValidateIfName("f", bad) == nil {
			t.Errorf("ValidateIfName accepted %q", bad)
		}
	}
	for _, ok := range []string{"eth0", "br-agentiso", "lan0.100", "wlp3s0", "a_b"} {
		if err := ValidateIfName("f", ok); err != nil {
			t.Errorf("ValidateIfName refused %q: %v", ok, err)
		}
	}
}

func FuzzValidateIfName(f *testing.F) {
	for _, s := range []string{"eth0", "br-agentiso", "", "a b", `x"; drop`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidateIfName("f", s) != nil {
			return
		}
		if len(s) == 0 || len(s) > MaxIfNameLen || strings.ContainsAny(s, " \t\n/:\"\\'*") {
			t.Errorf("accepted %q", s)
		}
	})
}
