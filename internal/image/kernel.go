package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/agentiso/agentiso/internal/errdefs"
	"github.com/agentiso/agentiso/internal/hostcmd"
)

// kernelPackage is a concrete kernel package as the host's apt index knows
// it.
type kernelPackage struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	// SHA256 is the .deb's hash from the (signed) index; the download is
	// checked against it.
	SHA256 string `json:"sha256"`
}

// String is the package as apt spells a pinned version.
func (k kernelPackage) String() string { return k.Name + "=" + k.Version }

// maxMetaDepth bounds how many metapackages resolveKernelPackage follows.
const maxMetaDepth = 4

// resolveKernelPackage finds the kernel package that pkg stands for through
// the host's apt index: a metapackage such as linux-image-cloud-amd64 is
// followed to the linux-image-* package it depends on.
func resolveKernelPackage(ctx context.Context, pkg string) (kernelPackage, error) {
	spec := pkg
	for range maxMetaDepth {
		out, err := hostcmd.Run(ctx, "apt-cache", "show", "--no-all-versions", spec)
		if err != nil {
			return kernelPackage{}, errdefs.With(errdefs.Unavailable,
				fmt.Sprintf("kernel package %s is not in the host's apt index (run apt-get update)", spec), err)
		}
		st := parseControl(out)
		if next := kernelDependency(st["Depends"]); next != "" {
			spec = next
			continue
		}
		k := kernelPackage{Name: st["Package"], Version: st["Version"], SHA256: st["SHA256"]}
		if k.Name == "" || k.Version == "" || len(k.SHA256) != 64 {
			return kernelPackage{}, fmt.Errorf("resolving kernel package %s: apt-cache show gave no package, version or SHA256", spec)
		}
		return k, nil
	}
	return kernelPackage{}, fmt.Errorf("resolving kernel package %s: more than %d metapackages deep", pkg, maxMetaDepth)
}

// parseControl parses the first stanza of Debian control data (apt-cache
// show output). Continuation lines are dropped: no field used here has any.
func parseControl(b []byte) map[string]string {
	fields := make(map[string]string)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if len(fields) > 0 {
				break
			}
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// kernelDependency returns the linux-image-* package a metapackage's Depends
// field names, as "name=version" when the version is pinned with "(= v)",
// or "" when there is none (the package is the kernel itself).
func kernelDependency(depends string) string {
	for _, dep := range strings.Split(depends, ",") {
		alt, _, _ := strings.Cut(dep, "|")
		alt = strings.TrimSpace(alt)
		name, rest, _ := strings.Cut(alt, " ")
		if !strings.HasPrefix(name, "linux-image-") {
			continue
		}
		rest = strings.TrimSpace(rest)
		if v, ok := strings.CutPrefix(rest, "(="); ok {
			return name + "=" + strings.TrimSpace(strings.TrimSuffix(v, ")"))
		}
		return name
	}
	return ""
}

// downloadKernel returns the path of the kernel .deb in cacheDir, fetching
// it with the host's apt (which honours its proxies and sources) when it is
// not there. The file is checked against the index's SHA256 either way.
func downloadKernel(ctx context.Context, k kernelPackage, cacheDir string) (path string, cached bool, err error) {
	dir := filepath.Join(cacheDir, "kernel")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, fmt.Errorf("making kernel cache: %w", err)
	}
	path = filepath.Join(dir, k.Name+"_"+k.Version+".deb")
	if sum, err := fileSHA256(path); err == nil && sum == k.SHA256 {
		return path, true, nil
	}
	tmp, err := os.MkdirTemp(dir, ".download-")
	if err != nil {
		return "", false, fmt.Errorf("downloading %s: %w", k, err)
	}
	// apt would rather download as _apt and warns that it cannot write
	// here; it then downloads as root, which is what a root-only cache
	// wants (a directory _apt could write is one others could too).
	defer os.RemoveAll(tmp)
	if _, err := hostcmd.RunIn(ctx, tmp, "apt-get", "download", "-q", k.String()); err != nil {
		return "", false, errdefs.With(errdefs.Unavailable, "downloading the kernel package "+k.String(), err)
	}
	debs, err := filepath.Glob(filepath.Join(tmp, "*.deb"))
	if err != nil || len(debs) != 1 {
		return "", false, fmt.Errorf("downloading %s: expected one .deb, found %d", k, len(debs))
	}
	sum, err := fileSHA256(debs[0])
	if err != nil {
		return "", false, fmt.Errorf("downloading %s: %w", k, err)
	}
	if sum != k.SHA256 {
		return "", false, fmt.Errorf("downloading %s: SHA256 %s does not match the index's %s", k, sum, k.SHA256)
	}
	if err := os.Rename(debs[0], path); err != nil {
		return "", false, fmt.Errorf("downloading %s: %w", k, err)
	}
	return path, false, nil
}

// extractedKernel is a kernel .deb unpacked into a directory.
type extractedKernel struct {
	// Release is the kernel's release (uname -r), e.g. 6.1.0-56-cloud-amd64.
	Release string
	// BzImage is the compressed kernel.
	BzImage string
	// ModulesDir is its /lib/modules/<release>.
	ModulesDir string
}

// extractKernel unpacks the .deb into dir with dpkg-deb.
func extractKernel(ctx context.Context, deb, dir string) (*extractedKernel, error) {
	if _, err := hostcmd.Run(ctx, "dpkg-deb", "-x", deb, dir); err != nil {
		return nil, fmt.Errorf("extracting the kernel package: %w", err)
	}
	kernels, err := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if err != nil || len(kernels) != 1 {
		return nil, fmt.Errorf("extracting the kernel package: expected one boot/vmlinuz-*, found %d", len(kernels))
	}
	release := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	var modDir string
	for _, base := range []string{"lib/modules", "usr/lib/modules"} {
		d := filepath.Join(dir, base, release)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			modDir = d
			break
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("extracting the kernel package: %w", err)
		}
	}
	if modDir == "" {
		return nil, fmt.Errorf("extracting the kernel package: no modules directory for %s", release)
	}
	return &extractedKernel{Release: release, BzImage: kernels[0], ModulesDir: modDir}, nil
}

// fileSHA256 returns the hex SHA-256 of a file's contents.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
