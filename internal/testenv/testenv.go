// Package testenv says in one place what a test needs from the machine. On a
// laptop a missing prerequisite skips the test; in CI (CI=true) it fails the
// test, so a suite that silently skipped can never look green.
package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// DefaultImageDir is where tests look for a built guest image when
// AGENTISO_TEST_IMAGE_DIR is unset: the image `agentiso init` builds.
const DefaultImageDir = "/var/lib/agentiso/images/default"

// InCI reports whether the tests run in CI, where nothing may be skipped.
func InCI() bool { return os.Getenv("CI") == "true" }

// Require checks each named prerequisite: "root", "qemu", "image",
// "qemu-img", "nft", "netns", "image-tools" (what building a guest image
// runs), "chromium" (Debian's, for browser tests), "web" (node and the
// front end's packages and build, for browser tests), "systemd-analyze". A missing one skips
// the test, or fails it in CI.
func Require(t testing.TB, needs ...string) {
	t.Helper()
	for _, n := range needs {
		if why := missing(n); why != "" {
			if InCI() {
				t.Fatalf("prerequisite %q missing in CI: %s", n, why)
			}
			t.Skipf("prerequisite %q missing: %s", n, why)
		}
	}
}

// ImageDir returns the directory of the built guest image for tests.
func ImageDir() string {
	if d := os.Getenv("AGENTISO_TEST_IMAGE_DIR"); d != "" {
		return d
	}
	return DefaultImageDir
}

// ChromiumPath is Debian's Chromium, the only browser the tests drive
// (never a downloaded one).
const ChromiumPath = "/usr/bin/chromium"

// repoRoot finds the repository's root from the working directory (a
// package directory while tests run).
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// RepoRoot is the repository's root directory.
func RepoRoot() string { return repoRoot() }

func missing(need string) string {
	switch need {
	case "root":
		if os.Geteuid() != 0 {
			return "the test must run as root"
		}
	case "qemu":
		if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
			return "qemu-system-x86_64 not found (apt install qemu-system-x86)"
		}
	case "qemu-img":
		if _, err := exec.LookPath("qemu-img"); err != nil {
			return "qemu-img not found (apt install qemu-utils)"
		}
	case "nft":
		if _, err := exec.LookPath("nft"); err != nil {
			return "nft not found (apt install nftables)"
		}
	case "netns":
		if _, err := exec.LookPath("ip"); err != nil {
			return "ip not found (apt install iproute2)"
		}
	case "systemd-analyze":
		if _, err := exec.LookPath("systemd-analyze"); err != nil {
			return "systemd-analyze not found (apt install systemd)"
		}
	case "image-tools":
		for _, p := range [][2]string{
			{"apt-cache", "apt"}, {"apt-get", "apt"}, {"dpkg-deb", "dpkg"}, {"debootstrap", "debootstrap"},
			{"mkfs.ext4", "e2fsprogs"}, {"qemu-img", "qemu-utils"}, {"lz4", "lz4"}, {"unlz4", "lz4"},
		} {
			if _, err := exec.LookPath(p[0]); err != nil {
				return p[0] + " not found (apt install " + p[1] + ")"
			}
		}
	case "image":
		if _, err := os.Stat(filepath.Join(ImageDir(), "manifest.json")); err != nil {
			return "no guest image at " + ImageDir() + " (run `agentiso image build` or set AGENTISO_TEST_IMAGE_DIR)"
		}
	case "chromium":
		if _, err := os.Stat(ChromiumPath); err != nil {
			return ChromiumPath + " not found (apt install chromium)"
		}
	case "web":
		if _, err := exec.LookPath("node"); err != nil {
			return "node not found (install Node.js 20)"
		}
		root := repoRoot()
		if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core")); err != nil {
			return "web/node_modules is missing (cd web && npm ci)"
		}
		if _, err := os.Stat(filepath.Join(root, "internal", "dashboard", "dist", "index.html")); err != nil {
			return "the dashboard is not built (cd web && npm run build)"
		}
	default:
		return "unknown prerequisite " + need
	}
	return ""
}
