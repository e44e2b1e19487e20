package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/image"
	"github.com/agentiso/agentiso/internal/qemu"
	"github.com/agentiso/agentiso/internal/storage"
	"github.com/agentiso/agentiso/internal/vm"
)

// Status is the outcome of one check.
type Status string

// The outcomes. Warn is a working setup with a caveat.
const (
	OK   Status = "ok"
	Warn Status = "warn"
	Fail Status = "fail"
)

// CheckResult is one prerequisite and, when it is not met, how to fix it.
type CheckResult struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// minQEMU is the oldest QEMU agentiso is tested with (Debian 12's).
var minQEMU = [2]int{7, 2}

// Check inspects every prerequisite of the daemon on this host, read-only.
// cfgErr is the error (if any) from loading the configuration.
func Check(ctx context.Context, cfgPath string, cfg config.Config, cfgErr error) []CheckResult {
	var out []CheckResult
	add := func(name string, st Status, detail, fix string) {
		out = append(out, CheckResult{Name: name, Status: st, Detail: detail, Fix: fix})
	}

	if os.Geteuid() == 0 {
		add("root", OK, "running as root", "")
	} else {
		add("root", Fail, "the daemon, init and check need root (VMs, disks, network)", "run as root, e.g. with sudo")
	}

	if cfgErr != nil {
		add("config", Fail, cfgErr.Error(), "run `agentiso init` to write a default config at "+cfgPath+", or fix the named field")
		cfg = config.Default()
	} else {
		add("config", OK, cfgPath, "")
	}

	var pkgs []string
	var missing []string
	for _, t := range image.CheckHostTools() {
		missing = append(missing, t.Name)
		pkgs = append(pkgs, t.Package)
	}
	qemuBin := cfg.VM.QEMUBinary
	if _, err := exec.LookPath(qemuBin); err != nil {
		missing = append(missing, qemuBin)
		pkgs = append(pkgs, "qemu-system-x86")
	}
	if len(missing) == 0 {
		add("host packages", OK, "qemu, qemu-img, mkfs.ext4, debootstrap, dpkg-deb, unlz4 present", "")
	} else {
		add("host packages", Fail, "missing: "+strings.Join(missing, ", "),
			"apt-get install "+strings.Join(dedupe(pkgs), " "))
	}

	if v, err := qemuVersion(ctx, qemuBin); err != nil {
		add("qemu version", Fail, err.Error(), "apt-get install qemu-system-x86")
	} else if v[0] < minQEMU[0] || v[0] == minQEMU[0] && v[1] < minQEMU[1] {
		add("qemu version", Fail, fmt.Sprintf("%d.%d is older than %d.%d", v[0], v[1], minQEMU[0], minQEMU[1]), "upgrade QEMU (Debian 12 ships 7.2)")
	} else {
		add("qemu version", OK, fmt.Sprintf("%d.%d", v[0], v[1]), "")
	}

	img, imgErr := image.Load(cfg.ImageDir())
	if imgErr != nil {
		add("guest image", Fail, "no image at "+cfg.ImageDir(), "run `agentiso init` (builds it, a few minutes)")
	} else {
		st, detail := OK, fmt.Sprintf("%s: kernel %s, built %s", cfg.ImageDir(), img.Manifest.KernelVersion, img.Manifest.BuiltAt)
		for _, p := range []string{img.KernelPath(), img.InitrdPath(), img.RootfsPath()} {
			if _, err := os.Stat(p); err != nil {
				st, detail = Fail, "image file missing: "+p
			}
		}
		add("guest image", st, detail, map[Status]string{Fail: "run `agentiso init` to rebuild it"}[st])
	}

	var probe func(context.Context) error
	if imgErr == nil && os.Geteuid() == 0 {
		if disks, err := storage.NewQcow2(storage.Qcow2Config{Root: disksDir(cfg)}); err == nil {
			probe = probeKVM(cfg, vm.Config{QEMUBinary: qemuBin, Dial: dialGuest(nil, nil), BootTimeout: qemu.DefaultProbeTimeout}, img, disks)
		}
	}
	accel, why, err := qemu.DetectAccel(ctx, qemu.DetectConfig{Setting: cfg.VM.Accel, Probe: probe})
	switch {
	case err != nil:
		add("accelerator", Fail, err.Error(), "set vm.accel to auto, kvm or tcg")
	case accel == qemu.AccelTCG:
		add("accelerator", Warn, why+"; VMs run under software emulation (TCG), several times slower", "use a host where KVM runs ordinary guests for production")
	default:
		add("accelerator", OK, why, "")
	}

	if fi, err := os.Stat(cfg.Server.DataDir); err != nil {
		add("data dir", Warn, cfg.Server.DataDir+" does not exist yet", "run `agentiso init`")
	} else if fi.Mode().Perm()&0o007 != 0 {
		add("data dir", Fail, fmt.Sprintf("%s is %v: others may read workspace data", cfg.Server.DataDir, fi.Mode().Perm()), "chmod 0700 "+cfg.Server.DataDir)
	} else {
		add("data dir", OK, fmt.Sprintf("%s (%v)", cfg.Server.DataDir, fi.Mode().Perm()), "")
	}
	if fi, err := os.Stat(cfg.StatePath()); err == nil {
		if fi.Mode().Perm() != 0o600 {
			add("state db", Fail, fmt.Sprintf("%s is %v", cfg.StatePath(), fi.Mode().Perm()), "chmod 0600 "+cfg.StatePath())
		} else {
			add("state db", OK, cfg.StatePath()+" (0600)", "")
		}
	}

	if cfg.Server.SocketGroup != "" {
		if _, err := user.LookupGroup(cfg.Server.SocketGroup); err != nil {
			add("socket group", Fail, "group "+cfg.Server.SocketGroup+" does not exist", "groupadd --system "+cfg.Server.SocketGroup)
		} else {
			add("socket group", OK, cfg.Server.SocketGroup, "")
		}
	}
	if c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, "unix", cfg.Server.SocketPath); err != nil {
		add("daemon", Fail, "nothing answers on "+cfg.Server.SocketPath, "start it: `systemctl start agentiso` (or `agentiso daemon`)")
	} else {
		c.Close()
		add("daemon", OK, "serving on "+cfg.Server.SocketPath, "")
	}
	out = append(out, checkDashboard(cfg)...)
	return append(out, hostChecks(ctx, defaultHostPaths, cfgPath, cfg, cfgErr)...)
}

var qemuVersionRe = regexp.MustCompile(`version (\d+)\.(\d+)`)

func qemuVersion(ctx context.Context, bin string) ([2]int, error) {
	out, err := hostcmd.Run(ctx, bin, "--version")
	if err != nil {
		return [2]int{}, fmt.Errorf("running %s --version: %w", bin, err)
	}
	m := qemuVersionRe.FindSubmatch(out)
	if m == nil {
		return [2]int{}, errors.New("cannot read the QEMU version")
	}
	a, _ := strconv.Atoi(string(m[1]))
	b, _ := strconv.Atoi(string(m[2]))
	return [2]int{a, b}, nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
