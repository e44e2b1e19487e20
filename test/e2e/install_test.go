package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentiso/agentiso/deploy"
	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/install"
	"github.com/agentiso/agentiso/internal/testenv"
)

// guestBinary builds cmd/agentiso-guest once into the package's bin dir.
func guestBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(binDir, "agentiso-guest")
	if _, err := os.Stat(path); err == nil {
		return path
	}
	cmd := exec.Command("go", "build", "-o", path, "../../cmd/agentiso-guest")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building agentiso-guest: %v\n%s", err, out)
	}
	return path
}

// agentiso runs the CLI and returns its output and exit code.
func agentiso(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(agentisoBinary(t), args...)
	out, err := cmd.CombinedOutput()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func groupListed(t *testing.T, root, name string) bool {
	b, _ := os.ReadFile(filepath.Join(root, "etc/group"))
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+":") {
			return true
		}
	}
	return false
}

// TestInstallAndUninstall installs into a staging tree (--root) with the
// real CLI: binaries, unit, group, default config and a built guest image;
// a second install is an upgrade that keeps the config; uninstall removes
// what install added and keeps config and data, refusing while workspace
// VMs run unless --force; --purge removes the rest.
func TestInstallAndUninstall(t *testing.T) {
	testenv.Require(t, "root", "image-tools")
	root := t.TempDir()
	// The image build reuses the host's package cache (content-addressed,
	// so a build here only adds what is missing).
	cache := config.Default().Image.CacheDir
	if err := os.MkdirAll(filepath.Join(root, filepath.Dir(cache)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(cache, filepath.Join(root, cache)); err != nil {
		t.Fatal(err)
	}
	at := func(p string) string { return filepath.Join(root, p) }
	guest := guestBinary(t)

	out, code := agentiso(t, "install", "--root", root, "--guest-binary", guest)
	if code != 0 {
		t.Fatalf("install: exit %d\n%s", code, out)
	}
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{install.BinPath, 0o755}, {install.GuestPath, 0o755}, {install.UnitPath, 0o644},
		{config.DefaultPath, 0o640}, {install.ManifestPath, 0o644},
	} {
		fi, err := os.Stat(at(f.path))
		if err != nil {
			t.Errorf("install did not write %s: %v", f.path, err)
		} else if fi.Mode().Perm() != f.mode {
			t.Errorf("%s has mode %04o, want %04o", f.path, fi.Mode().Perm(), f.mode)
		}
	}
	if unit, _ := os.ReadFile(at(install.UnitPath)); !bytes.Equal(unit, deploy.Unit) {
		t.Errorf("the installed unit differs from deploy/%s", deploy.UnitName)
	}
	if bin, _ := os.ReadFile(at(install.BinPath)); len(bin) == 0 {
		t.Error("the installed binary is empty")
	}
	if _, err := config.Load(at(config.DefaultPath)); err != nil {
		t.Errorf("the installed config does not load: %v", err)
	}
	if !groupListed(t, root, "agentiso") {
		t.Error("install did not create the agentiso group")
	}
	if fi, err := os.Stat(at("/var/lib/agentiso")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir: %v, %v; want mode 0700", fi, err)
	}
	if !exists(at("/var/lib/agentiso/images/default/manifest.json")) {
		t.Errorf("install built no guest image:\n%s", out)
	}
	var m install.Manifest
	b, _ := os.ReadFile(at(install.ManifestPath))
	if err := json.Unmarshal(b, &m); err != nil || m.Group != "agentiso" || !m.ConfigCreated || len(m.Files) != 3 {
		t.Errorf("manifest %s: %+v, %v", b, m, err)
	}

	// Again: an upgrade that keeps the (edited) config and remembers the
	// group it created the first time.
	edited := "[vm]\nmax_total_vms = 24\n"
	if err := os.WriteFile(at(config.DefaultPath), []byte(edited), 0o640); err != nil {
		t.Fatal(err)
	}
	if out, code := agentiso(t, "install", "--root", root, "--guest-binary", guest, "--skip-image"); code != 0 || !strings.Contains(out, "exists; keeping it") {
		t.Fatalf("second install: exit %d\n%s", code, out)
	}
	if b, _ := os.ReadFile(at(config.DefaultPath)); string(b) != edited {
		t.Errorf("the second install changed the config to %q", b)
	}

	// User data, and a workspace VM that is running (a stand-in process
	// that looks like one: a "qemu-system" whose arguments name a VM run
	// directory).
	userData := at("/var/lib/agentiso/workspaces/ws1/disk.qcow2")
	os.MkdirAll(filepath.Dir(userData), 0o700)
	os.WriteFile(userData, []byte("work"), 0o600)
	vmLog := at("/run/agentiso/vms/ws1/qemu.log")
	os.MkdirAll(filepath.Dir(vmLog), 0o700)
	os.WriteFile(vmLog, nil, 0o600)
	fakeQEMU := filepath.Join(t.TempDir(), "qemu-system-x86_64")
	tail, _ := os.ReadFile("/usr/bin/tail")
	if err := os.WriteFile(fakeQEMU, tail, 0o755); err != nil {
		t.Fatal(err)
	}
	vm := exec.Command(fakeQEMU, "-f", vmLog)
	if err := vm.Start(); err != nil {
		t.Fatal(err)
	}
	vmDone := make(chan struct{})
	go func() { vm.Wait(); close(vmDone) }()
	t.Cleanup(func() { vm.Process.Kill(); <-vmDone })

	out, code = agentiso(t, "uninstall", "--root", root)
	if code != 4 || !strings.Contains(out, "1 workspace VMs are running") || !strings.Contains(out, "--force") {
		t.Fatalf("uninstall with a running VM: exit %d\n%s", code, out)
	}
	if !exists(at(install.BinPath)) {
		t.Fatal("the refused uninstall removed something")
	}
	out, code = agentiso(t, "uninstall", "--root", root, "--force")
	if code != 0 {
		t.Fatalf("uninstall --force: exit %d\n%s", code, out)
	}
	select {
	case <-vmDone:
	case <-time.After(10 * time.Second):
		t.Error("uninstall --force left the VM running")
	}
	for _, p := range []string{install.BinPath, install.GuestPath, install.UnitPath, install.ManifestPath, install.LibDir, "/run/agentiso"} {
		if exists(at(p)) {
			t.Errorf("uninstall left %s", p)
		}
	}
	if groupListed(t, root, "agentiso") {
		t.Error("uninstall left the group it had created")
	}
	for _, p := range []string{config.DefaultPath, "/var/lib/agentiso/workspaces/ws1/disk.qcow2", "/var/lib/agentiso/images/default/manifest.json"} {
		if !exists(at(p)) {
			t.Errorf("uninstall removed %s, which is kept without --purge", p)
		}
	}
	if out, code := agentiso(t, "uninstall", "--root", root); code != 3 || !strings.Contains(out, "nothing removed") {
		t.Errorf("uninstall of nothing: exit %d\n%s", code, out)
	}

	// Install once more, then purge.
	if out, code := agentiso(t, "install", "--root", root, "--guest-binary", guest, "--skip-image"); code != 0 {
		t.Fatalf("third install: exit %d\n%s", code, out)
	}
	if out, code := agentiso(t, "uninstall", "--root", root, "--purge"); code != 0 {
		t.Fatalf("uninstall --purge: exit %d\n%s", code, out)
	}
	for _, p := range []string{config.DefaultPath, "/etc/agentiso", "/var/lib/agentiso", cache, install.BinPath} {
		if exists(at(p)) {
			t.Errorf("uninstall --purge left %s", p)
		}
	}
	if !exists(cache) {
		t.Fatalf("uninstall --purge in a staging tree reached the host's %s through a symlink", cache)
	}
}
