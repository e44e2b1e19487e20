package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentiso/agentiso/deploy"
	"github.com/agentiso/agentiso/internal/cgroup"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/hostcmd"
	"github.com/agentiso/agentiso/internal/secret"
)

// Where the host checks look; fields so tests can point them elsewhere.
type hostPaths struct {
	mountInfo  string // the mount table (cgroup.DefaultMountInfo)
	systemdRun string // exists when systemd is PID 1
	unit       string // the installed unit
	proc       string // /proc
}

var defaultHostPaths = hostPaths{
	mountInfo:  cgroup.DefaultMountInfo,
	systemdRun: "/run/systemd/system",
	unit:       "/etc/systemd/system/" + deploy.UnitName,
	proc:       "/proc",
}

// capSysResource is the capability bit that lets a process lower OOM
// scores.
const capSysResource = 24

// hostChecks are the checks of the host service: resource limits, the
// unit, the daemon's own limits, secrets and the config file's mode.
func hostChecks(ctx context.Context, p hostPaths, cfgPath string, cfg config.Config, cfgErr error) []CheckResult {
	out := []CheckResult{p.cgroupCheck(cfg)}
	daemonPID := p.daemonPID(ctx, cfg.Server.SocketPath)
	out = append(out, p.oomCheck(daemonPID), p.unitCheck(ctx, cfgPath))
	if daemonPID > 0 {
		out = append(out, p.nofileCheck(daemonPID, cfg))
	}
	out = append(out, secretsCheck(cfg))
	if cfgErr == nil {
		out = append(out, configFileCheck(cfgPath))
	}
	return out
}

func (p hostPaths) cgroupCheck(cfg config.Config) CheckResult {
	r := CheckResult{Name: "cgroups"}
	fix := "mount cgroup2 with the memory, pids and cpu controllers (or cgroup v1 hierarchies for each) at /sys/fs/cgroup, writable by root"
	bad := Fail
	if !cfg.Resources.CgroupRequired {
		bad = Warn
		fix += "; VMs run without limits until then"
	} else {
		fix += "; or set resources.cgroup_required = false to run VMs without limits (not recommended)"
	}
	layout, err := cgroup.Detect(p.mountInfo)
	if err == nil {
		err = layout.Writable()
	}
	if err != nil {
		r.Status, r.Detail, r.Fix = bad, err.Error()+": VM memory, CPU and process limits cannot be applied", fix
		return r
	}
	r.Status = OK
	r.Detail = fmt.Sprintf("%s; each VM in %s/<id>", layout, cfg.Resources.CgroupParent)
	return r
}

// oomCheck says whether the daemon (or, with none running, this process)
// may lower a VM's OOM score once its memory limit holds (finding H-9).
func (p hostPaths) oomCheck(daemonPID int) CheckResult {
	r := CheckResult{Name: "oom score"}
	whose, pid := "this process", "self"
	if daemonPID > 0 {
		whose, pid = fmt.Sprintf("the daemon (pid %d)", daemonPID), strconv.Itoa(daemonPID)
	}
	caps, err := capEff(p.proc + "/" + pid + "/status")
	switch {
	case err != nil:
		r.Status, r.Detail = Warn, "cannot read the capabilities of "+whose+": "+err.Error()
	case caps&(1<<capSysResource) == 0:
		r.Status = Warn
		r.Detail = whose + " lacks CAP_SYS_RESOURCE: VMs keep the default OOM score instead of " + strconv.Itoa(VMOOMScoreAdj)
		r.Fix = "run the daemon with CAP_SYS_RESOURCE (the shipped unit grants it)"
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("VMs get OOM score %d once their memory limit holds", VMOOMScoreAdj)
	}
	return r
}

func capEff(statusPath string) (uint64, error) {
	b, err := os.ReadFile(statusPath)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, errors.New("no CapEff line")
}

// unitCheck checks the installed unit where systemd runs.
func (p hostPaths) unitCheck(ctx context.Context, cfgPath string) CheckResult {
	r := CheckResult{Name: "service unit"}
	if _, err := os.Stat(p.systemdRun); err != nil {
		r.Status = Warn
		r.Detail = "systemd is not running here: nothing restarts the daemon if it fails, and the unit's limits do not apply"
		r.Fix = "run `agentiso daemon` under a supervisor with `ulimit -n 65536`, or use a host with systemd"
		return r
	}
	installed, err := os.ReadFile(p.unit)
	if err != nil {
		r.Status, r.Detail, r.Fix = Fail, p.unit+" is missing", "run `agentiso install`"
		return r
	}
	want := bytes.Replace(deploy.Unit, []byte("--config "+config.DefaultPath), []byte("--config "+cfgPath), 1)
	if !bytes.Equal(installed, want) {
		r.Status, r.Detail = Warn, p.unit+" differs from this version's unit"
		r.Fix = "run `agentiso install` to update it; keep local changes in a drop-in (systemctl edit agentiso)"
		return r
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := hostcmd.Run(ctx, "systemd-analyze", "verify", p.unit); err != nil || len(bytes.TrimSpace(out)) > 0 {
			r.Status, r.Detail, r.Fix = Fail, fmt.Sprintf("systemd-analyze verify %s: %v %s", p.unit, err, out), "run `agentiso install` to rewrite it"
			return r
		}
	}
	r.Status, r.Detail = OK, p.unit+" is this version's"
	return r
}

// nofileCheck checks the running daemon's open-file limit.
func (p hostPaths) nofileCheck(pid int, cfg config.Config) CheckResult {
	r := CheckResult{Name: "daemon limits"}
	soft, err := softLimit(fmt.Sprintf("%s/%d/limits", p.proc, pid), "Max open files")
	if err != nil {
		r.Status, r.Detail = Warn, "cannot read the daemon's limits: "+err.Error()
		return r
	}
	need := int64(fdsNeeded(cfg))
	if soft >= 0 && soft < need {
		r.Status = Fail
		r.Detail = fmt.Sprintf("the daemon may open %d files; %d VMs and %d connections need %d", soft, cfg.VM.MaxTotalVMs, cfg.Limits.MaxConnections, need)
		r.Fix = "LimitNOFILE=65536 in the unit (`agentiso install`), or `ulimit -n 65536` before starting the daemon"
		return r
	}
	r.Status, r.Detail = OK, fmt.Sprintf("open files: %s (needs %d)", limitString(soft), need)
	return r
}

// softLimit reads a soft limit from /proc/<pid>/limits; -1 is unlimited.
func softLimit(path, name string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			if f[0] == "unlimited" {
				return -1, nil
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %q in %s", name, path)
}

func limitString(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

// secretsCheck checks every configured secret source (finding L-11).
func secretsCheck(cfg config.Config) CheckResult {
	r := CheckResult{Name: "secrets", Status: OK}
	var from []string
	if _, ok, err := secret.FromEnv(config.AdminTokenEnv); err != nil {
		r.Status, r.Detail, r.Fix = Fail, err.Error(), "set "+config.AdminTokenEnv+" to the token alone"
		return r
	} else if ok {
		from = append(from, "admin token from $"+config.AdminTokenEnv)
	}
	if f := cfg.Secrets.AdminTokenFile; f != "" {
		if _, err := secret.ReadFile(f); err != nil {
			r.Status, r.Detail = Fail, err.Error()
			r.Fix = fmt.Sprintf("chown root %s && chmod 0600 %s (it must hold the token alone)", f, f)
			return r
		}
		from = append(from, "admin token file "+f+" (private)")
	}
	if len(from) == 0 {
		r.Detail = "no secrets configured"
	} else {
		r.Detail = strings.Join(from, "; ")
	}
	return r
}

// configFileCheck refuses a config file others could change.
func configFileCheck(path string) CheckResult {
	r := CheckResult{Name: "config file"}
	fi, err := os.Stat(path)
	if err != nil {
		r.Status, r.Detail = Warn, err.Error()
		return r
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case fi.Mode().Perm()&0o022 != 0:
		r.Status = Fail
		r.Detail = fmt.Sprintf("%s is mode %04o: users other than root may change it", path, fi.Mode().Perm())
		r.Fix = "chmod 0640 " + path
	case st != nil && st.Uid != 0:
		r.Status = Fail
		r.Detail = fmt.Sprintf("%s is owned by uid %d, not root", path, st.Uid)
		r.Fix = "chown root " + path
	default:
		r.Status, r.Detail = OK, fmt.Sprintf("%s (%04o, root)", path, fi.Mode().Perm())
	}
	return r
}

// daemonPID is the PID of the daemon serving on socket (its peer
// credentials), or 0.
func (p hostPaths) daemonPID(ctx context.Context, socket string) int {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return 0
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	_, pid := peerCred(uc)
	if pid <= 0 {
		return 0
	}
	if _, err := os.Stat(fmt.Sprintf("%s/%d", p.proc, pid)); errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	return pid
}
