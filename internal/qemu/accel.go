package qemu

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// AccelAuto asks DetectAccel to choose.
const AccelAuto = "auto"

// DefaultProbeTimeout bounds the KVM probe boot.
const DefaultProbeTimeout = 10 * time.Second

// DetectConfig is the input of DetectAccel.
type DetectConfig struct {
	// Setting is the configured accelerator: "auto" (or empty), "kvm" or
	// "tcg". An explicit value is honoured without checks.
	Setting string
	// Probe boots a short test guest under KVM and returns nil once it
	// answered. Package vm provides the real one. Nil means KVM cannot be
	// confirmed, and auto chooses it on the host checks alone.
	Probe func(ctx context.Context) error
	// ProbeTimeout bounds Probe; zero means DefaultProbeTimeout.
	ProbeTimeout time.Duration
	// Root is prefixed to /dev/kvm and /sys/module; empty on a real host.
	Root string
}

// DetectAccel returns the accelerator to run VMs with and a one-line reason
// for people (the daemon logs it, `agentiso check` prints it).
//
// "auto" uses KVM only where an ordinary guest really runs: /dev/kvm must
// open, the host must not be a nested PVM host (kvm_pvm loaded without
// kvm_intel or kvm_amd: there /dev/kvm exists and ordinary guests hang), and
// a probe boot under KVM must succeed. Anything else gives TCG.
func DetectAccel(ctx context.Context, cfg DetectConfig) (Accel, string, error) {
	switch cfg.Setting {
	case string(AccelKVM):
		return AccelKVM, "kvm: set in the configuration", nil
	case string(AccelTCG):
		return AccelTCG, "tcg: set in the configuration", nil
	case AccelAuto, "":
	default:
		return "", "", errdefs.Invalidf("vm.accel: %q is not auto, kvm or tcg", cfg.Setting)
	}

	dev := filepath.Join(cfg.Root, "/dev/kvm")
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return AccelTCG, "tcg: /dev/kvm does not exist (no hardware virtualisation, or the kvm module is not loaded)", nil
		}
		return AccelTCG, fmt.Sprintf("tcg: /dev/kvm cannot be opened: %v", err), nil
	}
	f.Close()

	mod := func(name string) bool {
		_, err := os.Stat(filepath.Join(cfg.Root, "/sys/module", name))
		return err == nil
	}
	if mod("kvm_pvm") && !mod("kvm_intel") && !mod("kvm_amd") {
		return AccelTCG, "tcg: /dev/kvm is nested PVM (kvm_pvm loaded, kvm_intel/kvm_amd not), where ordinary guests hang", nil
	}

	if cfg.Probe == nil {
		return AccelKVM, "kvm: /dev/kvm opens (not confirmed by a probe boot)", nil
	}
	timeout := cfg.ProbeTimeout
	if timeout <= 0 {
		timeout = DefaultProbeTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	if err := cfg.Probe(pctx); err != nil {
		if ctx.Err() != nil {
			return "", "", fmt.Errorf("probing kvm: %w", ctx.Err())
		}
		return AccelTCG, fmt.Sprintf("tcg: a probe guest under KVM did not boot within %v: %v", timeout, err), nil
	}
	return AccelKVM, fmt.Sprintf("kvm: a probe guest booted in %v", time.Since(start).Round(time.Millisecond)), nil
}
