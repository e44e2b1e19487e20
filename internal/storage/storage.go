// Package storage holds workspace disks. A disk is a writable layer on top of
// a read-only base image; the base is never written. Backend is the seam;
// Qcow2 (qcow2 overlay files, any filesystem) is the default backend.
//
// Disk snapshots (later work) fit the same shape: a snapshot freezes a
// workspace's top layer and starts a new one above it; a fork or restore
// starts a new workspace's layer on a frozen one.
package storage

import "context"

// Backend creates and destroys workspace disks.
type Backend interface {
	// Create makes the disk of workspace id as a new layer on base, with a
	// virtual size of virtualSize bytes (0: the base's size; smaller than
	// the base is invalid). It returns the path of the layer QEMU opens.
	// An existing disk for id is a conflict; a missing base is unavailable.
	// A failed Create leaves nothing behind.
	Create(ctx context.Context, id, base string, virtualSize int64) (string, error)
	// Path returns the path of the top layer of id's disk, or a NotFound
	// error.
	Path(id string) (string, error)
	// Usage reports the size of id's disk.
	Usage(ctx context.Context, id string) (Usage, error)
	// Destroy removes id's disk and every layer of it. A missing disk is not
	// an error: Destroy is idempotent.
	Destroy(ctx context.Context, id string) error
}

// Usage is the size of a workspace disk.
type Usage struct {
	// VirtualSize is the disk's size as the guest sees it.
	VirtualSize int64 `json:"virtual_size"`
	// Allocated is the host space the workspace's own layers take; the
	// shared base is not counted.
	Allocated int64 `json:"allocated"`
}
