// Package image builds and loads the guest image: a kernel, an initramfs whose
// init is agentiso-guest, and a read-only base qcow2 holding a Debian root
// filesystem.
package image

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ManifestFile is the name of the manifest inside an image directory. Its
// presence means the image is complete: it is written last, atomically.
const ManifestFile = "manifest.json"

// Manifest describes a built image. File names are relative to the image
// directory.
type Manifest struct {
	Name string `json:"name"`
	// Hash is the hash of every input of the build; a build whose inputs hash
	// the same is a no-op.
	Hash          string `json:"hash"`
	Kernel        string `json:"kernel"`
	KernelVersion string `json:"kernel_version"`
	// KernelPackage is the Debian package the kernel came from, as
	// name=version.
	KernelPackage string `json:"kernel_package,omitempty"`
	// KernelArgs are the kernel command-line parameters this image needs
	// (the root device); the VM runner adds its own.
	KernelArgs []string `json:"kernel_args,omitempty"`
	Initrd     string   `json:"initrd"`
	// Rootfs names the read-only base qcow2. Its name carries a hash of its
	// content: a rebuild adds a new base rather than changing the one that
	// existing overlays are backed by.
	Rootfs string `json:"rootfs"`
	// RootfsVirtualSize is the base qcow2's virtual size in bytes; overlays
	// are at least this large, and the guest grows its filesystem to fill a
	// larger one at boot.
	RootfsVirtualSize int64 `json:"rootfs_virtual_size"`
	// RootfsHash is the hash of the root filesystem's inputs (its cache key).
	RootfsHash       string `json:"rootfs_hash,omitempty"`
	Suite            string `json:"suite,omitempty"`
	GuestAgentSHA256 string `json:"guest_agent_sha256"`
	BuiltAt          string `json:"built_at"`
}

// Image is a loaded image with absolute paths.
type Image struct {
	Dir      string
	Manifest Manifest
}

// Load reads the image in dir.
func Load(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("reading image manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("parsing image manifest %s: %w", dir, err)
	}
	return &Image{Dir: dir, Manifest: m}, nil
}

// KernelPath is the absolute path of the kernel.
func (i *Image) KernelPath() string { return filepath.Join(i.Dir, i.Manifest.Kernel) }

// InitrdPath is the absolute path of the initramfs.
func (i *Image) InitrdPath() string { return filepath.Join(i.Dir, i.Manifest.Initrd) }

// RootfsPath is the absolute path of the read-only base qcow2.
func (i *Image) RootfsPath() string { return filepath.Join(i.Dir, i.Manifest.Rootfs) }

// KernelArgs returns the kernel command-line parameters the image needs.
func (i *Image) KernelArgs() []string {
	if len(i.Manifest.KernelArgs) == 0 {
		return KernelArgs() // a manifest from before they were recorded
	}
	return i.Manifest.KernelArgs
}
