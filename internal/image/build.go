package image

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/guest/pid1"
)

// BuilderVersion is part of every cache key: bump it whenever the builder
// would make a different image from the same inputs.
const BuilderVersion = "1"

// Defaults for BuildOptions.
const (
	DefaultCacheDir      = "/var/cache/agentiso"
	DefaultSuite         = "bookworm"
	DefaultMirror        = "http://deb.debian.org/debian"
	DefaultKernelPackage = "linux-image-cloud-amd64"
	DefaultRootfsSize    = 8 << 30
	minRootfsSize        = 1 << 30
)

// RootDevice is the guest's root disk: the first virtio-blk device.
const RootDevice = "/dev/vda"

// KernelArgs returns the kernel command-line parameters every image needs.
// The VM runner adds its own (console, TSC rate, ...) around them; a built
// image carries them in its manifest (Image.KernelArgs).
//
// cryptomgr.notests skips the crypto self-tests that Debian's kernel runs at
// boot: under TCG they take ~0.35 s of a ~1.4 s kernel boot (measured here,
// 5 boots each). They check the kernel's own cipher implementations, not
// anything a workspace relies on for isolation.
func KernelArgs() []string {
	return []string{pid1.RootParam + "=" + RootDevice, "cryptomgr.notests"}
}

// unpackedKernelDir is where the kernel .deb is unpacked in the build
// directory; it is removed once the initramfs has the modules.
const unpackedKernelDir = "kernel-package"

// buildSteps is the number of steps Build reports.
const buildSteps = 9

// BuildOptions are the inputs of Build. Zero values take the defaults.
type BuildOptions struct {
	// Dir is the image directory to make or update, e.g.
	// /var/lib/agentiso/images/default. Required.
	Dir string
	// CacheDir keeps the kernel .deb and built root filesystems between
	// builds. Default DefaultCacheDir.
	CacheDir string
	// Suite, Mirror: the Debian release and where debootstrap gets it.
	Suite  string
	Mirror string
	// Packages replaces DefaultPackages when non-nil; ExtraPackages are
	// added to either.
	Packages      []string
	ExtraPackages []string
	// KernelPackage is resolved through the host's apt index; a metapackage
	// is followed to the kernel it depends on.
	KernelPackage string
	// GuestBinary is the agentiso-guest binary: static (CGO_ENABLED=0), it
	// becomes the initramfs's /init. Required.
	GuestBinary string
	// RootfsSize is the base image's virtual size in bytes.
	RootfsSize int64
	// CompressedKernel keeps the distribution's compressed bzImage instead
	// of extracting the uncompressed vmlinux (which boots faster).
	CompressedKernel bool
	// Force rebuilds everything, the cached root filesystem included (e.g.
	// to pick up security updates from the mirror).
	Force bool
	// Progress, if set, is called as each step starts and ends.
	Progress func(Step)
	// Logger gets warnings and detail; nil discards them.
	Logger *slog.Logger
}

func (o BuildOptions) withDefaults() (BuildOptions, error) {
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir
	}
	if o.Suite == "" {
		o.Suite = DefaultSuite
	}
	if o.Mirror == "" {
		o.Mirror = DefaultMirror
	}
	if o.Packages == nil {
		o.Packages = DefaultPackages
	}
	if o.KernelPackage == "" {
		o.KernelPackage = DefaultKernelPackage
	}
	if o.RootfsSize == 0 {
		o.RootfsSize = DefaultRootfsSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case o.Dir == "" || !filepath.IsAbs(o.Dir):
		return o, errdefs.Invalidf("dir: must be an absolute path")
	case !filepath.IsAbs(o.CacheDir):
		return o, errdefs.Invalidf("cache_dir: must be an absolute path")
	case o.GuestBinary == "":
		return o, errdefs.Invalidf("guest_binary: required")
	case !suiteName.MatchString(o.Suite):
		return o, errdefs.Invalidf("suite: %q is not a Debian suite name", o.Suite)
	case !packageName.MatchString(o.KernelPackage):
		return o, errdefs.Invalidf("kernel_package: %q is not a Debian package name", o.KernelPackage)
	case o.RootfsSize < minRootfsSize:
		return o, errdefs.Invalidf("rootfs_size: at least %d bytes", int64(minRootfsSize))
	}
	if u, err := url.Parse(o.Mirror); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return o, errdefs.Invalidf("mirror: %q is not an http(s) URL", o.Mirror)
	}
	if err := checkPackages("packages", o.Packages); err != nil {
		return o, err
	}
	if err := checkPackages("extra_packages", o.ExtraPackages); err != nil {
		return o, err
	}
	o.Dir = filepath.Clean(o.Dir)
	return o, nil
}

var suiteName = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)

// packages is the sorted, deduplicated package list.
func (o BuildOptions) packages() []string {
	all := slices.Concat(o.Packages, o.ExtraPackages)
	slices.Sort(all)
	return slices.Compact(all)
}

// rootfsInputs are what the root filesystem is made from: its cache key.
// The kernel and the guest binary live only in the initramfs, so a new
// agent rebuilds the initramfs, never the slow debootstrap.
type rootfsInputs struct {
	Builder  string   `json:"builder"`
	Suite    string   `json:"suite"`
	Mirror   string   `json:"mirror"`
	Packages []string `json:"packages"`
	Size     int64    `json:"size"`
}

// imageInputs are what the whole image is made from: Manifest.Hash.
type imageInputs struct {
	Builder     string        `json:"builder"`
	Rootfs      string        `json:"rootfs"`
	Kernel      kernelPackage `json:"kernel"`
	Modules     []string      `json:"modules"`
	Vmlinux     bool          `json:"vmlinux"`
	GuestSHA256 string        `json:"guest_sha256"`
	KernelArgs  []string      `json:"kernel_args"`
}

// hashOf is the SHA-256 of v's JSON encoding (struct fields encode in a
// fixed order, so equal inputs hash equal).
func hashOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("hashing build inputs: %v", err)) // plain structs always encode
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// upToDate returns the image in dir if it is complete and was built from
// inputs that hash to hash.
func upToDate(dir, hash string) (*Image, bool) {
	img, err := Load(dir)
	if err != nil || img.Manifest.Hash != hash {
		return nil, false
	}
	for _, p := range []string{img.KernelPath(), img.InitrdPath(), img.RootfsPath()} {
		if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
			return nil, false
		}
	}
	return img, true
}

// Build makes the guest image in opts.Dir: a kernel, an initramfs whose init
// is the guest binary, and a read-only base qcow2 with a Debian root
// filesystem. It is idempotent: when the image was built from the same
// inputs it returns at once. The image is assembled in a temporary directory
// next to Dir and its manifest is written last, so a crash never leaves an
// image that looks complete. Build needs root and the host tools that
// CheckHostTools lists.
func Build(ctx context.Context, opts BuildOptions) (*Image, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errdefs.PermissionDeniedf("building the guest image needs root (debootstrap, device nodes, file ownership)")
	}
	if missing := CheckHostTools(); len(missing) > 0 {
		return nil, missingToolsError(missing)
	}
	if err := checkGuestBinary(opts.GuestBinary); err != nil {
		return nil, err
	}
	parent, name := filepath.Dir(opts.Dir), filepath.Base(opts.Dir)
	for _, d := range []string{parent, opts.CacheDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("making %s: %w", d, err)
		}
	}
	unlock, err := lockFile(ctx, filepath.Join(parent, "."+name+".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	unlockCache, err := lockFile(ctx, filepath.Join(opts.CacheDir, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlockCache()

	b := &builder{opts: opts, log: opts.Logger, p: &progress{report: opts.Progress, total: buildSteps}}
	return b.build(ctx, parent, name)
}

// builder is one run of Build.
type builder struct {
	opts BuildOptions
	log  *slog.Logger
	p    *progress
}

func (b *builder) build(ctx context.Context, parent, name string) (*Image, error) {
	opts, p := b.opts, b.p

	p.begin("resolving kernel package")
	kpkg, err := resolveKernelPackage(ctx, opts.KernelPackage)
	if err != nil {
		return nil, err
	}
	guestSHA, err := fileSHA256(opts.GuestBinary)
	if err != nil {
		return nil, fmt.Errorf("hashing the guest binary: %w", err)
	}
	rootfsHash := hashOf(rootfsInputs{
		Builder: BuilderVersion, Suite: opts.Suite, Mirror: opts.Mirror,
		Packages: opts.packages(), Size: opts.RootfsSize,
	})
	inputs := imageInputs{
		Builder: BuilderVersion, Rootfs: rootfsHash, Kernel: kpkg, Modules: guestModules,
		Vmlinux: !opts.CompressedKernel, GuestSHA256: guestSHA, KernelArgs: KernelArgs(),
	}
	hash := hashOf(inputs)
	p.done(kpkg.String())

	if !opts.Force {
		if img, ok := upToDate(opts.Dir, hash); ok {
			p.upToDate(opts.Dir)
			return img, nil
		}
	}

	removeStale(b.log, parent, "."+name+".build-")
	work, err := os.MkdirTemp(parent, "."+name+".build-")
	if err != nil {
		return nil, fmt.Errorf("making the build directory: %w", err)
	}
	defer os.RemoveAll(work) // after a successful install, nothing is left in it
	if err := os.Chmod(work, 0o755); err != nil {
		return nil, fmt.Errorf("making the build directory: %w", err)
	}

	kernel, release, err := b.kernel(ctx, kpkg, work)
	if err != nil {
		return nil, err
	}
	initrd, err := b.initramfs(work, kernel)
	if err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(work, unpackedKernelDir)); err != nil {
		return nil, fmt.Errorf("removing the unpacked kernel package: %w", err)
	}
	rootfs, err := b.rootfs(ctx, rootfsHash)
	if err != nil {
		return nil, err
	}

	p.begin("installing image")
	m := Manifest{
		Name:              name,
		Hash:              hash,
		KernelVersion:     release,
		KernelPackage:     kpkg.String(),
		KernelArgs:        KernelArgs(),
		RootfsVirtualSize: opts.RootfsSize,
		RootfsHash:        rootfsHash,
		Suite:             opts.Suite,
		GuestAgentSHA256:  guestSHA,
		BuiltAt:           time.Now().UTC().Format(time.RFC3339),
	}
	if m.Kernel, err = placeByContent(kernel.path, work, "kernel-", ""); err != nil {
		return nil, err
	}
	if m.Initrd, err = placeByContent(initrd, work, "initrd-", ""); err != nil {
		return nil, err
	}
	if m.Rootfs, err = placeByContent(rootfs, work, "rootfs-", ".qcow2"); err != nil {
		return nil, err
	}
	kept, err := install(work, opts.Dir, m)
	if err != nil {
		return nil, err
	}
	detail := opts.Dir
	if len(kept) > 0 {
		detail += fmt.Sprintf("; kept %d older base(s) that workspaces may still use: %s", len(kept), strings.Join(kept, " "))
	}
	p.done(detail)
	return Load(opts.Dir)
}

// builtKernel is the kernel file Build made and the modules for it.
type builtKernel struct {
	path    string
	format  string // "vmlinux" or "bzImage"
	modules []initramfsModule
}

// kernel downloads, unpacks and (unless told not to) decompresses the
// kernel, and picks the modules the guest loads.
func (b *builder) kernel(ctx context.Context, kpkg kernelPackage, work string) (*builtKernel, string, error) {
	p := b.p
	p.begin("downloading kernel package")
	deb, cached, err := downloadKernel(ctx, kpkg, b.opts.CacheDir)
	if err != nil {
		return nil, "", err
	}
	if cached {
		p.doneCached(filepath.Base(deb))
	} else {
		p.done(filepath.Base(deb))
	}

	p.begin("extracting kernel and modules")
	// The caller removes it once the modules are in the initramfs.
	pkgDir := filepath.Join(work, unpackedKernelDir)
	ek, err := extractKernel(ctx, deb, pkgDir)
	if err != nil {
		return nil, "", err
	}
	k := &builtKernel{path: filepath.Join(work, "kernel"), format: "bzImage"}
	if !b.opts.CompressedKernel {
		if _, err := extractVmlinux(ctx, ek.BzImage, k.path); err != nil {
			b.log.Warn("keeping the compressed kernel", "err", err)
		} else {
			k.format = "vmlinux"
		}
	}
	if k.format == "bzImage" {
		if err := copyFile(ek.BzImage, k.path); err != nil {
			return nil, "", err
		}
	}
	tree, err := openModuleTree(ek.ModulesDir)
	if err != nil {
		return nil, "", err
	}
	order, err := resolveModules(guestModules, func(n string) bool { return tree.builtin[n] }, tree.depends)
	if err != nil {
		return nil, "", err
	}
	for _, name := range order {
		rel := tree.files[name]
		k.modules = append(k.modules, initramfsModule{
			Src: filepath.Join(ek.ModulesDir, rel),
			Dst: "/lib/modules/" + ek.Release + "/" + filepath.ToSlash(rel),
		})
	}
	p.done(fmt.Sprintf("%s, %s, modules: %s", ek.Release, k.format, strings.Join(order, " ")))
	return k, ek.Release, nil
}

// initramfs writes the initramfs into work.
func (b *builder) initramfs(work string, k *builtKernel) (string, error) {
	b.p.begin("writing initramfs")
	path := filepath.Join(work, "initrd")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", fmt.Errorf("writing initramfs: %w", err)
	}
	if err := writeInitramfs(f, b.opts.GuestBinary, k.modules); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing initramfs: %w", err)
	}
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("writing initramfs: %w", err)
	}
	b.p.done(fmt.Sprintf("%.1f MiB", float64(st.Size())/(1<<20)))
	return path, nil
}

// rootfs returns the cached base qcow2 for the inputs hash, building it
// first when the cache does not have it.
func (b *builder) rootfs(ctx context.Context, hash string) (string, error) {
	p := b.p
	dir := filepath.Join(b.opts.CacheDir, "rootfs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("making the rootfs cache: %w", err)
	}
	final := filepath.Join(dir, hash+".qcow2")
	if _, err := os.Stat(final); err == nil && !b.opts.Force {
		for _, s := range []string{"debootstrap rootfs", "customising rootfs", "making ext4 filesystem", "converting to qcow2"} {
			p.cached(s, "")
		}
		return final, nil
	}
	removeStale(b.log, dir, ".build-")
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return "", fmt.Errorf("building the root filesystem: %w", err)
	}
	defer removeTree(b.log, tmp)
	tree := filepath.Join(tmp, "root")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return "", fmt.Errorf("building the root filesystem: %w", err)
	}

	pkgs := b.opts.packages()
	p.begin("debootstrap rootfs")
	if err := debootstrap(ctx, tree, b.opts.Suite, b.opts.Mirror, pkgs); err != nil {
		return "", err
	}
	p.done(fmt.Sprintf("%s, %d packages installed", b.opts.Suite, countInstalled(tree)))

	p.begin("customising rootfs")
	if err := customiseRootfs(tree); err != nil {
		return "", err
	}
	p.done("")

	p.begin("making ext4 filesystem")
	raw := filepath.Join(tmp, "rootfs.raw")
	if err := mkfsExt4(ctx, tree, raw, b.opts.RootfsSize); err != nil {
		return "", err
	}
	p.done(fmt.Sprintf("%d GiB virtual", b.opts.RootfsSize>>30))

	p.begin("converting to qcow2")
	qcow := filepath.Join(tmp, "rootfs.qcow2")
	if err := convertQcow2(ctx, raw, qcow); err != nil {
		return "", err
	}
	if err := finishFile(qcow); err != nil {
		return "", err
	}
	if err := os.Rename(qcow, final); err != nil {
		return "", fmt.Errorf("caching the root filesystem: %w", err)
	}
	st, err := os.Stat(final)
	if err != nil {
		return "", fmt.Errorf("caching the root filesystem: %w", err)
	}
	p.done(fmt.Sprintf("%.0f MiB", float64(st.Size())/(1<<20)))
	return final, nil
}

// countInstalled counts the packages dpkg has installed in a root tree.
func countInstalled(root string) int {
	b, err := os.ReadFile(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "\nStatus: install ok installed")
}

// checkGuestBinary refuses a guest binary that cannot be the initramfs's
// /init: not an ELF executable, or dynamically linked (the initramfs has no
// loader or libc).
func checkGuestBinary(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return errdefs.With(errdefs.Invalid, "guest_binary: "+path+" is not an ELF executable", err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return errdefs.Invalidf("guest_binary: %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	return nil
}

// placeByContent puts src into work as prefix+<content hash>+suffix (a hard
// link when src is outside work, e.g. in the cache) and returns that name.
// Content-addressed names mean a rebuilt image never changes a file that an
// existing workspace overlay uses as its backing file.
func placeByContent(src, work, prefix, suffix string) (string, error) {
	sum, err := fileSHA256(src)
	if err != nil {
		return "", fmt.Errorf("installing image: %w", err)
	}
	name := prefix + sum[:16] + suffix
	dst := filepath.Join(work, name)
	if filepath.Dir(src) == work {
		err = os.Rename(src, dst)
	} else if err = os.Link(src, dst); err != nil {
		// The cache is on another filesystem.
		err = copyFile(src, dst)
	}
	if err != nil {
		return "", fmt.Errorf("installing image: %w", err)
	}
	if err := finishFile(dst); err != nil {
		return "", err
	}
	return name, nil
}

// finishFile makes a built file read-only and durable before anything
// refers to it.
func finishFile(path string) error {
	if err := os.Chmod(path, 0o444); err != nil {
		return fmt.Errorf("finishing %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("finishing %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("finishing %s: %w", path, err)
	}
	return nil
}

// install moves the image assembled in work into dir. A new dir is the
// renamed work directory; an existing one receives the new files first
// (their names are content hashes, so no file in use changes) and then the
// new manifest, atomically: that rename is the switch. Kernels and initrds
// the new manifest no longer names are removed; older bases are kept, as
// workspace overlays may still use them, and returned.
func install(work, dir string, m Manifest) (kept []string, err error) {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := writeManifest(work, m); err != nil {
			return nil, err
		}
		if err := os.Rename(work, dir); err != nil {
			return nil, fmt.Errorf("installing image: %w", err)
		}
		return nil, syncDir(filepath.Dir(dir))
	}
	for _, name := range []string{m.Kernel, m.Initrd, m.Rootfs} {
		dst := filepath.Join(dir, name)
		if _, err := os.Lstat(dst); err == nil {
			continue // same name, same content
		}
		if err := os.Rename(filepath.Join(work, name), dst); err != nil {
			return nil, fmt.Errorf("installing image: %w", err)
		}
	}
	if err := syncDir(dir); err != nil {
		return nil, err
	}
	if err := writeManifest(dir, m); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("installing image: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case n == m.Kernel || n == m.Initrd || n == m.Rootfs || n == ManifestFile:
		case strings.HasPrefix(n, "rootfs"):
			kept = append(kept, n)
		case strings.HasPrefix(n, "kernel") || strings.HasPrefix(n, "initrd"):
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return kept, fmt.Errorf("removing old %s: %w", n, err)
			}
		}
	}
	return kept, nil
}

// writeManifest writes dir/manifest.json atomically: a temporary file,
// synced, then renamed over the old one.
func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("writing image manifest: %w", err)
	}
	f, err := os.CreateTemp(dir, ".manifest-*.json")
	if err != nil {
		return fmt.Errorf("writing image manifest: %w", err)
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("writing image manifest: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("writing image manifest: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("writing image manifest: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing image manifest: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, ManifestFile)); err != nil {
		return fmt.Errorf("writing image manifest: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// copyFile copies src to a new file dst.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("copying %s: %w", src, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	return nil
}
