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
	Initrd        string `json:"initrd"`
	Rootfs        string `json:"rootfs"`
	// RootfsVirtualSize is the base qcow2's virtual size in bytes; overlays
	// are at least this large.
	RootfsVirtualSize int64  `json:"rootfs_virtual_size"`
	GuestAgentSHA256  string `json:"guest_agent_sha256"`
	BuiltAt           string `json:"built_at"`
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
