package image

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agentiso/agentiso/internal/errdefs"
)

func TestBuildOptionsValidation(t *testing.T) {
	good := BuildOptions{Dir: "/var/lib/agentiso/images/default", GuestBinary: "/tmp/agentiso-guest"}
	o, err := good.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if o.Suite != DefaultSuite || o.Mirror != DefaultMirror || o.CacheDir != DefaultCacheDir ||
		o.KernelPackage != DefaultKernelPackage || o.RootfsSize != DefaultRootfsSize || !slices.Equal(o.Packages, DefaultPackages) {
		t.Errorf("defaults not applied: %+v", o)
	}
	tests := []struct {
		field string
		edit  func(*BuildOptions)
	}{
		{"dir", func(o *BuildOptions) { o.Dir = "" }},
		{"dir", func(o *BuildOptions) { o.Dir = "images/default" }},
		{"cache_dir", func(o *BuildOptions) { o.CacheDir = "cache" }},
		{"guest_binary", func(o *BuildOptions) { o.GuestBinary = "" }},
		{"suite", func(o *BuildOptions) { o.Suite = "bookworm --foreign" }},
		{"mirror", func(o *BuildOptions) { o.Mirror = "ftp://deb.debian.org/debian" }},
		{"mirror", func(o *BuildOptions) { o.Mirror = "http://" }},
		{"kernel_package", func(o *BuildOptions) { o.KernelPackage = "linux image" }},
		{"rootfs_size", func(o *BuildOptions) { o.RootfsSize = 100 << 20 }},
		{"packages", func(o *BuildOptions) { o.Packages = []string{"git", "openssh-server"} }},
		{"extra_packages", func(o *BuildOptions) { o.ExtraPackages = []string{"vim,openssh-server"} }},
	}
	for _, tt := range tests {
		o := good
		tt.edit(&o)
		_, err := o.withDefaults()
		if !errdefs.Is(err, errdefs.Invalid) || !strings.HasPrefix(errdefs.Public(err), tt.field+":") {
			t.Errorf("%+v: err = %v, want Invalid naming %s", o, err, tt.field)
		}
	}
}

// TestCacheKeys checks what each cache key depends on: a new guest binary or
// kernel changes the image but not the root filesystem, so it never reruns
// debootstrap; package order does not matter.
func TestCacheKeys(t *testing.T) {
	opts, err := BuildOptions{Dir: "/x/default", GuestBinary: "/g", ExtraPackages: []string{"vim", "git"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	rootfsKey := func(o BuildOptions) string {
		return hashOf(rootfsInputs{Builder: BuilderVersion, Suite: o.Suite, Mirror: o.Mirror, Packages: o.packages(), Size: o.RootfsSize})
	}
	base := rootfsKey(opts)

	reordered := opts
	reordered.Packages = slices.Clone(opts.Packages)
	slices.Reverse(reordered.Packages)
	reordered.ExtraPackages = []string{"git", "vim", "vim"}
	if rootfsKey(reordered) != base {
		t.Error("package order or duplicates change the rootfs key")
	}
	for name, edit := range map[string]func(*BuildOptions){
		"suite":    func(o *BuildOptions) { o.Suite = "trixie" },
		"mirror":   func(o *BuildOptions) { o.Mirror = "http://mirror.example/debian" },
		"packages": func(o *BuildOptions) { o.ExtraPackages = []string{"emacs"} },
		"size":     func(o *BuildOptions) { o.RootfsSize = 4 << 30 },
	} {
		o := opts
		edit(&o)
		if rootfsKey(o) == base {
			t.Errorf("changing %s keeps the rootfs key", name)
		}
	}

	k := kernelPackage{Name: "linux-image-6.1.0-56-cloud-amd64", Version: "6.1.192-2", SHA256: strings.Repeat("a", 64)}
	img := imageInputs{Builder: BuilderVersion, Rootfs: base, Kernel: k, Modules: guestModules, Vmlinux: true, GuestSHA256: "g1", KernelArgs: KernelArgs()}
	h := hashOf(img)
	if hashOf(img) != h {
		t.Fatal("hash is not stable")
	}
	for name, edit := range map[string]func(*imageInputs){
		"guest binary":   func(i *imageInputs) { i.GuestSHA256 = "g2" },
		"kernel version": func(i *imageInputs) { i.Kernel.Version = "6.1.193-1" },
		"kernel deb":     func(i *imageInputs) { i.Kernel.SHA256 = strings.Repeat("b", 64) },
		"rootfs":         func(i *imageInputs) { i.Rootfs = "other" },
		"vmlinux":        func(i *imageInputs) { i.Vmlinux = false },
		"modules":        func(i *imageInputs) { i.Modules = []string{"virtio"} },
		"kernel args":    func(i *imageInputs) { i.KernelArgs = []string{"agentiso.root=/dev/vdb"} },
	} {
		i := img
		edit(&i)
		if hashOf(i) == h {
			t.Errorf("changing the %s keeps the image hash", name)
		}
	}
}

// writeImage makes a complete-looking image directory.
func writeImage(t *testing.T, dir string, m Manifest) {
	t.Helper()
	must(t, os.MkdirAll(dir, 0o755))
	for _, f := range []string{m.Kernel, m.Initrd, m.Rootfs} {
		must(t, os.WriteFile(filepath.Join(dir, f), []byte(f), 0o444))
	}
	must(t, writeManifest(dir, m))
}

func TestUpToDate(t *testing.T) {
	m := Manifest{Name: "default", Hash: "h1", Kernel: "kernel-1", Initrd: "initrd-1", Rootfs: "rootfs-1.qcow2"}
	dir := filepath.Join(t.TempDir(), "default")
	if _, ok := upToDate(dir, "h1"); ok {
		t.Error("a missing image is up to date")
	}
	writeImage(t, dir, m)
	img, ok := upToDate(dir, "h1")
	if !ok {
		t.Fatal("a complete image with the same hash is not up to date")
	}
	if img.RootfsPath() != filepath.Join(dir, "rootfs-1.qcow2") {
		t.Errorf("rootfs path %s", img.RootfsPath())
	}
	if _, ok := upToDate(dir, "h2"); ok {
		t.Error("an image built from other inputs is up to date")
	}
	must(t, os.Remove(filepath.Join(dir, "initrd-1")))
	if _, ok := upToDate(dir, "h1"); ok {
		t.Error("an image with a missing file is up to date")
	}
}

func TestInstall(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "default")
	newWork := func(m Manifest) string {
		t.Helper()
		work, err := os.MkdirTemp(parent, ".default.build-")
		must(t, err)
		for _, f := range []string{m.Kernel, m.Initrd, m.Rootfs} {
			must(t, os.WriteFile(filepath.Join(work, f), []byte(f), 0o444))
		}
		return work
	}

	// A first install renames the work directory into place.
	m1 := Manifest{Name: "default", Hash: "h1", Kernel: "kernel-1", Initrd: "initrd-1", Rootfs: "rootfs-1.qcow2"}
	kept, err := install(newWork(m1), dir, m1)
	if err != nil || len(kept) != 0 {
		t.Fatalf("install: kept %v, err %v", kept, err)
	}
	img, err := Load(dir)
	must(t, err)
	if img.Manifest.Hash != "h1" {
		t.Errorf("manifest hash %s", img.Manifest.Hash)
	}

	// A new agent: new initrd, same base. The old initrd goes.
	m2 := m1
	m2.Hash, m2.Initrd = "h2", "initrd-2"
	work := newWork(m2)
	if kept, err = install(work, dir, m2); err != nil || len(kept) != 0 {
		t.Fatalf("install: kept %v, err %v", kept, err)
	}
	if diff := cmp.Diff([]string{"initrd-2", "kernel-1", ManifestFile, "rootfs-1.qcow2"}, ls(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}

	// A new base: the old one stays, for overlays that are backed by it.
	m3 := m2
	m3.Hash, m3.Rootfs, m3.Kernel = "h3", "rootfs-3.qcow2", "kernel-3"
	if kept, err = install(newWork(m3), dir, m3); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"rootfs-1.qcow2"}, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"initrd-2", "kernel-3", ManifestFile, "rootfs-1.qcow2", "rootfs-3.qcow2"}, ls(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if img, err = Load(dir); err != nil || img.Manifest.Hash != "h3" {
		t.Errorf("after the third install: %+v %v", img, err)
	}
}

func ls(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestPlaceByContent(t *testing.T) {
	work := t.TempDir()
	cache := t.TempDir()
	src := filepath.Join(cache, "cached.qcow2")
	must(t, os.WriteFile(src, []byte("base"), 0o444))
	name, err := placeByContent(src, work, "rootfs-", ".qcow2")
	must(t, err)
	// sha256("base")
	if name != "rootfs-cae662172fd450bb.qcow2" {
		t.Errorf("name %s", name)
	}
	st, err := os.Stat(filepath.Join(work, name))
	must(t, err)
	if st.Mode().Perm() != 0o444 {
		t.Errorf("mode %v, want read-only", st.Mode().Perm())
	}
	if _, err := os.Stat(src); err != nil {
		t.Errorf("the cached file is gone: %v", err)
	}
	inWork := filepath.Join(work, "initrd")
	must(t, os.WriteFile(inWork, []byte("base"), 0o644))
	name, err = placeByContent(inWork, work, "initrd-", "")
	must(t, err)
	if name != "initrd-cae662172fd450bb" {
		t.Errorf("name %s", name)
	}
	if _, err := os.Stat(inWork); !os.IsNotExist(err) {
		t.Error("a file in the work directory was copied, not renamed")
	}
}

func TestStepString(t *testing.T) {
	tests := map[string]Step{
		"[5/9] debootstrap rootfs...":                           {Index: 5, Total: 9, Name: "debootstrap rootfs"},
		"[5/9] debootstrap rootfs: done in 1m7s (211 packages)": {Index: 5, Total: 9, Name: "debootstrap rootfs", Done: true, Elapsed: 67*time.Second + 300*time.Millisecond, Detail: "211 packages"},
		"[4/9] writing initramfs: done in 7ms":                  {Index: 4, Total: 9, Name: "writing initramfs", Done: true, Elapsed: 7200 * time.Microsecond},
		"[2/9] downloading kernel package: cached (linux.deb)":  {Index: 2, Total: 9, Name: "downloading kernel package", Done: true, Cached: true, Detail: "linux.deb"},
		"[3/9] extracting kernel and modules: done in 1.6s":     {Index: 3, Total: 9, Name: "extracting kernel and modules", Done: true, Elapsed: 1612 * time.Millisecond},
		"[9/9] image up to date: cached (/var/lib/agentiso/x)":  {Index: 9, Total: 9, Name: "image up to date", Done: true, Cached: true, Detail: "/var/lib/agentiso/x"},
	}
	for want, s := range tests {
		if got := s.String(); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	var buf bytes.Buffer
	ProgressWriter(&buf)(Step{Index: 1, Total: 9, Name: "resolving kernel package"})
	if buf.String() != "[1/9] resolving kernel package...\n" {
		t.Errorf("ProgressWriter wrote %q", buf.String())
	}
}

func TestMountsUnderUnescapes(t *testing.T) {
	if got := unescapeMountPath(`/var/cache/a\040b/root/proc`); got != "/var/cache/a b/root/proc" {
		t.Errorf("got %q", got)
	}
	if got := unescapeMountPath(`/plain\path`); got != `/plain\path` {
		t.Errorf("got %q", got)
	}
	// Nothing is mounted below a fresh temporary directory.
	if got := mountsUnder(t.TempDir()); len(got) != 0 {
		t.Errorf("mounts under a fresh directory: %v", got)
	}
}
