package install

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/config"
	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/testenv"
)

// TestAFailedInstallStaysRemovable: an install that fails half-way has
// recorded what it added so far, and uninstall removes exactly that.
func TestAFailedInstallStaysRemovable(t *testing.T) {
	testenv.Require(t, "root")
	root := t.TempDir()
	bin := filepath.Join(t.TempDir(), "agentiso")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	o := Options{Root: root, Binary: bin, GuestBinary: filepath.Join(root, "missing-guest")}
	if _, err := Install(context.Background(), o); err == nil || !strings.Contains(err.Error(), "missing-guest") {
		t.Fatalf("Install with a missing guest binary = %v", err)
	}
	m, err := readManifest(filepath.Join(root, ManifestPath))
	if err != nil {
		t.Fatalf("no manifest after the failed install: %v", err)
	}
	if !m.ConfigCreated || len(m.Files) != 1 || m.Files[0] != BinPath {
		t.Errorf("manifest %+v, want the config and the binary recorded", m)
	}
	if err := Uninstall(context.Background(), Options{Root: root, Purge: true}); err != nil {
		t.Fatalf("Uninstall: %v", err)
	}
	for _, p := range []string{BinPath, ManifestPath, config.DefaultPath} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s left behind (%v)", p, err)
		}
	}
	if err := Uninstall(context.Background(), Options{Root: root}); !errdefs.Is(err, errdefs.NotFound) {
		t.Errorf("a second Uninstall = %v, want NotFound", err)
	}
}

// TestInstallRefusesABadConfigBeforeChangingAnything: an existing config
// that does not load stops the install before any file is written.
func TestInstallRefusesABadConfigBeforeChangingAnything(t *testing.T) {
	testenv.Require(t, "root")
	root := t.TempDir()
	cfg := filepath.Join(root, config.DefaultPath)
	os.MkdirAll(filepath.Dir(cfg), 0o755)
	os.WriteFile(cfg, []byte("[vm]\naccel = \"warp\"\n"), 0o640)
	_, err := Install(context.Background(), Options{Root: root, Binary: "/bin/true", GuestBinary: "/bin/true"})
	if !errdefs.Is(err, errdefs.Invalid) || !strings.Contains(err.Error(), "vm.accel") {
		t.Fatalf("Install over a bad config = %v, want Invalid naming vm.accel", err)
	}
	for _, p := range []string{BinPath, GuestPath, UnitPath} {
		if _, err := os.Stat(filepath.Join(root, p)); !os.IsNotExist(err) {
			t.Errorf("%s was written (%v)", p, err)
		}
	}
}
