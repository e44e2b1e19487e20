package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest/pid1"
	"github.com/agentiso/agentiso/internal/hostcmd"
)

// DefaultPackages are installed into the root filesystem on top of
// debootstrap's minbase: what an agent needs to clone, build and test
// software. No SSH server: the host reaches the guest over its channel.
var DefaultPackages = []string{
	"build-essential", "ca-certificates", "curl", "file", "git", "iproute2",
	"iputils-ping", "jq", "less", "netbase", "openssh-client", "pkg-config",
	"procps", "python3", "python3-pip", "python3-venv", "unzip", "xz-utils", "zip",
}

// forbiddenPackages are refused in any package list: a workspace runs no
// remote-login server (the channel is the only way in).
var forbiddenPackages = []string{"openssh-server", "dropbear", "dropbear-bin", "tinysshd", "telnetd"}

// forbiddenFiles must not exist in a finished root filesystem, whichever
// package brought them.
var forbiddenFiles = []string{"usr/sbin/sshd", "usr/sbin/dropbear", "usr/sbin/tinysshd"}

// packageName is Debian policy's package name syntax.
var packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// checkPackages validates a package list; the error names the field and the
// package.
func checkPackages(field string, pkgs []string) error {
	for _, p := range pkgs {
		if !packageName.MatchString(p) {
			return errdefs.Invalidf("%s: %q is not a Debian package name", field, p)
		}
		for _, f := range forbiddenPackages {
			if p == f {
				return errdefs.Invalidf("%s: %s is refused: a workspace runs no remote-login server", field, p)
			}
		}
	}
	return nil
}

// debootstrap installs a minbase Debian with the extra packages into dir.
// The archive keyring is passed explicitly so that an unverifiable Release
// file is an error, never a warning.
func debootstrap(ctx context.Context, dir, suite, mirror string, packages []string) error {
	args := []string{"--variant=minbase", "--components=main", "--keyring=" + archiveKeyring}
	if len(packages) > 0 {
		args = append(args, "--include="+strings.Join(packages, ","))
	}
	args = append(args, suite, dir, mirror)
	if _, err := hostcmd.Run(ctx, "debootstrap", args...); err != nil {
		return fmt.Errorf("debootstrap %s: %w", suite, err)
	}
	return nil
}

// hostsFile is the guest's /etc/hosts until the host configures a hostname.
var hostsFile = `127.0.0.1	localhost
127.0.1.1	` + pid1.Hostname + `
::1	localhost ip6-localhost ip6-loopback
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// customiseRootfs turns a debootstrapped tree into a workspace root. It
// works through an os.Root, so a symlink in the tree (resolv.conf often is
// one) can never lead a write out onto the host.
func customiseRootfs(dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("customising the root filesystem: %w", err)
	}
	defer root.Close()

	if err := lockPasswords(root, "etc/shadow"); err != nil {
		return err
	}
	files := []struct {
		name string
		data string
		perm fs.FileMode
	}{
		{"etc/hostname", pid1.Hostname + "\n", 0o644},
		{"etc/hosts", hostsFile, 0o644},
		// Empty until the host configures the network.
		{"etc/resolv.conf", "", 0o644},
		// Empty: every VM gets its own at first boot, never a shared one.
		{"etc/machine-id", "", 0o444},
	}
	for _, f := range files {
		if err := root.Remove(f.name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("customising the root filesystem: %w", err)
		}
		if err := root.WriteFile(f.name, []byte(f.data), f.perm); err != nil {
			return fmt.Errorf("customising the root filesystem: %w", err)
		}
	}
	if err := root.Remove("var/lib/dbus/machine-id"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("customising the root filesystem: %w", err)
	}
	if err := root.Mkdir("workspace", 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("customising the root filesystem: %w", err)
	}
	// The package lists and caches are stale the day after the build and
	// large; `apt-get update` in the guest fetches fresh ones.
	for _, d := range []string{"var/lib/apt/lists", "var/cache/apt/archives", "var/cache/apt"} {
		if err := removeFilesIn(root, d); err != nil {
			return fmt.Errorf("customising the root filesystem: %w", err)
		}
	}
	for _, f := range forbiddenFiles {
		if _, err := root.Lstat(f); err == nil {
			return fmt.Errorf("customising the root filesystem: /%s exists: a workspace runs no remote-login server", f)
		}
	}
	return nil
}

// removeFilesIn removes the regular files directly in dir, keeping
// subdirectories (apt wants lists/partial and archives/partial to exist).
func removeFilesIn(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	entries, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type().IsRegular() && e.Name() != "lock" {
			if err := root.Remove(path.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// lockPasswords locks root's password and any empty one in the shadow file
// (finding M-20): no account in a workspace can be logged into with a
// password.
func lockPasswords(root *os.Root, name string) error {
	b, err := root.ReadFile(name)
	if err != nil {
		return fmt.Errorf("locking passwords: %w", err)
	}
	out, err := lockShadow(string(b))
	if err != nil {
		return fmt.Errorf("locking passwords: %w", err)
	}
	// Truncate in place, keeping the file's owner and mode (root:shadow 0640).
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("locking passwords: %w", err)
	}
	if _, err := f.WriteString(out); err != nil {
		f.Close()
		return fmt.Errorf("locking passwords: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("locking passwords: %w", err)
	}
	return nil
}

// lockShadow returns the shadow file with root's password field and every
// empty one set to "*" (no password matches it).
func lockShadow(shadow string) (string, error) {
	var out strings.Builder
	sawRoot := false
	sc := bufio.NewScanner(strings.NewReader(shadow))
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Split(line, ":")
		if line != "" && len(fields) >= 2 {
			if fields[0] == "root" {
				sawRoot = true
				fields[1] = "*"
			} else if fields[1] == "" {
				fields[1] = "*"
			}
			line = strings.Join(fields, ":")
		}
		out.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	if !sawRoot {
		return "", errors.New("no root entry in the shadow file")
	}
	return out.String(), nil
}

// mkfsExt4 makes a sparse raw image of size bytes holding an ext4 built from
// dir, without mounting anything (mke2fs -d).
func mkfsExt4(ctx context.Context, dir, raw string, size int64) error {
	f, err := os.OpenFile(raw, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("making the ext4 image: %w", err)
	}
	err = f.Truncate(size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("making the ext4 image: %w", err)
	}
	if _, err := hostcmd.Run(ctx, "mkfs.ext4", "-q", "-F", "-L", "agentiso-root", "-d", dir, raw); err != nil {
		return fmt.Errorf("making the ext4 image: %w", err)
	}
	return nil
}

// convertQcow2 converts the raw image to qcow2.
func convertQcow2(ctx context.Context, raw, qcow2 string) error {
	if _, err := hostcmd.Run(ctx, "qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", raw, qcow2); err != nil {
		return fmt.Errorf("converting the root filesystem to qcow2: %w", err)
	}
	return nil
}
