package image

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// archiveKeyring verifies the Debian archive's Release files for debootstrap.
const archiveKeyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

// HostTool is a host program (or file) the image build needs, with the
// Debian package that provides it.
type HostTool struct {
	// Name is the program name looked up in PATH, or an absolute file path.
	Name    string
	Package string
}

// hostTools are what Build runs or reads on the host. The initramfs is
// written in Go, so cpio is not among them.
var hostTools = []HostTool{
	{"apt-cache", "apt"},
	{"apt-get", "apt"},
	{"dpkg-deb", "dpkg"},
	{"debootstrap", "debootstrap"},
	{archiveKeyring, "debian-archive-keyring"},
	{"mkfs.ext4", "e2fsprogs"},
	{"qemu-img", "qemu-utils"},
	{"unlz4", "lz4"},
}

// CheckHostTools returns the host programs and files the build needs that
// are missing; none missing is an empty slice. It installs nothing.
func CheckHostTools() []HostTool {
	var missing []HostTool
	for _, t := range hostTools {
		if strings.HasPrefix(t.Name, "/") {
			if _, err := os.Stat(t.Name); err != nil {
				missing = append(missing, t)
			}
			continue
		}
		if _, err := exec.LookPath(t.Name); err != nil {
			missing = append(missing, t)
		}
	}
	return missing
}

// missingToolsError is the error for missing host tools: it names them and
// the one apt-get command that installs them.
func missingToolsError(missing []HostTool) error {
	var names, pkgs []string
	seen := map[string]bool{}
	for _, t := range missing {
		names = append(names, t.Name)
		if !seen[t.Package] {
			seen[t.Package] = true
			pkgs = append(pkgs, t.Package)
		}
	}
	return errdefs.Unavailablef("building the guest image needs %s: apt-get install %s",
		strings.Join(names, ", "), strings.Join(pkgs, " "))
}

// String names the tool and its package.
func (t HostTool) String() string { return fmt.Sprintf("%s (package %s)", t.Name, t.Package) }
