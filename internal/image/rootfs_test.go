package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentiso/agentiso/internal/errdefs"
)

// TestM20_RootPasswordLocked: no account in the base image can be logged
// into with a password (finding M-20: the original shipped root:agentiso).
func TestM20_RootPasswordLocked(t *testing.T) {
	in := "root:$y$j9T$abc$def:19000:0:99999:7:::\n" +
		"daemon:*:19000:0:99999:7:::\n" +
		"nobody::19000:0:99999:7:::\n" +
		"user:!:19000:0:99999:7:::\n"
	got, err := lockShadow(in)
	if err != nil {
		t.Fatal(err)
	}
	want := "root:*:19000:0:99999:7:::\n" +
		"daemon:*:19000:0:99999:7:::\n" +
		"nobody:*:19000:0:99999:7:::\n" +
		"user:!:19000:0:99999:7:::\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := lockShadow("daemon:*:1:0:99999:7:::\n"); err == nil {
		t.Error("a shadow file without root was accepted")
	}

	// And through the whole customisation, on a tree.
	root := fakeRootTree(t)
	if err := customiseRootfs(root); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "etc/shadow"))
	must(t, err)
	if !strings.HasPrefix(string(b), "root:*:") {
		t.Errorf("root's shadow entry after customising: %q", strings.SplitN(string(b), "\n", 2)[0])
	}
	st, err := os.Stat(filepath.Join(root, "etc/shadow"))
	must(t, err)
	if st.Mode().Perm() != 0o640 {
		t.Errorf("etc/shadow mode %v, want 0640 kept", st.Mode().Perm())
	}
}

// fakeRootTree makes the parts of a debootstrapped tree that customising
// touches. Its resolv.conf is a symlink out of the tree, to a file beside it.
func fakeRootTree(t *testing.T) string {
	t.Helper()
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	for _, d := range []string{"etc", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dbus", "usr/sbin"} {
		must(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	files := map[string]string{
		"etc/shadow":                        "root:$6$hash:19000:0:99999:7:::\n",
		"etc/hostname":                      "builder-host\n",
		"etc/machine-id":                    "0123456789abcdef0123456789abcdef\n",
		"var/lib/apt/lists/deb.debian.org_": "index",
		"var/lib/apt/lists/lock":            "",
		"var/cache/apt/pkgcache.bin":        "cache",
		"var/cache/apt/archives/git.deb":    "deb",
	}
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(root, name), []byte(data), 0o644))
	}
	must(t, os.Chmod(filepath.Join(root, "etc/shadow"), 0o640))
	outside := filepath.Join(parent, "host-resolv.conf")
	must(t, os.WriteFile(outside, []byte("nameserver 192.0.2.1\n"), 0o644))
	must(t, os.Symlink(outside, filepath.Join(root, "etc/resolv.conf")))
	must(t, os.Symlink("/etc/machine-id", filepath.Join(root, "var/lib/dbus/machine-id")))
	return root
}

func TestCustomiseRootfs(t *testing.T) {
	root := fakeRootTree(t)
	if err := customiseRootfs(root); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, name))
		must(t, err)
		return string(b)
	}
	if got := read("etc/hostname"); got != "workspace\n" {
		t.Errorf("hostname %q", got)
	}
	if got := read("etc/hosts"); !strings.Contains(got, "127.0.1.1\tworkspace\n") || !strings.Contains(got, "127.0.0.1\tlocalhost\n") {
		t.Errorf("hosts %q", got)
	}
	if got := read("etc/machine-id"); got != "" {
		t.Errorf("machine-id %q, want empty: every VM makes its own", got)
	}
	if got := read("etc/resolv.conf"); got != "" {
		t.Errorf("resolv.conf %q, want empty", got)
	}
	if fi, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("resolv.conf is not a regular file: %v %v", fi, err)
	}
	if got, err := os.ReadFile(filepath.Join(filepath.Dir(root), "host-resolv.conf")); err != nil || string(got) != "nameserver 192.0.2.1\n" {
		t.Errorf("the file the symlink pointed to (outside the tree) changed: %q %v", got, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "var/lib/dbus/machine-id")); !os.IsNotExist(err) {
		t.Errorf("var/lib/dbus/machine-id still there: %v", err)
	}
	if st, err := os.Stat(filepath.Join(root, "workspace")); err != nil || !st.IsDir() {
		t.Errorf("/workspace: %v", err)
	}
	for _, gone := range []string{"var/lib/apt/lists/deb.debian.org_", "var/cache/apt/pkgcache.bin", "var/cache/apt/archives/git.deb"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s still there", gone)
		}
	}
	for _, kept := range []string{"var/lib/apt/lists/partial", "var/lib/apt/lists/lock", "var/cache/apt/archives/partial"} {
		if _, err := os.Lstat(filepath.Join(root, kept)); err != nil {
			t.Errorf("%s removed: %v", kept, err)
		}
	}
}

func TestCustomiseRootfsRefusesAnSSHServer(t *testing.T) {
	root := fakeRootTree(t)
	must(t, os.WriteFile(filepath.Join(root, "usr/sbin/sshd"), []byte("elf"), 0o755))
	if err := customiseRootfs(root); err == nil || !strings.Contains(err.Error(), "sshd") {
		t.Errorf("err = %v, want a refusal naming sshd", err)
	}
}

func TestCheckPackages(t *testing.T) {
	if err := checkPackages("packages", DefaultPackages); err != nil {
		t.Errorf("the defaults are refused: %v", err)
	}
	for _, p := range DefaultPackages {
		for _, f := range forbiddenPackages {
			if p == f {
				t.Errorf("the defaults include %s", p)
			}
		}
	}
	for _, bad := range []string{"openssh-server", "dropbear", "git,openssh-server", "Git", "-x", "a b", "", "x"} {
		err := checkPackages("extra_packages", []string{bad})
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), "extra_packages: ") {
			t.Errorf("%q: error %q is not an Invalid naming the field", bad, err)
		}
	}
}
