package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestRenewRejects(t *testing.T) {
	good := func() *Renew {
		return &Renew{Entropy: make([]byte, 64), RealtimeNs: 1, MachineID: "0123456789abcdef0123456789abcdef"}
	}
	for _, tt := range []struct {
		name   string
		mutate func(*Renew)
		field  string
	}{
		{"no entropy", func(m *Renew) { m.Entropy = nil }, "entropy"},
		{"too little entropy", func(m *Renew) { m.Entropy = make([]byte, MinRenewEntropy-1) }, "entropy"},
		{"too much entropy", func(m *Renew) { m.Entropy = make([]byte, MaxRenewEntropy+1) }, "entropy"},
		{"no clock", func(m *Renew) { m.RealtimeNs = 0 }, "realtime_ns"},
		{"short machine id", func(m *Renew) { m.MachineID = "0123" }, "machine_id"},
		{"upper-case machine id", func(m *Renew) { m.MachineID = "0123456789ABCDEF0123456789ABCDEF" }, "machine_id"},
		{"zero machine id", func(m *Renew) { m.MachineID = strings.Repeat("0", 32) }, "machine_id"},
		{"path in machine id", func(m *Renew) { m.MachineID = "../../../../etc/passwd0123456789" }, "machine_id"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := good()
			tt.mutate(m)
			var sb strings.Builder
			err := Write(&sb, m)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Write = %v, want a refusal naming %s", err, tt.field)
			}
			// And a peer that sends it anyway is refused on decode.
			payload := `{"type":"renew","body":` + mustJSON(t, m) + `}`
			if _, err := Decode([]byte(payload)); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tt.field) {
				t.Errorf("Decode = %v, want ErrMalformed naming %s", err, tt.field)
			}
		})
	}
	if err := good().validate(); err != nil {
		t.Fatalf("a valid Renew: %v", err)
	}
	noID := good()
	noID.MachineID = ""
	if err := noID.validate(); err != nil {
		t.Fatalf("a Renew that keeps the machine id: %v", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
