package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/deploy"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/testenv"
)

func wantCheck(t *testing.T, r CheckResult, status Status, detail, fix string) {
	t.Helper()
	if r.Status != status || !strings.Contains(r.Detail, detail) || !strings.Contains(r.Fix, fix) {
		t.Errorf("%s = %+v, want %s with detail ~%q and fix ~%q", r.Name, r, status, detail, fix)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCgroupCheck(t *testing.T) {
	dir := t.TempDir()
	none := hostPaths{mountInfo: writeFile(t, filepath.Join(dir, "mountinfo"), "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", 0o644)}
	cfg := config.Default()
	wantCheck(t, none.cgroupCheck(cfg), Fail, "no usable cgroup hierarchy", "resources.cgroup_required = false")
	cfg.Resources.CgroupRequired = false
	wantCheck(t, none.cgroupCheck(cfg), Warn, "cannot be applied", "VMs run without limits")

	testenv.Require(t, "root")
	wantCheck(t, defaultHostPaths.cgroupCheck(config.Default()), OK, "agentiso/<id>", "")
}

func TestOOMCheck(t *testing.T) {
	dir := t.TempDir()
	p := hostPaths{proc: dir}
	writeFile(t, filepath.Join(dir, "7", "status"), "Name:\tagentiso\nCapEff:\t000001fffeffffff\n", 0o644)
	writeFile(t, filepath.Join(dir, "8", "status"), "Name:\tagentiso\nCapEff:\t000001ffffffffff\n", 0o644)
	wantCheck(t, p.oomCheck(7), Warn, "the daemon (pid 7) lacks CAP_SYS_RESOURCE", "CAP_SYS_RESOURCE")
	wantCheck(t, p.oomCheck(8), OK, "-500", "")
	wantCheck(t, p.oomCheck(9), Warn, "cannot read", "")
}

func TestUnitCheck(t *testing.T) {
	testenv.Require(t, "systemd-analyze")
	dir := t.TempDir()
	ctx := context.Background()
	p := hostPaths{systemdRun: filepath.Join(dir, "nosystemd"), unit: filepath.Join(dir, "agentiso.service")}
	wantCheck(t, p.unitCheck(ctx, config.DefaultPath), Warn, "systemd is not running", "supervisor")

	os.Mkdir(p.systemdRun, 0o755)
	wantCheck(t, p.unitCheck(ctx, config.DefaultPath), Fail, "is missing", "agentiso install")
	writeFile(t, p.unit, string(deploy.Unit)+"\n# mine\n", 0o644)
	wantCheck(t, p.unitCheck(ctx, config.DefaultPath), Warn, "differs", "drop-in")

	// This version's unit, installed for another config path.
	unit := strings.Replace(string(deploy.Unit), "--config "+config.DefaultPath, "--config /srv/agentiso.toml", 1)
	writeFile(t, p.unit, unit, 0o644)
	r := p.unitCheck(ctx, "/srv/agentiso.toml")
	if _, err := os.Stat("/usr/local/bin/agentiso"); err == nil {
		wantCheck(t, r, OK, "this version's", "")
	} else {
		// systemd-analyze verify runs on it, and there is no binary here.
		wantCheck(t, r, Fail, "not executable", "agentiso install")
	}
}

func TestNOFILECheck(t *testing.T) {
	dir := t.TempDir()
	p := hostPaths{proc: dir}
	limits := "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            %s                65536                files     \n"
	writeFile(t, filepath.Join(dir, "5", "limits"), strings.Replace(limits, "%s", "512", 1), 0o644)
	writeFile(t, filepath.Join(dir, "6", "limits"), strings.Replace(limits, "%s", "65536", 1), 0o644)
	writeFile(t, filepath.Join(dir, "7", "limits"), strings.Replace(limits, "%s", "unlimited", 1), 0o644)
	cfg := config.Default()
	wantCheck(t, p.nofileCheck(5, cfg), Fail, "may open 512 files", "LimitNOFILE=65536")
	wantCheck(t, p.nofileCheck(6, cfg), OK, "open files: 65536", "")
	wantCheck(t, p.nofileCheck(7, cfg), OK, "unlimited", "")
}

func TestL11_SecretsCheck(t *testing.T) {
	t.Setenv(config.AdminTokenEnv, "")
	os.Unsetenv(config.AdminTokenEnv)
	cfg := config.Default()
	wantCheck(t, secretsCheck(cfg), OK, "no secrets configured", "")
	cfg.Secrets.AdminTokenFile = writeFile(t, filepath.Join(t.TempDir(), "token"), "the-token\n", 0o644)
	r := secretsCheck(cfg)
	wantCheck(t, r, Fail, "mode 0644", "chmod 0600 "+cfg.Secrets.AdminTokenFile)
	if strings.Contains(r.Detail+r.Fix, "the-token") {
		t.Errorf("the check shows the secret: %+v", r)
	}
	os.Chmod(cfg.Secrets.AdminTokenFile, 0o600)
	wantCheck(t, secretsCheck(cfg), OK, "(private)", "")
	t.Setenv(config.AdminTokenEnv, "env-token")
	wantCheck(t, secretsCheck(cfg), OK, "$"+config.AdminTokenEnv, "")
}

func TestConfigFileCheck(t *testing.T) {
	path := writeFile(t, filepath.Join(t.TempDir(), "config.toml"), "", 0o666)
	wantCheck(t, configFileCheck(path), Fail, "may change it", "chmod 0640")
	os.Chmod(path, 0o640)
	if os.Geteuid() == 0 {
		wantCheck(t, configFileCheck(path), OK, "0640, root", "")
		os.Chown(path, 65534, 65534)
		wantCheck(t, configFileCheck(path), Fail, "owned by uid 65534", "chown root")
	}
}
