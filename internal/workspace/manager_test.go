package workspace

import "testing"

func TestHostname(t *testing.T) {
	long := ""
	for range 70 {
		long += "a"
	}
	for in, want := range map[string]string{
		"skeleton":       "skeleton",
		"my_ws.v2":       "my-ws-v2",
		"-lead-":         "lead",
		"...":            "workspace",
		long:             long[:63],
		"team.A-member1": "team-A-member1",
	} {
		if got := Hostname(in); got != want {
			t.Errorf("Hostname(%q) = %q, want %q", in, got, want)
		}
	}
}
