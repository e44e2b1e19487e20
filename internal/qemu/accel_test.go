package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/testenv"
)

// fakeHost makes a root with the given files (relative paths) present.
func fakeHost(t *testing.T, files ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, f := range files {
		p := filepath.Join(root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectAccel(t *testing.T) {
	okProbe := func(context.Context) error { return nil }
	hangProbe := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	noProbe := func(context.Context) error { panic("probe must not run") }

	tests := []struct {
		name       string
		setting    string
		files      []string
		probe      func(context.Context) error
		want       Accel
		wantReason string
	}{
		{"explicit kvm is honoured", "kvm", nil, noProbe, AccelKVM, "configuration"},
		{"explicit tcg is honoured", "tcg", []string{"dev/kvm", "sys/module/kvm_intel"}, noProbe, AccelTCG, "configuration"},
		{"no /dev/kvm", "auto", nil, noProbe, AccelTCG, "does not exist"},
		{"nested PVM", "auto", []string{"dev/kvm", "sys/module/kvm", "sys/module/kvm_pvm"}, noProbe, AccelTCG, "nested PVM"},
		{"PVM beside kvm_intel goes on to the probe", "auto", []string{"dev/kvm", "sys/module/kvm_pvm", "sys/module/kvm_intel"}, okProbe, AccelKVM, "probe guest booted"},
		{"probe boots", "", []string{"dev/kvm", "sys/module/kvm_amd"}, okProbe, AccelKVM, "probe guest booted"},
		{"probe hangs", "auto", []string{"dev/kvm", "sys/module/kvm_intel"}, hangProbe, AccelTCG, "did not boot"},
		{"probe fails", "auto", []string{"dev/kvm", "sys/module/kvm_intel"}, func(context.Context) error { return errors.New("KVM internal error") }, AccelTCG, "KVM internal error"},
		{"no probe", "auto", []string{"dev/kvm", "sys/module/kvm_intel"}, nil, AccelKVM, "not confirmed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason, err := DetectAccel(context.Background(), DetectConfig{
				Setting:      tt.setting,
				Probe:        tt.probe,
				ProbeTimeout: 50 * time.Millisecond,
				Root:         fakeHost(t, tt.files...),
			})
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("DetectAccel() = %s, %q; want %s with %q in the reason", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

func TestDetectAccelRejectsUnknownSetting(t *testing.T) {
	_, _, err := DetectAccel(context.Background(), DetectConfig{Setting: "hvf"})
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "vm.accel") {
		t.Fatalf("DetectAccel(hvf) = %v, want an invalid error naming vm.accel", err)
	}
}

func TestDetectAccelCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := DetectAccel(ctx, DetectConfig{
		Probe: func(ctx context.Context) error { return ctx.Err() },
		Root:  fakeHost(t, "dev/kvm", "sys/module/kvm_intel"),
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("DetectAccel(cancelled) = %v, want context.Canceled, not a TCG verdict", err)
	}
}

// TestDetectAccelThisHost checks the real host. On the nested-PVM machines
// agentiso is developed on, auto must choose TCG (set
// AGENTISO_TEST_EXPECT_ACCEL=tcg there); elsewhere it only has to decide.
func TestDetectAccelThisHost(t *testing.T) {
	testenv.Require(t, "root")
	probed := false
	got, reason, err := DetectAccel(context.Background(), DetectConfig{
		Probe: func(ctx context.Context) error { probed = true; return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("this host: %s (%s), probe ran: %v", got, reason, probed)
	_, pvm := os.Stat("/sys/module/kvm_pvm")
	_, intel := os.Stat("/sys/module/kvm_intel")
	_, amd := os.Stat("/sys/module/kvm_amd")
	if pvm == nil && intel != nil && amd != nil && (got != AccelTCG || probed) {
		t.Errorf("nested PVM host: got %s (probe ran: %v), want tcg without a probe", got, probed)
	}
	if want := os.Getenv("AGENTISO_TEST_EXPECT_ACCEL"); want != "" && string(got) != want {
		t.Errorf("DetectAccel() = %s, want %s (AGENTISO_TEST_EXPECT_ACCEL)", got, want)
	}
}
